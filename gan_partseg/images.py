"""Images and label maps: reading (one loader for every image folder), writing, grids, colours, overlays."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_partseg.errors import ImageError, MissingFileError
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
    return byte_images_to_unit(x.permute(0, 3, 1, 2))


def byte_images_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, H, W), 0..255 -> float32 in [-1, 1]; the one byte-to-model-range mapping."""
    return images.float() / 127.5 - 1


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


def open_rgb(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[Image.Image, list[str]]:
    """An image file as a PIL RGB image of its own size, saying what was changed (the checks and conversions
    of :func:`load_image` without its crop and resize; the Space reads uploads with it). ``max_pixels``:
    a lower limit than :data:`MAX_PIXELS`."""
    path = Path(path)
    notes: list[str] = []
    img = _open_checked(path, "image", max_pixels or MAX_PIXELS)
    if img.mode in HIGH_BIT_MODES:
        img = _to_8bit(img)
        notes.append(f"{path.name}: {HIGH_BIT_MODES[img.info['source_mode']]} image scaled to 8 bits")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba).convert("RGB")
        notes.append(f"{path.name}: alpha channel composited over white")
    elif img.mode != "RGB":
        notes.append(f"{path.name}: {img.mode} image converted to RGB")
        img = img.convert("RGB")
    return img, notes


def load_image(path: str | os.PathLike, size: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Read an image file as (size, size, 3) uint8 RGB, saying what was changed.

    Grayscale and palette images are converted to RGB (16-bit and 32-bit integer and float images are
    scaled to 8 bits over their mode's full range); an alpha channel is composited over white; a
    non-square image is centre-cropped to a square; a square of another size is resized (Lanczos) to
    ``size``. Each change adds a note to the returned list. Unreadable files, and images over
    :data:`MAX_PIXELS` (refused from the header, before decoding), raise :class:`ImageError` naming the file.
    """
    path = Path(path)
    img, notes = open_rgb(path)
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


MAX_PIXELS = 8192 * 8192
"""Largest image (pixels) the loaders decode: far above any generator's size (1024 px), far below a
decompression bomb (a few kB of PNG that would decode to gigabytes)."""

HIGH_BIT_MODES = {"I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I": "32-bit integer", "F": "32-bit float"}


def _open_checked(path: Path, what: str, max_pixels: int | None = None):
    """``Image.open`` + size check from the header + decode, every failure an :class:`ImageError` naming ``path``."""
    from PIL import UnidentifiedImageError

    # the header only, with PIL's own bomb check off for this open so that our limit can name the size (the
    # switch is process-wide for an instant: another thread opening an image in that instant skips PIL's check)
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as probe:
            w, h = probe.size
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"{path} is not a readable {what} ({err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    limit = max_pixels or MAX_PIXELS
    if w * h > limit:
        raise ImageError(f"{path} is {w}x{h} ({w * h / 1e6:.0f} megapixels), over the limit of "
                         f"{limit / 1e6:.0f} megapixels: it was not decoded. Resize it first (the generator "
                         "reads at most 1024 px)")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise ImageError(f"{path} is not a readable {what} ({err})") from None
    return img


def _to_8bit(img):
    """A 16/32-bit integer or float grayscale image as mode L: integers over their type's range (16-bit:
    0..65535, 32-bit: the image's own max when it exceeds 65535), floats over [0, 1]."""
    mode = img.mode
    a = np.asarray(img).astype(np.float64)
    if mode == "F":
        scaled = np.clip(a, 0, 1) * 255
    else:
        top = 65535.0 if mode.startswith("I;16") or a.max() <= 65535 else float(a.max())
        scaled = np.clip(a, 0, None) / top * 255
    out = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    out.info["source_mode"] = mode
    return out


def load_label_map(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Read a label PNG (class ids in one channel) as (H, W) int64; centre-crop / nearest-resize like load_image."""
    path = Path(path)
    img = _open_checked(path, "label image")
    if img.mode not in ("L", "P", "I", "I;16"):
        raise ImageError(f"{path} is a {img.mode} image; label maps hold class ids in one channel (mode L or P)")
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
        raise MissingFileError(f"{folder} is not a folder")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ImageError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


def matching_label(label_dir: str | os.PathLike, image_path: Path) -> Path:
    """labels/NAME.png for images/NAME.*; a clear error when it is missing."""
    path = Path(label_dir) / f"{image_path.stem}.png"
    if not path.is_file():
        raise MissingFileError(f"no label file {path} for image {image_path}")
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
