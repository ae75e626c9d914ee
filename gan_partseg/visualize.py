"""Pictures people would rather look at than read: sample grids and feature PCA maps."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .io import make_grid, tensor_to_uint8


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
