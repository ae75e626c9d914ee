import json

import pytest
import torch
from safetensors.torch import load_file

from gan_partseg import StyleGAN2Generator
from gan_partseg.training.checkpoints import checkpoints
from gan_partseg.training.gan import TrainGANConfig, models_from_checkpoint, train_gan, training_summary


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
    # a run recorded before a setting existed resumes: the missing key counts as that setting's default
    recorded = json.loads(before)
    for key in ("disc", "projected_resize", "d_lr"):
        recorded.pop(key)
    (run / "train_config.json").write_text(json.dumps(recorded))
    train_gan(_cfg(tmp_path / "r", steps=3), progress=False)
    assert [p.name for p in checkpoints(run)][-1] == "step_00000003"
    with pytest.raises(ValueError, match="different configuration.*disc"):
        train_gan(_cfg(tmp_path / "r", steps=4, disc="projected"), progress=False)


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
    # and it resumes without repeating --init-from (the source checkpoint may be rotated away by then)
    tuned5 = train_gan(_cfg(tmp_path / "tuned", steps=5, r1=0.05, lr=0.001), progress=False)
    assert json.loads((tuned5 / "train_config.json").read_text())["init_from"] == str(ckpt)
    assert [p.name for p in checkpoints(tuned5)][-1] == "step_00000005"
    with pytest.raises(ValueError, match="different configuration.*init_from"):
        train_gan(_cfg(tmp_path / "tuned", steps=6, r1=0.05, lr=0.001, init_from=str(tmp_path / "other")),
                  progress=False)
    # its training totals count the source run's log up to the hand-over (the source went on to step 4 since)
    info, table = training_summary(tuned, upto_step=4, every=1)
    assert info["lineage"] == ["src to step 2", "tuned"] and info["steps_done"] == 4
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["1", "2", "3", "4"]
    own, _ = training_summary(source, every=1)
    assert own["lineage"] == ["src"]
    sec = lambda run, step: next(json.loads(line)["sec"] for line in (run / "log.jsonl").read_text().splitlines()
                                 if json.loads(line)["step"] == step)  # noqa: E731
    assert info["wall_minutes"] == pytest.approx((sec(source, 2) + sec(tuned, 4)) / 60)
    (source / "log.jsonl").rename(source / "log.old")
    with pytest.raises(FileNotFoundError, match="init-from .*log is not here"):
        training_summary(tuned)


def test_images_shown_are_counted_across_a_change_of_batch(tmp_path):
    source = train_gan(_cfg(tmp_path / "src", steps=2), progress=False)  # batch 4: 8 images
    ckpt = checkpoints(source)[-1]
    kimg = lambda run: {r["step"]: r["kimg"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())}  # noqa: E731
    wide = train_gan(_cfg(tmp_path / "wide", steps=4, batch=8, init_from=str(ckpt)), progress=False)
    assert kimg(wide) == {3: 0.016, 4: 0.024}
    # a checkpoint written before images shown were recorded: inferred from its step and its run's batch
    state_file = ckpt / "custom_checkpoint_1.pkl"
    state = torch.load(state_file, weights_only=True)
    state.pop("nimg")
    torch.save(state, state_file)
    old = train_gan(_cfg(tmp_path / "old", steps=3, batch=8, init_from=str(ckpt)), progress=False)
    assert kimg(old) == {3: 0.016}
    assert torch.load(checkpoints(old)[-1] / "custom_checkpoint_1.pkl", weights_only=True)["nimg"] == 16


def test_init_from_refuses_other_networks_and_non_checkpoints(tmp_path):
    source = train_gan(_cfg(tmp_path / "src", steps=2), progress=False)
    ckpt = checkpoints(source)[-1]
    with pytest.raises(ValueError, match="holds other networks.*style_dim"):
        train_gan(_cfg(tmp_path / "x", steps=4, style_dim=32, init_from=str(ckpt)), progress=False)
    with pytest.raises(FileNotFoundError, match="not a complete train-gan checkpoint"):
        train_gan(_cfg(tmp_path / "y", steps=4, init_from=str(source)), progress=False)
    with pytest.raises(ValueError, match="unknown disc 'bogus'; use one of stylegan2, projected"):
        train_gan(_cfg(tmp_path / "z", disc="bogus"), progress=False)
    assert not (tmp_path / "x" / "checkpoints").exists() and not (tmp_path / "y" / "checkpoints").exists()
    assert not (tmp_path / "z").exists()


def test_projected_discriminator_trains_resumes_identically_and_fine_tunes_a_stylegan2_run(tmp_path):
    from safetensors.torch import load_file as load

    kw = dict(disc="projected", projected_resize=64, d_lr=0.0002, path_regularize=0.0)
    straight = train_gan(_cfg(tmp_path / "p", **kw), progress=False)
    log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert all("r1" not in r for r in log)  # hinge loss, no R1
    d_state = load(str(checkpoints(straight)[-1] / "model_1.safetensors"))
    assert any(k.startswith("ccm_") for k in d_state) and not any("_blocks" in k for k in d_state)
    assert (straight / "generator").exists() and not (straight / "discriminator").exists()
    g_ema, disc, step = models_from_checkpoint(straight)
    assert disc is None and step == 4 and g_ema([torch.randn(1, 16)]).images.shape == (1, 3, 16, 16)
    train_gan(_cfg(tmp_path / "q", **{**kw, "steps": 2}), progress=False)
    resumed = train_gan(_cfg(tmp_path / "q", **kw), progress=False)
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)

    # a StyleGAN2-discriminator run's generator side goes on under a fresh projected discriminator
    source = train_gan(_cfg(tmp_path / "src", steps=2), progress=False)
    ckpt = checkpoints(source)[-1]
    tuned = train_gan(_cfg(tmp_path / "t", init_from=str(ckpt), **kw), progress=False)
    log = [json.loads(line) for line in (tuned / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 4]
    g_src = load(str(ckpt / "model.safetensors"))
    g_new = load(str(checkpoints(tuned)[-1] / "model.safetensors"))
    assert g_src.keys() == g_new.keys() and any(not torch.equal(g_src[k], g_new[k]) for k in g_src)
    # ... but the generator itself must match
    with pytest.raises(ValueError, match="holds other networks.*style_dim"):
        train_gan(_cfg(tmp_path / "u", style_dim=32, init_from=str(ckpt), **kw), progress=False)


def test_projected_discriminator_shapes_and_what_it_trains():
    from gan_partseg.models.projected import ProjectedDiscriminator

    d = ProjectedDiscriminator(resize=64)
    assert d.resolutions == (16, 8, 4, 2)
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    logits = d(x).logits
    assert logits.shape == (2, 4)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the generator gets a gradient through the frozen net
    trained = {n.split(".")[0] for n, _ in d.named_parameters()}
    assert trained == {"heads"} and all(p.grad is not None for p in d.parameters())
    assert all(p.grad is None for p in d.feature_network.parameters())
    again = ProjectedDiscriminator(resize=64, features=d.feature_network)
    assert torch.equal(again.ccm_0, d.ccm_0) and torch.equal(again.csm_2, d.csm_2)  # seeded projections
    with pytest.raises(ValueError, match="multiple of 32"):
        ProjectedDiscriminator(resize=48, features=d.feature_network)
    with pytest.raises(ValueError, match="ascending"):
        ProjectedDiscriminator(blocks=(4, 2), proj_channels=(8, 8), features=d.feature_network)


def test_two_cpu_processes_train_one_run_together_under_torchrun(tmp_path):
    """torchrun on a CPU machine: the processes join one data-parallel group (each checkpoint checks that they
    hold the same weights), count images over both, print one summary and record the launch; the run then
    resumes only under the same launch, and a fork may go on with one process."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "gan_partseg.cli", "train-gan", "--out", str(out), "--size", "16", "--style-dim", "16",
           "--n-mlp", "1", "--channels", json.dumps({"4": 16, "8": 16, "16": 8}), "--n-images", "16",
           "--batch", "2", "--steps", "4", "--d-reg-every", "2", "--checkpoint-every", "2", "--sample-every", "2",
           "--log-every", "1", "--threads", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")} | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run folder:") == 1
    assert json.loads((out / "train_config.json").read_text())["processes"] == 2
    kimg = {r["step"]: r["kimg"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())}
    assert kimg == {1: 0.004, 2: 0.008, 3: 0.012, 4: 0.016}  # 2 processes x batch 2 per step
    assert [p.name for p in checkpoints(out)] == ["step_00000002", "step_00000004"]

    with pytest.raises(ValueError, match="trains with 2 process.es. x batch 2, this launch has 1.*"
                                         "torchrun --nproc_per_node 2"):
        train_gan(_cfg(out, batch=4, steps=6), progress=False)
    assert [p.name for p in checkpoints(out)] == ["step_00000002", "step_00000004"]
    fork = train_gan(_cfg(tmp_path / "one", batch=4, steps=5, init_from=str(checkpoints(out)[-1])), progress=False)
    assert {r["step"]: r["kimg"] for r in map(json.loads, (fork / "log.jsonl").read_text().splitlines())} == {5: 0.02}
    assert json.loads((fork / "train_config.json").read_text())["processes"] == 1


def test_replica_check_names_the_module_whose_weights_differ_between_processes():
    from gan_partseg.runtime import any_process, check_replicas_agree

    class TwoProcesses:  # what accelerate returns for 2 processes, the other one holding `other`'s weights
        num_processes, device = 2, torch.device("cpu")

        def __init__(self, other):
            self.other = other

        def gather(self, x):
            return torch.cat([x, self.other[None]])

        def reduce(self, x, reduction):
            return x + self.other

    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    sums = lambda *ms: torch.stack([sum(p.double().sum() for p in m.parameters()) for m in ms]).detach()  # noqa: E731
    check_replicas_agree(TwoProcesses(sums(a, b)), {"generator": a, "discriminator": b})
    with pytest.raises(RuntimeError, match="different discriminator weights"):
        check_replicas_agree(TwoProcesses(sums(a, b) + torch.tensor([0.0, 1e-9])), {"generator": a, "discriminator": b})
    assert any_process(TwoProcesses(torch.tensor([1.0])), False)
    assert not any_process(TwoProcesses(torch.zeros(1)), False)


def test_log_ends_at_the_last_step_and_summary_reads_a_checkpoint_past_the_log(tmp_path):
    run = train_gan(_cfg(tmp_path / "a", steps=5, log_every=2), progress=False)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 4, 5]  # the step the last checkpoint holds is logged
    info, _ = training_summary(run, upto_step=5)
    assert (info["steps_done"], info["kimg"]) == (5, rows[-1]["kimg"])
    # a log that stops short of its checkpoint (written before the last step was logged): the checkpoint's
    # step, and the images it showed at the run's rate
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    info, _ = training_summary(run, upto_step=5)
    assert info["steps_done"] == 5 and info["kimg"] == pytest.approx(rows[-1]["kimg"])
    assert training_summary(run)[0]["steps_done"] == 4


def test_a_packed_checkpoint_resumes_bit_identically_and_stores_bundled_weights_by_reference(tmp_path):
    from gan_partseg.training.resume import pack_checkpoint, unpack_checkpoint

    straight = train_gan(_cfg(tmp_path / "a"), progress=False)
    half = train_gan(_cfg(tmp_path / "b", steps=2), progress=False)
    refs = [half / "generator" / "model.safetensors", half / "discriminator" / "model.safetensors"]
    packed = tmp_path / "tracked" / "checkpoint"
    manifest = pack_checkpoint(checkpoints(half)[-1], packed, refs)
    by_ref = sorted(n for n, e in manifest["files"].items() if "reference" in e)
    assert by_ref == ["custom_checkpoint_0.pkl", "model_1.safetensors"]  # the EMA and D equal the run's outputs
    assert manifest["files"]["optimizer.bin"]["zeroed"] == ["exp_avg"]
    assert not list(packed.glob("*.pkl")) and not list(packed.glob("*.bin"))

    assert (packed.parent / "train_config.json").exists() and (packed.parent / "log.jsonl").exists()
    fresh = tmp_path / "c"
    assert unpack_checkpoint(packed, fresh).name == "step_00000002"
    resumed = train_gan(_cfg(fresh, steps=4), progress=False)
    a, b = _weights(straight), _weights(resumed)
    for k in a:
        assert torch.equal(a[k], b[k]), k

    refs[0].write_bytes(refs[1].read_bytes())  # a referenced file that changed is refused, not silently used
    with pytest.raises(ValueError, match="pack the checkpoint again|SHA-256"):
        unpack_checkpoint(packed, tmp_path / "d")


def test_training_summary_follows_a_lineage_copied_without_its_checkpoints(tmp_path):
    # the tracked reproduce/ folder holds configs and logs only, side by side
    def run(name, rows, init=None):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train_config.json").write_text(json.dumps({"init_from": init}))
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    row = lambda s, sec: {"step": s, "kimg": s / 10, "sec": sec, "d": 1.0, "g": 1.0, "real": 0.0, "fake": 0.0}
    run("parent", [row(1, 10.0), row(2, 20.0), row(3, 30.0)])
    run("child", [row(3, 5.0), row(4, 15.0)], init="runs/parent/checkpoints/step_00000002")
    info, _ = training_summary(tmp_path / "child")
    assert info["lineage"] == ["parent to step 2", "child"]
    assert info["steps_done"] == 4 and info["wall_minutes"] == (20.0 + 15.0) / 60
