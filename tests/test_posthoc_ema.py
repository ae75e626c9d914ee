"""Post-hoc EMAs from raw-generator snapshots (scripts/posthoc_ema.py) match the EMA training keeps."""


import pytest
import torch
from safetensors.torch import load_file, save_file

from gan_partseg.results import posthoc_ema
from gan_partseg.training.checkpoints import checkpoints
from gan_partseg.training.gan import TrainGANConfig, train_gan


def _cfg(out, steps):
    return TrainGANConfig(out=str(out), size=16, style_dim=16, n_mlp=1, channels={"4": 16, "8": 16, "16": 8},
                          n_images=16, batch=4, steps=steps, ema_kimg=0.01, ema_rampup=0.0, sample_every=100,
                          checkpoint_every=1, log_every=1)


def test_snapshots_at_every_step_rebuild_the_runs_own_ema(tmp_path):
    run, snaps = tmp_path / "run", tmp_path / "snaps"
    for steps in range(1, 5):  # one collect pass after each step: every step's raw generator is kept
        train_gan(_cfg(run, steps), progress=False)
        posthoc_ema.collect(run, snaps, idle_minutes=0)
    found = posthoc_ema.snapshots(snaps)
    assert [step for step, _ in found] == [1, 2, 3, 4]
    ema_at_4 = torch.load(checkpoints(run)[-1] / "custom_checkpoint_0.pkl", weights_only=True)
    raw_at_4 = load_file(str(found[-1][1] / "raw.safetensors"))
    assert posthoc_ema.images_shown(found, batch=999) == [4, 8, 12, 16]  # the checkpoints' counts, recorded
    rebuilt = posthoc_ema.posthoc_ema(found, half_life_kimg=0.01, batch=4)  # the run's half-life: 10 images
    assert rebuilt.keys() == ema_at_4.keys()
    for k in ema_at_4:
        torch.testing.assert_close(rebuilt[k], ema_at_4[k], rtol=1e-5, atol=1e-6)
    moved = [k for k in ema_at_4 if not torch.equal(ema_at_4[k], raw_at_4[k])]
    assert moved  # the EMA is not the raw generator, so the match above says something
    # a very long half-life stays at the start (the run's EMA at step 1), a very short one goes to the raw weights
    start = load_file(str(found[0][1] / "ema.safetensors"))
    torch.testing.assert_close(posthoc_ema.posthoc_ema(found, 1e6, 4)[moved[0]], start[moved[0]])
    torch.testing.assert_close(posthoc_ema.posthoc_ema(found, 1e-6, 4)[moved[0]], raw_at_4[moved[0]])


def test_snapshots_need_two(tmp_path):
    (tmp_path / "step_00000005").mkdir()
    (tmp_path / "step_00000005" / "ema.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="1 complete snapshots; run `collect`"):
        posthoc_ema.snapshots(tmp_path)
    # snapshots collected before images shown were recorded: step x batch
    for step in (5, 7):
        (tmp_path / f"step_{step:08d}").mkdir(exist_ok=True)
        save_file({"w": torch.zeros(1)}, str(tmp_path / f"step_{step:08d}" / "ema.safetensors"))
    assert posthoc_ema.images_shown(posthoc_ema.snapshots(tmp_path), batch=16) == [80, 112]
