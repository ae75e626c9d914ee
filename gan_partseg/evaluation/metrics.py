"""Segmentation metrics: confusion matrix, per-class IoU, mean IoU, weighted IoU, streaming.

Definitions (docs/method.md section 6; the paper gives no code):

* **confusion matrix** ``cm[t, p]``: pixels of true class ``t`` predicted as ``p``.
* **per-class IoU** ``IoU_c = cm[c, c] / (sum_t cm[t, c] + sum_p cm[c, p] - cm[c, c])``
  over the whole data set; NaN for a class that is neither present nor predicted.
* **mean IoU**: the mean of per-class IoU over classes with a non-empty union (NaNs skipped).
* **weighted IoU** (the paper's headline figure), computed *per image* and then averaged
  over images: ``sum_c (|GT_c| / |pixels|) * IoU_c(image)``, i.e. each class's IoU in that
  image weighted by its share of the ground-truth pixels. Classes absent from an image's
  ground truth carry weight 0. **All classes are included, background too.** Pass
  ``exclude_class=0`` to leave background out of the averages (weighted and mean IoU):
  its pixels still count, so a part predicted on background is still a false positive.
* **ignored pixels**: ground-truth pixels labelled :data:`gan_partseg.labels.IGNORE_INDEX` (255; e.g.
  PASCAL-Part's other instances of the class inside a crop) count nowhere: not in the confusion
  matrix, not in any IoU or weight, whatever is predicted there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from gan_partseg.labels import IGNORE_INDEX


def _as_long(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.long()


def confusion_matrix(pred, target, n_classes: int) -> torch.Tensor:
    """(n_classes, n_classes) int64 counts ``cm[true, pred]`` over the pixels of pred / target (same shape).

    Pixels whose target is :data:`IGNORE_INDEX` are left out (their prediction is not checked either);
    every other id of either map must lie in [0, n_classes).
    """
    p, t = _as_long(pred).reshape(-1), _as_long(target).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    keep = t != IGNORE_INDEX
    p, t = p[keep], t[keep]
    for name, x in (("pred", p), ("target", t)):
        if x.numel() and (x.min() < 0 or x.max() >= n_classes):
            raise ValueError(f"{name} holds class ids outside [0, {n_classes - 1}]: range [{x.min()}, {x.max()}]")
    return torch.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def iou_from_confusion(cm: torch.Tensor) -> torch.Tensor:
    """Per-class IoU (float64, NaN where the union is empty)."""
    cm = cm.double()
    inter = cm.diag()
    union = cm.sum(0) + cm.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(inter, float("nan")))


def weighted_iou_image(pred, target, n_classes: int, exclude_class: int | None = None) -> float:
    """Weighted IoU of one image (H, W): sum_c share_of_gt_pixels_c * IoU_c (NaN if no weight is left)."""
    cm = confusion_matrix(pred, target, n_classes)
    gt = cm.sum(1).double()
    if exclude_class is not None:
        gt[exclude_class] = 0
    total = gt.sum()
    if total == 0:
        return float("nan")
    iou = torch.nan_to_num(iou_from_confusion(cm), nan=0.0)
    return float((gt / total * iou).sum())


@dataclass
class SegmentationMetrics:
    """Streaming metrics over a data set: call :meth:`update` per batch, then :meth:`compute`."""

    n_classes: int
    exclude_class: int | None = None
    class_names: list[str] | None = None
    confusion: torch.Tensor = field(init=False)
    image_wiou: list[float] = field(init=False, default_factory=list)

    def __post_init__(self):
        self.confusion = torch.zeros(self.n_classes, self.n_classes, dtype=torch.long)

    def update(self, pred, target) -> None:
        """pred, target: (H, W) or (B, H, W) integer class maps (target pixels :data:`IGNORE_INDEX` skipped)."""
        p, t = _as_long(pred), _as_long(target)
        if p.ndim == 2:
            p, t = p[None], t[None]
        if p.shape != t.shape:
            raise ValueError(f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}")
        for pi, ti in zip(p, t):
            self.confusion += confusion_matrix(pi, ti, self.n_classes)
            self.image_wiou.append(weighted_iou_image(pi, ti, self.n_classes, self.exclude_class))

    def compute(self) -> dict:
        """{'weighted_iou', 'mean_iou', 'per_class_iou' {name: iou or None}, 'n_images', 'confusion'}; IoUs in [0, 1]."""
        iou = iou_from_confusion(self.confusion)
        names = self.class_names or [str(i) for i in range(self.n_classes)]
        valid = [v for v in self.image_wiou if not np.isnan(v)]
        per_class = {n: (None if torch.isnan(v) else float(v)) for n, v in zip(names, iou)}
        if self.exclude_class is not None:
            per_class.pop(names[self.exclude_class])
            iou = torch.cat([iou[: self.exclude_class], iou[self.exclude_class + 1:]])
        finite = iou[~torch.isnan(iou)]
        return {
            "weighted_iou": float(np.mean(valid)) if valid else float("nan"),
            "mean_iou": float(finite.mean()) if finite.numel() else float("nan"),
            "per_class_iou": per_class,
            "n_images": len(self.image_wiou),
            "confusion": self.confusion.tolist(),
        }


def evaluate_arrays(preds, targets, n_classes: int, class_names=None, exclude_class: int | None = None) -> dict:
    """One-shot helper: metrics of (N, H, W) predictions against (N, H, W) targets."""
    m = SegmentationMetrics(n_classes, exclude_class, list(class_names) if class_names else None)
    m.update(preds, targets)
    return m.compute()
