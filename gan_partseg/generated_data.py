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

import io
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from .fewshot import FewShotSegmenter
from .heads import disagreement
from .io import atomic_write_text, tensor_to_uint8

FORMAT_VERSION = 1


def _png(array: np.ndarray, mode: str | None = None) -> dict:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def features():
    import datasets

    return datasets.Features({
        "image": datasets.Image(), "label": datasets.Image(), "seed": datasets.Value("int64"),
        "confidence": datasets.Value("float32"), "entropy": datasets.Value("float32"),
        "disagreement": datasets.Value("float32"),
    })


def shard_path(out: Path, index: int, total: int) -> Path:
    return Path(out) / "data" / f"train-{index:05d}-of-{total:05d}.parquet"


def _shard_complete(path: Path, expected_rows: int) -> bool:
    if not path.is_file():
        return False
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows == expected_rows
    except Exception:  # a corrupt shard is redone
        return False


def _describe(segmenter_name: str, segmenter: FewShotSegmenter, n: int, shard_size: int, truncation: float) -> dict:
    from .hub import weights_fingerprint

    return {"format": FORMAT_VERSION, "segmenter": segmenter_name, "generator": segmenter.config.generator,
            "weights": weights_fingerprint(segmenter, segmenter.generator),
            "n": n, "shard_size": shard_size, "truncation": truncation,
            "id2label": {str(k): v for k, v in segmenter.id2label.items()},
            "image_size": segmenter.config.output_size, "head": segmenter.config.head}


@torch.no_grad()
def generate_latents(g, seeds: list[int], truncation: float = 1.0, mean_latent: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Seed s -> (w, noise maps) drawn from ``torch.Generator().manual_seed(s)``: (B, D), [(B, 1, r, r)]."""
    device = g.input.input.device
    zs, noises = [], []
    for s in seeds:
        gen = torch.Generator().manual_seed(int(s))
        zs.append(torch.randn(1, g.style_dim, generator=gen))
        noises.append([torch.randn(1, 1, r, r, generator=gen) for r in g.noise_resolutions])
    w = g.get_latent(torch.cat(zs).to(device))
    if truncation < 1:
        w = mean_latent + truncation * (w - mean_latent)
    return w, [torch.cat([n[j] for n in noises]).to(device) for j in range(g.num_layers)]


@torch.no_grad()
def generate_rows(segmenter: FewShotSegmenter, seeds: list[int], truncation: float = 1.0,
                  mean_latent: torch.Tensor | None = None, batch_size: int = 16) -> list[dict]:
    """Generate and label ``seeds``; one row per seed."""
    rows = []
    for i in range(0, len(seeds), batch_size):
        chunk = seeds[i: i + batch_size]
        w, noise = generate_latents(segmenter.generator, chunk, truncation, mean_latent)
        out = segmenter.segment_latents(w, noise)
        prob = F.softmax(out.logits.float(), 1)
        conf = prob.max(1).values.mean((1, 2))
        ent = -(prob * prob.clamp_min(1e-12).log()).sum(1).mean((1, 2))
        dis = disagreement(out.member_logits).mean((1, 2)) if out.member_logits is not None else torch.zeros_like(ent)
        images = tensor_to_uint8(out.images)
        labels = out.labels.to(torch.uint8).cpu().numpy()
        for j, s in enumerate(chunk):
            rows.append({"image": _png(images[j]), "label": _png(labels[j], mode="L"), "seed": int(s),
                         "confidence": float(conf[j]), "entropy": float(ent[j]), "disagreement": float(dis[j])})
    return rows


def make_dataset(segmenter_name: str, out: str | os.PathLike, n: int = 5000, shard_size: int = 500,
                 truncation: float = 1.0, batch_size: int = 16, progress: bool = True) -> Path:
    """Write (or finish) the data set; returns its folder. Runs under ``accelerate launch`` as is."""
    import datasets
    from .training.common import make_accelerator

    accelerator = make_accelerator()
    out = Path(out)
    segmenter = FewShotSegmenter.from_pretrained(segmenter_name).eval()
    segmenter.to(accelerator.device)
    segmenter.generator.to(accelerator.device)
    description = _describe(segmenter_name, segmenter, n, shard_size, truncation)
    info_path = out / "dataset.json"
    if info_path.exists():
        existing = json.loads(info_path.read_text())
        keys = ("format", "segmenter", "weights", "n", "shard_size", "truncation")
        diff = [k for k in keys if existing.get(k) != description[k]]
        if diff:
            why = ", ".join(f"{k}={existing.get(k)!r} (now {description[k]!r})" for k in diff)
            hint = (" The segmenter or its generator has other weights than the ones that began it"
                    " (re-trained under the same name?)." if "weights" in diff else "")
            raise ValueError(f"{out} holds another data set: {why}.{hint} Use a new --out folder, or the same "
                             "settings and weights to resume it")
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and holds no dataset.json: choose a new --out folder")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(info_path, json.dumps({**description, "complete": False}, indent=2))
    accelerator.wait_for_everyone()

    total = (n + shard_size - 1) // shard_size
    mine = [i for i in range(total) if i % accelerator.num_processes == accelerator.process_index]
    mean = segmenter.generator.mean_latent(4096, generator=torch.Generator().manual_seed(0)) if truncation < 1 else None
    feats = features()
    bar = tqdm(total=len(mine), desc=f"make-dataset (process {accelerator.process_index})", unit="shard",
               disable=not progress)
    for i in mine:
        seeds = list(range(i * shard_size, min(n, (i + 1) * shard_size)))
        path = shard_path(out, i, total)
        if _shard_complete(path, len(seeds)):
            bar.update(1)
            continue
        rows = generate_rows(segmenter, seeds, truncation, mean, batch_size)
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
                   if not _shard_complete(shard_path(out, i, total), min(n, (i + 1) * shard_size) - i * shard_size)]
        atomic_write_text(info_path, json.dumps({**description, "complete": not missing,
                                                 "missing_shards": missing}, indent=2))
    accelerator.wait_for_everyone()
    return out


def load_generated_dataset(folder: str | os.PathLike, drop_uncertain: float = 0.0, by: str = "entropy"):
    """The data set as a ``datasets.Dataset`` (+ its description), optionally without the least certain samples.

    drop_uncertain: fraction in [0, 1) to drop, ranked by ``by`` ("entropy" or "disagreement", higher = less certain).
    """
    import datasets

    folder = Path(folder)
    info_path = folder / "dataset.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{folder} is not a generated data set (no dataset.json); make one with "
                                "gan-partseg make-dataset")
    info = json.loads(info_path.read_text())
    if not info.get("complete"):
        raise ValueError(f"{folder} is incomplete (missing shards {info.get('missing_shards', '?')}); "
                         "rerun the same make-dataset command to finish it")
    files = sorted(str(p) for p in (folder / "data").glob("train-*.parquet"))
    ds = datasets.Dataset.from_parquet(files, features=features())
    if drop_uncertain:
        if not 0 <= drop_uncertain < 1:
            raise ValueError("drop_uncertain must be in [0, 1)")
        if by not in ("entropy", "disagreement"):
            raise ValueError("by must be 'entropy' or 'disagreement'")
        scores = np.asarray(ds[by])
        keep = np.argsort(scores, kind="stable")[: int(round(len(scores) * (1 - drop_uncertain)))]
        ds = ds.select(sorted(keep.tolist()))
    return ds, info
