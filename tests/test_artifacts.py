"""The bundled toyfaces-64 artifact and the registry."""

import pytest
import torch

from gan_partseg import StyleGAN2Discriminator, StyleGAN2Generator, bundled_artifacts
from gan_partseg.hub import resolve_pretrained


def test_bundled_generator_loads_by_name_in_range_and_bit_identical():
    assert "toyfaces-64" in bundled_artifacts()
    a = StyleGAN2Generator.from_pretrained("toyfaces-64").eval()
    b = StyleGAN2Generator.from_pretrained("toyfaces-64").eval()
    assert a.config.size == 64
    z = torch.randn(8, a.config.style_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ia = a([z], randomize_noise=False).images
        ib = b([z], randomize_noise=False).images
    assert torch.equal(ia, ib)
    assert ia.shape == (8, 3, 64, 64)
    # a trained generator stays (nearly) inside the data range [-1, 1] and draws contrast
    assert (ia.abs() > 1.1).float().mean() < 0.01
    assert ia.std() > 0.2


def test_bundled_discriminator_loads_from_subfolder():
    d = StyleGAN2Discriminator.from_pretrained("toyfaces-64", subfolder="discriminator").eval()
    with torch.no_grad():
        assert d(torch.zeros(2, 3, 64, 64)).logits.shape == (2, 1)


def test_bundled_artifact_is_small_enough():
    folder = bundled_artifacts()["toyfaces-64"]
    total = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    assert total <= 25 * 2**20


def test_unknown_artifact_name_lists_the_bundled_ones():
    with pytest.raises(ValueError, match="Bundled artifacts: .*toyfaces-64"):
        StyleGAN2Generator.from_pretrained("toyfaces-65")


def test_folder_without_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="without config.json"):
        resolve_pretrained(tmp_path)


def test_unreachable_hub_id_says_what_to_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="huggingface-cli download someone/not-here"):
        StyleGAN2Generator.from_pretrained("someone/not-here")
