"""GAN training step time: the StyleGAN2 discriminator vs the projected one, and bf16, side by side.

Each row runs ``train_gan`` itself (the real loop: D step, lazy R1 where it applies, G step,
EMA) on the toyfaces-64 networks, batch 16, in its own subprocess and a temp folder, on
256 rendered training faces, and reads the per-step wall clock from the run's log
(``log_every=1``): the mean over steps ``warmup+1 .. warmup+timed``. With the default 32
timed steps the StyleGAN2 rows include exactly two R1 steps (every 16th), as in training.

Rows:

  stylegan2               the embedded run's recipe (logistic loss, R1 every 16 steps)
  projected-64            projected discriminator, images resized to 64 px for EfficientNet-Lite0
  projected-128           the same at 128 px (the setting of runs/toyfaces-64-projected)
  stylegan2-bf16          the first row under bf16 autocast (``mixed_precision="bf16"``): speed only,
                          its effect on what the GAN learns is not measured here

    python benchmarks/gan_step.py [--timed 32] [--threads 2]

Writes benchmarks/results/gan_step.json and gan_step.md (a table).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = {
    "stylegan2": dict(disc="stylegan2"),
    "projected-64": dict(disc="projected", projected_resize=64, d_lr=0.0002),
    "projected-128": dict(disc="projected", projected_resize=128, d_lr=0.0002),
    "stylegan2-bf16": dict(disc="stylegan2", mixed_precision="bf16"),
}


def run_row(name: str, warmup: int, timed: int, threads: int) -> dict:
    import torch

    from gan_partseg.training.gan import TrainGANConfig, train_gan

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        steps = warmup + timed
        cfg = TrainGANConfig(out=str(Path(tmp) / "run"), n_images=256, batch=16, steps=steps, log_every=1,
                             sample_every=10**9, checkpoint_every=10**9, **ROWS[name])
        run = train_gan(cfg, progress=False)
        rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    sec = {r["step"]: r["sec"] for r in rows}
    per_step = (sec[steps] - sec[warmup]) / timed
    return {"row": name, **ROWS[name], "batch": 16, "threads": threads, "timed_steps": timed,
            "seconds_per_step": round(per_step, 3), "images_per_s": round(16 / per_step, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--timed", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--row", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.row:  # child process
        print(json.dumps(run_row(args.row, args.warmup, args.timed, args.threads)))
        return

    from gan_partseg.io import atomic_write_text

    rows = []
    for name in ROWS:
        cmd = [sys.executable, __file__, "--row", name, "--warmup", str(args.warmup), "--timed", str(args.timed),
               "--threads", str(args.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"{name:14s} {rows[-1]['seconds_per_step']:.3f} s/step", flush=True)
    base = rows[0]["seconds_per_step"]
    for r in rows:
        r["vs_stylegan2"] = round(r["seconds_per_step"] / base, 2)

    meta = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": __import__("torch").__version__, "threads": args.threads,
            "note": "toyfaces-64 networks, batch 16, CPU; the mean wall time per step of train_gan over "
                    f"{args.timed} steps after {args.warmup} warm-up steps, one subprocess per row"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "gan_step.json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = ["| row | s/step | images/s | x StyleGAN2 D |", "|---|---|---|---|"]
    lines += [f"| {r['row']} | {r['seconds_per_step']} | {r['images_per_s']} | {r['vs_stylegan2']} |" for r in rows]
    table = "\n".join(lines)
    atomic_write_text(RESULTS / "gan_step.md", f"# GAN training step\n\n{table}\n\n{meta['note']}\n")
    print(table)


if __name__ == "__main__":
    main()
