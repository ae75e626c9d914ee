"""StyleGAN2's two low-level ops in plain PyTorch.

``upfirdn2d`` (upsample, FIR filter, downsample) and ``fused_leaky_relu``
(bias + leaky ReLU + gain) are the two ops the rosinality port compiles as
CUDA extensions at import time. Here they are plain PyTorch, run on any device
and differentiate with autograd. Nothing is compiled at import: the optional C++ / CUDA kernels of
``csrc/`` (``gan_partseg.models.fused``) take over only when asked (``GAN_PARTSEG_FUSED``) and built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from gan_partseg.models import fused

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


def make_kernel(k: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Separable FIR kernel from its 1-D taps, normalised to sum 1.

    ``[1, 3, 3, 1]`` -> a (4, 4) float32 tensor, the outer product of the taps.
    """
    k = torch.as_tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def fused_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = LRELU_SLOPE,
    scale: float = LRELU_GAIN,
) -> torch.Tensor:
    """``leaky_relu(x + bias) * scale``; ``bias`` (C,) broadcasts over dim 1 of ``x``."""
    if bias is not None:
        module = fused.available_for("bias_act", x)
        if module is not None:
            return fused.BiasAct.apply(x, bias, float(negative_slope), float(scale), module)
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x + bias.view(shape).to(x.dtype)
    return F.leaky_relu(x, negative_slope) * scale


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """Upsample by zero insertion, pad, filter with ``kernel``, downsample.

    x: (B, C, H, W); kernel: (kh, kw); pad: (pad0, pad1) applied to both axes,
    negative values crop. Returns (B, C, H', W') with
    ``H' = (H * up + pad0 + pad1 - kh) // down + 1``.
    """
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    pad0, pad1 = pad
    module = fused.available_for("upfirdn2d", x)
    if module is not None:
        return fused.UpFirDn2d.apply(x, kernel, int(up), int(down), int(pad0), int(pad1), module)
    out = x
    if up > 1:
        out = out.reshape(b, c, h, 1, w, 1)
        out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1])
        out = out.reshape(b, c, h * up, w * up)
    out = F.pad(out, [max(pad0, 0), max(pad1, 0), max(pad0, 0), max(pad1, 0)])
    out = out[
        :,
        :,
        max(-pad0, 0) : out.shape[2] - max(-pad1, 0),
        max(-pad0, 0) : out.shape[3] - max(-pad1, 0),
    ]
    # depthwise conv (groups=C): 3-4x faster on the CPU than one channel over B*C images
    weight = torch.flip(kernel, [0, 1]).to(out.dtype).expand(c, 1, kh, kw)
    out = F.conv2d(out, weight, groups=c)
    if down > 1:
        out = out[:, :, ::down, ::down]
    return out
