"""Fixtures that build tiny models in milliseconds."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch

from gan_partseg import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig, StyleGAN2Generator
from gan_partseg.models.fewshot import FewShotSegmenter, FewShotSegmenterConfig
from gan_partseg.models.heads import parse_head

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


@pytest.fixture
def segmenter_dir(tiny_generator, tmp_path):
    """A few-shot segmenter folder (ensemble of 2 MLPs, 3 classes, untrained) on the tiny generator."""
    tiny_generator.save_pretrained(tmp_path / "gen")
    torch.manual_seed(0)
    cfg = FewShotSegmenterConfig.for_generator(tiny_generator, str(tmp_path / "gen"), {0: "a", 1: "b", 2: "c"},
                                               **parse_head("ensemble-2"))
    FewShotSegmenter(cfg).save_pretrained(tmp_path / "seg")
    return str(tmp_path / "seg")
