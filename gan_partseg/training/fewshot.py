"""Train a few-shot head on k annotated shots (the shared Accelerate loop).

The generator's activations at every shot's latent are computed once and
cached at their native resolutions (not the stacked full-size tensor), then
the head trains with Adam (lr 1e-3, weight decay 1e-3) and cross-entropy (optionally
class-balanced, with Dice, and blind to a band around label boundaries), one seeded batch
per step, optionally with horizontal flips of features and labels.

Style mixing (on by default for one annotated face): besides each shot itself, the head trains on ``style_mix`` copies of it whose
first ``mix_from`` W+ styles (pose, face and hair shape: the label map still fits) are the shot's and whose
later styles (colours, texture, lighting) are a random sample's, so one annotated face teaches the head parts
in the colours of many. The copies' activations are computed when a step draws them, not cached, so the
cache stays one activation set per shot at any resolution.

Layer scaling (on by default): every layer's activations are divided by their RMS over random samples before
the head sees them in training, so each layer starts on an equal footing (at 64 px the RMS falls from 0.59 to
0.20 toward the fine layers, which hold the small parts); the scales are folded into the head's first, linear,
layer when training ends, so the saved head reads the generator's activations as they are.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gan_partseg.cards import fewshot_card
from gan_partseg.data.shots import Shot, ShotsError, check_shots_fit, read_shots
from gan_partseg.errors import ArgumentError, check_count, check_seed
from gan_partseg.files import check_output
from gan_partseg.hub import save_pretrained_atomic
from gan_partseg.models.fewshot import FewShotSegmenter, FewShotSegmenterConfig
from gan_partseg.models.heads import parse_head
from gan_partseg.models.stylegan2 import StyleGAN2Generator
from gan_partseg.runtime import make_accelerator, step_generator
from gan_partseg.training.loop import fit
from gan_partseg.training.losses import boundary_band, check_loss, class_weights, segmentation_loss


@dataclass
class TrainFewShotConfig:
    """Settings of one few-shot training run (saved as ``training.json`` beside the model)."""

    generator: str = "toyfaces-64"
    shots: str = "shots"
    out: str | None = None
    #: the best head by mean IoU at 1 shot and averaged over 1/5/10 shots; CNN-S leads by 0.2 at 5 and 0.8 at 10,
    #: within the draws' spread, and scores ears 4-5 lower (docs/results.md, k-shot table)
    head: str = "mlp-1"
    #: the k-shot table's steps: 800 are no better on validation faces, 200 lose 0.8 mean IoU at 1 shot
    #: (docs/results.md, few-shot head settings); mlp-1 trains a shot in about 15 s on 2 CPU cores
    steps: int = 400
    lr: float = 1e-3
    weight_decay: float = 1e-3
    batch: int = 1
    augment: str = "none"
    seed: int = 0
    output_size: int | None = None  # None: the generator's size; shot labels are resized to it (nearest)
    checkpoint_body: bool = False
    #: dtype of the cached shot activations: bfloat16 / float16 halve the cache (at the paper's setting 501 MiB
    #: per shot), the head still computes in float32 (benchmarks/fewshot_head.py)
    cache_dtype: str = "float32"
    mixed_precision: str = "no"
    layers: list[str] | None = None  # generator layers the head reads (None: every synthesis layer)
    #: one of training.losses.LOSSES; "balanced-*" weighs classes by 1/sqrt of their pixel share in the shots
    #: (the default since it keeps eyebrows and ears: 10-shot mean IoU 57.0 -> 60.6, docs/results.md)
    loss: str = "balanced-ce"
    #: class weights of the balanced losses: "inv-sqrt" (1/sqrt(freq)) or "median-freq" (median(freq)/freq),
    #: as in TrainAutoShotConfig
    balance: str = "inv-sqrt"
    #: pixels within this many px of a label boundary are not trained on (0: all are)
    ignore_band: int = 0
    #: style-mixed copies per shot (0: none): the shot's first ``mix_from`` W+ styles, a random sample's after
    #: them; every step draws one of the k * (1 + style_mix) views. None: 8 when one face is annotated (its
    #: ``-mirror`` shot counts with it), else 0: validation mean IoU at 1 shot 47.5 -> 53.0; at 5 shots it
    #: falls 59.6 -> 58.8, at 10 60.9 -> 58.5 (docs/results.md, few-shot head settings)
    style_mix: int | None = None
    #: first W+ index taken from the random sample. At 64 px indices 0-2 hold the 4 and 8 px styles (geometry);
    #: from 2 on the face's shape changes too, from 4 on only background and clothes colours (docs/results.md)
    mix_from: int = 3
    #: "layer-rms": the head trains on each layer's activations divided by their RMS over random samples
    #: (folded into its weights at the end); "none": on the activations as they are. Validation mean IoU
    #: 53.1 -> 53.5 at 1 shot (6 draws), 57.0 -> 59.6 at 5, 59.1 -> 60.9 at 10 (docs/results.md)
    feature_scale: str = "layer-rms"
    overwrite: bool = False  # replace an earlier model folder at ``out`` (never a folder of anything else)


CACHE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FEATURE_SCALES = ("layer-rms", "none")
SCALE_SAMPLES = 32  # random samples the layer RMS is taken over (at 64 px 32 and 200 agree to 1%)


@torch.no_grad()
def layer_rms(generator: StyleGAN2Generator, layers: list[str], samples: int = SCALE_SAMPLES, seed: int = 0
              ) -> dict[str, float]:
    """layer -> RMS of its activations over ``samples`` random samples (z ~ N(0, I) seeded by ``seed``,
    untruncated, the generator's stored noise), over channels and positions: a positive float."""
    device = generator.input.input.device
    z = torch.randn(samples, generator.config.style_dim, generator=torch.Generator().manual_seed(seed))
    batch = 8 if generator.config.size <= 256 else 1  # a 1024 px sample's activations alone are about 1 GiB
    sums = dict.fromkeys(layers, 0.0)
    counts = dict.fromkeys(layers, 0)
    for i in range(0, samples, batch):
        out = generator([z[i: i + batch].to(device)], randomize_noise=False, return_features=True)
        for n in layers:
            f = out.features[n]
            sums[n] += float(f.double().pow(2).sum())
            counts[n] += f.numel()
    return {n: (sums[n] / counts[n]) ** 0.5 for n in layers}


@torch.no_grad()
def shot_features(generator: StyleGAN2Generator, shots: list[Shot], layers: list[str], dtype: torch.dtype = torch.float32,
                  scales: dict[str, float] | None = None) -> "OrderedDict[str, torch.Tensor]":
    """Cache: layer -> (k, C_l, r_l, r_l) activations at every shot's latent and noise, each multiplied by
    ``scales[layer]`` when given, stored as ``dtype``."""
    device = generator.input.input.device
    per_layer: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    for s in shots:
        noise = [n.to(device) for n in s.noise] if s.noise else None
        out = generator([s.latent.to(device)], input_is_latent=True, noise=noise, randomize_noise=False,
                        return_features=True)
        for n in layers:
            f = out.features[n] * scales[n] if scales else out.features[n]
            per_layer[n].append(f.to(dtype))
    return OrderedDict((n, torch.cat(v)) for n, v in per_layer.items())


MIXED_COPIES_ONE_SHOT = 8  # 16 copies score the same on validation faces (53.1 against 53.0, docs/results.md)


def effective_style_mix(style_mix: int | None, shot_names: list[str]) -> int:
    """Style-mixed copies per shot: ``style_mix``, or for None 8 when the shots hold one annotated face (a shot
    and its ``make-shots --mirror`` copy are one face) and 0 for more, where real faces vary the colours."""
    if style_mix is not None:
        return style_mix
    faces = {n.removesuffix("-mirror") for n in shot_names}
    return MIXED_COPIES_ONE_SHOT if len(faces) == 1 else 0


@torch.no_grad()
def mixed_latents(generator: StyleGAN2Generator, shots: list[Shot], copies: int, mix_from: int, seed: int
                  ) -> list[torch.Tensor]:
    """Per shot, (copies, n_latent, D) W+ latents: the shot's styles before ``mix_from``, after it those of a
    random sample (z ~ N(0, I) through the mapping network, untruncated; seeded by ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    device = generator.input.input.device
    out = []
    for s in shots:
        z = torch.randn(copies, generator.config.style_dim, generator=gen).to(device)
        w = generator.get_latent(z)
        lat = s.latent.to(device)
        lat = lat[:, None].expand(1, generator.n_latent, lat.shape[-1]) if lat.ndim == 2 else lat  # W -> W+
        lat = lat.repeat(copies, 1, 1)
        lat[:, mix_from:] = w[:, None]
        out.append(lat)
    return out


def train_fewshot(cfg: TrainFewShotConfig, generator: StyleGAN2Generator | None = None,
                  shots: tuple[list[Shot], dict[int, str]] | None = None, progress: bool = True
                  ) -> FewShotSegmenter:
    """Train a head on the shots in ``cfg.shots`` (or ``shots`` given as read_shots' result).

    Writes the model folder to ``cfg.out`` when set. Everything is validated before training starts.
    """

    if cfg.augment not in ("none", "flip"):
        raise ArgumentError(f"augment must be 'none' or 'flip', got {cfg.augment!r}")
    check_loss(cfg.loss)
    if cfg.cache_dtype not in CACHE_DTYPES:
        raise ArgumentError(f"cache_dtype must be one of {sorted(CACHE_DTYPES)}, got {cfg.cache_dtype!r}")
    if cfg.feature_scale not in FEATURE_SCALES:
        raise ArgumentError(f"feature_scale must be one of {FEATURE_SCALES}, got {cfg.feature_scale!r}")
    if cfg.balance not in ("inv-sqrt", "median-freq"):
        raise ArgumentError(f"balance must be 'inv-sqrt' or 'median-freq', got {cfg.balance!r}")
    check_count("steps", cfg.steps), check_count("batch", cfg.batch), check_seed("seed", cfg.seed)
    if cfg.out:
        check_output(cfg.out, "model folder", cfg.overwrite)
    if cfg.ignore_band < 0:
        raise ArgumentError(f"ignore_band must be >= 0 px, got {cfg.ignore_band}")
    if cfg.style_mix is not None and cfg.style_mix < 0:
        raise ArgumentError(f"style_mix must be >= 0 copies per shot (or None: automatic), got {cfg.style_mix}")
    head_fields = parse_head(cfg.head)
    shot_list, id2label = shots if shots is not None else read_shots(cfg.shots)
    if generator is None:
        generator = StyleGAN2Generator.from_pretrained(cfg.generator)
    generator.eval()
    check_shots_fit(shot_list, generator, cfg.shots)
    style_mix = effective_style_mix(cfg.style_mix, [s.name for s in shot_list])
    if style_mix and not 1 <= cfg.mix_from < generator.n_latent:
        raise ArgumentError(f"mix_from must be a W+ index in [1, {generator.n_latent - 1}] for this generator "
                            f"({generator.n_latent} styles), got {cfg.mix_from}; or set style_mix 0")
    names = {s.generator for s in shot_list} - {""}
    if names and names != {cfg.generator}:
        raise ShotsError(f"the shots were made with generator {sorted(names)[0]!r}, not {cfg.generator!r}")
    size = cfg.output_size or generator.config.size
    labels = torch.from_numpy(np.stack([s.labels for s in shot_list])).long()
    if labels.shape[-1] != size:
        # the paper's setting: shots painted at the generator's 1024 px, logits at 512 px. Nearest keeps ids exact
        # (255 = ignore too); "nearest-exact" samples at pixel centres (source pixel 2i+1 at 2x), as PIL's NEAREST
        # does when evaluate resizes a truth map, so training and scoring see the same labels.
        labels = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest-exact")[:, 0].long()

    accelerator = make_accelerator(mixed_precision=cfg.mixed_precision)
    torch.manual_seed(cfg.seed)
    config = FewShotSegmenterConfig.for_generator(generator, cfg.generator, id2label, layers=cfg.layers,
                                                  output_size=size, checkpoint_body=cfg.checkpoint_body,
                                                  **head_fields)
    model = FewShotSegmenter(config)
    model.set_generator(generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    generator.to(accelerator.device)
    rms = layer_rms(generator, config.feature_layers) if cfg.feature_scale == "layer-rms" else None
    scales = {n: 1 / v for n, v in rms.items()} if rms else None
    cache = shot_features(generator, shot_list, config.feature_layers, CACHE_DTYPES[cfg.cache_dtype], scales)
    weight = class_weights(labels, len(id2label), cfg.balance) if cfg.loss.startswith("balanced") else None
    labels = boundary_band(labels, cfg.ignore_band).to(accelerator.device)
    k = labels.shape[0]
    ensemble = config.head == "ensemble"
    views = 1 + style_mix
    mixed = mixed_latents(generator, shot_list, style_mix, cfg.mix_from, cfg.seed) if style_mix else None

    def loss_fn(step: int) -> torch.Tensor:
        gen = step_generator(cfg.seed, step)
        pick = torch.randperm(k * views, generator=gen)[: min(cfg.batch, k * views)]
        idx, copy = pick // views, pick % views  # copy 0: the shot itself (cached); c > 0: its style-mixed copy c-1
        feats = OrderedDict((n, f[idx]) for n, f in cache.items())  # indexing copies: the cache stays intact
        for j in torch.nonzero(copy).flatten().tolist():
            s = shot_list[int(idx[j])]
            f = shot_features(generator, [replace(s, latent=mixed[int(idx[j])][int(copy[j]) - 1: int(copy[j])])],
                              config.feature_layers, CACHE_DTYPES[cfg.cache_dtype], scales)
            for n in feats:
                feats[n][j] = f[n][0]
        target = labels[idx]
        if cfg.augment == "flip" and torch.rand((), generator=gen).item() < 0.5:
            feats = OrderedDict((n, f.flip(-1)) for n, f in feats.items())
            target = target.flip(-1)
        with accelerator.autocast():
            out = model(feats)
        if ensemble:  # every member learns on its own
            m = out.member_logits
            return segmentation_loss(m.flatten(0, 1).float(), target.repeat_interleave(m.shape[1], 0), cfg.loss, weight)
        return segmentation_loss(out.logits.float(), target, cfg.loss, weight)

    out_dir = Path(cfg.out) if cfg.out else None
    t0 = time.time()
    model.train()
    losses = fit(accelerator, optimizer, loss_fn, cfg.steps, desc=f"train-fewshot {cfg.head} k={k}",
                 progress=progress)
    model = accelerator.unwrap_model(model).eval()
    if scales:  # the saved head reads raw activations
        model.head.project.fold_input_scale(scales)
    model.training_summary = {"config": asdict(cfg), "k": k, "shots": [s.name for s in shot_list],
                              "style_mix": style_mix,
                              "layer_rms": {n: round(v, 5) for n, v in rms.items()} if rms else None,
                              "first_loss": losses[0] if losses else None,
                              "final_loss": float(np.mean(losses[-10:])) if losses else None,
                              "seconds": round(time.time() - t0, 2)}
    if out_dir is not None:
        save_fewshot(model, out_dir, losses, overwrite=cfg.overwrite)
    return model


def save_fewshot(model: FewShotSegmenter, out_dir: str | Path, losses: list[float] | None = None, card=None,
                 overwrite: bool = True) -> Path:
    """The model folder, its model card, ``training.json`` (settings, shot names, losses, seconds), the loss
    log, swapped in as one folder."""
    out_dir = Path(out_dir)
    summary = getattr(model, "training_summary", None)
    extra = {}
    if summary is not None:
        extra["training.json"] = json.dumps(summary, indent=2)
    if losses:
        extra["log.jsonl"] = "".join(json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate(losses))
    save_pretrained_atomic(model, out_dir, card=card or fewshot_card(out_dir.name, model.config.to_dict(), summary),
                           overwrite=overwrite, extra_files=extra)
    return out_dir
