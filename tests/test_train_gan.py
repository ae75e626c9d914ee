import json

import pytest
import torch
from safetensors.torch import load_file

from gan_partseg import StyleGAN2Generator
from gan_partseg.training.common import checkpoints
from gan_partseg.training.gan import TrainGANConfig, train_gan


def _cfg(out, **kw):
    base = dict(out=str(out), size=16, style_dim=16, n_mlp=1, channels={"4": 16, "8": 16, "16": 8},
                n_images=16, batch=4, steps=4, d_reg_every=2, path_regularize=1.0, g_reg_every=2,
                augment="translate-color", sample_every=2, checkpoint_every=2, log_every=1)
    base.update(kw)
    return TrainGANConfig(**base)


def _weights(run):
    return load_file(str(run / "generator" / "model.safetensors"))


def test_train_save_resume_continues_identically(tmp_path):
    straight = train_gan(_cfg(tmp_path / "a"), progress=False)
    assert [p.name for p in checkpoints(straight)] == ["step_00000002", "step_00000004"]
    assert (straight / "samples" / "step_00000002.png").exists()
    log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all("d" in r and "g" in r for r in log)

    half = train_gan(_cfg(tmp_path / "b", steps=2), progress=False)
    resumed = train_gan(_cfg(tmp_path / "b", steps=4), progress=False)
    assert half == resumed
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    g = StyleGAN2Generator.from_pretrained(resumed / "generator")
    assert g([torch.randn(2, 16)]).images.shape == (2, 3, 16, 16)
    assert (resumed / "discriminator" / "config.json").exists()


def test_resume_with_a_different_config_is_refused_and_nothing_is_overwritten(tmp_path):
    run = train_gan(_cfg(tmp_path / "r", steps=2), progress=False)
    before = (run / "train_config.json").read_text()
    ckpt = checkpoints(run)[-1]
    stamp = (ckpt / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(ValueError, match="different configuration.*style_dim"):
        train_gan(_cfg(tmp_path / "r", steps=4, style_dim=32), progress=False)
    assert (run / "train_config.json").read_text() == before
    assert (ckpt / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="--resume"):
        train_gan(_cfg(tmp_path / "r", steps=4), resume=False, progress=False)


def test_init_from_fine_tunes_another_runs_checkpoint_with_new_settings(tmp_path):
    source = train_gan(_cfg(tmp_path / "src", steps=2), progress=False)
    ckpt = checkpoints(source)[-1]
    # same settings: continuing from the checkpoint in a new folder equals resuming the source run
    same = train_gan(_cfg(tmp_path / "same", steps=4, init_from=str(ckpt)), progress=False)
    resumed = train_gan(_cfg(tmp_path / "src", steps=4), progress=False)
    a, b = _weights(same), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (same / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 4]
    # other training settings: allowed, recorded, and they change the outcome
    tuned = train_gan(_cfg(tmp_path / "tuned", steps=4, init_from=str(ckpt), r1=0.05, lr=0.001), progress=False)
    assert json.loads((tuned / "train_config.json").read_text())["r1"] == 0.05
    assert any(not torch.equal(a[k], _weights(tuned)[k]) for k in a)
    # its own checkpoints win over init_from when it is resumed
    again = train_gan(_cfg(tmp_path / "tuned", steps=4, init_from=str(ckpt), r1=0.05, lr=0.001), progress=False)
    assert all(torch.equal(_weights(again)[k], _weights(tuned)[k]) for k in a)


def test_init_from_refuses_other_networks_and_non_checkpoints(tmp_path):
    source = train_gan(_cfg(tmp_path / "src", steps=2), progress=False)
    ckpt = checkpoints(source)[-1]
    with pytest.raises(ValueError, match="holds other networks.*style_dim"):
        train_gan(_cfg(tmp_path / "x", steps=4, style_dim=32, init_from=str(ckpt)), progress=False)
    with pytest.raises(FileNotFoundError, match="not a complete train-gan checkpoint"):
        train_gan(_cfg(tmp_path / "y", steps=4, init_from=str(source)), progress=False)
    assert not (tmp_path / "x" / "checkpoints").exists() and not (tmp_path / "y" / "checkpoints").exists()
