"""StyleGAN2 training with Accelerate (rosinality's recipe, sized for small generators).

Non-saturating logistic loss, lazy R1 on reals, optional lazy path-length
regularisation, style mixing, an EMA generator, optional differentiable
augmentation (translation + colour), mixed precision on GPUs. ``disc="projected"``
swaps the StyleGAN2 discriminator for a projected-GAN one on frozen
EfficientNet-Lite0 features (``models/projected.py``: hinge loss, no R1). Every step draws
its batch indices, latents and noise from a generator seeded by
(seed, step, process), so a resumed run continues exactly as an uninterrupted
one would. Runs unchanged under ``accelerate launch`` on many devices.

Run folder layout::

    OUT/train_config.json            the TrainGANConfig (resume refuses a different one)
    OUT/log.jsonl                    one line of losses every ``log_every`` steps
    OUT/samples/step_00001000.png    EMA samples on fixed latents
    OUT/checkpoints/step_00001000/   accelerator.save_state (models, optimizers, EMA, step)
    OUT/generator/, OUT/discriminator/   final save_pretrained folders
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gan_partseg.cards import generator_card
from gan_partseg.data import TRAIN_SEEDS, render_batch
from gan_partseg.errors import ArgumentError, CheckpointError, MissingFileError, OutputError, check_count, check_seed
from gan_partseg.files import atomic_write_bytes
from gan_partseg.hub import save_pretrained_atomic
from gan_partseg.images import make_grid, save_image, tensor_to_uint8, uint8_to_tensor
from gan_partseg.models.projected import ProjectedDiscriminator
from gan_partseg.models.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
)
from gan_partseg.runtime import any_process, check_replicas_agree, make_accelerator, step_generator, step_seed
from gan_partseg.training.checkpoints import (
    JsonlLog,
    check_resume_config,
    checkpoints,
    config_differences,
    config_from_dict,
    save_checkpoint,
    write_config,
)


@dataclass
class TrainGANConfig:
    """Settings of one StyleGAN2 training run (all stored in ``train_config.json``)."""

    out: str = "runs/gan"
    size: int = 64
    style_dim: int = 128
    n_mlp: int = 4
    channels: dict = field(default_factory=lambda: {"4": 128, "8": 128, "16": 128, "32": 64, "64": 32})
    disc_channels: dict | None = None
    n_images: int = 20000
    batch: int = 16
    steps: int = 20000
    lr: float = 0.002
    r1: float = 1.0
    d_reg_every: int = 16
    path_regularize: float = 0.0
    g_reg_every: int = 4
    mixing: float = 0.9
    augment: str = "none"
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05
    seed: int = 0
    sample_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 50
    mixed_precision: str = "no"
    max_minutes: float | None = None
    init_from: str | None = None
    disc: str = "stylegan2"
    projected_resize: int = 128
    d_lr: float | None = None
    processes: int = 1
    """How many processes train the run together (set by ``train_gan`` from the launch, not a flag): ``batch``
    is per process, so each step shows ``batch * processes`` images."""


DISC_KINDS = ("stylegan2", "projected")
MODEL_KEYS = ["size", "style_dim", "n_mlp", "channels", "disc_channels", "n_images", "batch", "lr", "r1",
              "d_reg_every", "path_regularize", "g_reg_every", "mixing", "augment", "ema_kimg", "seed", "init_from",
              "disc", "projected_resize", "d_lr", "processes"]
ARCHITECTURE_KEYS = ["size", "style_dim", "n_mlp", "channels", "disc_channels", "disc", "projected_resize"]
"""What ``init_from`` needs to match in the source run: the rest (lr, r1, augmentation, ...) may change."""
GENERATOR_KEYS = ["size", "style_dim", "n_mlp", "channels"]
"""With another discriminator (``disc``) than the source run's, only these must match: the generator side is
taken (networks, EMA, optimizer moments, step) and the discriminator starts afresh."""


def check_init_from(cfg: TrainGANConfig) -> tuple[Path, bool]:
    """The checkpoint folder ``cfg.init_from`` names, checked to hold the same networks as ``cfg``, and whether
    its discriminator is of the same kind (when it is not, only the generator side is taken)."""
    ckpt = Path(cfg.init_from)
    if not (ckpt / "DONE").exists():
        raise MissingFileError(f"--init-from {ckpt} is not a complete train-gan checkpoint "
                               "(a RUN/checkpoints/step_N folder with a DONE file)")
    source = ckpt.parent.parent / "train_config.json"
    if not source.exists():
        raise MissingFileError(f"--init-from {ckpt}: no train_config.json in its run folder {ckpt.parent.parent}")
    same_disc = not config_differences(source, cfg, ["disc"])
    diff = config_differences(source, cfg, ARCHITECTURE_KEYS if same_disc else GENERATOR_KEYS)
    if diff:
        lines = ", ".join(f"{k}: checkpoint has {a!r}, you asked {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(f"--init-from {ckpt} holds other networks ({lines}); use the same architecture settings")
    return ckpt, same_disc


def _load_generator_side(ckpt: Path, generator, g_optim, g_ema, state: "TrainState") -> None:
    """From an ``accelerator.save_state`` folder: the generator (model 0), its optimizer (optimizer 0), the EMA
    and the train state (custom checkpoints 0 and 1); ``weights_only`` loads and safetensors only."""
    from safetensors.torch import load_file

    generator.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    g_optim.load_state_dict(torch.load(ckpt / "optimizer.bin", map_location="cpu", weights_only=True))
    g_ema.load_state_dict(torch.load(ckpt / "custom_checkpoint_0.pkl", map_location="cpu", weights_only=True))
    state.load_state_dict(torch.load(ckpt / "custom_checkpoint_1.pkl", map_location="cpu", weights_only=True))


class TrainState:
    """Step counter, images shown and running statistics, checkpointed beside the models.

    ``nimg`` counts images shown over all processes, so that a run started ``--init-from`` a run with
    another batch size goes on counting right; -1 after loading a checkpoint written before it was
    recorded (``train_gan`` then infers it from the step and that run's batch).
    """

    def __init__(self):
        self.step = 0
        self.nimg = 0
        self.mean_path_length = torch.zeros(())

    def state_dict(self):
        return {"step": torch.tensor(self.step), "nimg": torch.tensor(self.nimg, dtype=torch.int64),
                "mean_path_length": self.mean_path_length.detach().cpu()}

    def load_state_dict(self, sd):
        self.step = int(sd["step"])
        self.nimg = int(sd["nimg"]) if "nimg" in sd else -1
        self.mean_path_length = torch.as_tensor(sd.get("mean_path_length", 0.0)).float()


def generator_config(cfg: TrainGANConfig) -> StyleGAN2Config:
    return StyleGAN2Config(size=cfg.size, style_dim=cfg.style_dim, n_mlp=cfg.n_mlp, channel_multiplier=1,
                           channels=cfg.channels)


def discriminator_config(cfg: TrainGANConfig) -> StyleGAN2DiscriminatorConfig:
    return StyleGAN2DiscriminatorConfig(size=cfg.size, channel_multiplier=1,
                                        channels=cfg.disc_channels or cfg.channels)


def build_discriminator(cfg: TrainGANConfig) -> torch.nn.Module:
    """The discriminator ``cfg.disc`` names: a ``StyleGAN2Discriminator`` or a ``ProjectedDiscriminator``."""
    if cfg.disc == "stylegan2":
        return StyleGAN2Discriminator(discriminator_config(cfg))
    if cfg.disc == "projected":
        return ProjectedDiscriminator(resize=cfg.projected_resize, seed=cfg.seed)
    raise ArgumentError(f"unknown disc {cfg.disc!r}; use one of {', '.join(DISC_KINDS)}")


def discriminator_losses(kind: str, real_pred: torch.Tensor | None, fake_pred: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss, or the generator's when ``real_pred`` is None.

    ``stylegan2``: non-saturating logistic on (B, 1) logits. ``projected``: hinge on (B, n_scales) logits,
    a mean over the batch summed over the scales.
    """
    if kind == "projected":
        if real_pred is None:
            return -fake_pred.mean(0).sum()
        return F.relu(1 - real_pred).mean(0).sum() + F.relu(1 + fake_pred).mean(0).sum()
    if real_pred is None:
        return F.softplus(-fake_pred).mean()
    return F.softplus(fake_pred).mean() + F.softplus(-real_pred).mean()


def augment(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Differentiable augmentation applied to reals and fakes alike.

    ``translate-color``: random brightness / saturation / contrast and an integer
    translation of up to 1/8 of the size (zero padded).
    """
    if kind == "none":
        return x
    if kind != "translate-color":
        raise ArgumentError(f"unknown augment {kind!r}; use 'none' or 'translate-color'")
    b, _, h, w = x.shape
    dev = x.device
    r = lambda *s: torch.rand(*s, generator=generator).to(dev, x.dtype)  # noqa: E731
    x = x + (r(b, 1, 1, 1) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (r(b, 1, 1, 1) * 2) + mean
    mean = x.mean([1, 2, 3], keepdim=True)
    x = (x - mean) * (r(b, 1, 1, 1) + 0.5) + mean
    shift = h // 8
    tx = torch.randint(-shift, shift + 1, (b,), generator=generator).tolist()
    ty = torch.randint(-shift, shift + 1, (b,), generator=generator).tolist()
    padded = F.pad(x, [shift, shift, shift, shift])
    return torch.stack([padded[i, :, shift + ty[i]: shift + ty[i] + h, shift + tx[i]: shift + tx[i] + w]
                        for i in range(b)])


def load_training_images(n_images: int, size: int, cache_dir: Path | None = None) -> np.ndarray:
    """The first ``n_images`` seeds of ``TRAIN_SEEDS`` rendered at ``size``: (N, size, size, 3) uint8, cached."""

    if n_images > len(TRAIN_SEEDS):
        raise ArgumentError(f"n_images must be at most {len(TRAIN_SEEDS)}")
    cache = Path(cache_dir) / f"toyfaces_{size}px_{n_images}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        arr = np.load(cache, mmap_mode="r")
        if arr.shape == (n_images, size, size, 3):
            return np.array(arr)
    seeds = list(TRAIN_SEEDS[:n_images])
    chunks = [seeds[i: i + 500] for i in range(0, len(seeds), 500)]
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    workers = max(1, min(4, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) as pool:
        render = partial(render_batch, size=size)
        images = [b[0] for b in tqdm(pool.map(render, chunks), total=len(chunks),
                                     desc="rendering training faces", unit="x500")]
    arr = np.concatenate(images)
    if cache is not None:  # a unique temp name: runs started together may write the cache at once
        import io

        buf = io.BytesIO()
        np.save(buf, arr)
        atomic_write_bytes(cache, buf.getvalue())
    return arr


def _requires_grad(model: torch.nn.Module, flag: bool) -> None:
    for p in model.parameters():
        p.requires_grad_(flag)


@torch.no_grad()
def _accumulate(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    ema_params = dict(ema.named_parameters())
    for name, p in model.named_parameters():
        ema_params[name].lerp_(p.detach(), 1 - decay)
    ema_bufs = dict(ema.named_buffers())
    for name, b in model.named_buffers():
        ema_bufs[name].copy_(b)


def _mixed_styles(cfg: TrainGANConfig, batch: int, gen: torch.Generator, device) -> list[torch.Tensor]:
    if cfg.mixing > 0 and torch.rand((), generator=gen).item() < cfg.mixing:
        return [torch.randn(batch, cfg.style_dim, generator=gen).to(device) for _ in range(2)]
    return [torch.randn(batch, cfg.style_dim, generator=gen).to(device)]


def sample_grid(g_ema: StyleGAN2Generator, cfg: TrainGANConfig, n: int = 32) -> np.ndarray:
    """EMA samples on fixed latents (seed-derived), as an (H, W, 3) uint8 grid."""
    dev = g_ema.input.input.device
    z = torch.randn(n, cfg.style_dim, generator=step_generator(cfg.seed, -1)).to(dev)
    with torch.no_grad():
        imgs = g_ema([z], randomize_noise=False).images
    return make_grid(tensor_to_uint8(imgs), ncol=8)


def _launch_hint(processes: int) -> str:
    if processes == 1:
        return "gan-partseg train-gan ..."
    return f"torchrun --nproc_per_node {processes} -m gan_partseg.cli train-gan ..."


def train_gan(cfg: TrainGANConfig, resume: bool = True, progress: bool = True) -> Path:
    """Train (or resume) a StyleGAN2 run in ``cfg.out``; returns the run folder.

    Resumes from the newest complete checkpoint when one exists (``resume``); a new run with
    ``cfg.init_from`` (another run's checkpoint folder, same architecture) starts from that checkpoint's
    networks, EMA, optimizer moments and step, with its own training settings (e.g. a lower ``r1``).
    Stops after ``cfg.steps`` or ``cfg.max_minutes``, saving a checkpoint either way.
    """
    from accelerate.utils import DistributedDataParallelKwargs

    for name in ("steps", "batch", "n_images", "size"):
        check_count(name, getattr(cfg, name))
    check_seed("seed", cfg.seed)
    run = Path(cfg.out)
    existing = checkpoints(run)
    if existing and not resume:
        raise OutputError(f"{run} already holds checkpoints; pass --resume to continue it or choose a new --out")
    recorded = load_run_config(run) if existing else None
    if recorded is not None and cfg.init_from is None:  # resuming a fork needs no --init-from: it has its checkpoints
        cfg = replace(cfg, init_from=recorded.init_from)
    accelerator = make_accelerator(
        mixed_precision=cfg.mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False, find_unused_parameters=False)],
    )
    cfg = replace(cfg, processes=accelerator.num_processes)
    if recorded is not None and recorded.processes != cfg.processes:
        was = recorded.processes
        raise ArgumentError(f"{run} trains with {was} process(es) x batch {recorded.batch}, this launch has "
                            f"{cfg.processes}: resume it the same way ({_launch_hint(was)}), or start a fork with the "
                            f"batch you want (--out NEW --init-from {existing[-1]})")
    check_resume_config(run, cfg, MODEL_KEYS)
    device = accelerator.device
    rank = accelerator.process_index

    init_from = check_init_from(cfg) if cfg.init_from and not existing else None
    torch.manual_seed(cfg.seed)
    generator = StyleGAN2Generator(generator_config(cfg))
    discriminator = build_discriminator(cfg)
    g_ema = copy.deepcopy(generator).eval()
    _requires_grad(g_ema, False)

    use_r1 = cfg.disc == "stylegan2"
    g_ratio = cfg.g_reg_every / (cfg.g_reg_every + 1) if cfg.path_regularize > 0 else 1.0
    d_ratio = cfg.d_reg_every / (cfg.d_reg_every + 1) if use_r1 else 1.0
    d_lr = cfg.d_lr if cfg.d_lr is not None else cfg.lr
    g_optim = torch.optim.Adam(generator.parameters(), lr=cfg.lr * g_ratio, betas=(0.0, 0.99**g_ratio))
    d_optim = torch.optim.Adam(discriminator.parameters(), lr=d_lr * d_ratio, betas=(0.0, 0.99**d_ratio))

    generator, discriminator, g_optim, d_optim = accelerator.prepare(generator, discriminator, g_optim, d_optim)
    g_ema.to(device)
    state = TrainState()
    accelerator.register_for_checkpointing(g_ema, state)

    if existing:
        accelerator.load_state(str(existing[-1]))
        accelerator.print(f"resumed from {existing[-1]} (step {state.step})")
    elif init_from is not None:
        # fine-tune: networks, EMA, optimizer moments and step from another run; this run's own settings
        ckpt, same_disc = init_from
        if same_disc:
            accelerator.load_state(str(ckpt))
        else:  # another kind of discriminator: the generator side only, a fresh discriminator
            _load_generator_side(ckpt, accelerator.unwrap_model(generator), g_optim, g_ema, state)
        for opt, lr, ratio in ((g_optim, cfg.lr, g_ratio), (d_optim, d_lr, d_ratio)):
            for group in opt.param_groups:
                group["lr"], group["betas"] = lr * ratio, (0.0, 0.99**ratio)
        what = "" if same_disc else " (generator side; a new discriminator)"
        accelerator.print(f"initialised from {cfg.init_from}{what} (step {state.step})")
    if state.nimg < 0:  # a checkpoint from before images shown were recorded: step x its run's batch
        source = load_run_config(init_from[0].parent.parent) if init_from is not None else cfg
        state.nimg = state.step * source.batch * source.processes
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        (run / "samples").mkdir(exist_ok=True)
        write_config(run, cfg)
    log = JsonlLog(run / "log.jsonl", upto_step=state.step) if accelerator.is_main_process else None

    data = uint8_to_tensor(load_training_images(cfg.n_images, cfg.size, run.parent / ".cache"))
    ema_nimg = cfg.ema_kimg * 1000
    t0 = time.time()
    bar = tqdm(total=cfg.steps, initial=state.step, desc="train-gan", disable=not (progress and accelerator.is_main_process))
    logs: dict[str, float] = {}

    while state.step < cfg.steps:
        step = state.step
        gen = step_generator(cfg.seed, step, rank)
        torch.manual_seed(step_seed(cfg.seed, step, rank, 1))
        idx = torch.randint(0, len(data), (cfg.batch,), generator=gen)
        real = data[idx].to(device)

        # discriminator
        _requires_grad(generator, False)
        _requires_grad(discriminator, True)
        with accelerator.autocast():
            fake = generator(_mixed_styles(cfg, cfg.batch, gen, device)).images
            fake_pred = discriminator(augment(fake.detach(), cfg.augment, gen)).logits
            real_pred = discriminator(augment(real, cfg.augment, gen)).logits
            d_loss = discriminator_losses(cfg.disc, real_pred, fake_pred)
        d_optim.zero_grad(set_to_none=True)
        accelerator.backward(d_loss)
        d_optim.step()

        if use_r1 and step % cfg.d_reg_every == 0:
            real_r = augment(real, cfg.augment, gen).detach().requires_grad_(True)
            real_pred = discriminator(real_r).logits
            (grad,) = torch.autograd.grad(real_pred.float().sum(), real_r, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            d_optim.zero_grad(set_to_none=True)
            accelerator.backward(cfg.r1 / 2 * r1 * cfg.d_reg_every + 0 * real_pred[0, 0])
            d_optim.step()
            logs["r1"] = r1.item()

        # generator
        _requires_grad(generator, True)
        _requires_grad(discriminator, False)
        with accelerator.autocast():
            fake = generator(_mixed_styles(cfg, cfg.batch, gen, device)).images
            g_loss = discriminator_losses(cfg.disc, None, discriminator(augment(fake, cfg.augment, gen)).logits)
        g_optim.zero_grad(set_to_none=True)
        accelerator.backward(g_loss)
        g_optim.step()

        if cfg.path_regularize > 0 and step % cfg.g_reg_every == 0:
            pl_batch = max(1, cfg.batch // 2)
            out = generator(_mixed_styles(cfg, pl_batch, gen, device), return_latents=True)
            noise = torch.randn(out.images.shape, generator=gen).to(device) / math.sqrt(cfg.size**2)
            (grad,) = torch.autograd.grad((out.images * noise).sum(), out.latents, create_graph=True)
            lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
            mpl = state.mean_path_length.to(device)
            mpl = mpl + 0.01 * (lengths.mean().detach() - mpl)
            state.mean_path_length = mpl
            pl = (lengths - mpl).pow(2).mean()
            g_optim.zero_grad(set_to_none=True)
            accelerator.backward(cfg.path_regularize * cfg.g_reg_every * pl + 0 * out.images[0, 0, 0, 0])
            g_optim.step()
            logs["path"] = pl.item()

        state.nimg += cfg.batch * accelerator.num_processes
        cur_nimg = state.nimg
        nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup) if cfg.ema_rampup else ema_nimg
        decay = 0.5 ** (cfg.batch * accelerator.num_processes / max(nimg, 1e-8))
        _accumulate(g_ema, accelerator.unwrap_model(generator), decay)

        state.step = step + 1
        logs.update(d=d_loss.item(), g=g_loss.item(), real=real_pred.mean().item(), fake=fake_pred.mean().item())
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
        over = cfg.max_minutes is not None and (time.time() - t0) / 60 >= cfg.max_minutes
        out_of_time = any_process(accelerator, over)  # each process reads its own clock: stop together
        last = state.step == cfg.steps or out_of_time  # the log ends at the step the last checkpoint holds
        if log is not None and (state.step % cfg.log_every == 0 or state.step == 1 or last):
            log.write({"step": state.step, "kimg": cur_nimg / 1000, "sec": round(time.time() - t0, 1), **logs})
        if accelerator.is_main_process and state.step % cfg.sample_every == 0:
            save_image(run / "samples" / f"step_{state.step:08d}.png", sample_grid(g_ema, cfg))
        if state.step % cfg.checkpoint_every == 0 or last:
            check_replicas_agree(accelerator, {"generator": generator, "discriminator": discriminator, "EMA": g_ema})
            save_checkpoint(accelerator, run, state.step)
        if out_of_time:
            accelerator.print(f"stopping after {cfg.max_minutes} minutes at step {state.step}; rerun to resume")
            break
    bar.close()

    if accelerator.is_main_process:
        export_models(run, g_ema, accelerator.unwrap_model(discriminator))
        save_image(run / "samples" / "final.png", sample_grid(g_ema, cfg))
    accelerator.wait_for_everyone()
    return run


def export_models(run: Path, g_ema: StyleGAN2Generator, discriminator: torch.nn.Module) -> None:
    """Write ``run/generator`` (the EMA weights, with a model card) and ``run/discriminator`` (a StyleGAN2
    discriminator only: a projected one lives in the checkpoints)."""
    import json


    info, _ = training_summary(run)
    training = {**json.loads((run / "train_config.json").read_text()), **info,
                "g_params_m": round(sum(p.numel() for p in g_ema.parameters()) / 1e6, 2),
                "d_params_m": round(sum(p.numel() for p in discriminator.parameters()) / 1e6, 2)}
    card = generator_card(run.name, g_ema.config.to_dict(), training, None, "../samples/final.png")
    save_pretrained_atomic(g_ema, run / "generator", card=card)
    if isinstance(discriminator, StyleGAN2Discriminator):
        save_pretrained_atomic(discriminator, run / "discriminator")


def training_summary(run: Path, every: int = 500, upto_step: int | None = None) -> tuple[dict, str]:
    """From ``run/log.jsonl``: totals (steps, kimg, wall minutes over resumed segments) and a markdown loss table.

    A run started ``--init-from`` another run's checkpoint counts that run's log up to the checkpoint's step
    too (and so on back), so the totals are those of everything the weights went through; ``info["lineage"]``
    names each run and the last step taken from it. ``upto_step``: only the log up to that step (the step a
    shipped artifact was taken at).
    """
    stages = _lineage_rows(Path(run))
    if upto_step is not None:
        stages = [(name, [r for r in stage if r["step"] <= upto_step]) for name, stage in stages]
    rows = [r for _, stage in stages for r in stage]
    wall = sum(_wall_seconds(stage) for _, stage in stages)
    lines = ["| step | kimg | d loss | g loss | r1 | D(real) | D(fake) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["step"] % every == 0 or r is rows[-1]:
            lines.append(f"| {r['step']} | {r['kimg']:.1f} | {r['d']:.3f} | {r['g']:.3f} | {r.get('r1', 0):.3f} | "
                         f"{r['real']:.2f} | {r['fake']:.2f} |")
    last = rows[-1]
    steps, kimg = last["step"], last["kimg"]
    own = stages[-1][1]  # the last run's rows: its batch x processes is fixed, its parents' may differ
    if upto_step is not None and upto_step > steps and len(own) > 1 and own[-2]["step"] < steps:
        # a checkpoint past the last log row (logs before 2026-12-02 skipped the step a time limit stopped
        # at): its images at the rate of the run's last rows
        kimg += (upto_step - steps) * (kimg - own[-2]["kimg"]) / (steps - own[-2]["step"])
        steps = upto_step
    info = {"steps_done": steps, "kimg": kimg, "wall_minutes": wall / 60,
            "seconds_per_step": wall / max(steps, 1), "lineage": [name for name, stage in stages if stage]}
    return info, "\n".join(lines)


def _wall_seconds(rows: list[dict]) -> float:
    """Wall time of one run's log rows: a resumed run restarts its clock, so add up each segment's."""
    wall, last_sec, prev = 0.0, 0.0, None
    for r in rows:
        if prev is not None and r["sec"] < prev:
            wall += last_sec
        last_sec = prev = r["sec"]
    return wall + last_sec


def _lineage_rows(run: Path) -> list[tuple[str, list[dict]]]:
    """``(name, log rows)`` of ``run`` preceded by those of the runs it was started from (``init_from``), each
    up to the step its successor took over, named ``"SOURCE to step N"``."""
    import json

    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((run / "train_config.json").read_text()) if (run / "train_config.json").exists() else {}
    init = config.get("init_from")
    if not init:
        return [(run.name, rows)]
    ckpt = Path(init)
    source, start = ckpt.parent.parent, int(ckpt.name.rsplit("_", 1)[-1])
    if not source.is_absolute():
        # recorded relative to where train-gan ran (the run's folder or an ancestor), or a sibling of the run
        # when a lineage was copied together (the tracked resume/ folder keeps only configs and logs)
        here = run.resolve()
        candidates = [base / source for base in (Path.cwd(), *here.parents)] + [here.parent / source.name]
        source = next((c for c in candidates if (c / "log.jsonl").exists()), source)
    if not (source / "log.jsonl").exists():
        raise MissingFileError(f"{run} was started --init-from {init}, but that run's log is not here "
                               f"({source / 'log.jsonl'}): restore the run folder to count its training")
    *earlier, (name, before) = _lineage_rows(source)
    return [*earlier, (f"{name} to step {start}", [r for r in before if r["step"] <= start]), (run.name, rows)]


def load_run_config(run: Path) -> TrainGANConfig:
    import json


    path = Path(run) / "train_config.json"
    if not path.exists():
        raise MissingFileError(f"{run} is not a train-gan run folder (no train_config.json)")
    try:
        values = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}): the run folder is damaged") from None
    return config_from_dict(TrainGANConfig, values)


def models_from_checkpoint(run: Path, checkpoint: Path | None = None
                           ) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator | None, int]:
    """Rebuild (EMA generator, discriminator, step) from a run's checkpoint (newest by default).

    The discriminator is None for a ``disc="projected"`` run (it is not a ``StyleGAN2Discriminator``).

    Reads only safetensors and ``weights_only`` tensors: no code from the files runs.
    """
    from safetensors.torch import load_file

    cfg = load_run_config(run)
    found = checkpoints(run)
    ckpt = Path(checkpoint) if checkpoint else (found[-1] if found else None)
    if ckpt is None:
        raise MissingFileError(f"{run} has no complete checkpoint yet")
    if not (ckpt / "DONE").exists():
        listed = ", ".join(p.name for p in found) or "none"
        raise MissingFileError(f"{ckpt} is not a complete train-gan checkpoint (no DONE marker); "
                               f"{run}'s complete ones: {listed}")
    g_ema = StyleGAN2Generator(generator_config(cfg))
    g_ema.load_state_dict(torch.load(ckpt / "custom_checkpoint_0.pkl", map_location="cpu", weights_only=True))
    disc = None
    if cfg.disc == "stylegan2":
        disc = StyleGAN2Discriminator(discriminator_config(cfg))
        disc.load_state_dict(load_file(str(ckpt / "model_1.safetensors")))
        disc = disc.eval()
    step = int(torch.load(ckpt / "custom_checkpoint_1.pkl", map_location="cpu", weights_only=True)["step"])
    return g_ema.eval(), disc, step
