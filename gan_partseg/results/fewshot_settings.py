"""Few-shot head settings chosen on a validation set, never on the held-out test faces.

    python scripts/fewshot_settings.py [--k 1] [--grid all|shots] [--work runs/results]

Reads the shot pool that ``scripts/fewshot_results.py`` inverted (``--work``/pool: 30 rendered training
faces with their true labels; pool-mirror: the same faces mirrored, for the ``mirror`` setting). For
each setting and each of the k-shot table's draws (the same shots:
``rng(1000 k + draw)``), a head is trained on the k drawn faces and scored on the *other* pool faces,
so the choice of steps / learning rate / weight decay / loss / class weights never sees
HELD_OUT_SEEDS. Rows go to docs/results/fewshot_settings_{k}shot.jsonl and a table to docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from gan_partseg.data.shots import read_latents, read_shots
from gan_partseg.evaluation.metrics import SegmentationMetrics
from gan_partseg.files import atomic_write_text, replace_markdown_section
from gan_partseg.labels import CLASSES_10, MISS_BELOW, id2label
from gan_partseg.models.stylegan2 import StyleGAN2Generator
from gan_partseg.results.fewshot_table import GENERATOR, POOL_SEEDS, ROOT, cached_features, predict
from gan_partseg.results.settings_table import best_line, setting_lines
from gan_partseg.training.fewshot import TrainFewShotConfig, train_fewshot

#: the settings compared, each a change from TrainFewShotConfig's defaults at the table's 400 steps
GRID: list[dict] = [
    {}, {"steps": 100}, {"steps": 200}, {"steps": 800},
    {"weight_decay": 0.0}, {"weight_decay": 0.01}, {"weight_decay": 0.1},
    {"lr": 3e-4}, {"lr": 3e-3},
    {"head": "mlp-0"}, {"head": "mlp-2"},
    {"balance": "median-freq"}, {"balance": "median-freq", "lr": 3e-3},
    {"loss": "balanced-ce+dice"}, {"augment": "flip"}, {"ignore_band": 1},
    {"style_mix": 0}, {"style_mix": 8}, {"style_mix": 16}, {"mix_from": 2}, {"mix_from": 4}, {"mix_from": 6},
    {"mirror": True}, {"mirror": True, "style_mix": 0}, {"feature_scale": "none"},
]
#: the shot-side settings alone, for k = 5 and 10 (``--grid shots``): what the 1-shot choices do with more faces
SHOTS_GRID: list[dict] = [{}, {"style_mix": 8}, {"mirror": True}, {"feature_scale": "none"}]
GRIDS = {"all": GRID, "shots": SHOTS_GRID}
#: a setting of the shots, not of TrainFewShotConfig: each drawn face's mirrored inversion joins it (pool-mirror)
SHOT_SETTINGS = ("mirror",)
TABLE_CLASSES = ("eye", "eyebrow", "mouth", "nose", "ear")


def run(k: int, work: Path, draws: int = 3, steps: int = 400, grid: list[dict] = GRID) -> list[dict]:
    """One row per setting: validation mean / per-class IoU (mean over draws) and training seconds."""
    known = {f.name for f in fields(TrainFewShotConfig)} | set(SHOT_SETTINGS)
    unknown = sorted({name for change in grid for name in change} - known)
    if unknown:  # before any work
        raise ValueError(f"unknown TrainFewShotConfig field(s) {unknown}")
    g = StyleGAN2Generator.from_pretrained(GENERATOR).eval()
    pool, _ = read_shots(work / "pool")
    by_name = {s.name: s for s in pool}
    mirrored = ({s.name: s for s in read_shots(work / "pool-mirror")[0]}
                if any(c.get("mirror") for c in grid) else {})  # named like the faces they mirror
    seeds = [int(s) for s in POOL_SEEDS[: len(pool)]]
    names = [f"{s:07d}" for s in seeds]
    latents, noise = read_latents(work / "pool", names)
    features = cached_features(g, latents, noise)
    truth = torch.from_numpy(np.stack([by_name[n].labels for n in names])).long()
    rows = []
    for change in grid:
        per_draw = []
        for draw in range(draws):
            chosen = list(np.random.default_rng(1000 * k + draw).choice(seeds, size=k, replace=False))
            val = [i for i, s in enumerate(seeds) if s not in chosen]  # the pool faces not drawn
            cfg = TrainFewShotConfig(generator=GENERATOR, seed=draw,
                                     **{"steps": steps, **{n: v for n, v in change.items() if n not in SHOT_SETTINGS}})
            shots = [by_name[f"{s:07d}"] for s in chosen]
            if change.get("mirror"):  # renamed NAME-mirror, as make-shots --mirror writes them
                shots += [replace(mirrored[f"{s:07d}"], name=f"{s:07d}-mirror") for s in chosen]
            t0 = time.time()
            model = train_fewshot(cfg, generator=g, shots=(shots, id2label(CLASSES_10)), progress=False)
            seconds = time.time() - t0
            m = SegmentationMetrics(len(CLASSES_10), class_names=list(CLASSES_10))
            m.update(predict(model, {n: f[val] for n, f in features.items()}), truth[val])
            per_draw.append((m.compute(), seconds))
        row = {"k": k, "change": change, "draws": draws, "n_val": len(seeds) - k,
               "val_mean_iou": float(np.mean([r["mean_iou"] for r, _ in per_draw])),
               "val_weighted_iou": float(np.mean([r["weighted_iou"] for r, _ in per_draw])),
               "val_per_class_iou": {c: float(np.mean([r["per_class_iou"][c] for r, _ in per_draw])) for c in CLASSES_10},
               "train_seconds": round(float(np.mean([s for _, s in per_draw])), 1)}
        rows.append(row)
        print(f"  {change or 'defaults'}: validation mean IoU {100 * row['val_mean_iou']:.1f}", flush=True)
    return rows


def markdown(rows: list[dict], steps: int, grid: str = "all") -> str:
    k = rows[0]["k"]
    lines = [f"## Few-shot head settings ({k} shot, chosen on validation faces)", "",
             f"Each setting changes one thing from `TrainFewShotConfig`'s defaults at the k-shot table's {steps} steps; "
             f"{rows[0]['draws']} draws of the k-shot table's shots from the pool; scored on the {rows[0]['n_val']} pool "
             "faces not drawn (inverted training faces with true labels), never on the held-out test faces. "
             "IoU x 100, mean over draws. `style_mix` / `mix_from`: style-mixed copies of each shot (default: 8 "
             "copies from W+ index 3 for one annotated face, none for more); `mirror`: each drawn face's "
             "left-right mirrored inversion joins the shots (`make-shots --mirror`), twice the inversions for "
             "the same annotations; `feature_scale none`: the head reads the raw activations, not each layer's "
             "over its RMS.", "", f"Reproduce: `python scripts/fewshot_settings.py --k {k}"
             + ("" if grid == "all" else f" --grid {grid}") + "`", "",
             "| setting | mean IoU | weighted IoU | " + " | ".join(TABLE_CLASSES)
             + f" | misses (IoU < {100 * MISS_BELOW:.0f}) | s / head |",
             "|" + "---|" * (5 + len(TABLE_CLASSES))]
    lines += setting_lines(rows, TABLE_CLASSES, "**defaults**", lambda r: f"{r['train_seconds']:.1f}")
    lines += ["", best_line(rows, "defaults")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=1, choices=(1, 5, 10))
    ap.add_argument("--work", default=str(ROOT / "runs" / "results"))
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--steps", type=int, default=TrainFewShotConfig().steps, help="the k-shot table's training steps")
    ap.add_argument("--grid", choices=sorted(GRIDS), default="all",
                    help="all: every setting; shots: defaults, style mixing and mirrored shots only")
    args = ap.parse_args()
    work = Path(args.work)
    if not (work / "pool" / "latents").is_dir():
        raise SystemExit(f"no shot pool in {work}/pool: run `python scripts/fewshot_results.py` first")
    if any(c.get("mirror") for c in GRIDS[args.grid]) and not (work / "pool-mirror" / "latents").is_dir():
        raise SystemExit(f"no mirrored pool in {work}/pool-mirror: rerun `python scripts/fewshot_results.py` "
                         "(it inverts the mirrored faces, then resumes the rows it has)")
    rows = run(args.k, work, args.draws, args.steps, GRIDS[args.grid])
    out = ROOT / "docs" / "results" / f"fewshot_settings_{args.k}shot.jsonl"
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    replace_markdown_section(ROOT / "docs" / "results.md", f"## Few-shot head settings ({args.k} shot",
                             markdown(rows, args.steps, args.grid))
    print(f"wrote {out} and its table in docs/results.md")


if __name__ == "__main__":
    main()
