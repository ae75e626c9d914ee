"""Generated training sets: the few-shot segmenter labels thousands of generated images.

``make_dataset`` samples seeds 0 .. n-1 (seed s -> z drawn from ``torch.Generator().manual_seed(s)``
and fresh noise from the same generator), segments each generated image, and writes Parquet
shards of ``shard_size`` consecutive seeds::

    OUT/dataset.json                     what the data set is (segmenter, n, shard size, id2label, ...)
    OUT/data/train-00003-of-00010.parquet   columns: image (PNG), label (PNG, class ids), seed,
                                         confidence (mean max-probability), entropy (mean, nats),
                                         disagreement (mean Jensen-Shannon between ensemble members, or 0)

Each shard is written to a temp file and renamed, so an interrupted run leaves only complete
shards; rerunning skips them (no seed twice, none missing). Under ``accelerate launch`` every
process writes the shards ``i`` with ``i % num_processes == process_index``. Filtering the least
certain samples happens at load time (:func:`load_generated_dataset`), so shards stay resumable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gan_partseg.data.generated import FORMAT_VERSION, features, png_cell, shard_complete, shard_path
from gan_partseg.errors import OutputError, check_count
from gan_partseg.files import atomic_write_text
from gan_partseg.hub import weights_fingerprint
from gan_partseg.images import tensor_to_uint8
from gan_partseg.models.fewshot import FewShotSegmenter
from gan_partseg.models.heads import disagreement
from gan_partseg.models.stylegan2 import TRUNCATION
from gan_partseg.runtime import make_accelerator


def _describe(segmenter_name: str, segmenter: FewShotSegmenter, n: int, shard_size: int, truncation: float) -> dict:
    return {"format": FORMAT_VERSION, "segmenter": segmenter_name, "generator": segmenter.config.generator,
            "weights": weights_fingerprint(segmenter, segmenter.generator),
            "n": n, "shard_size": shard_size, "truncation": truncation,
            "id2label": {str(k): v for k, v in segmenter.id2label.items()},
            "image_size": segmenter.config.output_size, "images_at_output_size": True, "head": segmenter.config.head}


#: what one make-dataset batch may hold of activations (the generator's features + the head's maps at the output
#: size); at 1024 px config-f with mlp-1 at 512 px that is 2 images, at the embedded 64 px the cap
BATCH_BUDGET_BYTES = 2 * 2**30
MAX_AUTO_BATCH = 16


def head_channels_at_output(segmenter: FewShotSegmenter) -> int:
    """Float32 channels per output pixel the head holds at once while labelling: its projection (the summed
    accumulator and the activation), its widest later layer, and the logits, their mean and the softmax of every
    ensemble member."""
    head = segmenter.head
    body = max((m.out_channels for m in head.body.modules() if isinstance(m, torch.nn.Conv2d)), default=0)
    return 2 * head.project.weight.shape[0] + body + 3 * head.n_classes * head.ensemble_size


def auto_batch_size(segmenter: FewShotSegmenter, budget: int = BATCH_BUDGET_BYTES, cap: int = MAX_AUTO_BATCH) -> int:
    """Images per batch so that one batch's float32 activations stay within ``budget`` bytes (1 .. ``cap``).

    Per image: every synthesis layer's activation (what the head reads) plus :func:`head_channels_at_output` at the
    output size. Why: at 1024 px a fixed batch of 16 peaked at 21 GiB (benchmarks/full_size.py); speed gains
    little past a few images per batch (benchmarks/make_dataset.py).
    """
    head = 4 * head_channels_at_output(segmenter) * segmenter.config.output_size ** 2
    per_image = segmenter.generator.activation_bytes() + head
    return max(1, min(cap, budget // per_image))


@torch.no_grad()
def generate_rows(segmenter: FewShotSegmenter, seeds: list[int], truncation: float = TRUNCATION["data"],
                  batch_size: int = 16) -> list[dict]:
    """Generate and label ``seeds``; one row per seed."""
    rows = []
    for i in range(0, len(seeds), batch_size):
        chunk = seeds[i: i + batch_size]
        w, noise = segmenter.generator.seeded_latents(chunk, truncation)
        out = segmenter.segment_latents(w, noise)
        prob = F.softmax(out.logits.float(), 1)
        conf = prob.max(1).values.mean((1, 2))
        ent = -(prob * prob.clamp_min(1e-12).log()).sum(1).mean((1, 2))
        dis = disagreement(out.member_logits).mean((1, 2)) if out.member_logits is not None else torch.zeros_like(ent)
        images = out.images
        if images.shape[-1] != out.labels.shape[-1]:  # logits smaller than the generator (1024 px -> 512): one size
            images = F.interpolate(images, size=tuple(out.labels.shape[-2:]), mode="bilinear", antialias=True,
                                   align_corners=False)
        images = tensor_to_uint8(images)
        labels = out.labels.to(torch.uint8).cpu().numpy()
        for j, s in enumerate(chunk):
            rows.append({"image": png_cell(images[j]), "label": png_cell(labels[j], mode="L"), "seed": int(s),
                         "confidence": float(conf[j]), "entropy": float(ent[j]), "disagreement": float(dis[j])})
    return rows


def make_dataset(segmenter_name: str, out: str | os.PathLike, n: int = 5000, shard_size: int = 500,
                 truncation: float = TRUNCATION["data"], batch_size: int | None = None, progress: bool = True) -> Path:
    """Write (or finish) the data set; returns its folder. Runs under ``accelerate launch`` as is.

    Images are stored at the segmenter's output size (resized, antialiased, where that is below the generator's),
    so every pair has one size. ``batch_size`` None: :func:`auto_batch_size`. Each seed has its own latent and
    noise, so the batch size changes a sample only by float rounding, and a run may resume with another.
    """
    import datasets

    check_count("n", n), check_count("shard_size", shard_size)
    if batch_size is not None:
        check_count("batch_size", batch_size)
    accelerator = make_accelerator()
    out = Path(out)
    segmenter = FewShotSegmenter.from_pretrained(segmenter_name).eval()
    segmenter.to(accelerator.device)
    segmenter.generator.to(accelerator.device)
    batch_size = batch_size or auto_batch_size(segmenter)
    description = _describe(segmenter_name, segmenter, n, shard_size, truncation)
    info_path = out / "dataset.json"
    if info_path.exists():
        try:
            existing = json.loads(info_path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise OutputError(f"{info_path} is not valid JSON ({err}): --out holds a damaged data set; choose a new "
                              "--out folder (or remove that one)") from None
        gen_size, out_size = segmenter.generator.config.size, segmenter.config.output_size
        if gen_size != out_size and not existing.get("images_at_output_size"):  # its shards hold gen_size px images
            raise OutputError(f"{out} was begun by an older make-dataset that stored {gen_size} px images beside "
                              f"{out_size} px labels; use a new --out folder")
        keys = ("format", "segmenter", "weights", "n", "shard_size", "truncation")
        diff = [k for k in keys if existing.get(k) != description[k]]
        if diff:
            why = ", ".join(f"{k}={existing.get(k)!r} (now {description[k]!r})" for k in diff)
            hint = (" The segmenter or its generator has other weights than the ones that began it"
                    " (re-trained under the same name?)." if "weights" in diff else "")
            raise OutputError(f"{out} holds another data set: {why}.{hint} Use a new --out folder, or the same "
                              "settings and weights to resume it")
    elif out.exists() and any(out.iterdir()):
        raise OutputError(f"{out} is not empty and holds no dataset.json: choose a new --out folder")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(info_path, json.dumps({**description, "complete": False}, indent=2))
    accelerator.wait_for_everyone()

    total = (n + shard_size - 1) // shard_size
    mine = [i for i in range(total) if i % accelerator.num_processes == accelerator.process_index]
    feats = features()
    bar = tqdm(total=len(mine), desc=f"make-dataset (process {accelerator.process_index})", unit="shard",
               disable=not progress)
    for i in mine:
        seeds = list(range(i * shard_size, min(n, (i + 1) * shard_size)))
        path = shard_path(out, i, total)
        if shard_complete(path, len(seeds)):
            bar.update(1)
            continue
        rows = generate_rows(segmenter, seeds, truncation, batch_size)
        ds = datasets.Dataset.from_list(rows, features=feats)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        ds.to_parquet(str(tmp))
        os.replace(tmp, path)
        bar.update(1)
    bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        missing = [i for i in range(total)
                   if not shard_complete(shard_path(out, i, total), min(n, (i + 1) * shard_size) - i * shard_size)]
        atomic_write_text(info_path, json.dumps({**description, "complete": not missing,
                                                 "missing_shards": missing}, indent=2))
    accelerator.wait_for_everyone()
    return out
