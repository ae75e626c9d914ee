"""The "shots" folder: annotated generated examples a few-shot head trains on.

Layout (the same ``images/`` + ``labels/`` + ``id2label.json`` as the PNG export)::

    SHOTS/id2label.json              {"0": "background", "1": "skin", ...}
    SHOTS/images/NAME.png            RGB image the generator drew at this latent (H x W = generator size)
    SHOTS/labels/NAME.png            class ids, mode "L" (pixel value = class id); all 0 = not painted yet;
                                     255 (labels.IGNORE_INDEX) = left unlabelled: not trained on
    SHOTS/latents/NAME.safetensors   "latent": (1, style_dim) W or (1, n_latent, style_dim) W+,
                                     "noise_0" ... "noise_{L-1}": (1, 1, r, r) noise maps;
                                     metadata {"generator": name, "space": "w" | "w+"}

Paint a label PNG in any editor that keeps exact pixel values (nearest-neighbour,
no antialiasing), or in the Space's annotation tab.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from gan_partseg.errors import ShotsError
from gan_partseg.files import atomic_write_bytes, atomic_write_text
from gan_partseg.images import save_image
from gan_partseg.labels import IGNORE_INDEX


@dataclass
class Shot:
    name: str
    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) uint8 class ids
    latent: torch.Tensor  # (1, D) or (1, n_latent, D)
    noise: list[torch.Tensor]  # (1, 1, r, r) each
    generator: str
    space: str


def write_latent(folder: str | Path, name: str, latent: torch.Tensor, noise: Sequence[torch.Tensor],
                 generator: str) -> Path:
    """``folder/latents/NAME.safetensors``: the latent (W or W+) and its noise maps, generator in metadata."""
    latent = latent.detach().float().cpu()
    if latent.ndim == 1:
        latent = latent[None]
    space = "w+" if latent.ndim == 3 else "w"
    tensors = {"latent": latent.contiguous()}
    tensors.update({f"noise_{i}": n.detach().float().cpu().reshape(1, 1, *n.shape[-2:]).contiguous()
                    for i, n in enumerate(noise)})
    path = Path(folder) / "latents" / f"{name}.safetensors"
    atomic_write_bytes(path, save(tensors, metadata={"generator": str(generator), "space": space}))
    return path


def read_latents(folder: str | Path, names: Sequence[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``folder/latents/NAME.safetensors`` for each name, batched: latents (N, ...) and noise maps [(N, 1, r, r)]."""
    paths = [Path(folder) / "latents" / f"{n}.safetensors" for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ShotsError(f"missing latent file(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    items = [_read_safetensors(p) for p in paths]
    n_noise = sum(1 for k in items[0] if k.startswith("noise_"))
    return (torch.cat([t["latent"] for t in items]),
            [torch.cat([t[f"noise_{i}"] for t in items]) for i in range(n_noise)])


def write_shot(folder: str | Path, name: str, image: np.ndarray, labels: np.ndarray | None, latent: torch.Tensor,
               noise: Sequence[torch.Tensor], generator: str) -> None:
    """Write one shot (labels None -> an all-background label PNG to paint)."""
    folder = Path(folder)
    if labels is None:
        labels = np.zeros(image.shape[:2], np.uint8)
    write_latent(folder, name, latent, noise, generator)
    save_image(folder / "images" / f"{name}.png", image)
    save_image(folder / "labels" / f"{name}.png", Image.fromarray(np.asarray(labels, np.uint8), mode="L"))


def write_id2label(folder: str | Path, id2label: Mapping[int, str]) -> None:
    atomic_write_text(Path(folder) / "id2label.json",
                      json.dumps({str(k): v for k, v in sorted(id2label.items())}, indent=2))


def read_id2label(folder: str | Path) -> dict[int, str]:
    path = Path(folder) / "id2label.json"
    if not path.is_file():
        raise ShotsError(f"{path} is missing: a shots folder needs id2label.json (class id -> name)")
    try:
        raw = json.loads(path.read_text())
        mapping = {int(k): str(v) for k, v in raw.items()}
    except (ValueError, AttributeError) as err:
        raise ShotsError(f"{path} is not a JSON object of class id -> name: {err}") from err
    if sorted(mapping) != list(range(len(mapping))):
        raise ShotsError(f"{path}: class ids must be 0..N-1, got {sorted(mapping)}")
    return mapping


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ShotsError(f"{path} is not a readable safetensors file ({err}): write the shot again "
                         "(gan-partseg sample / make-shots), or remove it") from err


def _open_png(path: Path) -> Image.Image:
    """``Image.open`` + decode; a file PIL cannot read is a :class:`ShotsError` naming it."""
    try:
        img = Image.open(path)
        img.load()
    except (OSError, Image.DecompressionBombError) as err:  # UnidentifiedImageError is an OSError
        raise ShotsError(f"{path} is not a readable PNG ({err}): save it again as PNG, or remove the shot") from err
    return img


def _read_label_png(path: Path) -> np.ndarray:
    img = _open_png(path)
    if img.mode not in ("L", "P", "I", "I;16"):
        raise ShotsError(f"{path} is a {img.mode} image; label PNGs hold class ids in one channel (mode L or P)")
    return np.asarray(img).astype(np.int64)


def read_shots(folder: str | Path, allow_empty: bool = False) -> tuple[list[Shot], dict[int, str]]:
    """Read and validate every shot in ``folder``; errors name the offending file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ShotsError(f"shots folder {folder} does not exist")
    id2label = read_id2label(folder)
    images = sorted((folder / "images").glob("*.png")) if (folder / "images").is_dir() else []
    if not images:
        raise ShotsError(f"{folder}/images holds no PNG: nothing to train on")
    shots, generators = [], {}
    for img_path in images:
        name = img_path.stem
        lab_path = folder / "labels" / f"{name}.png"
        lat_path = folder / "latents" / f"{name}.safetensors"
        for p in (lab_path, lat_path):
            if not p.is_file():
                raise ShotsError(f"{p} is missing (every images/NAME.png needs labels/NAME.png and "
                                 "latents/NAME.safetensors)")
        image = np.asarray(_open_png(img_path).convert("RGB"))
        labels = _read_label_png(lab_path)
        if labels.shape != image.shape[:2]:
            raise ShotsError(f"{lab_path} is {labels.shape[1]}x{labels.shape[0]} but its image is "
                             f"{image.shape[1]}x{image.shape[0]}")
        bad = np.setdiff1d(np.unique(labels), [*id2label, IGNORE_INDEX])  # 255: left unlabelled, not trained on
        if bad.size:
            raise ShotsError(f"{lab_path} holds class ids {bad.tolist()} that id2label.json does not define "
                             f"(known: {sorted(id2label)}; {IGNORE_INDEX} marks pixels to leave out)")
        if not allow_empty and not ((labels != 0) & (labels != IGNORE_INDEX)).any():
            raise ShotsError(f"{lab_path} is all background: paint the parts first (or remove the shot)")
        try:
            with safe_open(str(lat_path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as err:
            raise ShotsError(f"{lat_path} is not a readable safetensors file: {err}") from err
        if "latent" not in tensors:
            raise ShotsError(f"{lat_path} has no 'latent' tensor (found {sorted(tensors)})")
        noise = [tensors[f"noise_{i}"] for i in range(len(tensors)) if f"noise_{i}" in tensors]
        gen = meta.get("generator", "")
        generators.setdefault(gen, []).append(name)
        shots.append(Shot(name, image, labels.astype(np.uint8), tensors["latent"], noise, gen,
                          meta.get("space", "w")))
    if len(generators) > 1:
        detail = "; ".join(f"{g or '(unnamed)'}: {', '.join(n[:3])}" for g, n in generators.items())
        raise ShotsError(f"{folder} mixes shots of different generators ({detail}); keep one generator per folder")
    return shots, id2label


def check_shots_fit(shots: Sequence[Shot], generator, folder: str | Path = "") -> None:
    """Latent shapes, noise maps and image sizes must fit ``generator``."""
    d, n_latent, size = generator.style_dim, generator.n_latent, generator.config.size
    for s in shots:
        where = Path(folder) / "latents" / f"{s.name}.safetensors"
        ok = tuple(s.latent.shape) in ((1, d), (1, n_latent, d))
        if not ok:
            raise ShotsError(f"{where}: latent is {tuple(s.latent.shape)}, the generator needs (1, {d}) "
                             f"or (1, {n_latent}, {d})")
        if s.noise and [tuple(n.shape[-2:]) for n in s.noise] != [(r, r) for r in generator.noise_resolutions]:
            raise ShotsError(f"{where}: noise maps do not match the generator's {generator.num_layers} layers")
        if s.image.shape[:2] != (size, size):
            raise ShotsError(f"{Path(folder) / 'images' / (s.name + '.png')} is {s.image.shape[1]}x"
                             f"{s.image.shape[0]}; the generator draws {size}x{size}")
