"""Which generator activations a head reads, and how they are brought to one resolution.

A feature specification (stored in the segmenter's config) names the layers
(default: every synthesis conv, ``conv1`` at 4 px up to full size), the output
resolution (default: the generator's), and the resize modes: bilinear with
``align_corners=True`` upward (the official code's choice), area downward.
Both are linear maps applied per channel, which is what lets a pointwise first
layer be moved in front of the resize (see :mod:`gan_partseg.models.heads`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from gan_partseg.errors import ArgumentError

UP_MODES = ("bilinear", "bicubic", "nearest")
DOWN_MODES = ("area", "bilinear", "nearest")


RESIZE_CHANNELS_LAST = True
"""Bilinear / nearest resizes run channels-last (False: PyTorch's default layout; benchmarks/make_dataset.py)."""


def resize(x: torch.Tensor, size: int, up_mode: str = "bilinear", down_mode: str = "area") -> torch.Tensor:
    """(B, C, r, r) -> (B, C, size, size); identity when r == size."""
    r = x.shape[-1]
    if r == size:
        return x
    mode = up_mode if r < size else down_mode
    if mode in ("bilinear", "nearest") and RESIZE_CHANNELS_LAST:
        # PyTorch's CPU kernels for these are several times faster on channels-last input (16 -> 64 px bilinear at
        # batch 16 x 128 channels: 97 -> 8 ms), same values; the result stays channels-last
        x = x.contiguous(memory_format=torch.channels_last)
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=(size, size), mode=mode, align_corners=True)
    return F.interpolate(x, size=(size, size), mode=mode)


def check_modes(up_mode: str, down_mode: str) -> None:
    if up_mode not in UP_MODES:
        raise ArgumentError(f"up_mode must be one of {UP_MODES}, got {up_mode!r}")
    if down_mode not in DOWN_MODES:
        raise ArgumentError(f"down_mode must be one of {DOWN_MODES}, got {down_mode!r}")


def select_layers(features: Mapping[str, torch.Tensor], layers: Sequence[str]) -> "OrderedDict[str, torch.Tensor]":
    """Pick ``layers`` (in that order) out of a generator's feature mapping, with a clear error."""
    missing = [n for n in layers if n not in features]
    if missing:
        raise KeyError(f"the generator gave no features for layers {missing}; it has {list(features)}")
    return OrderedDict((n, features[n]) for n in layers)


def stack_features(features: Mapping[str, torch.Tensor], size: int, up_mode: str = "bilinear",
                   down_mode: str = "area") -> torch.Tensor:
    """The research code's tensor: every layer resized to ``size`` and concatenated, (B, sum C_l, size, size).

    Kept as the naive reference; the heads never need it.
    """
    return torch.cat([resize(f, size, up_mode, down_mode) for f in features.values()], 1)


def stacked_bytes(channels: Mapping[str, int], size: int, batch: int = 1, dtype=torch.float32) -> int:
    """Bytes the stacked tensor would take: batch * sum(C_l) * size^2 * itemsize."""
    return batch * sum(channels.values()) * size * size * torch.empty((), dtype=dtype).element_size()
