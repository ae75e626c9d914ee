"""``make demo`` / ``gan-partseg demo``: the whole pipeline on the embedded default, pictures out.

Stages (each writes its pictures into ``out_dir`` and its figures into ``summary.json``):

1. generator: a sample grid and a per-layer feature PCA picture;
2. few-shot: the 10-shot segmenter labels the same generated samples (overlays + legend);
3. auto-shot: the U-Net segments held-out rendered faces directly; weighted / mean / per-class IoU
   against their exact labels, overlays (image, prediction, truth);
4. inversion: a few held-out faces through the latent optimizer and the few-shot head
   (image, reconstruction, prediction, truth);
5. ``metrics.md``: the table of stages 3 and 4.

``retrain=True`` first redoes every stage from the generator into ``out_dir/retrain``: 10 rendered
training faces inverted into shots, the default few-shot head (``TrainFewShotConfig``) trained on them,
a generated data set labelled by it, and a U-Net trained on that; the pictures and figures then come
from those models.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gan_partseg.data import HELD_OUT_SEEDS, TRAIN_SEEDS, render_batch
from gan_partseg.data.shots import write_id2label
from gan_partseg.evaluation.metrics import SegmentationMetrics
from gan_partseg.files import atomic_write_text
from gan_partseg.images import colorize, make_grid, save_image, tensor_to_uint8, uint8_to_tensor, upscale
from gan_partseg.inversion.latent_optimizer import InversionConfig
from gan_partseg.jobs.generated import make_dataset
from gan_partseg.jobs.pipelines import invert_rendered
from gan_partseg.labels import CLASSES_10, MISS_BELOW, counted, id2label, misses_text
from gan_partseg.models.autoshot import AutoShotSegmenter
from gan_partseg.models.fewshot import FewShotSegmenter
from gan_partseg.models.stylegan2 import TRUNCATION, StyleGAN2Generator
from gan_partseg.training.autoshot import TrainAutoShotConfig, train_autoshot
from gan_partseg.training.fewshot import TrainFewShotConfig, train_fewshot
from gan_partseg.visualize import comparison_rows, feature_pca_grid, with_legend

DEFAULT_GENERATOR = "toyfaces-64"
DEFAULT_FEWSHOT = "toyfaces-64-fewshot-10c-10shot"
DEFAULT_AUTOSHOT = "toyfaces-64-autoshot-10c"


def retrain_pipeline(out: Path, generator: str, n_shots: int = 10, n_data: int = 1000, epochs: int = 4,
                     say: Callable[[str], None] = print) -> tuple[str, str]:
    """Shots -> few-shot head -> generated data set -> auto-shot U-Net, from ``generator``; resumable.

    Returns (few-shot segmenter folder, auto-shot model folder).
    """

    g = StyleGAN2Generator.from_pretrained(generator).eval()
    shots, fewshot = out / "shots", out / "fewshot"
    say(f"retrain 1/4: inverting {counted(n_shots, 'rendered training face')} into shots ({shots})")
    invert_rendered(g, generator, list(TRAIN_SEEDS[500_000: 500_000 + n_shots]), shots, with_labels=True)
    write_id2label(shots, id2label(CLASSES_10))
    if not (fewshot / "config.json").exists():
        cfg = TrainFewShotConfig(generator=generator, shots=str(shots), out=str(fewshot))  # the default head and loss
        say(f"retrain 2/4: training a {cfg.head} few-shot head ({cfg.loss})")
        train_fewshot(cfg, generator=g)
    say(f"retrain 3/4: labelling {n_data} generated images")
    make_dataset(str(fewshot), out / "dataset", n=n_data, shard_size=min(500, n_data))
    say("retrain 4/4: training the auto-shot U-Net")
    # class-balanced CE + Dice, not the default plain CE: in this short run (1,000 images, 4 epochs, 124 steps)
    # plain CE has not yet found the small parts (validation eye, eyebrow and ear IoU 0, mean 44.2) and the
    # balanced loss has (eye 24.8, mean 48.7); over the 1,248 steps of the shipped U-Net plain CE wins
    # (docs/results.md, auto-shot U-Net settings)
    best = train_autoshot(TrainAutoShotConfig(data=str(out / "dataset"), out=str(out / "autoshot"),
                                              widths=[16, 32, 64, 128], epochs=epochs, n_val=100,
                                              loss="balanced-ce+dice"))
    return str(fewshot), str(best)


def run_demo(out_dir: str | Path = "demo_out", generator: str = DEFAULT_GENERATOR, n: int = 16, seed: int = 0,
             truncation: float = TRUNCATION["view"], fewshot: str = DEFAULT_FEWSHOT, autoshot: str = DEFAULT_AUTOSHOT,
             n_test: int = 100, n_invert: int = 4, invert_steps: int | None = None, retrain: bool = False,
             say: Callable[[str], None] = print) -> dict[str, Path]:
    """Run the demo; returns the written paths by name."""

    out = Path(out_dir)
    t_start = time.time()
    timings: dict[str, float] = {}
    if retrain:
        t0 = time.time()
        fewshot, autoshot = retrain_pipeline(out / "retrain", generator, say=say)
        timings["retrain"] = time.time() - t0

    # 1. generator
    t0 = time.time()
    say(f"demo 1/5: sampling {n} faces from {generator} (images and every layer's activations)")
    g = StyleGAN2Generator.from_pretrained(generator).eval()
    seg = FewShotSegmenter.from_pretrained(fewshot).eval()
    if seg.config.generator != generator:
        seg.set_generator(g)  # a segmenter trained on another copy of the same generator
    with torch.no_grad():
        w, noise = g.seeded_latents(range(seed, seed + n), truncation)
        res = g([w], input_is_latent=True, noise=noise, randomize_noise=False, return_features=True)
    scale = max(1, 256 // g.config.size)
    samples = tensor_to_uint8(res.images)
    paths = {
        "samples": save_image(out / "samples.png", upscale(make_grid(samples, ncol=8), scale)),
        "features": save_image(out / "feature_pca.png",
                               upscale(feature_pca_grid(res.images[:8], {k: v[:8] for k, v in res.features.items()}),
                                       scale)),
    }
    timings["generator"] = time.time() - t0

    # 2. few-shot labels of the generated samples
    t0 = time.time()
    say(f"demo 2/5: labelling them with the few-shot segmenter {fewshot}")
    labels = seg.segment_latents(w, noise).labels.numpy()
    k = seg.n_classes
    grid = comparison_rows([samples[:8], labels[:8], colorize(labels[:8], k)], k)
    paths["fewshot_generated"] = save_image(out / "fewshot_generated.png",
                                            with_legend(upscale(grid, 2), seg.id2label,
                                                        "Few-shot labels of generated faces",
                                                        columns=("face", "overlay", "labels")))
    timings["fewshot_generated"] = time.time() - t0

    # 3. auto-shot on held-out rendered faces
    t0 = time.time()
    say(f"demo 3/5: segmenting {n_test} held-out rendered faces with the auto-shot U-Net {autoshot}")
    unet = AutoShotSegmenter.from_pretrained(autoshot).eval()
    images, truth = render_batch(HELD_OUT_SEEDS[:n_test], unet.config.image_size)
    from PIL import Image

    pred = torch.stack(unet.segment([Image.fromarray(a) for a in images])).numpy()
    names = [unet.id2label[i] for i in range(len(unet.id2label))]
    m = SegmentationMetrics(len(names), class_names=names)
    m.update(pred, truth)
    auto_metrics = _brief(m.compute())
    paths["autoshot_heldout"] = save_image(out / "autoshot_heldout.png", with_legend(
        upscale(comparison_rows([images[:8], pred[:8], truth[:8]], len(names)), 2), unet.id2label,
        f"Auto-shot U-Net, held-out faces\n{_headline(auto_metrics)}",
        columns=("face", "prediction", "truth")))
    timings["autoshot"] = time.time() - t0

    # 4. inversion + few-shot head on a few held-out faces
    t0 = time.time()
    c = InversionConfig(**({"steps": invert_steps} if invert_steps else {}))
    inv = {"space": c.space, "steps": c.steps, "perceptual": c.perceptual, "mse": c.mse}  # what the printout names
    images_i, truth_i = images[:n_invert], truth[:n_invert]
    say(f"demo 4/5: inverting {n_invert} held-out faces ({inv['steps']} steps each, batched) for the few-shot head")
    res_i = seg.segment_images(uint8_to_tensor(images_i), **inv)
    pred_i = res_i.labels.numpy()
    m = SegmentationMetrics(k, class_names=[seg.id2label[i] for i in range(k)])
    m.update(pred_i, truth_i)
    inv_metrics = {**_brief(m.compute()), "psnr": float(res_i.inversion.psnr.mean())}
    recon = tensor_to_uint8(res_i.images)
    paths["inversion_heldout"] = save_image(out / "inversion_heldout.png", with_legend(
        upscale(comparison_rows([images_i, recon, pred_i, truth_i], k), 2), seg.id2label,
        f"Inversion + few-shot, held-out faces\n{_headline(inv_metrics)}",
        columns=("face", "reconstruction", "prediction", "truth")))
    timings["inversion"] = time.time() - t0

    # 5. the metrics table
    say("demo 5/5: writing metrics.md and summary.json")
    table = ["# Demo metrics (held-out rendered faces)", "",
             "| stage | images | mean IoU | weighted IoU | " + " | ".join(names)
             + f" | misses (IoU < {100 * MISS_BELOW:.0f}) |",
             "|" + "---|" * (5 + len(names))]
    for label, count, r in ((f"auto-shot `{autoshot}`", n_test, auto_metrics),
                            (f"inversion + few-shot `{fewshot}`", n_invert, inv_metrics)):
        cells = ["-" if r["per_class_iou"].get(c) is None else f"{100 * r['per_class_iou'][c]:.1f}" for c in names]
        table.append(f"| {label} | {count} | {100 * r['mean_iou']:.1f} | {100 * r['weighted_iou']:.1f} | "
                     + " | ".join(cells) + f" | {misses_text(r['per_class_iou']).removeprefix('misses: ') or 'none'} |")
    table += ["", f"Inversion: {inv}, mean PSNR {inv_metrics['psnr']:.1f} dB.", ""]
    atomic_write_text(out / "metrics.md", "\n".join(table))
    paths["metrics"] = out / "metrics.md"
    summary = {
        "generator": generator, "fewshot": fewshot, "autoshot": autoshot, "retrain": retrain,
        "n_samples": n, "truncation": truncation,
        "layers": {k_: list(v.shape[1:]) for k_, v in res.features.items()},
        "autoshot_heldout": auto_metrics, "inversion_heldout": inv_metrics, "inversion": inv,
        "seconds": {k_: round(v, 2) for k_, v in timings.items()} | {"total": round(time.time() - t_start, 2)},
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    paths["summary"] = out / "summary.json"
    return paths


def _headline(result: dict) -> str:
    """``mean IoU 64.6 (weighted 92.9); misses: ear 18.0`` for a picture's title."""
    misses = misses_text(result["per_class_iou"])
    return (f"mean IoU {100 * result['mean_iou']:.1f} (weighted {100 * result['weighted_iou']:.1f})"
            + (f"; {misses}" if misses else ""))


def _brief(result: dict) -> dict:
    return {k: result[k] for k in ("weighted_iou", "mean_iou", "per_class_iou", "n_images")}
