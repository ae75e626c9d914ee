"""Folder-level jobs on real images: invert, make shots, evaluate a few-shot segmenter.

Each reads an image folder (any of PNG / JPEG / BMP / WebP / TIFF; grayscale and RGBA
are converted, non-square images centre-cropped, other sizes resized, each change
reported as a note), works in batches with a progress bar, and writes every output
file atomically, so an interrupted run leaves only complete files behind.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .fewshot import FewShotSegmenter
from .io import (atomic_write_text, list_images, load_image, load_label_map, matching_label, save_image,
                 tensor_to_uint8, uint8_to_tensor)
from .latent_optimizer import LatentOptimizer
from .metrics import SegmentationMetrics
from .models.stylegan2 import StyleGAN2Generator
from .shots import read_id2label, write_id2label, write_latent, write_shot


def load_folder(folder, size: int) -> tuple[list[Path], torch.Tensor, list[str]]:
    """All images of ``folder`` as (N, 3, size, size) in [-1, 1], with the conversion notes."""
    paths = list_images(folder)
    arrays, notes = [], []
    for p in paths:
        arr, n = load_image(p, size)
        arrays.append(arr)
        notes += n
    return paths, uint8_to_tensor(np.stack(arrays)), notes


def invert_folder(generator: StyleGAN2Generator, generator_name: str, images, out, **optimizer_kwargs) -> dict:
    """Invert every image; write OUT/latents/NAME.safetensors, OUT/reconstructions/NAME.png, OUT/inversion.json."""
    out = Path(out)
    paths, batch, notes = load_folder(images, generator.config.size)
    t0 = time.time()
    res = LatentOptimizer(generator, **optimizer_kwargs).invert(batch)
    seconds = time.time() - t0
    recon = tensor_to_uint8(res.reconstructions)
    for i, p in enumerate(paths):
        write_latent(out, p.stem, res.latents[i: i + 1], [n[i: i + 1] for n in res.noises], generator_name)
        save_image(out / "reconstructions" / f"{p.stem}.png", recon[i])
    summary = {"generator": generator_name, "space": res.space, "n_images": len(paths),
               "psnr": {p.stem: round(float(v), 3) for p, v in zip(paths, res.psnr)},
               "mean_psnr": round(float(res.psnr.mean()), 3), "seconds_per_image": round(seconds / len(paths), 3),
               "notes": notes, "optimizer": {k: v for k, v in optimizer_kwargs.items() if k != "discriminator"}}
    atomic_write_text(out / "inversion.json", json.dumps(summary, indent=2))
    return summary


def make_shots(generator: StyleGAN2Generator, generator_name: str, images, labels, out,
               id2label: dict[int, str], **optimizer_kwargs) -> dict:
    """Real image + label map -> shot (the reconstruction as the image, the real label aligned with it)."""
    size = generator.config.size
    paths, batch, notes = load_folder(images, size)
    label_maps = [load_label_map(matching_label(labels, p), size) for p in paths]
    for p, lab in zip(paths, label_maps):
        bad = np.setdiff1d(np.unique(lab), list(id2label))
        if bad.size:
            raise ValueError(f"{matching_label(labels, p)} holds class ids {bad.tolist()} outside id2label")
    res = LatentOptimizer(generator, **optimizer_kwargs).invert(batch)
    recon = tensor_to_uint8(res.reconstructions)
    for i, p in enumerate(paths):
        write_shot(out, p.stem, recon[i], label_maps[i].astype(np.uint8), res.latents[i: i + 1],
                   [n[i: i + 1] for n in res.noises], generator_name)
    write_id2label(out, id2label)
    return {"n_shots": len(paths), "mean_psnr": float(res.psnr.mean()), "notes": notes}


def invert_rendered(generator: StyleGAN2Generator, generator_name: str, seeds, folder, with_labels: bool,
                    batch_size: int = 8, progress: bool = True, **optimizer_kwargs) -> float:
    """Invert the rendered toy faces of ``seeds`` that ``folder`` does not hold yet (resumable).

    Writes ``folder/latents/SEED.safetensors`` (7-digit names) and, ``with_labels``, the shot files
    (reconstruction + true 10-class labels), batch by batch. Returns seconds per image (nan when
    nothing was left to do).
    """
    from tqdm.auto import tqdm

    from .data import render

    folder = Path(folder)
    todo = [s for s in seeds if not (folder / "latents" / f"{s:07d}.safetensors").exists()]
    if not todo:
        return float("nan")
    t0 = time.time()
    optimizer = LatentOptimizer(generator, progress=False, **optimizer_kwargs)
    bar = tqdm(total=len(todo), desc=f"invert -> {folder.name}", unit="img", disable=not progress)
    for i in range(0, len(todo), batch_size):
        chunk = todo[i: i + batch_size]
        pairs = [render(s, generator.config.size) for s in chunk]
        res = optimizer.invert(uint8_to_tensor(np.stack([p[0] for p in pairs])))
        recon = tensor_to_uint8(res.reconstructions)
        for j, s in enumerate(chunk):
            noise = [n[j: j + 1] for n in res.noises]
            if with_labels:
                write_shot(folder, f"{s:07d}", recon[j], pairs[j][1], res.latents[j: j + 1], noise, generator_name)
            else:
                write_latent(folder, f"{s:07d}", res.latents[j: j + 1], noise, generator_name)
        bar.update(len(chunk))
    bar.close()
    return (time.time() - t0) / len(todo)


def find_id2label(labels_dir) -> dict[int, str]:
    """id2label.json in the labels folder or its parent."""
    for folder in (Path(labels_dir), Path(labels_dir).parent):
        if (folder / "id2label.json").is_file():
            return read_id2label(folder)
    raise FileNotFoundError(f"no id2label.json in {labels_dir} or its parent; pass --classes 10|3")


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


def load_labelled(data, size: int | None = None, n: int | None = None) -> tuple[np.ndarray, np.ndarray, dict, list]:
    """Images (N, H, W, 3) uint8, labels (N, H, W) uint8, id2label and notes from a labelled data set.

    ``data``: a saved labelled data set (``export-data``, ``import-data``), a generated one
    (``make-dataset``), or a PNG folder (``images/``, ``labels/``, ``id2label.json``). With ``size`` every
    image is resized (bilinear) and every label map (nearest) to it.
    """
    from .training.autoshot import load_training_set

    folder = Path(data)
    notes: list[str] = []
    if (folder / "images").is_dir() and (folder / "labels").is_dir():
        paths = list_images(folder / "images")[:n]
        id2label = find_id2label(folder / "labels")
        images, labels = [], []
        for p in paths:
            arr, note = load_image(p, size)
            images.append(arr)
            notes += note
            labels.append(load_label_map(matching_label(folder / "labels", p), size or arr.shape[0]))
        return np.stack(images), np.stack(labels).astype(np.uint8), id2label, notes
    x, y, _, info = load_training_set(str(folder))
    if n is not None:
        x, y = x[:n], y[:n]
    images = tensor_to_uint8(x)
    labels = y.numpy().astype(np.uint8)
    if size is not None and images.shape[1] != size:
        from PIL import Image

        notes.append(f"resized {images.shape[1]} px images to {size} px")
        images = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR)) for a in images])
        labels = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.NEAREST)) for a in labels])
    return images, labels, {int(k): v for k, v in info["id2label"].items()}, notes


def evaluate_segmenter(segmenter: str, data, n: int | None = None, batch_size: int = 16,
                       exclude_class: int | None = None, **optimizer_kwargs) -> dict:
    """Score any segmenter of this package on any labelled data set: weighted / per-class / mean IoU.

    An auto-shot U-Net segments each image at its own size; a few-shot segmenter reads images at its
    generator's size through inversion (``optimizer_kwargs`` go to the latent optimizer) and is
    scored at its output size. The data set's classes must be the segmenter's (same names, same ids).
    """
    from .hub import resolve_pretrained

    config_path = Path(resolve_pretrained(segmenter)) / "config.json"
    model_type = json.loads(config_path.read_text()).get("model_type") if config_path.is_file() else None
    t0 = time.time()
    if model_type == "gan_partseg_autoshot":
        from PIL import Image

        from .unet import AutoShotSegmenter

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
