"""Fixtures that build tiny models in milliseconds."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch

from gan_partseg import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig, StyleGAN2Generator

TINY_CHANNELS = {"4": 32, "8": 32, "16": 16, "32": 8}


def tiny_config(size: int = 32, **kw) -> StyleGAN2Config:
    return StyleGAN2Config(size=size, style_dim=32, n_mlp=2, channels=TINY_CHANNELS, **kw)


@pytest.fixture
def tiny_generator() -> StyleGAN2Generator:
    torch.manual_seed(0)
    return StyleGAN2Generator(tiny_config()).eval()


@pytest.fixture
def tiny_discriminator() -> StyleGAN2Discriminator:
    torch.manual_seed(1)
    return StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(size=32, channels=TINY_CHANNELS)).eval()
