import argparse
import os

import pytest
import torch

from gan_partseg import StyleGAN2Discriminator, StyleGAN2Generator
from gan_partseg.cli import main as cli_main
from gan_partseg.convert.rosinality import CheckpointError, convert_rosinality


def _train_style_ckpt(g, d, path):
    g_optim = torch.optim.Adam(g.parameters(), lr=0.002)
    d_optim = torch.optim.Adam(d.parameters(), lr=0.002)
    args = argparse.Namespace(size=32, latent=32, n_mlp=2, channel_multiplier=2, r1=10.0, arch="stylegan2",
                              ckpt=None, augment=False, wandb=False)
    torch.save({"g": g.state_dict(), "d": d.state_dict(), "g_ema": g.state_dict(), "g_optim": g_optim.state_dict(),
                "d_optim": d_optim.state_dict(), "args": args, "ada_aug_p": 0.0}, path)
    return path


def test_convert_train_py_checkpoint_reproduces_outputs(tiny_generator, tiny_discriminator, tmp_path):
    ckpt = _train_style_ckpt(tiny_generator, tiny_discriminator, tmp_path / "100000.pt")
    out = convert_rosinality(ckpt, tmp_path / "out", discriminator=True)
    g = StyleGAN2Generator.from_pretrained(out).eval()
    d = StyleGAN2Discriminator.from_pretrained(out, subfolder="discriminator").eval()
    assert g.config.channels == tiny_generator.config.channels
    assert (g.config.size, g.config.style_dim, g.config.n_mlp) == (32, 32, 2)
    assert g.config.blur_kernel == [1, 3, 3, 1]
    z = torch.randn(2, 32)
    assert torch.equal(g([z], randomize_noise=False).images, tiny_generator([z], randomize_noise=False).images)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(d(x).logits, tiny_discriminator(x).logits)


def test_convert_converted_style_keeps_latent_avg(tiny_generator, tmp_path):
    avg = torch.randn(32)
    torch.save({"g_ema": tiny_generator.state_dict(), "latent_avg": avg}, tmp_path / "conv.pt")
    out = convert_rosinality(tmp_path / "conv.pt", tmp_path / "out")
    g = StyleGAN2Generator.from_pretrained(out)
    assert g.config.has_latent_avg
    assert torch.equal(g.latent_avg, avg)
    assert len(g.state_dict()) == len(tiny_generator.state_dict()) + 1


def test_code_running_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"g_ema": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        convert_rosinality(tmp_path / "evil.pt", tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_foreign_and_corrupt_files_get_clear_errors(tiny_generator, tmp_path):
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no 'g_ema'.*found: \\['model'\\]"):
        convert_rosinality(tmp_path / "foreign.pt", tmp_path / "out")
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x02not a checkpoint at all")
    with pytest.raises(CheckpointError):
        convert_rosinality(tmp_path / "corrupt.pt", tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        convert_rosinality(tmp_path / "missing.pt", tmp_path / "out")


def test_missing_unexpected_and_mismatched_keys_are_named(tiny_generator, tmp_path):
    sd = dict(tiny_generator.state_dict())
    sd.pop("to_rgb1.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["conv1.activate.bias"] = torch.zeros(7)
    torch.save({"g_ema": sd}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        convert_rosinality(tmp_path / "bad.pt", tmp_path / "out")
    msg = str(err.value)
    assert "missing keys: to_rgb1.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "conv1.activate.bias: checkpoint (7,) vs model (32,)" in msg
    assert not (tmp_path / "out").exists()


def test_flags_that_disagree_with_the_checkpoint_fail(tiny_generator, tmp_path):
    torch.save({"g_ema": tiny_generator.state_dict()}, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="size=256 \\(checkpoint says 32\\)"):
        convert_rosinality(tmp_path / "g.pt", tmp_path / "out", size=256)
    with pytest.raises(CheckpointError, match="channel_multiplier=2"):
        convert_rosinality(tmp_path / "g.pt", tmp_path / "out", channel_multiplier=2)
    out = convert_rosinality(tmp_path / "g.pt", tmp_path / "out", size=32, style_dim=32, n_mlp=2)
    assert (out / "model.safetensors").exists()


def test_discriminator_missing_from_checkpoint(tiny_generator, tmp_path):
    torch.save({"g_ema": tiny_generator.state_dict(), "latent_avg": torch.zeros(32)}, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="no 'd'"):
        convert_rosinality(tmp_path / "g.pt", tmp_path / "out", discriminator=True)


def test_cli_convert_reports_errors_without_traceback(tiny_generator, tmp_path, capsys):
    torch.save({"g_ema": tiny_generator.state_dict()}, tmp_path / "g.pt")
    assert cli_main(["convert", "rosinality", str(tmp_path / "g.pt"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "config.json").exists()
    assert cli_main(["convert", "rosinality", str(tmp_path / "nope.pt"), str(tmp_path / "o2")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
