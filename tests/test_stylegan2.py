import math
import os
import sys

import pytest
import torch
from transformers import AutoConfig, AutoModel

from gan_partseg import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig, StyleGAN2Generator
from gan_partseg.models.stylegan2 import AVERAGE_LATENT_SAMPLES, default_channels
from tests.conftest import tiny_config


def _meta_generator(size, **kw):
    with torch.device("meta"):
        return StyleGAN2Generator(StyleGAN2Config(size=size, **kw))


def test_config_f_256_state_dict_matches_published_layout():
    sd = _meta_generator(256).state_dict()
    assert len(sd) == 135
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["input.input"] == (1, 512, 4, 4)
    assert shapes["conv1.conv.weight"] == (1, 512, 512, 3, 3)
    assert shapes["conv1.conv.modulation.weight"] == (512, 512)
    assert shapes["conv1.noise.weight"] == (1,)
    assert shapes["conv1.activate.bias"] == (512,)
    assert shapes["to_rgb1.conv.weight"] == (1, 3, 512, 1, 1)
    assert shapes["to_rgb1.bias"] == (1, 3, 1, 1)
    assert shapes["convs.0.conv.blur.kernel"] == (4, 4)
    assert shapes["to_rgbs.0.upsample.kernel"] == (4, 4)
    assert [k for k in sd if k.startswith("style.")][::2] == [f"style.{i}.weight" for i in range(1, 9)]
    # channels 64 -> 256*2=512, 128 -> 256, 256 -> 128 for config-f
    assert shapes["convs.6.conv.weight"] == (1, 512, 512, 3, 3)  # 64 px
    assert shapes["convs.8.conv.weight"] == (1, 256, 512, 3, 3)  # 128 px
    assert shapes["convs.10.conv.weight"] == (1, 128, 256, 3, 3)  # 256 px
    assert "convs.12.conv.weight" not in shapes
    noises = [k for k in sd if k.startswith("noises.")]
    assert len(noises) == 13
    assert shapes["noises.noise_0"] == (1, 1, 4, 4) and shapes["noises.noise_12"] == (1, 1, 256, 256)


@pytest.mark.parametrize("size,entries", [(512, 153), (1024, 171)])
def test_larger_configs_have_published_entry_counts(size, entries):
    assert len(_meta_generator(size).state_dict()) == entries


def test_default_channel_table_is_rosinalitys():
    assert default_channels(2) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64,
                                   1024: 32}
    cfg = StyleGAN2Config(size=64, channels={"64": 7})
    assert cfg.channel(64) == 7 and cfg.channel(32) == 512


def test_feature_names_and_shapes(tiny_generator):
    g = tiny_generator
    out = g([torch.randn(2, 32)], return_features=True)
    assert out.images.shape == (2, 3, 32, 32)
    assert list(out.features) == ["conv1"] + [f"convs.{i}" for i in range(6)] == g.feature_layers
    expected = {"conv1": (32, 4), "convs.0": (32, 8), "convs.1": (32, 8), "convs.2": (16, 16),
                "convs.3": (16, 16), "convs.4": (8, 32), "convs.5": (8, 32)}
    for name, (c, r) in expected.items():
        assert out.features[name].shape == (2, c, r, r)
        assert g.feature_shapes()[name] == (c, r)
    # features are the styled convs' outputs after bias + leaky ReLU
    seen = {}
    hook = g.convs[3].activate.register_forward_hook(lambda m, i, o: seen.setdefault("act", o))
    out = g([torch.randn(2, 32)], return_features=True)
    hook.remove()
    assert torch.equal(out.features["convs.3"], seen["act"])


def test_fixed_noise_is_deterministic_and_random_noise_is_not(tiny_generator):
    z = torch.randn(2, 32)
    a = tiny_generator([z], randomize_noise=False).images
    b = tiny_generator([z], randomize_noise=False).images
    assert torch.equal(a, b)
    with torch.no_grad():
        for conv in tiny_generator.convs:
            conv.noise.weight.fill_(0.5)
    c = tiny_generator([z]).images
    d = tiny_generator([z]).images
    assert not torch.equal(c, d)


def test_z_w_and_wplus_paths_agree(tiny_generator):
    g = tiny_generator
    z = torch.randn(3, 32)
    w = g.get_latent(z)
    wplus = w.unsqueeze(1).repeat(1, g.n_latent, 1)
    out_z = g([z], randomize_noise=False, return_latents=True)
    out_w = g([w], input_is_latent=True, randomize_noise=False)
    out_wp = g([wplus], input_is_latent=True, randomize_noise=False)
    assert out_z.latents.shape == (3, g.n_latent, 32) == (3, 2 * int(math.log2(32)) - 2, 32)
    torch.testing.assert_close(out_z.images, out_w.images)
    torch.testing.assert_close(out_w.images, out_wp.images)
    # a W+ code with different styles per layer changes the image
    wplus2 = wplus.clone()
    wplus2[:, -1] = g.get_latent(torch.randn(3, 32))
    assert not torch.allclose(g([wplus2], input_is_latent=True, randomize_noise=False).images, out_wp.images)


def test_style_mixing_switches_codes_at_inject_index(tiny_generator):
    g = tiny_generator
    w1, w2 = g.get_latent(torch.randn(2, 32)), g.get_latent(torch.randn(2, 32))
    out = g([w1, w2], input_is_latent=True, inject_index=3, randomize_noise=False, return_latents=True)
    assert torch.equal(out.latents[:, :3], w1.unsqueeze(1).expand(-1, 3, -1))
    assert torch.equal(out.latents[:, 3:], w2.unsqueeze(1).expand(-1, g.n_latent - 3, -1))


def test_truncation_pulls_toward_mean(tiny_generator):
    g = tiny_generator
    mean = g.mean_latent(512)
    z = torch.randn(2, 32)
    full = g([z], randomize_noise=False, return_latents=True).latents
    trunc = g([z], truncation=0.5, truncation_latent=mean, randomize_noise=False, return_latents=True).latents
    torch.testing.assert_close(trunc, mean + 0.5 * (full - mean))
    # without truncation_latent: toward the generator's one average latent (seed-0 mean of 4096 mapped z)
    avg = g.mean_latent(AVERAGE_LATENT_SAMPLES, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(g.average_latent(), avg)
    default = g([z], truncation=0.5, randomize_noise=False, return_latents=True).latents
    torch.testing.assert_close(default, avg + 0.5 * (full - avg))
    torch.testing.assert_close(g.truncate(full, 0.5), default)  # w+ too, through the same method


def test_truncation_uses_the_checkpoints_own_average(tiny_generator, tmp_path):
    """A checkpoint that carries latent_avg (rosinality) / w_avg (NVIDIA) truncates toward it, and
    store_average_latent makes the computed average part of a saved model."""
    g = tiny_generator
    w = g.get_latent(torch.randn(3, 32))
    g.store_average_latent()
    assert g.config.has_latent_avg
    g.save_pretrained(tmp_path / "g")
    again = StyleGAN2Generator.from_pretrained(tmp_path / "g")
    torch.testing.assert_close(again.latent_avg, g.latent_avg)
    with torch.no_grad():
        again.latent_avg.fill_(0.25)  # a checkpoint's own average, far from the computed one
    torch.testing.assert_close(again.truncate(w, 0.5), 0.25 + 0.5 * (w - 0.25))
    seeded, _ = again.seeded_latents([3, 4], truncation=0.5)
    plain, _ = again.seeded_latents([3, 4])
    torch.testing.assert_close(seeded, 0.25 + 0.5 * (plain - 0.25))


def test_bad_latent_shapes_are_named(tiny_generator):
    with pytest.raises(ValueError, match=r"z must be \(B, 32\)"):
        tiny_generator([torch.randn(2, 31)])
    with pytest.raises(ValueError, match="w\\+"):
        tiny_generator([torch.randn(2, 5, 32)], input_is_latent=True)
    with pytest.raises(ValueError, match="noise must hold"):
        tiny_generator([torch.randn(2, 32)], noise=[None])


def test_save_load_round_trip_is_bit_identical(tiny_generator, tmp_path):
    tiny_generator.save_pretrained(tmp_path / "g")
    assert (tmp_path / "g" / "model.safetensors").exists()
    loaded = StyleGAN2Generator.from_pretrained(tmp_path / "g").eval()
    auto = AutoModel.from_pretrained(tmp_path / "g").eval()
    assert isinstance(auto, StyleGAN2Generator)
    assert AutoConfig.from_pretrained(tmp_path / "g").channels == tiny_generator.config.channels
    z = torch.randn(2, 32)
    ref = tiny_generator([z], randomize_noise=False, return_features=True)
    for model in (loaded, auto):
        out = model([z], randomize_noise=False, return_features=True)
        assert torch.equal(out.images, ref.images)
        assert all(torch.equal(out.features[k], ref.features[k]) for k in ref.features)
    for (k, v), (k2, v2) in zip(tiny_generator.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k


def test_discriminator_round_trip_and_shapes(tiny_discriminator, tmp_path):
    d = tiny_discriminator
    x = torch.randn(4, 3, 32, 32)
    logits = d(x).logits
    assert logits.shape == (4, 1)
    d.save_pretrained(tmp_path / "d")
    d2 = AutoModel.from_pretrained(tmp_path / "d")
    assert isinstance(d2, StyleGAN2Discriminator)
    assert torch.equal(d2(x).logits, logits)
    feats = d(x, return_features=True).features
    assert list(feats)[0] == "convs.0" and feats["convs.0"].shape == (4, 8, 32, 32)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        d(torch.randn(1, 3, 16, 16))


def test_discriminator_256_layout_matches_rosinality():
    with torch.device("meta"):
        d = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(size=256))
    sd = d.state_dict()
    assert tuple(sd["convs.0.0.weight"].shape) == (128, 3, 1, 1)
    assert tuple(sd["convs.1.conv2.0.kernel"].shape) == (4, 4)
    assert tuple(sd["convs.1.skip.1.weight"].shape) == (256, 128, 1, 1)
    assert tuple(sd["final_linear.0.weight"].shape) == (512, 512 * 16)
    assert tuple(sd["final_conv.0.weight"].shape) == (512, 513, 3, 3)


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Config(size=48)
    with pytest.raises(ValueError, match="power of two"):
        tiny_config(size=2)


def test_gradients_flow_to_latents_and_noise(tiny_generator):
    w = tiny_generator.mean_latent(64).requires_grad_(True)
    noise = [n.clone().requires_grad_(True) for n in tiny_generator.make_noise()]
    img = tiny_generator([w], input_is_latent=True, noise=noise).images
    img.square().mean().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert noise[0].grad is not None


_FAULTS_SCRIPT = """
import resource, sys, torch
from gan_partseg.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(16, 2**20)  # 64 MiB: above glibc's largest mmap threshold
del x
before = faults()
for _ in range(8):
    x = torch.ones(16, 2**20)
    del x
print(applied, faults() - before)
"""


def test_keep_freed_memory_reuses_large_blocks_instead_of_page_faulting_them_again():
    """Why the CLI calls it: with glibc's default, each 64 MiB tensor is a fresh mmap and 16k page faults;
    kept, the freed block is reused (benchmarks/generator.py measures what that does to throughput).
    Elsewhere than Linux it does nothing and says so."""
    import subprocess

    if not sys.platform.startswith("linux"):
        from gan_partseg.runtime import keep_freed_memory

        assert keep_freed_memory() is False
        return

    def run(keep: str, env_value: str = "1") -> tuple[str, int]:
        env = {**os.environ, "GAN_PARTSEG_KEEP_MEMORY": env_value}
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, keep], capture_output=True, text=True,
                             check=True, env=env).stdout.split()
        return out[0], int(out[1])

    applied, kept = run("1")
    _, default = run("0")
    assert applied == "True"
    assert default > 8 * 16_000 * 0.9  # 8 x 64 MiB / 4 KiB pages, faulted afresh each time
    assert kept < default / 4  # at most the first reuse or two fault (the heap settling), then none
    assert run("1", env_value="0")[0] == "False"  # the opt-out is honoured
