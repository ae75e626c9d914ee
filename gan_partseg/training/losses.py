"""Segmentation losses shared by the few-shot head and the auto-shot U-Net.

Mean IoU counts every part equally, and plain cross-entropy lets a model trade an eye (0.4% of the
pixels) for a little background; the balanced and Dice terms are what keep the small parts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan_partseg.errors import ArgumentError
from gan_partseg.labels import IGNORE_INDEX

LOSSES = ("ce", "balanced-ce", "ce+dice", "balanced-ce+dice")
IGNORE = IGNORE_INDEX
"""Label id of pixels no loss reads (the boundary band, an imported set's other instances): the one
:data:`gan_partseg.labels.IGNORE_INDEX`, which ``evaluate`` skips as well (named here for the trainers)."""


def check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ArgumentError(f"loss must be one of {LOSSES}, got {loss!r}")


def class_weights(labels: torch.Tensor, n_classes: int, balance: str = "inv-sqrt",
                  max_weight: float = 50.0) -> torch.Tensor:
    """Per-class CE weights (n_classes,) from hard labels (N, H, W): rarer classes weigh more.

    Normalised so that sum_c freq_c * w_c = 1 (the average pixel keeps weight 1); classes absent from the
    labels get the cap. Pixels labelled :data:`IGNORE` are not counted.
    """
    flat = labels.reshape(-1)
    counts = torch.bincount(flat[flat != IGNORE], minlength=n_classes).double()[:n_classes]
    freq = counts / counts.sum()
    present = freq > 0
    w = torch.zeros(n_classes, dtype=torch.float64)
    if balance == "inv-sqrt":
        w[present] = freq[present].rsqrt()
    elif balance == "median-freq":
        w[present] = freq[present].median() / freq[present]
    else:
        raise ArgumentError(f"balance must be 'inv-sqrt' or 'median-freq', got {balance!r}")
    w = w / (freq * w).sum()
    w[~present] = max_weight
    return w.clamp(max=max_weight).float()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - mean over classes of the soft Dice between softmax(logits) (B, C, H, W) and the target:
    hard ids (B, H, W) (pixels labelled :data:`IGNORE` left out) or soft probabilities (B, C, H, W);
    summed over the batch and pixels (classes absent from batch and prediction score ~1 via ``smooth``)."""
    prob = F.softmax(logits, 1)
    if target.ndim == 3:
        valid = (target != IGNORE).unsqueeze(1).to(prob.dtype)
        t = F.one_hot(torch.where(target == IGNORE, 0, target), logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
        t, prob = t * valid, prob * valid
    else:
        t = target
    inter = (prob * t).sum((0, 2, 3))
    denom = prob.sum((0, 2, 3)) + t.sum((0, 2, 3))
    return 1 - ((2 * inter + smooth) / (denom + smooth)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, loss: str = "ce",
                      weight: torch.Tensor | None = None, dice_weight: float = 1.0) -> torch.Tensor:
    """One of :data:`LOSSES` on logits (B, C, H, W) and hard (B, H, W) or soft (B, C, H, W) targets.

    ``weight``: the class weights of the balanced losses (:func:`class_weights`); hard targets may hold
    :data:`IGNORE`.
    """
    balanced = loss.startswith("balanced")
    w = weight.to(logits.device) if balanced and weight is not None else None
    if target.ndim == 3:
        out = F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE)
    else:
        out = F.cross_entropy(logits, target, weight=w)
    if loss.endswith("dice"):
        out = out + dice_weight * soft_dice_loss(logits, target)
    return out


def boundary_band(labels: torch.Tensor, width: int) -> torch.Tensor:
    """``labels`` (N, H, W) ids with every pixel within ``width`` px (chessboard) of a class boundary set to
    :data:`IGNORE`: where the shot's labels and the generator's image disagree by a pixel or two, the
    loss does not read either side."""
    if width <= 0:
        return labels
    x = labels.float().unsqueeze(1)
    k = 2 * width + 1
    hi = F.max_pool2d(x, k, stride=1, padding=width)
    lo = -F.max_pool2d(-x, k, stride=1, padding=width)
    edge = (hi != lo).squeeze(1)
    return torch.where(edge, torch.full_like(labels, IGNORE), labels)
