"""Folder-level jobs on images: invert a folder, make shots from labelled images, invert rendered faces.

Each reads an image folder with :func:`gan_partseg.images.load_folder`, works in batches with a
progress bar, and writes every output file atomically, so an interrupted run leaves only complete
files behind.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from gan_partseg.data import render
from gan_partseg.data.shots import write_id2label, write_latent, write_shot
from gan_partseg.errors import ImageError
from gan_partseg.files import atomic_write_text
from gan_partseg.images import (
    load_folder,
    load_label_map,
    matching_label,
    save_image,
    tensor_to_uint8,
    uint8_to_tensor,
)
from gan_partseg.inversion.latent_optimizer import LatentOptimizer
from gan_partseg.labels import IGNORE_INDEX
from gan_partseg.models.stylegan2 import StyleGAN2Generator


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
        bad = np.setdiff1d(np.unique(lab), [*id2label, IGNORE_INDEX])  # 255 (ignore) passes through to the shot
        if bad.size:
            raise ImageError(f"{matching_label(labels, p)} holds class ids {bad.tolist()} outside id2label")
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
