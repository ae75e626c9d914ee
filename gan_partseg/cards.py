"""Model cards for the artifacts this package writes (Hub front matter + measured figures)."""

from __future__ import annotations

from huggingface_hub import EvalResult, ModelCard, ModelCardData


def generator_card(name: str, config: dict, training: dict, quality: dict | None, sample_image: str | None) -> ModelCard:
    """The card of a StyleGAN2 generator trained on toy faces.

    config: the generator config (dict); training: train_config plus ``steps_done``,
    ``kimg``, ``wall_minutes``, ``seconds_per_step``; quality: the ``fd_report`` dict.
    """
    data = ModelCardData(
        license="apache-2.0",
        library_name="gan_partseg",
        tags=["stylegan2", "gan", "image-generation", "part-segmentation", "toy-faces"],
        pipeline_tag="unconditional-image-generation",
    )
    q = quality or {}
    quality_rows = ""
    if q:
        quality_rows = (
            "| comparison (FD on EfficientNet-Lite0 features, lower is better) | value |\n|---|---|\n"
            f"| rendered vs rendered (floor) | {q['fd_rendered_vs_rendered']:.2f} |\n"
            f"| **{name} vs rendered** | **{q['fd_generator_vs_rendered']:.2f}** |\n"
            + (f"| untrained generator vs rendered (ceiling) | {q['fd_untrained_vs_rendered']:.2f} |\n"
               if "fd_untrained_vs_rendered" in q else "")
            + f"\n{q['n_images']} images per set; {q['features']}. "
            "Held-out rendered faces are the reference set; the floor compares them with other rendered faces.\n"
        )
    channels = ", ".join(f"{k}: {v}" for k, v in config["channels"].items())
    sample = f"![samples]({sample_image})\n\n" if sample_image else ""
    t = training
    content = f"""---
{data.to_yaml()}
---

# {name}

A small StyleGAN2 (rosinality layout) trained **on the CPU** on procedural *toy faces*
(`gan_partseg.data.render`, seeds `TRAIN_SEEDS[:{t['n_images']}]`), shipped inside `gan_partseg`
so every command, test and demo runs offline. The few-shot part segmenters of this package read
its per-layer activations. `{name}/discriminator` holds the discriminator (the latent optimizer
can use its features).

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

`scripts/train_embedded_gan.sh` (`gan-partseg train-gan`, Accelerate): non-saturating logistic loss,
lazy R1 (gamma {t['r1']}, every {t['d_reg_every']} steps), path-length regularisation
{t['path_regularize']}, style mixing {t['mixing']}, augmentation `{t['augment']}`, EMA half-life
{t['ema_kimg']} kimg (ramp-up {t['ema_rampup']}), Adam lr {t['lr']} betas (0, 0.99), batch {t['batch']},
seed {t['seed']}.
Trained for **{t['steps_done']} steps ({t['kimg']:.0f} k images shown)** in
**{t['wall_minutes']:.0f} minutes** of wall time on a 2-core CPU
({t['seconds_per_step']:.2f} s per step on average, shared with other work).
The loss log summary is in `docs/results/toyfaces-64-training.md`.

## Quality

{quality_rows or 'Not measured.'}

## Intended use and limits

A teaching and testing artifact: a stand-in for FFHQ StyleGAN2 checkpoints that can be shipped and
run anywhere. It draws cartoon faces at 64 px only; the figures above say how close it gets to
the rendered distribution. It is not a model of real faces; use a converted FFHQ checkpoint
(`gan-partseg convert rosinality`) for real images.
"""
    return ModelCard(content)


def _iou_table(rows: dict, labels: dict[str, str], classes: list[str]) -> str:
    lines = ["| model | weighted IoU | mean IoU | " + " | ".join(classes) + " |", "|" + "---|" * (3 + len(classes))]
    for key, r in rows.items():
        cells = ["-" if r["per_class_iou"].get(c) is None else f"{100 * r['per_class_iou'][c]:.1f}" for c in classes]
        lines.append(f"| {labels.get(key, key)} | {100 * r['weighted_iou']:.1f} | {100 * r['mean_iou']:.1f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def autoshot_card(name: str, results: dict) -> ModelCard:
    """The card of the bundled auto-shot U-Net, from ``docs/results/autoshot.json`` (``results``)."""
    meta, rows = results["meta"], results["rows"]
    classes = list(next(iter(rows.values()))["per_class_iou"])
    a = rows["autoshot"]
    data = ModelCardData(
        license="apache-2.0",
        library_name="gan_partseg",
        tags=["semantic-segmentation", "part-segmentation", "unet", "toy-faces", "gan-generated-data"],
        pipeline_tag="image-segmentation",
        base_model=None,
        eval_results=[EvalResult(task_type="image-segmentation", dataset_type="toyfaces-held-out",
                                 dataset_name=f"toy faces, {meta['test']}", metric_type="weighted_iou",
                                 metric_name="weighted IoU (background included)", metric_value=round(a["weighted_iou"], 4)),
                      EvalResult(task_type="image-segmentation", dataset_type="toyfaces-held-out",
                                 dataset_name=f"toy faces, {meta['test']}", metric_type="mean_iou",
                                 metric_name="mean IoU", metric_value=round(a["mean_iou"], 4))],
        model_name=name,
    )
    labels = {"fewshot_10shot_inversion": "10-shot segmenter through inversion",
              "autoshot": f"**{name}**", "supervised": "supervised U-Net (true labels)",
              "untrained_generator_10shot": "10-shot head on an untrained generator"}
    latency = results.get("latency")
    content = f"""---
{data.to_yaml()}
---

# {name}

An auto-shot part segmenter (stage 3 of "Repurposing GANs for One-shot Semantic Part
Segmentation"): a U-Net that segments 64 px toy faces into {len(classes)} parts directly, in
milliseconds. It never saw a human label: it learned from {meta['n_train_images']} images that the
generator `toyfaces-64` drew and the 10-shot segmenter `{meta['segmenter']}` labelled (10 annotated
faces in all).

```python
from gan_partseg import AutoShotSegmenter
seg = AutoShotSegmenter.from_pretrained("{name}")
labels = seg.segment(image)   # PIL image or (H, W, 3) uint8 -> (H, W) class ids

from transformers import pipeline
import gan_partseg  # registers the model type
parts = pipeline("image-segmentation", model=str(gan_partseg.hub.bundled_artifacts()["{name}"]))(image)
```

## Results

Test set: {meta['test']} (rendered faces that no training saw), IoU x 100:

{_iou_table(rows, labels, classes)}

{"Latency: see `benchmarks/results/realimage_latency.md`." if latency is None else latency}

## Training

`gan-partseg make-dataset --segmenter {meta['segmenter']} --n {meta['n_train_images']}`, then
`gan-partseg train-autoshot` (U-Net widths {meta['unet_widths']}, {meta['epochs']} epochs, batch 32,
Adam, random affine + flip, best epoch by weighted IoU on {meta['validation']}). Reproduce everything with
`python scripts/fewshot_results.py && python scripts/autoshot_results.py`.

## Intended use and limits

Toy faces at 64 px only: a demonstration and test artifact of the pipeline, not a face parser.
Its labels inherit the 10-shot segmenter's mistakes (see the table). For real faces, train the same
pipeline from a converted FFHQ StyleGAN2 (docs/real-checkpoints.md).
"""
    return ModelCard(content)
