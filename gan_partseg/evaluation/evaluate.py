"""Score any segmenter of this package on any labelled set: weighted, per-class and mean IoU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from gan_partseg.data.labelled import load_labelled
from gan_partseg.errors import ArgumentError, DatasetError, ModelFolderError
from gan_partseg.evaluation.metrics import SegmentationMetrics
from gan_partseg.hub import resolve_pretrained
from gan_partseg.images import (
    uint8_to_tensor,
)
from gan_partseg.inversion.latent_optimizer import auto_inversion_batch
from gan_partseg.labels import IGNORE_INDEX
from gan_partseg.models.autoshot import AutoShotSegmenter
from gan_partseg.models.fewshot import FewShotSegmenter


def evaluate_segmenter(segmenter, data, labels=None, n: int | None = None, batch_size: int | None = None,
                       exclude_class: int | None = None, **optimizer_kwargs) -> dict:
    """Score any segmenter of this package on any labelled set: weighted / per-class / mean IoU.

    ``segmenter``: a bundled name, model folder or hub id, or a loaded :class:`FewShotSegmenter` /
    :class:`AutoShotSegmenter`. ``data`` / ``labels``: as :func:`load_labelled` reads them (a data set
    folder, or an images folder with its label folder). An auto-shot U-Net segments each image at its own
    size; a few-shot segmenter reads images at its generator's size through inversion
    (``optimizer_kwargs`` go to the latent optimizer) and is scored at its output size. The set's classes
    must be the segmenter's (same names, same ids); a label folder without id2label.json is read as the
    segmenter's classes. ``batch_size`` None: 16 images per U-Net batch, and for inversion the latent optimizer's
    own default (:func:`~gan_partseg.inversion.latent_optimizer.auto_inversion_batch`). Label pixels
    :data:`~gan_partseg.labels.IGNORE_INDEX` (255) are skipped
    (:mod:`gan_partseg.evaluation.metrics`).
    """
    model = _load_segmenter(segmenter)
    t0 = time.time()
    size = model.generator.config.size if isinstance(model, FewShotSegmenter) else None
    images, targets, data_labels, notes = load_labelled(data, size=size, n=n, labels=labels)
    model_labels = {int(k): v for k, v in model.id2label.items()}
    if exclude_class is not None and not 0 <= exclude_class < len(model_labels):
        raise ArgumentError(f"exclude_class must be a class id of the segmenter, in [0, {len(model_labels) - 1}], "
                            f"got {exclude_class}")
    if data_labels is None:
        notes.append(f"no id2label.json beside {labels}: read as the segmenter's classes")
    else:
        _check_same_classes(model_labels, data_labels, segmenter, data)
    # ignored pixels (255) hold no class id: not checked here, not scored by the metrics
    top = int(np.max(targets, where=targets != IGNORE_INDEX, initial=0))
    if top >= len(model_labels):
        raise DatasetError(f"{labels or data} holds class id {top}, but the segmenter has {len(model_labels)} classes "
                           f"(ids 0 to {len(model_labels) - 1}): pass label maps of the segmenter's classes")
    if isinstance(model, AutoShotSegmenter):
        from PIL import Image

        preds = np.stack([p.numpy() for p in model.segment([Image.fromarray(a) for a in images], batch_size or 16)])
    else:
        out_size = model.config.output_size
        if targets.shape[-1] != out_size:
            from PIL import Image

            targets = np.stack([np.asarray(Image.fromarray(a).resize((out_size, out_size), Image.NEAREST))
                                for a in targets])
        batch_size = batch_size or auto_inversion_batch(model.generator)
        preds = np.concatenate([model.segment_images(uint8_to_tensor(images[i: i + batch_size]),
                                                     **optimizer_kwargs).labels.cpu().numpy()
                                for i in range(0, len(images), batch_size)])
    metrics = SegmentationMetrics(len(model_labels), exclude_class, [model_labels[i] for i in range(len(model_labels))])
    metrics.update(torch.from_numpy(preds), torch.from_numpy(targets.astype(np.int64)))
    result = metrics.compute()
    kind = model.config.model_type
    result.update({"segmenter": str(segmenter) if isinstance(segmenter, (str, Path)) else kind, "data": str(data),
                   "kind": kind, "seconds_per_image": round((time.time() - t0) / max(len(images), 1), 4),
                   "notes": notes})
    return result


def _load_segmenter(segmenter):
    if isinstance(segmenter, (FewShotSegmenter, AutoShotSegmenter)):
        return segmenter.eval()
    config_path = Path(resolve_pretrained(segmenter)) / "config.json"
    try:
        model_type = json.loads(config_path.read_text()).get("model_type") if config_path.is_file() else None
    except (ValueError, UnicodeDecodeError, AttributeError) as err:
        raise ModelFolderError(f"{config_path} is not a valid config.json ({err}); the model folder is damaged") from None
    if model_type == "gan_partseg_autoshot":
        return AutoShotSegmenter.from_pretrained(segmenter).eval()
    if model_type == "gan_partseg_fewshot":
        return FewShotSegmenter.from_pretrained(segmenter).eval()
    raise ModelFolderError(f"{segmenter} is not a segmenter of this package (model_type {model_type!r}); pass a "
                           "few-shot segmenter or an auto-shot U-Net")


def _check_same_classes(model_labels: dict, data_labels: dict, segmenter, data) -> None:
    if {int(k): v for k, v in model_labels.items()} != {int(k): v for k, v in data_labels.items()}:
        raise DatasetError(f"{segmenter} segments {[model_labels[i] for i in sorted(model_labels)]} but {data} is "
                           f"labelled {[data_labels[i] for i in sorted(data_labels)]}: evaluate on a data set of the "
                           "same classes (e.g. import-data --classes 3 for a 3-class segmenter)")
