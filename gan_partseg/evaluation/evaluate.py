"""Score any segmenter of this package on any labelled set: weighted, per-class and mean IoU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from gan_partseg.data.labelled import load_labelled
from gan_partseg.evaluation.metrics import SegmentationMetrics
from gan_partseg.hub import resolve_pretrained
from gan_partseg.images import (
    list_images,
    load_image,
    load_label_map,
    matching_label,
    uint8_to_tensor,
)
from gan_partseg.models.autoshot import AutoShotSegmenter
from gan_partseg.models.fewshot import FewShotSegmenter


def evaluate_fewshot(segmenter: FewShotSegmenter, images, labels, batch_size: int = 16,
                     exclude_class: int | None = None, **optimizer_kwargs) -> dict:
    """Invert each image, segment, compare with its label map: weighted / per-class / mean IoU."""
    size = segmenter.config.output_size
    g = segmenter.generator
    paths = list_images(images)
    metrics = SegmentationMetrics(segmenter.n_classes, exclude_class, [segmenter.id2label[i]
                                                                      for i in range(segmenter.n_classes)])
    t0 = time.time()
    notes: list[str] = []
    for i in range(0, len(paths), batch_size):
        chunk = paths[i: i + batch_size]
        arrays = []
        for p in chunk:
            arr, n = load_image(p, g.config.size)
            arrays.append(arr)
            notes += n
        targets = np.stack([load_label_map(matching_label(labels, p), size) for p in chunk])
        out = segmenter.segment_images(uint8_to_tensor(np.stack(arrays)), **optimizer_kwargs)
        metrics.update(out.labels.cpu(), torch.from_numpy(targets))
    result = metrics.compute()
    result["seconds_per_image"] = round((time.time() - t0) / len(paths), 3)
    result["notes"] = notes
    return result


def evaluate_segmenter(segmenter: str, data, n: int | None = None, batch_size: int = 16,
                       exclude_class: int | None = None, **optimizer_kwargs) -> dict:
    """Score any segmenter of this package on any labelled data set: weighted / per-class / mean IoU.

    An auto-shot U-Net segments each image at its own size; a few-shot segmenter reads images at its
    generator's size through inversion (``optimizer_kwargs`` go to the latent optimizer) and is
    scored at its output size. The data set's classes must be the segmenter's (same names, same ids).
    """

    config_path = Path(resolve_pretrained(segmenter)) / "config.json"
    model_type = json.loads(config_path.read_text()).get("model_type") if config_path.is_file() else None
    t0 = time.time()
    if model_type == "gan_partseg_autoshot":
        from PIL import Image


        model = AutoShotSegmenter.from_pretrained(segmenter).eval()
        model_labels = model.id2label
        images, labels, data_labels, notes = load_labelled(data, n=n)
        _check_same_classes(model_labels, data_labels, segmenter, data)
        preds = np.stack([p.numpy() for p in model.segment([Image.fromarray(a) for a in images], batch_size)])
    elif model_type == "gan_partseg_fewshot":
        model = FewShotSegmenter.from_pretrained(segmenter).eval()
        model_labels = model.id2label
        images, labels, data_labels, notes = load_labelled(data, size=model.generator.config.size, n=n)
        _check_same_classes(model_labels, data_labels, segmenter, data)
        out_size = model.config.output_size
        if labels.shape[-1] != out_size:
            from PIL import Image

            labels = np.stack([np.asarray(Image.fromarray(a).resize((out_size, out_size), Image.NEAREST))
                               for a in labels])
        preds = []
        for i in range(0, len(images), batch_size):
            preds.append(model.segment_images(uint8_to_tensor(images[i: i + batch_size]),
                                              **optimizer_kwargs).labels.cpu().numpy())
        preds = np.concatenate(preds)
    else:
        raise ValueError(f"{segmenter} is not a segmenter of this package (model_type {model_type!r}); pass a "
                         "few-shot segmenter or an auto-shot U-Net")
    metrics = SegmentationMetrics(len(model_labels), exclude_class, [model_labels[i] for i in range(len(model_labels))])
    metrics.update(torch.from_numpy(preds), torch.from_numpy(labels.astype(np.int64)))
    result = metrics.compute()
    result.update({"segmenter": str(segmenter), "data": str(data), "kind": model_type,
                   "seconds_per_image": round((time.time() - t0) / max(len(images), 1), 4), "notes": notes})
    return result


def _check_same_classes(model_labels: dict, data_labels: dict, segmenter, data) -> None:
    if {int(k): v for k, v in model_labels.items()} != {int(k): v for k, v in data_labels.items()}:
        raise ValueError(f"{segmenter} segments {[model_labels[i] for i in sorted(model_labels)]} but {data} is "
                         f"labelled {[data_labels[i] for i in sorted(data_labels)]}: evaluate on a data set of the "
                         "same classes (e.g. import-data --classes 3 for a 3-class segmenter)")
