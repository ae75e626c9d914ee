"""Dilation-rule sweep of the few-shot heads (EXPERIMENT; reuses scripts/fewshot_results.py's protocol and caches).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=. python exp/heads_sweep.py --k 10 --draws 0 1 \
        --heads cnn-s/scale cnn-m/scale cnn-m/cap cnn-l/scale cnn-l/cap

Rows (10 classes) are appended to exp/rows.jsonl, one per (head, k, draw, steps, lr); done rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from fewshot_results import GENERATOR, POOL_SEEDS, cached_features, predict  # noqa: E402

from gan_partseg.data import HELD_OUT_SEEDS, render  # noqa: E402
from gan_partseg.labels import CLASSES_10, id2label  # noqa: E402
from gan_partseg.metrics import SegmentationMetrics  # noqa: E402
from gan_partseg.models.stylegan2 import StyleGAN2Generator  # noqa: E402
from gan_partseg.shots import read_latents, read_shots  # noqa: E402
from gan_partseg.training.fewshot import TrainFewShotConfig, train_fewshot  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heads", nargs="+", required=True)
    ap.add_argument("--k", nargs="+", type=int, default=[10])
    ap.add_argument("--draws", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--work", default=str(ROOT / "runs" / "results"))
    ap.add_argument("--rows", default=str(ROOT / "exp" / "rows.jsonl"))
    ap.add_argument("--pool", type=int, default=30)
    ap.add_argument("--n-test", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    work, rows_path = Path(args.work), Path(args.rows)
    done = set()
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["head"], r["k"], r["draw"], r["steps"], r["lr"]))

    g = StyleGAN2Generator.from_pretrained(GENERATOR).eval()
    pool_seeds = list(POOL_SEEDS[: args.pool])
    test_seeds = list(HELD_OUT_SEEDS[: args.n_test])
    test_latents, test_noise = read_latents(work / "heldout", [f"{s:07d}" for s in test_seeds])
    test_features = cached_features(g, test_latents, test_noise)
    truth = torch.from_numpy(np.stack([render(s, g.config.size)[1] for s in test_seeds]))
    pool, _ = read_shots(work / "pool")
    by_name = {s.name: s for s in pool}
    names = CLASSES_10
    for k in args.k:
        for head in args.heads:
            for draw in args.draws:
                key = (head, k, draw, args.steps, args.lr)
                if key in done:
                    continue
                rng = np.random.default_rng(1000 * k + draw)  # the protocol's draw logic
                chosen = [by_name[f"{s:07d}"] for s in rng.choice(pool_seeds, size=k, replace=False)]
                t0 = time.time()
                model = train_fewshot(TrainFewShotConfig(generator=GENERATOR, head=head, steps=args.steps,
                                                         lr=args.lr, seed=draw), generator=g,
                                      shots=(chosen, id2label(names)), progress=False)
                train_s = time.time() - t0
                pred = predict(model, test_features)
                m = SegmentationMetrics(len(names), class_names=list(names))
                m.update(pred, truth)
                res = m.compute()
                dil = list(getattr(model.head, "dilations", ()))
                row = {"classes": 10, "head": head, "k": k, "draw": draw, "steps": args.steps, "lr": args.lr,
                       "dilations": dil, "shots": [s.name for s in chosen],
                       "weighted_iou": res["weighted_iou"], "mean_iou": res["mean_iou"],
                       "per_class_iou": res["per_class_iou"], "train_seconds": round(train_s, 1),
                       "final_loss": model.training_summary["final_loss"]}
                with open(rows_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{head} k={k} d{draw} steps={args.steps} lr={args.lr} dil={dil}: "
                      f"mIoU {100 * row['mean_iou']:.1f} wIoU {100 * row['weighted_iou']:.1f} "
                      f"eye {100 * res['per_class_iou']['eye']:.1f} brow {100 * res['per_class_iou']['eyebrow']:.1f} "
                      f"ear {100 * res['per_class_iou']['ear']:.1f} ({train_s:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
