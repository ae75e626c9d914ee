"""Pictures people would rather look at than read: sample grids, feature PCA maps, bar charts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gan_partseg.images import colorize, make_grid, overlay, tensor_to_uint8, upscale
from gan_partseg.labels import palette_for


def pca_rgb(features: torch.Tensor, out_size: int) -> np.ndarray:
    """First three principal components of a layer's activations as colours.

    features: (B, C, r, r) -> (B, out_size, out_size, 3) uint8. One PCA basis is fit
    over all pixels of the batch, so colours are comparable across images.
    """
    b, c, r, _ = features.shape
    x = features.detach().float().permute(0, 2, 3, 1).reshape(-1, c)
    x = x - x.mean(0, keepdim=True)
    k = min(3, c)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    proj = x @ v[:k].t()
    lo, hi = proj.quantile(0.01, dim=0), proj.quantile(0.99, dim=0)
    proj = ((proj - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    if k < 3:
        proj = torch.cat([proj, proj.new_zeros(proj.shape[0], 3 - k)], 1)
    maps = proj.reshape(b, r, r, 3).permute(0, 3, 1, 2)
    maps = F.interpolate(maps, size=(out_size, out_size), mode="nearest")
    return (maps.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


def feature_pca_grid(images: torch.Tensor, features: Mapping[str, torch.Tensor],
                     layers: Sequence[str] | None = None) -> np.ndarray:
    """A grid: one row of images, then one row of PCA colours per layer.

    images: (B, 3, H, W) in [-1, 1]; features: layer -> (B, C, r, r).
    Default layers: the second conv of every resolution from 8 px up.
    """
    size = images.shape[-1]
    if layers is None:
        names = list(features)
        layers = [n for n in names[2::2]] or names
    rows = [tensor_to_uint8(images)]
    rows += [pca_rgb(features[name], size) for name in layers]
    stacked = np.concatenate(rows, 0)
    return make_grid(stacked, ncol=images.shape[0])


def legend(id2label: Mapping[int, str], width: int = 0, swatch: int = 12) -> np.ndarray:
    """A strip of colour swatches with class names, (h, max(width, needed), 3) uint8 on white."""
    from PIL import Image, ImageDraw, ImageFont


    palette = palette_for(len(id2label))
    font = ImageFont.load_default()
    items = [(palette[i], id2label[i]) for i in sorted(id2label)]
    widths = [swatch + 4 + int(font.getlength(name)) + 10 for _, name in items]
    total = max(width, sum(widths) + 4)
    canvas = Image.new("RGB", (total, swatch + 6), "white")
    draw = ImageDraw.Draw(canvas)
    x = 4
    for (color, name), w in zip(items, widths):
        draw.rectangle([x, 3, x + swatch, 3 + swatch - 1], fill=tuple(int(c) for c in color), outline=(90, 90, 90))
        draw.text((x + swatch + 4, 3), name, fill=(0, 0, 0), font=font)
        x += w
    return np.asarray(canvas)


def with_legend(grid: np.ndarray, id2label: Mapping[int, str], title: str = "",
                columns: Sequence[str] = ()) -> np.ndarray:
    """``grid`` (H, W, 3) with a legend strip below it, ``title`` (lines split on newlines) above it and,
    when given, one title per column of the grid (``columns``, left to right) between the two; padded to a
    common width."""
    strip = legend(id2label, width=grid.shape[1])
    width = grid.shape[1]
    if strip.shape[1] > grid.shape[1]:
        grid = np.pad(grid, ((0, 0), (0, strip.shape[1] - grid.shape[1]), (0, 0)), constant_values=255)
    parts = [grid, strip]
    if columns:
        header = column_titles(columns, width)
        parts.insert(0, np.pad(header, ((0, 0), (0, grid.shape[1] - width), (0, 0)), constant_values=255))
    if title:
        parts.insert(0, title_strip(title, grid.shape[1]))
    return np.concatenate(parts, 0)


def column_titles(titles: Sequence[str], width: int, line: int = 14) -> np.ndarray:
    """One centred title over each of ``len(titles)`` equal columns of a ``width`` px grid: (line + 4, width, 3)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, line + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    col = width / len(titles)
    for i, text in enumerate(titles):
        w = draw.textlength(text, font=font)
        draw.text((max(0.0, i * col + (col - w) / 2), 2), text, fill=(0, 0, 0), font=font)
    return np.asarray(img)


def title_strip(title: str, width: int, line: int = 14) -> np.ndarray:
    """Black text on white, one row of ``line`` px per line of ``title``: (H, width, 3) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    lines = title.split("\n")
    img = Image.new("RGB", (width, 4 + line * len(lines)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for i, text in enumerate(lines):
        draw.text((4, 2 + i * line), text, fill=(0, 0, 0), font=font)
    return np.asarray(img)


def comparison_rows(columns: Sequence[np.ndarray], n_classes: int, scale: int = 1) -> np.ndarray:
    """One row per image, one column per entry of ``columns``.

    Each entry is (N, H, W, 3) uint8 images or (N, H, W) int label maps (drawn as overlays on the
    first entry when that holds images, as colours otherwise). Returns the grid (uint8).
    """

    base = columns[0] if np.asarray(columns[0]).ndim == 4 else None
    tiles = []
    n = len(columns[0])
    for i in range(n):
        for col in columns:
            col = np.asarray(col)
            if col.ndim == 4:
                tiles.append(col[i])
            elif base is not None:
                tiles.append(overlay(base[i], col[i], n_classes, alpha=0.6))
            else:
                tiles.append(colorize(col[i], n_classes))
    grid = make_grid(np.stack(tiles), ncol=len(columns))
    return upscale(grid, scale) if scale > 1 else grid


BAR_COLOURS = ((66, 114, 196), (237, 125, 49), (112, 173, 71), (165, 165, 165))


def bar_chart(categories: Sequence[str], series: Mapping[str, Sequence[float | None]], title: str = "",
              vmax: float = 1.0, bar: int = 12, width: int = 260) -> np.ndarray:
    """Horizontal grouped bars: one group per category, one bar per series (up to 4), values in [0, vmax].

    ``series``: name -> one value per category (None draws no bar, "n/a"). Each bar is labelled with its
    value; a key of the series sits under the title. Returns (H, W, 3) uint8 on white.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not series or len(series) > len(BAR_COLOURS):
        raise ValueError(f"bar_chart draws 1 to {len(BAR_COLOURS)} series, got {len(series)}")
    for name, values in series.items():
        if len(values) != len(categories):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(categories)} categories")
    font = ImageFont.load_default()
    left = 8 + max(int(font.getlength(c)) for c in categories)
    line = 12
    top = 6 + (line if title else 0) + line + 4
    group = bar * len(series) + 6
    canvas = Image.new("RGB", (left + width + 50, top + group * len(categories) + 6), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 4), title, fill=(0, 0, 0), font=font)
    x = 6
    for colour, name in zip(BAR_COLOURS, series):
        y = top - line - 2
        draw.rectangle([x, y + 2, x + 8, y + 10], fill=colour)
        draw.text((x + 12, y), name, fill=(0, 0, 0), font=font)
        x += 12 + int(font.getlength(name)) + 14
    for i, cat in enumerate(categories):
        y0 = top + i * group
        draw.text((4, y0 + (group - 6) // 2 - 5), cat, fill=(0, 0, 0), font=font)
        for j, (colour, values) in enumerate(zip(BAR_COLOURS, series.values())):
            y = y0 + j * bar
            v = values[i]
            if v is None:
                draw.text((left + 2, y), "n/a", fill=(120, 120, 120), font=font)
                continue
            length = int(round(width * min(max(float(v) / vmax, 0.0), 1.0)))
            draw.rectangle([left, y, left + max(length, 1), y + bar - 2], fill=colour)
            draw.text((left + length + 3, y), f"{v:.2f}", fill=(60, 60, 60), font=font)
    draw.line([left, top - 2, left, top + group * len(categories)], fill=(0, 0, 0))
    return np.asarray(canvas)
