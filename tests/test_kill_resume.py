"""train-autoshot and train-gan, killed with SIGKILL mid-run and started again with the same command, end with
the weights of a run that was never interrupted (bit-identical on the CPU), issue 24."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gan_partseg.data.export import export_hf_dataset
from gan_partseg.training.checkpoints import checkpoints


def _cli(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: the same float order in every run
    return subprocess.Popen([sys.executable, "-m", "gan_partseg.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def _kill_after_first_checkpoint(args, run: Path, done: Path, timeout: float = 240) -> int:
    """Start the command, SIGKILL it as soon as its first checkpoint is complete; returns that checkpoint's step."""
    proc = _cli(args)
    t0 = time.time()
    while not checkpoints(run):
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its first checkpoint: {proc.stderr.read()[-2000:]}")
        assert time.time() - t0 < timeout, "no checkpoint in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not done.exists(), "the run finished before the kill: make it longer"
    return int(checkpoints(run)[0].name.split("_")[-1])


def _run(args) -> None:
    proc = _cli(args)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]


def test_train_autoshot_killed_and_rerun_ends_bit_identical(tmp_path):
    data = tmp_path / "faces"
    export_hf_dataset(range(32), data, size=16, classes=3, progress=False)
    common = ["train-autoshot", "--data", str(data), "--widths", "4,8", "--batch-size", "4", "--epochs", "40",
              "--n-val", "0", "--rotate", "5", "--seed", "3"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    _run(common + ["--out", str(straight)])
    step = _kill_after_first_checkpoint(common + ["--out", str(killed)], killed, killed / "final")
    assert 0 < step < 320
    _run(common + ["--out", str(killed)])  # the same command resumes
    a = load_file(str(straight / "final" / "model.safetensors"))
    b = load_file(str(killed / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (killed / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == sorted(set(steps)) and steps[-1] == 320  # the log has every step once, none twice


def test_train_gan_killed_and_resumed_ends_bit_identical(tmp_path):
    common = ["train-gan", "--size", "16", "--style-dim", "16", "--n-mlp", "1",
              "--channels", '{"4": 16, "8": 16, "16": 8}', "--n-images", "16", "--batch-size", "4",
              "--steps", "24", "--d-reg-every", "2", "--g-reg-every", "2", "--path-regularize", "1.0",
              "--sample-every", "100", "--checkpoint-every", "4", "--log-every", "1", "--threads", "1"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    _run(common + ["--out", str(straight)])
    step = _kill_after_first_checkpoint(common + ["--out", str(killed)], killed, killed / "generator")
    assert 0 < step < 24
    _run(common + ["--out", str(killed), "--resume"])
    for part in ("generator", "discriminator"):
        a = load_file(str(straight / part / "model.safetensors"))
        b = load_file(str(killed / part / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
