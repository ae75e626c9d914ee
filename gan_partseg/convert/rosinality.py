"""Import rosinality ``stylegan2-pytorch`` checkpoints into model folders, safely.

``.pt`` files are pickles. They are read with ``torch.load(weights_only=True)``,
which rebuilds tensors and plain containers only; the one extra type allowed is
``argparse.Namespace`` (the ``args`` that rosinality's ``train.py`` stores). A
pickle that asks for anything else (a function call, a class of another
library) is refused before any of its code can run.

The whole config is inferred from tensor shapes (size, style_dim, n_mlp, the
channel table, the blur kernel), every key and shape is checked against the
model built from it, and the result is written as ``config.json`` +
``model.safetensors`` with ``save_pretrained``.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gan_partseg.cards import converted_card
from gan_partseg.errors import CheckpointError, MissingFileError
from gan_partseg.files import check_output
from gan_partseg.hub import save_pretrained_atomic
from gan_partseg.models.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
    default_channels,
)

ALLOWED_GLOBALS = [argparse.Namespace]
"""Types a rosinality checkpoint may hold beyond tensors and containers."""


def load_pt_safely(path: str | os.PathLike) -> Any:
    """``torch.load`` with ``weights_only=True`` and the rosinality allow-list; clear errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (corrupt or truncated?): {err}") from err
    except Exception as err:
        if type(err).__name__ != "UnpicklingError":  # pickle.UnpicklingError, without importing pickle here
            raise
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects outside the allow-list "
            f"(tensors, containers, argparse.Namespace), so loading it could run code from the file. "
            f"Details: {str(err).splitlines()[0]}"
        ) from err


def _state_dict(ckpt: Any, key: str, path: str) -> Mapping[str, torch.Tensor]:
    if isinstance(ckpt, Mapping) and key in ckpt and isinstance(ckpt[key], Mapping):
        return ckpt[key]
    if key == "g_ema" and isinstance(ckpt, Mapping) and "style.1.weight" in ckpt:
        return ckpt  # a bare generator state dict
    found = sorted(ckpt.keys()) if isinstance(ckpt, Mapping) else type(ckpt).__name__
    raise CheckpointError(
        f"{path} has no {key!r} state dict (found: {found}). Expected a rosinality train.py checkpoint "
        "with 'g_ema' (and 'd'), or a converted one with 'g_ema' and 'latent_avg'."
    )


def _blur_taps(kernel: torch.Tensor) -> list[float]:
    taps = kernel.double().sum(1)
    taps = taps / taps.min()
    return [int(round(t)) if abs(t - round(t)) < 1e-4 else float(t) for t in taps.tolist()]


def infer_generator_config(sd: Mapping[str, torch.Tensor], lr_mlp: float = 0.01) -> StyleGAN2Config:
    """Read size, style_dim, n_mlp, channels and blur kernel off a generator state dict."""
    try:
        style_dim = sd["style.1.weight"].shape[0]
        n_mlp = max(int(m.group(1)) for k in sd if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
        n_blocks = len({m.group(1) for k in sd if (m := re.match(r"to_rgbs\.(\d+)\.", k))})
        size = 2 ** (n_blocks + 2)
        channels = {4: sd["conv1.conv.weight"].shape[1]}
        for k in range(n_blocks):
            channels[2 ** (k + 3)] = sd[f"convs.{2 * k}.conv.weight"].shape[1]
        blur = _blur_taps(sd["convs.0.conv.blur.kernel"]) if n_blocks else [1, 3, 3, 1]
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"not a rosinality StyleGAN2 generator state dict: cannot read {err}") from err
    multiplier = next((m for m in (2, 1, 4) if all(default_channels(m)[r] == c for r, c in channels.items())), 2)
    return StyleGAN2Config(size=size, style_dim=int(style_dim), n_mlp=n_mlp, channel_multiplier=multiplier,
                           blur_kernel=blur, lr_mlp=lr_mlp, channels={str(r): int(c) for r, c in channels.items()})


def infer_discriminator_config(sd: Mapping[str, torch.Tensor], blur_kernel=(1, 3, 3, 1)) -> StyleGAN2DiscriminatorConfig:
    """Read size and channels off a discriminator state dict."""
    try:
        n_blocks = len({m.group(1) for k in sd if (m := re.match(r"convs\.(\d+)\.conv1\.", k))})
        size = 2 ** (n_blocks + 2)
        channels = {size: sd["convs.0.0.weight"].shape[0]}
        for i in range(1, n_blocks + 1):
            channels[size // 2**i] = sd[f"convs.{i}.conv2.1.weight"].shape[0]
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"not a rosinality StyleGAN2 discriminator state dict: cannot read {err}") from err
    multiplier = next((m for m in (2, 1, 4) if all(default_channels(m)[r] == c for r, c in channels.items())), 2)
    return StyleGAN2DiscriminatorConfig(size=size, channel_multiplier=multiplier, blur_kernel=list(blur_kernel),
                                        channels={str(r): int(c) for r, c in channels.items()})


def check_state_dict(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise a CheckpointError naming every missing, unexpected and mismatched key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        def show(items):
            return ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "") or "none"
        raise CheckpointError(
            f"{what} does not match the StyleGAN2 layout: missing keys: {show(missing)}; "
            f"unexpected keys: {show(unexpected)}; mismatched shapes: {show(mismatched)}"
        )


def _check_flags(config: StyleGAN2Config, flags: Mapping[str, Any]) -> None:
    wrong = [f"{k}={v} (checkpoint says {getattr(config, k)})" for k, v in flags.items()
             if v is not None and k != "channel_multiplier" and getattr(config, k) != v]
    if flags.get("channel_multiplier") is not None:
        table = default_channels(flags["channel_multiplier"])
        if any(table[r] != config.channel(r) for r in config.resolutions):
            wrong.append(f"channel_multiplier={flags['channel_multiplier']} (checkpoint channels {config.channels})")
    if wrong:
        raise CheckpointError("the flags disagree with the checkpoint: " + "; ".join(wrong))


def build_from_state_dict(cls, config, sd: Mapping[str, torch.Tensor], what: str):
    """Build ``cls(config)`` on the meta device, check ``sd`` against it, and load it (exactly, fp32)."""
    with torch.device("meta"):
        model = cls(config)
    check_state_dict(model, sd, what)
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True, assign=True)
    return model.eval()


def convert_rosinality(
    ckpt_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    size: int | None = None,
    style_dim: int | None = None,
    n_mlp: int | None = None,
    channel_multiplier: int | None = None,
    lr_mlp: float = 0.01,
    discriminator: bool = False,
    overwrite: bool = True,
) -> Path:
    """Convert a rosinality ``.pt`` into a model folder (``OUT_DIR``; ``OUT_DIR/discriminator`` with ``discriminator``).

    Flags left as None are inferred; given ones must agree with the checkpoint. ``OUT_DIR`` must not exist,
    be empty, or (with ``overwrite``) be an earlier model folder: anything else is refused before reading.
    """
    check_output(out_dir, "model folder", overwrite)
    ckpt = load_pt_safely(ckpt_path)
    sd = dict(_state_dict(ckpt, "g_ema", str(ckpt_path)))
    latent_avg = ckpt.get("latent_avg") if isinstance(ckpt, Mapping) else None
    config = infer_generator_config(sd, lr_mlp=lr_mlp)
    _check_flags(config, dict(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=channel_multiplier))
    if latent_avg is not None:
        latent_avg = torch.as_tensor(latent_avg).float().reshape(-1)
        if latent_avg.numel() != config.style_dim:
            raise CheckpointError(f"latent_avg has {latent_avg.numel()} values, style_dim is {config.style_dim}")
        config.has_latent_avg = True
        sd["latent_avg"] = latent_avg
    generator = build_from_state_dict(StyleGAN2Generator, config, sd, f"{ckpt_path} ['g_ema']")
    disc = None
    if discriminator:
        disc = build_discriminator(_state_dict(ckpt, "d", str(ckpt_path)), config, f"{ckpt_path} ['d']")
    return save_converted(generator, disc, out_dir, str(ckpt_path), "rosinality", overwrite)


def build_discriminator(dsd: Mapping[str, torch.Tensor], config: StyleGAN2Config, what: str) -> StyleGAN2Discriminator:
    """The discriminator of a rosinality-layout state dict; it must match the generator's size."""
    dconfig = infer_discriminator_config(dsd, blur_kernel=config.blur_kernel)
    if dconfig.size != config.size:
        raise CheckpointError(f"discriminator is {dconfig.size} px but the generator is {config.size} px")
    return build_from_state_dict(StyleGAN2Discriminator, dconfig, dsd, what)


def save_converted(generator: StyleGAN2Generator, discriminator: StyleGAN2Discriminator | None,
                   out_dir: str | os.PathLike, source: str, fmt: str, overwrite: bool = True) -> Path:
    """Write the converted model folder (+ card) and ``discriminator/`` when given; returns the folder."""

    out = Path(out_dir)
    save_pretrained_atomic(generator, out, card=converted_card(out.name, generator.config.to_dict(), source, fmt),
                           overwrite=overwrite)
    if discriminator is not None:
        save_pretrained_atomic(discriminator, out / "discriminator")
    return out
