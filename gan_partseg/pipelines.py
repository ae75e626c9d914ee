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
