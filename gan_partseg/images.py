"""Images and label maps: reading (one loader for every image folder), writing, grids, colours, overlays."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_partseg.files import atomic_write_bytes
from gan_partseg.labels import palette_for


def save_image(path: str | os.PathLike, image: np.ndarray | Image.Image) -> Path:
    """Save an (H, W, 3) / (H, W) uint8 array or PIL image as PNG, atomically."""
    import io

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def uint8_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x[None]
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1


def make_grid(images: Sequence[np.ndarray] | np.ndarray, ncol: int = 8, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images into one (rows*(H+pad)+pad, ...) uint8 grid."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    ncol = max(1, min(ncol, n))
    nrow = (n + ncol - 1) // ncol
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, np.uint8)
    for i, im in enumerate(images):
        r, col = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = im
    return grid


def colorize(labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """(…, H, W) int labels -> (…, H, W, 3) uint8 colours."""
    labels = np.asarray(labels)
    palette = palette_for(n_classes or int(labels.max()) + 1)
    return palette[labels]


def overlay(image: np.ndarray, labels: np.ndarray, n_classes: int | None = None, alpha: float = 0.5) -> np.ndarray:
    """Blend label colours over an (H, W, 3) uint8 image; background (0) stays untouched."""
    color = colorize(labels, n_classes).astype(np.float32)
    out = image.astype(np.float32)
    mask = (np.asarray(labels) > 0)[..., None]
    out = np.where(mask, (1 - alpha) * out + alpha * color, out)
    return out.round().astype(np.uint8)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W[, C]) array, for viewing small images."""
    return np.repeat(np.repeat(image, factor, 0), factor, 1)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def load_image(path: str | os.PathLike, size: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Read an image file as (size, size, 3) uint8 RGB, saying what was changed.

    Grayscale and palette images are converted to RGB; an alpha channel is
    composited over white; a non-square image is centre-cropped to a square; a
    square of another size is resized (Lanczos) to ``size``. Each change adds a
    note to the returned list. Unreadable files raise ValueError naming the file.
    """
    from PIL import UnidentifiedImageError

    path = Path(path)
    notes: list[str] = []
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path} is not a readable image ({err})") from None
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba).convert("RGB")
        notes.append(f"{path.name}: alpha channel composited over white")
    elif img.mode != "RGB":
        notes.append(f"{path.name}: {img.mode} image converted to RGB")
        img = img.convert("RGB")
    w, h = img.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
        notes.append(f"{path.name}: {w}x{h} centre-cropped to {s}x{s}")
    if size is not None and img.size != (size, size):
        notes.append(f"{path.name}: resized from {img.size[0]}x{img.size[1]} to {size}x{size}")
        img = img.resize((size, size), Image.LANCZOS)
    return np.array(img), notes


def load_label_map(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Read a label PNG (class ids in one channel) as (H, W) int64; centre-crop / nearest-resize like load_image."""
    path = Path(path)
    try:
        img = Image.open(path)
        img.load()
    except OSError as err:
        raise ValueError(f"{path} is not a readable label image ({err})") from None
    if img.mode not in ("L", "P", "I", "I;16"):
        raise ValueError(f"{path} is a {img.mode} image; label maps hold class ids in one channel (mode L or P)")
    w, h = img.size
    if w != h:
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.NEAREST)
    return np.asarray(img).astype(np.int64)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files in ``folder`` (sorted); a clear error when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


def matching_label(label_dir: str | os.PathLike, image_path: Path) -> Path:
    """labels/NAME.png for images/NAME.*; a clear error when it is missing."""
    path = Path(label_dir) / f"{image_path.stem}.png"
    if not path.is_file():
        raise FileNotFoundError(f"no label file {path} for image {image_path}")
    return path


def load_folder(folder, size: int) -> tuple[list[Path], torch.Tensor, list[str]]:
    """All images of ``folder`` as (N, 3, size, size) in [-1, 1], with the conversion notes."""
    paths = list_images(folder)
    arrays, notes = [], []
    for p in paths:
        arr, n = load_image(p, size)
        arrays.append(arr)
        notes += n
    return paths, uint8_to_tensor(np.stack(arrays)), notes
