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
import torch

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
from gan_partseg.labels import IGNORE_INDEX, mirror_classes, mirror_label_map
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
               id2label: dict[int, str], mirror: bool = False, **optimizer_kwargs) -> dict:
    """Real image + label map -> shot (the reconstruction as the image, the real label aligned with it).

    ``mirror``: each annotated image is also inverted flipped left-right, with its label map flipped and its
    sided classes swapped (:func:`gan_partseg.labels.mirror_classes`), as a second shot ``NAME-mirror``: the
    generator draws the mirrored face with features of its own, so one annotation gives the head two faces.
    """
    size = generator.config.size
    paths, batch, notes = load_folder(images, size)
    label_maps = [load_label_map(matching_label(labels, p), size) for p in paths]  # int64: 16-bit PNGs too
    for p, lab in zip(paths, label_maps):
        bad = np.setdiff1d(np.unique(lab), [*id2label, IGNORE_INDEX])  # 255 (ignore) passes through to the shot
        if bad.size:
            raise ImageError(f"{matching_label(labels, p)} holds class ids {bad.tolist()} outside id2label")
    label_maps = [lab.astype(np.uint8) for lab in label_maps]  # only after the check: 256 must not wrap to 0
    names = [p.stem for p in paths]
    if mirror:
        table = mirror_classes(id2label)
        swapped = [f"{id2label[i]} <-> {id2label[int(j)]}" for i, j in enumerate(table[:len(id2label)]) if i < j]
        notes = [*notes, "mirrored shots swap " + (", ".join(swapped) if swapped else "no class (none is sided)")]
        batch = torch.cat([batch, batch.flip(-1)])
        label_maps = label_maps + [mirror_label_map(lab, table) for lab in label_maps]
        names = names + [f"{n}-mirror" for n in names]
    res = LatentOptimizer(generator, **optimizer_kwargs).invert(batch)
    recon = tensor_to_uint8(res.reconstructions)
    for i, name in enumerate(names):
        write_shot(out, name, recon[i], label_maps[i], res.latents[i: i + 1],
                   [n[i: i + 1] for n in res.noises], generator_name)
    write_id2label(out, id2label)
    return {"n_shots": len(names), "n_annotated": len(paths), "mean_psnr": float(res.psnr.mean()), "notes": notes}


def invert_rendered(generator: StyleGAN2Generator, generator_name: str, seeds, folder, with_labels: bool,
                    batch_size: int = 8, progress: bool = True, mirror: bool = False, **optimizer_kwargs) -> float:
    """Invert the rendered toy faces of ``seeds`` that ``folder`` does not hold yet (resumable).

    Writes ``folder/latents/SEED.safetensors`` (7-digit names) and, ``with_labels``, the shot files
    (reconstruction + true 10-class labels), batch by batch. ``mirror``: each face and its labels flipped
    left-right first (the 10 classes have no left/right). Returns seconds per image (nan when nothing
    was left to do).
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
        if mirror:  # the 10 classes have no sided class: the label map only flips
            pairs = [(np.ascontiguousarray(im[:, ::-1]), mirror_label_map(lab, np.arange(256, dtype=np.uint8)))
                     for im, lab in pairs]
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
