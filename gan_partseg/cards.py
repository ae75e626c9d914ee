"""Model cards for the artifacts this package writes (Hub front matter + measured figures)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from gan_partseg.hub import bundled_artifacts
from gan_partseg.labels import MISS_BELOW, counted, missed_classes, misses_text


def _fd_table(title: str, name: str, q: dict, yardsticks: dict, fmt: str) -> str:
    """Markdown rows: floor, the generator (bold), the ceiling when measured, then the yardsticks."""
    f = fmt.format
    return (f"| comparison ({title}, lower is better) | value |\n|---|---|\n"
            f"| rendered vs rendered (floor) | {f(q['fd_rendered_vs_rendered'])} |\n"
            f"| **{name} vs rendered** | **{f(q['fd_generator_vs_rendered'])}** |\n"
            + (f"| untrained generator vs rendered (ceiling) | {f(q['fd_untrained_vs_rendered'])} |\n"
               if "fd_untrained_vs_rendered" in q else "")
            + "".join(f"| yardstick: rendered, {k} | {f(v)} |\n" for k, v in yardsticks.items()))


def generator_card(name: str, config: dict, training: dict, quality: dict | None, sample_image: str | None,
                   parts_image: str | None = None, story: dict | None = None) -> ModelCard:
    """The card of a StyleGAN2 generator trained on toy faces by ``gan-partseg train-gan``.

    Every statement comes from this run's own config, log and figures; ``story`` adds what only one model
    can say (the bundled one: ``{"about": ..., "training": ..., "log": path}``, ``EMBEDDED_STORY``).

    config: the generator config (dict); training: train_config plus ``steps_done``,
    ``kimg``, ``wall_minutes``, ``seconds_per_step``, optionally ``lineage`` (``training_summary``);
    quality: the ``fd_report`` dict, optionally with
    ``fd_yardsticks`` ({changed-renders name: FD}), ``fd_detector`` (floor and generator FD on the part
    detector's features) with ``fd_detector_yardsticks``, and ``parts`` (``part_presence_report``);
    parts_image: its bar chart, shown under the table.
    """
    data = ModelCardData(
        license="apache-2.0",
        library_name="gan_partseg",
        tags=["stylegan2", "gan", "image-generation", "part-segmentation", "toy-faces"],
        pipeline_tag="unconditional-image-generation",
    )
    q = quality or {}
    lineage = training.get("lineage") or []
    stages = ""
    if len(lineage) > 1:  # a run started --init-from another: the settings above are its last stage's
        stages = (f"The weights went through {len(lineage)} runs, each started from the one before with "
                  f"`--init-from`: {', then '.join(f'`{s}`' for s in lineage)}; the settings above are the "
                  "last one's, the others' are in their `runs/*/train_config.json`, and the totals cover all.\n")
    quality_rows = ""
    if q:
        quality_rows = (
            _fd_table("FD on EfficientNet-Lite0 features", name, q, q.get("fd_yardsticks", {}), "{:.2f}")
            + f"\n{q['n_images']} images per set; {q['features']}. "
            "Held-out rendered faces are the reference set; the floor compares them with other rendered faces."
            + (" The yardsticks (`scripts/fd_sensitivity.py`) are other rendered faces changed as named: the figure "
               "is very sensitive to sharpness and fine texture." if q.get("fd_yardsticks") else "") + "\n"
        )
    if q.get("fd_detector"):
        quality_rows += (
            "\n" + _fd_table("FD on the part detector's features", name, q["fd_detector"],
                              q.get("fd_detector_yardsticks", {}), "{:.3f}")
            + f"\nThe same sets; {q['fd_detector']['features']}: a check by a network that owes nothing to "
            "ImageNet.\n"
        )
    if q.get("parts"):
        quality_rows += "\n" + parts_table(q["parts"], q.get("parts_n_images", q["n_images"]))
        if parts_image:
            quality_rows += f"\n![part presence]({parts_image})\n"
    channels = ", ".join(f"{k}: {v}" for k, v in sorted(config["channels"].items(), key=lambda kv: int(kv[0])))
    sample = f"![samples]({sample_image})\n\n" if sample_image else ""
    t = training
    story = story or {}
    precision = t.get("mixed_precision", "no")
    procs = t.get("processes", 1)
    log = story.get("log", "`log.jsonl` in the run folder")
    content = f"""---
{data.to_yaml()}
---

# {name}

A StyleGAN2 (rosinality layout) trained on procedural *toy faces* (`gan_partseg.data.render`, seeds
`TRAIN_SEEDS[:{t['n_images']}]`) with `gan-partseg train-gan`. {story.get("about", "")}
`{name}/discriminator` holds the discriminator (the latent optimizer can use its features).

```python
from gan_partseg import StyleGAN2Generator, StyleGAN2Discriminator
g = StyleGAN2Generator.from_pretrained("{name}")
d = StyleGAN2Discriminator.from_pretrained("{name}", subfolder="discriminator")
```

{sample}## Architecture

size {config['size']} px, style_dim {config['style_dim']}, n_mlp {config['n_mlp']},
channels {{{channels}}}, blur kernel {config['blur_kernel']}; generator
{t.get('g_params_m', '?')} M parameters, discriminator {t.get('d_params_m', '?')} M.

## Training

`gan-partseg train-gan` (Accelerate): non-saturating logistic loss,
lazy R1 (gamma {t['r1']}, every {t['d_reg_every']} steps), path-length regularisation
{t['path_regularize']}, style mixing {t['mixing']}, augmentation `{t['augment']}`, EMA half-life
{t['ema_kimg']} kimg (ramp-up {t['ema_rampup']}), Adam lr {t['lr']} betas (0, 0.99), batch {_batch_text(t)},
seed {t['seed']}, mixed precision `{precision}`, {procs} process{'es' if procs > 1 else ''}.
Trained for **{t['steps_done']} steps ({t['kimg']:.0f} k images shown)** in
**{t['wall_minutes']:.0f} minutes** of wall time ({t['seconds_per_step']:.2f} s per step on average).
{story.get("training", "")}
{stages}Loss log: {log}.

## Quality

{quality_rows or 'Not measured.'}

## Intended use and limits

It draws cartoon faces at {config['size']} px only; the figures above say how close it gets to the
rendered distribution. It is not a model of real faces; use a converted FFHQ checkpoint
(`gan-partseg convert rosinality`) for real images.
"""
    return ModelCard(content)


EMBEDDED_STORY = {
    "about": "It is shipped inside `gan_partseg` so every command, test and demo runs offline: a teaching and "
             "testing stand-in for FFHQ StyleGAN2 checkpoints, trained on the CPU. The few-shot part segmenters "
             "of this package read its per-layer activations.",
    "training": "Trained by `scripts/train_embedded_gan.sh` on 2-core CPUs: the run resumed from its checkpoints "
                "on machines of different speeds, at times shared with other work (`benchmarks/gan_step.py` "
                "measures a step alone). The checkpoint it was shipped from is tracked in `reproduce/`.",
    "log": "`docs/results/toyfaces-64-training.md` (summary)",
}
"""The bundled toyfaces-64's own history: only its card says it (``results.cards.write_cards``)."""


def _rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def _batch_text(t: dict) -> str:
    """'16', or '16 (2 processes x 8)' for a run trained by several processes (``batch`` is per process)."""
    n = int(t.get("processes", 1))
    return str(t["batch"]) if n == 1 else f"{t['batch'] * n} ({n} processes x {t['batch']})"


def parts_table(parts: dict, n_images: int) -> str:
    """Markdown: how often each part shows up in generated samples vs rendered faces (``part_presence_report``)."""
    lines = ["Does it draw every part? A part detector (a U-Net trained on rendered faces with their true labels, "
             "`scripts/part_detector.py`) labels generated samples and held-out rendered faces; the share of images "
             f"in which each part shows up ({n_images} of each):", "",
             "| part | generated | rendered (detected) | rendered (true) | generated / rendered | detector IoU |",
             "|---|---|---|---|---|---|"]
    for name, p in parts.items():
        iou = "-" if p["detector_iou"] is None else f"{100 * p['detector_iou']:.1f}"
        lines.append(f"| {name} | {100 * p['generated_present']:.1f}% | {100 * p['rendered_present']:.1f}% | "
                     f"{100 * p['true_present']:.1f}% | {p['ratio']:.2f} | {iou} |")
    return "\n".join(lines) + "\n"


def lost_sentence(per_class: dict, below: float = MISS_BELOW) -> str:
    """What a card says about the classes a model misses (present in the test set, IoU under ``below``)."""
    missed = missed_classes(per_class, below)
    if not missed:
        return f"Every class scores IoU {100 * below:.0f} or more."
    return (f"**This model {misses_text(per_class, below)}** (IoU under {100 * below:.0f}): do not rely on it for "
            f"{'that part' if len(missed) == 1 else 'those parts'}.")


def iou_table(rows: dict, labels: dict[str, str], classes: list[str]) -> str:
    """A markdown table: one row per entry of ``rows`` ({weighted_iou, mean_iou, per_class_iou}), IoU x 100."""
    lines = ["| model | mean IoU | weighted IoU | " + " | ".join(classes) + " |", "|" + "---|" * (3 + len(classes))]
    for key, r in rows.items():
        cells = ["-" if r["per_class_iou"].get(c) is None else f"{100 * r['per_class_iou'][c]:.1f}" for c in classes]
        lines.append(f"| {labels.get(key, key)} | {100 * r['mean_iou']:.1f} | {100 * r['weighted_iou']:.1f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


HUB_NAMESPACE = "gan-partseg"
"""Where the bundled artifacts are published on the Hub (``gan-partseg/<name>``); cards link stages by it."""


def hub_id(name: str | None) -> str | None:
    """A bundled artifact name -> its Hub id; folders and hub ids pass through (None for local paths)."""
    if not name:
        return None

    if name in bundled_artifacts() or name.startswith("toyfaces-64"):
        return f"{HUB_NAMESPACE}/{name}"
    return name if name.count("/") == 1 and not name.startswith((".", "/")) else None


def _front_matter(tags: list[str], pipeline_tag: str, base_model: str | None, eval_rows: list[tuple] = (),
                  name: str | None = None, dataset: str = "toy faces (held-out)") -> str:
    evals = [EvalResult(task_type="image-segmentation", dataset_type="toyfaces-held-out", dataset_name=dataset,
                        metric_type=metric, metric_name=label, metric_value=round(float(value), 4))
             for metric, label, value in eval_rows]
    data = ModelCardData(license="apache-2.0", library_name="gan_partseg", tags=tags, pipeline_tag=pipeline_tag,
                         base_model=hub_id(base_model), eval_results=evals or None,
                         model_name=name if evals else None)
    return f"---\n{data.to_yaml()}\n---\n"


def _head_name(config: dict) -> str:
    head = config.get("head")
    if head == "cnn":
        return f"cnn-{str(config.get('cnn_size', '?')).lower()}"
    if head == "mlp":
        return f"mlp-{config.get('mlp_hidden_layers', '?')}"
    return f"ensemble-{config.get('ensemble_size', '?')}" if head == "ensemble" else str(head)


def _scale_text(summary: dict) -> str:
    """"; each layer's activations divided by their RMS in training (folded into the weights)", or nothing."""
    return ("; each layer's activations divided by their RMS over random samples in training (folded into the "
            "first layer's weights, so the head reads raw activations)") if summary.get("layer_rms") else ""


def _style_mix_text(summary: dict) -> str:
    """", with 8 style-mixed copies of each shot (W+ styles from index 3 of random samples)", or nothing."""
    n = summary.get("style_mix") or 0
    return (f", with {n} style-mixed copies of each shot (W+ styles from index "
            f"{summary.get('config', {}).get('mix_from', '?')} of random samples)") if n else ""


def fewshot_card(name: str, config: dict, training: dict | None = None, results: dict | None = None) -> ModelCard:
    """The card of a few-shot segmenter: what it reads, how it was trained, and (bundled ones) its k-shot figures.

    config: the segmenter config dict; training: ``training.json`` (settings, shots, losses);
    results: ``{"summary_row": ..., "meta": ...}`` from ``docs/results/fewshot.json`` when measured.
    """
    classes = [config["id2label"][k] for k in sorted(config["id2label"], key=int)]
    t = training or {}
    cfg = t.get("config", {})
    evals, figures = [], "Not measured on a test set (see `gan-partseg evaluate`)."
    if results:
        row, meta = results["summary_row"], results["meta"]
        own = (meta.get("shipped") or {}).get(str(row["k"]))
        own = own if own and own.get("head") == row["head"] else None
        evals = [("mean_iou", "mean IoU", (own or {}).get("mean_iou", row["mean_iou_mean"])),
                 ("weighted_iou", "weighted IoU (background included)",
                  (own or {}).get("weighted_iou", row["weighted_iou_mean"]))]
        figures = (f"On the first {meta['n_test']} held-out rendered faces, through inversion, over {row['draws']} "
                   f"independent draws of {counted(row['k'], 'shot')}: mean IoU **{100 * row['mean_iou_mean']:.1f} ± "
                   f"{100 * row['mean_iou_std']:.1f}** (weighted IoU {100 * row['weighted_iou_mean']:.1f} ± "
                   f"{100 * row['weighted_iou_std']:.1f}). Full table: `docs/results.md`.")
        per_class = {}
        if own:
            per_class[f"this model ({own.get('rule', 'draw 0')})"] = own
        if row.get("per_class_iou_mean"):
            per_class["mean over draws"] = {"weighted_iou": row["weighted_iou_mean"], "mean_iou": row["mean_iou_mean"],
                                            "per_class_iou": row["per_class_iou_mean"]}
        if per_class:
            first = next(iter(per_class.values()))
            figures += "\n\nPer class, IoU x 100:\n\n" + iou_table(per_class, {}, list(first["per_class_iou"]))
            figures += "\n\n" + lost_sentence(first["per_class_iou"])
    content = _front_matter(["semantic-segmentation", "part-segmentation", "few-shot", "stylegan2", "gan-features"],
                            "image-segmentation", config.get("generator"), evals, name) + f"""
# {name}

A few-shot part segmenter ("Repurposing GANs for One-shot Semantic Part Segmentation", stage 2): a
`{cfg.get('head') or _head_name(config)}` head on the per-layer activations of the
StyleGAN2 generator `{config.get('generator')}`, trained with the `{cfg.get('loss', 'ce')}` loss on
**{counted(t['k'], 'annotated image') if 'k' in t else 'annotated images'}**, {len(classes)} classes: {', '.join(classes)}.

```python
from gan_partseg import FewShotSegmenter
seg = FewShotSegmenter.from_pretrained("{name}")       # loads its generator too
out = seg.segment_latents(w)                          # generated images: labels (B, H, W), logits, images
out = seg.segment_images(x)                           # real images in [-1, 1]: inversion, then the head
```

## Results

{figures}

## Training

Layers {len(config.get('feature_layers', []))} ({', '.join(config.get('feature_layers', [])[:3])} ...), output
{config.get('output_size')} px; {cfg.get('steps', '?')} steps, Adam lr {cfg.get('lr', '?')}, weight decay
{cfg.get('weight_decay', '?')}, batch {cfg.get('batch', '?')}, seed {cfg.get('seed', '?')}; shots:
{', '.join(t.get('shots', [])) or '?'}; loss {cfg.get('loss', '?')}{_style_mix_text(t)}{_scale_text(t)};
final loss {_rounded(t.get('final_loss'))}.

## Intended use and limits

It reads only what its generator can draw: images far from the generator's domain invert poorly and
segment poorly. Real images go through GAN inversion (seconds each on a CPU); for speed, train an
auto-shot U-Net on images it labels (`gan-partseg make-dataset`, `train-autoshot`).
"""
    return ModelCard(content)


def autoshot_card(name: str, results: dict | None = None, config: dict | None = None,
                  training: dict | None = None) -> ModelCard:
    """The card of an auto-shot U-Net: from ``docs/results/autoshot.json`` (bundled) or a training run."""
    meta = (results or {}).get("meta", {})
    rows = (results or {}).get("rows")
    config = config or {}
    source = meta.get("segmenter") or config.get("source_segmenter")
    classes = list(next(iter(rows.values()))["per_class_iou"]) if rows else \
        [config["id2label"][k] for k in sorted(config.get("id2label", {}), key=int)]
    evals = []
    if rows:
        a = rows["autoshot"]
        evals = [("mean_iou", "mean IoU", a["mean_iou"]),
                 ("weighted_iou", "weighted IoU (background included)", a["weighted_iou"])]
    labels = {"fewshot_10shot_inversion": "10-shot segmenter through inversion",
              "autoshot": f"**{name}**", "supervised": "supervised U-Net (true labels)",
              "untrained_generator_10shot": "10-shot head on an untrained generator"}
    if rows:
        figures = (f"Test set: {meta['test']} (rendered faces that no training saw), IoU x 100:\n\n"
                   + iou_table(rows, labels, classes)
                   + "\n\n" + lost_sentence(rows["autoshot"]["per_class_iou"])
                   + "\n\nLatency: `benchmarks/results/realimage_latency.md`.")
    elif training and training.get("best_val_per_class_iou"):
        best = {"weighted_iou": training["best_val_weighted_iou"], "mean_iou": training["best_val_mean_iou"],
                "per_class_iou": training["best_val_per_class_iou"]}
        figures = (f"Validation (the run's held-out set) at the selected epoch {training.get('best_epoch')}, IoU x 100:"
                   "\n\n" + iou_table({"this model": best}, {}, list(best["per_class_iou"])) + "\n\n"
                   + lost_sentence(best["per_class_iou"]) + " Score it on a labelled data set with `gan-partseg evaluate`.")
    else:
        figures = "Not measured (see `gan-partseg evaluate`)."
    loss_text = f", loss `{meta['unet_loss']}`" if meta.get("unet_loss") else ""
    reproduce = (" Reproduce it with `python scripts/fewshot_results.py && python scripts/autoshot_results.py`."
                 if rows else "")
    trained_on = (f"{meta['n_train_images']} images that the generator drew and the few-shot segmenter "
                  f"`{source}` labelled" if meta else
                  (f"images labelled by the few-shot segmenter `{source}`" if source else "a labelled data set"))
    content = _front_matter(["semantic-segmentation", "part-segmentation", "unet", "gan-generated-data"],
                            "image-segmentation", source, evals, name) + f"""
# {name}

An auto-shot part segmenter ("Repurposing GANs for One-shot Semantic Part Segmentation", stage 3): a
U-Net that segments images into {len(classes)} parts ({', '.join(classes)}) directly, in
milliseconds, trained on {trained_on}.

```python
from gan_partseg import AutoShotSegmenter
seg = AutoShotSegmenter.from_pretrained("{name}")
labels = seg.segment(image)   # PIL image or (H, W, 3) uint8 -> (H, W) class ids

import gan_partseg                   # registers the model type with transformers
from transformers import pipeline
parts = pipeline("image-segmentation", model="{_model_ref(name)}")(image)   # one mask per present part
```

## Results

{figures}

## Training

`gan-partseg make-dataset` then `gan-partseg train-autoshot` (U-Net widths
{meta.get('unet_widths') or config.get('widths')}, image size {config.get('image_size', 64)}, Adam, random affine +
flip{loss_text}, best epoch by mean IoU on held-out rendered faces).{reproduce}

## Intended use and limits

It knows what its few-shot segmenter taught it, mistakes included, on images like its generator's.
{_ood_sentence(config)}For real faces, train the same pipeline from a converted FFHQ StyleGAN2 (`docs/real-checkpoints.md`).
"""
    return ModelCard(content)


def _ood_sentence(config: dict) -> str:
    if not config.get("input_statistics"):
        return ""
    return ("It warns (`OutOfDistributionWarning`) when an image is far from its training images, as its deepest "
            "encoder features see them, so a photograph given to it says so.\n")


def _model_ref(name: str) -> str:
    """What pipeline(model=...) takes for this model: its bundled name, or the folder it is saved in."""
    from gan_partseg.hub import bundled_artifacts

    return name if name in bundled_artifacts() else f"path/to/{name}"


def converted_card(name: str, config: dict, source: str, fmt: str) -> ModelCard:
    """The card of a generator converted from a rosinality ``.pt`` or an NVIDIA ``.pkl``."""
    content = _front_matter(["stylegan2", "gan", "image-generation", "part-segmentation"],
                            "unconditional-image-generation", None) + f"""
# {name}

A StyleGAN2 generator ({config['size']} px, style_dim {config['style_dim']}, n_mlp {config['n_mlp']})
converted by `gan-partseg convert {fmt}` from `{Path(source).name}` into safetensors, for gan_partseg.
The weights and their license are those of the original checkpoint: check its source before sharing.

```python
from gan_partseg import StyleGAN2Generator
g = StyleGAN2Generator.from_pretrained("{name}")
out = g([z], return_features=True)   # images (B, 3, H, W) in [-1, 1], features per synthesis layer
```

Next: sample shots to paint (`gan-partseg sample`), train a few-shot head (`train-fewshot`).
"""
    return ModelCard(content)
