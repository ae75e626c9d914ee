"""Train the auto-shot U-Net on a generated data set (the shared Accelerate loop).

Each step takes a seeded batch, applies one random affine (rotation, translation, scale)
and horizontal flip jointly to images and targets, and minimises cross-entropy against
hard labels (the segmenter's argmax, stored in the data set) or soft targets (the
segmenter's probabilities, regenerated exactly from each row's seed). After every epoch
it scores the last ``n_val`` held-out rendered faces and keeps the model of the best *mean* IoU in ``OUT/best``
(weighted IoU is mostly background: selected by it, an epoch that never predicts an eyebrow can win),
and checkpoints (``OUT/checkpoints``) so an interrupted run resumes where it stopped.

Run folder::

    OUT/train_config.json, OUT/log.jsonl (loss per step, validation per epoch)
    OUT/checkpoints/step_XXXXXXXX/     accelerator.save_state
    OUT/best/                          AutoShotSegmenter + preprocessor_config.json (best validation)
    OUT/final/                         the last epoch's model
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gan_partseg.cards import autoshot_card
from gan_partseg.data import HELD_OUT_SEEDS, render_batch
from gan_partseg.data.labelled import load_training_set
from gan_partseg.errors import ArgumentError, check_count, check_seed
from gan_partseg.evaluation.metrics import SegmentationMetrics
from gan_partseg.files import atomic_write_text
from gan_partseg.hub import save_pretrained_atomic
from gan_partseg.images import byte_images_to_unit, uint8_to_tensor
from gan_partseg.labels import CLASSES_3, CLASSES_10, to_three_class
from gan_partseg.models.autoshot import MIN_STATISTICS_IMAGES, AutoShotSegmenter, AutoShotSegmenterConfig
from gan_partseg.models.fewshot import FewShotSegmenter
from gan_partseg.models.processing import AutoShotImageProcessor
from gan_partseg.runtime import check_replicas_agree, make_accelerator, step_generator
from gan_partseg.training.checkpoints import JsonlLog, check_resume_config, checkpoints, save_checkpoint, write_config
from gan_partseg.training.loop import fit
from gan_partseg.training.losses import check_loss, class_weights, segmentation_loss


@dataclass
class TrainAutoShotConfig:
    data: str = "runs/dataset"
    out: str = "runs/autoshot"
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    epochs: int = 10
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    targets: str = "hard"
    drop_uncertain: float = 0.0
    uncertainty: str = "entropy"
    rotate: float = 10.0
    translate: float = 0.1
    scale_min: float = 0.8
    scale_max: float = 1.25
    flip: bool = True
    n_val: int = 100
    seed: int = 0
    mixed_precision: str = "no"
    #: "ce" (plain cross-entropy), "balanced-ce" (class-weighted CE, weights from the training labels' pixel
    #: frequencies, see ``balance``), "ce+dice" (CE + soft Dice over classes), "balanced-ce+dice". Plain CE by
    #: measurement: the default teacher (a balanced-ce few-shot head) already labels the small parts
    #: generously, and weighting them again costs 4 validation mean IoU (docs/results.md, auto-shot U-Net
    #: settings). Use "balanced-ce+dice" under a plain-CE teacher, or for short runs: at 1,000 images and 4
    #: epochs plain CE has not yet found eyes, eyebrows or ears (IoU 0) where the balanced loss has (demo.py).
    loss: str = "ce"
    #: class weights for the balanced losses: "inv-sqrt" (1/sqrt(freq)) or "median-freq" (median(freq)/freq);
    #: normalised so the pixel-weighted mean weight is 1, then capped at ``max_weight``
    balance: str = "inv-sqrt"
    max_weight: float = 50.0
    dice_weight: float = 1.0

    def __post_init__(self):
        if isinstance(self.widths, str):  # configs saved before 2026-12-03 wrote "16,32,64,128"
            self.widths = [int(w) for w in self.widths.split(",")]
        self.widths = [int(w) for w in self.widths]


STATISTICS_IMAGES = 3000  # training images the out-of-distribution statistics are fitted on (AutoShotSegmenter)

RESUME_KEYS = ["data", "widths", "batch", "lr", "weight_decay", "targets", "drop_uncertain", "uncertainty",
               "rotate", "translate", "scale_min", "scale_max", "flip", "seed", "loss", "balance", "max_weight",
               "dice_weight"]

def random_affine(images: torch.Tensor, targets: torch.Tensor, cfg: TrainAutoShotConfig,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Same random affine + flip on images (B, 3, H, W) and targets ((B, H, W) ids or (B, C, H, W) probs)."""
    b = images.shape[0]
    r = lambda lo, hi: (torch.rand(b, generator=gen) * (hi - lo) + lo)  # noqa: E731
    angle = r(-cfg.rotate, cfg.rotate) * math.pi / 180
    scale = torch.exp(r(math.log(cfg.scale_min), math.log(cfg.scale_max)))
    tx, ty = r(-cfg.translate, cfg.translate) * 2, r(-cfg.translate, cfg.translate) * 2
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if targets.ndim == 3:
        t = F.grid_sample(targets[:, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)
        return images, t[:, 0].long()
    return images, F.grid_sample(targets, grid, mode="bilinear", padding_mode="border", align_corners=False)


def heldout_validation_set(id2label: dict[int, str], size: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last ``n`` held-out rendered faces with labels in the segmenter's schema (10- or 3-class).

    The tail of ``HELD_OUT_SEEDS``: results tables test on its head, so model selection never sees a test face.
    """

    names = tuple(id2label[i] for i in range(len(id2label)))
    if names not in (CLASSES_10, CLASSES_3):
        raise ArgumentError(f"held-out validation needs the 10- or 3-class toy-face schema, got {names}; pass --n-val 0")
    images, labels = render_batch(HELD_OUT_SEEDS[len(HELD_OUT_SEEDS) - n:], size)
    if names == CLASSES_3:
        labels = to_three_class(labels)
    return uint8_to_tensor(images), torch.from_numpy(labels.astype(np.int64))


@torch.no_grad()
def validate(model: AutoShotSegmenter, images: torch.Tensor, labels: torch.Tensor) -> dict:
    names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    m = SegmentationMetrics(len(names), class_names=names)
    m.update(model.segment(images), labels)
    res = m.compute()
    return {"weighted_iou": res["weighted_iou"], "mean_iou": res["mean_iou"], "per_class_iou": res["per_class_iou"]}


def save_autoshot(model: AutoShotSegmenter, out: Path, card=None) -> None:
    """Model + model card + preprocessor_config.json, so ``pipeline("image-segmentation", model=out)`` works."""

    size = model.config.image_size
    out = Path(out)
    name = f"{out.parent.name}-{out.name}" if out.name in ("best", "final") else out.name
    save_pretrained_atomic(model, out, card=card or autoshot_card(name, config=model.config.to_dict()))
    AutoShotImageProcessor(size={"height": size, "width": size}).save_pretrained(out)


def _soft_targets(segmenter, seeds: torch.Tensor) -> torch.Tensor:
    w, noise = segmenter.generator.seeded_latents(seeds.tolist())
    return F.softmax(segmenter.segment_latents(w, noise).logits.float(), 1)


def train_autoshot(cfg: TrainAutoShotConfig, progress: bool = True) -> Path:
    """Train (or resume) into ``cfg.out``; returns the folder of the best model."""


    if cfg.targets not in ("hard", "soft"):
        raise ArgumentError(f"targets must be 'hard' or 'soft', got {cfg.targets!r}")
    check_loss(cfg.loss)
    check_count("epochs", cfg.epochs), check_count("batch", cfg.batch), check_count("n_val", cfg.n_val, 0)
    check_seed("seed", cfg.seed)
    run = Path(cfg.out)
    check_resume_config(run, cfg, RESUME_KEYS)
    images, labels, seeds, info = load_training_set(cfg.data, cfg.drop_uncertain, cfg.uncertainty)
    id2label = {int(k): v for k, v in info["id2label"].items()}
    size = images.shape[-1]
    if cfg.targets == "soft" and info.get("segmenter") is None:
        raise ArgumentError(f"{cfg.data} holds fixed labels, not a generated data set: soft targets need the "
                            "segmenter that made the data (gan-partseg make-dataset); use --targets hard")
    segmenter = FewShotSegmenter.from_pretrained(info["segmenter"]).eval() if cfg.targets == "soft" else None
    weight = (class_weights(labels, len(id2label), cfg.balance, cfg.max_weight)
              if cfg.loss.startswith("balanced") else None)

    accelerator = make_accelerator(mixed_precision=cfg.mixed_precision)
    torch.manual_seed(cfg.seed)
    model = AutoShotSegmenter(AutoShotSegmenterConfig(
        widths=list(cfg.widths), image_size=size, id2label=id2label,
        source_segmenter=info["segmenter"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    steps_per_epoch = max(1, len(images) // cfg.batch)
    total = steps_per_epoch * cfg.epochs

    class State:
        def __init__(self):
            self.step, self.best = 0, -1.0

        def state_dict(self):
            return {"step": torch.tensor(self.step), "best": torch.tensor(self.best)}

        def load_state_dict(self, sd):
            self.step, self.best = int(sd["step"]), float(sd["best"])

    state = State()
    accelerator.register_for_checkpointing(state)
    found = checkpoints(run)
    if found:
        accelerator.load_state(str(found[-1]))
        accelerator.print(f"resumed from {found[-1]} (step {state.step})")
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        write_config(run, cfg)
    log = JsonlLog(run / "log.jsonl", upto_step=state.step) if accelerator.is_main_process else None
    val = heldout_validation_set(id2label, size, cfg.n_val) if cfg.n_val else None

    def loss_fn(step: int) -> torch.Tensor:
        gen = step_generator(cfg.seed, step, accelerator.process_index)
        idx = torch.randint(0, len(images), (cfg.batch,), generator=gen)
        x = byte_images_to_unit(images[idx].to(accelerator.device))  # bytes in memory, float a batch at a time
        target = _soft_targets(segmenter, seeds[idx]) if segmenter is not None else labels[idx].long()
        x, target = random_affine(x, target.to(accelerator.device), cfg, gen)
        with accelerator.autocast():
            logits = model(x).logits
        return segmentation_loss(logits.float(), target, cfg.loss, weight, cfg.dice_weight)

    def on_step(step: int) -> None:
        state.step = step
        if step % steps_per_epoch and step != total:
            return
        unwrapped = accelerator.unwrap_model(model)
        record = {"step": step, "epoch": step / steps_per_epoch}
        if val is not None and accelerator.is_main_process:
            record.update(validate(unwrapped, *val))
            if record["mean_iou"] > state.best:  # mean over classes: every part counts (module docstring)
                state.best = record["mean_iou"]
                atomic_write_text(run / "best_validation.json", json.dumps(record, indent=2))
                save_autoshot(unwrapped, run / "best")
            unwrapped.train()
        if log is not None:
            log.write(record)
        check_replicas_agree(accelerator, {"U-Net": model})
        save_checkpoint(accelerator, run, step)

    model.train()
    fit(accelerator, optimizer, loss_fn, total, start_step=state.step, desc="train-autoshot", progress=progress,
        log=log, log_every=10, on_step=on_step)
    final = accelerator.unwrap_model(model).eval()
    if accelerator.is_main_process:
        seen = images[:STATISTICS_IMAGES]  # what "like its training images" means, for the OOD warning
        if len(seen) >= MIN_STATISTICS_IMAGES:
            final.fit_input_statistics(seen)
        save_autoshot(final, run / "final")
        if val is None:
            save_autoshot(final, run / "best")
        elif len(seen) >= MIN_STATISTICS_IMAGES:
            best = AutoShotSegmenter.from_pretrained(run / "best").eval()
            best.fit_input_statistics(seen)
            save_autoshot(best, run / "best")
        chosen = json.loads((run / "best_validation.json").read_text()) if (run / "best_validation.json").exists() else {}
        atomic_write_text(run / "summary.json", json.dumps({
            "steps": total, "selected_by": "validation mean IoU", "best_val_mean_iou": chosen.get("mean_iou"),
            "best_val_weighted_iou": chosen.get("weighted_iou"), "best_val_per_class_iou": chosen.get("per_class_iou"),
            "best_epoch": chosen.get("epoch"), "n_train": len(images)}, indent=2))
    accelerator.wait_for_everyone()
    return run / "best"
