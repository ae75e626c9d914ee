"""Latent optimizer (GAN inversion): real images in, latents + noise maps out.

Follows the protocol of rosinality's ``projector.py`` (docs/method.md section 4):
start at the mean W (``n_mean_latent`` samples), optimise the latent (W or W+)
and every noise map with Adam, learning rate with a linear warm-up over the
first 5 % and a cosine ramp-down over the last 25 %, Gaussian noise on the
latent of std ``latent_std * noise_strength * max(0, 1 - t / noise_ramp)^2``,
loss = perceptual distance + ``mse`` * pixel MSE + ``noise_regularization`` *
noise autocorrelation (shift 1, over a pyramid down to 8 px), noise maps
renormalised to zero mean and unit variance after every step.

Samples in a batch are optimised independently (per-sample losses are summed,
Adam is element-wise), so batching changes speed, not results.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from gan_partseg.errors import ArgumentError
from gan_partseg.inversion.perceptual import build_distance

if TYPE_CHECKING:  # annotations only: inversion sits below the model classes (docs/architecture.md)
    from gan_partseg.models.stylegan2 import StyleGAN2Generator

@dataclass(frozen=True)
class InversionConfig:
    """The latent optimizer's settings; the defaults are those of the CLI, the demo and every results table
    (space and perceptual distance chosen by docs/results/inversion.json).

    space: "w" (one code per image) or "w+" (one per layer); steps: optimisation steps (the port uses 1000
    at 256 px; 64 px needs fewer); lr: Adam's initial learning rate; noise_regularization: weight of the
    noise autocorrelation loss; perceptual: "lite0" | "lite0-64" | "discriminator" | "lpips" | "none";
    mse: weight of the pixel MSE term; noise_strength, noise_ramp: the latent noise schedule;
    n_mean_latent: samples for the mean / std of W; seed: makes inversion deterministic; batch_size:
    images optimised together (None: :func:`auto_inversion_batch`, 8 for the embedded 64 px model, 1 at 1024 px).
    """

    space: str = "w+"
    steps: int = 200
    lr: float = 0.1
    noise_regularization: float = 1e5
    perceptual: str = "lite0-64"
    mse: float = 1.0
    noise_strength: float = 0.05
    noise_ramp: float = 0.75
    n_mean_latent: int = 10000
    seed: int = 0
    batch_size: int | None = None

    def __post_init__(self):
        if self.space not in ("w", "w+"):
            raise ArgumentError(f"space must be 'w' or 'w+', got {self.space!r}")
        if self.steps < 1:
            raise ArgumentError("steps must be >= 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ArgumentError(f"batch_size must be >= 1 (or None: as many as fit), got {self.batch_size}")


#: activations (with what the backward keeps) one inversion batch may hold; per image they are about
#: INVERSION_ACTIVATION_FACTOR times the generator's layer activations (measured at 1024 px config-f: 5.6 GiB more
#: for a second image, 525 MB of layer activations; benchmarks/full_size.py), so 1 image at 1024 and 512 px, 2 at
#: 256, 8 at the embedded 64 px
INVERSION_BUDGET_BYTES = 4 * 2**30
INVERSION_ACTIVATION_FACTOR = 11
MAX_INVERSION_BATCH = 8


def auto_inversion_batch(generator: StyleGAN2Generator, budget: int = INVERSION_BUDGET_BYTES) -> int:
    """Images the latent optimizer inverts together by default (1 .. MAX_INVERSION_BATCH): why, at 1024 px a
    batch of 8 needed more than 24 GiB and was killed, where 1 peaks at 5.6 GiB and 2 at 11.3 GiB."""
    per_image = INVERSION_ACTIVATION_FACTOR * generator.activation_bytes()
    return max(1, min(MAX_INVERSION_BATCH, budget // per_image))


def inversion_settings(**overrides) -> dict:
    """The default settings (with ``overrides``) as a plain dict, for results JSON and job kwargs."""
    return asdict(replace(InversionConfig(), **overrides))


@dataclass
class InversionResult:
    """latents: (B, D) for W or (B, n_latent, D) for W+; noises: per layer (B, 1, r, r);
    reconstructions: (B, 3, H, W) in [-1, 1]; losses: per step, per image (steps, B)."""

    latents: torch.Tensor
    noises: list[torch.Tensor]
    reconstructions: torch.Tensor
    losses: torch.Tensor
    space: str = "w"
    psnr: torch.Tensor | None = field(default=None)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def noise_regularize(noises: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample squared autocorrelation at shift 1 (both axes) over a pyramid down to 8 px: (B,)."""
    loss = 0
    for noise in noises:
        size = noise.shape[2]
        while True:
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=3)).mean((1, 2, 3)).pow(2)
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=2)).mean((1, 2, 3)).pow(2)
            if size <= 8:
                break
            noise = noise.reshape(noise.shape[0], 1, size // 2, 2, size // 2, 2).mean((3, 5))
            size //= 2
    return loss


@torch.no_grad()
def noise_normalize_(noises: list[torch.Tensor]) -> None:
    """In place: every map to zero mean and unit std, per sample."""
    for noise in noises:
        mean = noise.mean((1, 2, 3), keepdim=True)
        std = noise.std((1, 2, 3), keepdim=True)
        noise.sub_(mean).div_(std.clamp_min(1e-8))


def learning_rate(t: float, initial: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    ramp = min(1.0, (1 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return initial * ramp * min(1.0, t / rampup)


class LatentOptimizer:
    """Invert images into a generator's latent space.

    Args:
        generator: a :class:`StyleGAN2Generator` (frozen).
        config: an :class:`InversionConfig` (default: its defaults); keyword ``overrides`` replace its fields
            (``LatentOptimizer(g, steps=50)``).
        discriminator: needed for perceptual="discriminator".
        progress: a progress bar per batch.
    """

    def __init__(self, generator: StyleGAN2Generator, config: InversionConfig | None = None, *,
                 discriminator=None, progress: bool = True, **overrides):
        self.config = cfg = replace(config or InversionConfig(), **overrides)
        space, perceptual, seed, n_mean_latent = cfg.space, cfg.perceptual, cfg.seed, cfg.n_mean_latent
        self.g = generator  # frozen and in eval mode only while inverting (invert restores both)
        self.space, self.steps, self.lr = space, cfg.steps, cfg.lr
        self.noise_regularization, self.mse = cfg.noise_regularization, cfg.mse
        self.noise_strength, self.noise_ramp = cfg.noise_strength, cfg.noise_ramp
        self.seed, self.batch_size, self.progress = seed, cfg.batch_size or auto_inversion_batch(generator), progress
        self.perceptual_kind = perceptual
        self.distance = build_distance(perceptual, discriminator)
        device = self.g.input.input.device
        if self.distance is not None:
            self.distance.to(device)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            w = self.g.style(torch.randn(n_mean_latent, self.g.style_dim, generator=gen).to(device))
            self.latent_mean = w.mean(0)
            self.latent_std = ((w - self.latent_mean).pow(2).sum() / n_mean_latent) ** 0.5

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        size = self.g.config.size
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (size, size):
            raise ValueError(f"images must be (B, 3, {size}, {size}) in [-1, 1], got {tuple(images.shape)}; "
                             "use gan_partseg.images.load_image to convert and resize files")
        return images.float()

    def invert(self, images: torch.Tensor) -> InversionResult:
        """images: (B, 3, H, W) in [-1, 1] at the generator's size -> InversionResult."""
        images = self.check_images(images)
        params = list(self.g.parameters())
        flags, was_training = [q.requires_grad for q in params], self.g.training
        self.g.eval().requires_grad_(False)  # gradients reach the latent and noise only
        try:
            parts = [self._invert_batch(images[i: i + self.batch_size], i)
                     for i in range(0, len(images), self.batch_size)]
        finally:
            for q, flag in zip(params, flags):
                q.requires_grad_(flag)
            self.g.train(was_training)
        return InversionResult(
            latents=torch.cat([p.latents for p in parts]),
            noises=[torch.cat(n) for n in zip(*[p.noises for p in parts])],
            reconstructions=torch.cat([p.reconstructions for p in parts]),
            losses=torch.cat([p.losses for p in parts], 1),
            space=self.space,
            psnr=torch.cat([p.psnr for p in parts]),
        )

    def _invert_batch(self, target: torch.Tensor, offset: int) -> InversionResult:
        g = self.g
        device = g.input.input.device
        target = target.to(device)
        b = target.shape[0]
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + offset)
        noises = [torch.randn(b, 1, r, r, generator=gen).to(device).requires_grad_(True)
                  for r in g.noise_resolutions]
        latent = self.latent_mean.detach().clone().unsqueeze(0).repeat(b, 1)
        if self.space == "w+":
            latent = latent.unsqueeze(1).repeat(1, g.n_latent, 1)
        latent.requires_grad_(True)
        opt = torch.optim.Adam([latent] + noises, lr=self.lr)
        losses = torch.zeros(self.steps, b)
        bar = tqdm(range(self.steps), desc=f"invert {self.space}", disable=not self.progress, leave=False)
        for i in bar:
            t = i / self.steps
            for group in opt.param_groups:
                group["lr"] = learning_rate(t, self.lr)
            strength = self.latent_std * self.noise_strength * max(0.0, 1 - t / self.noise_ramp) ** 2
            jitter = torch.randn(latent.shape, generator=gen).to(device) * strength
            img = g([latent + jitter], input_is_latent=True, noise=noises).images
            loss = self.noise_regularization * noise_regularize(noises)
            if self.distance is not None:
                loss = loss + self.distance(img, target)
            if self.mse:
                loss = loss + self.mse * (img - target).pow(2).flatten(1).mean(1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            noise_normalize_(noises)
            losses[i] = loss.detach().cpu()
            bar.set_postfix(loss=f"{loss.mean().item():.4f}")
        with torch.no_grad():
            recon = g([latent], input_is_latent=True, noise=noises).images
        return InversionResult(latent.detach(), [n.detach() for n in noises], recon.detach(), losses, self.space,
                               psnr(recon, target).cpu())
