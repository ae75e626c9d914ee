"""GAN training step time: the StyleGAN2 discriminator vs the projected one, bf16, and 2 CPU processes, side by side.

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
  stylegan2-2proc         the first row as 2 processes of 1 thread each (torchrun, data parallel over the
                          CPU's cores), batch 8 per process: the same 16 images per step
  stylegan2-bf16-2proc    the same under bf16 autocast

The one-process rows use ``--threads`` threads (default 2); the 2-process rows use 1 each, so on a
2-core machine every row has the whole CPU.

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

from common import write_results

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = {
    "stylegan2": dict(disc="stylegan2"),
    "projected-64": dict(disc="projected", projected_resize=64, d_lr=0.0002),
    "projected-128": dict(disc="projected", projected_resize=128, d_lr=0.0002),
    "stylegan2-bf16": dict(disc="stylegan2", mixed_precision="bf16"),
    "stylegan2-2proc": dict(disc="stylegan2", processes=2),
    "stylegan2-bf16-2proc": dict(disc="stylegan2", mixed_precision="bf16", processes=2),
}
BATCH = 16  # images per step, over all processes


def run_row(name: str, warmup: int, timed: int, threads: int, tmp: str) -> dict | None:
    """One row's figures (None on the processes after the first of a multi-process row)."""
    import torch

    from gan_partseg.runtime import is_launch_main
    from gan_partseg.training.gan import TrainGANConfig, train_gan

    settings = dict(ROWS[name])
    processes = settings.pop("processes", 1)
    torch.set_num_threads(threads)
    steps = warmup + timed
    cfg = TrainGANConfig(out=str(Path(tmp) / "run"), n_images=256, batch=BATCH // processes, steps=steps,
                         log_every=1, sample_every=10**9, checkpoint_every=10**9, **settings)
    run = train_gan(cfg, progress=False)
    if not is_launch_main():
        return None
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    sec = {r["step"]: r["sec"] for r in rows}
    per_step = (sec[steps] - sec[warmup]) / timed
    return {"row": name, **ROWS[name], "batch": BATCH, "processes": processes, "threads": threads,
            "timed_steps": timed, "seconds_per_step": round(per_step, 3), "images_per_s": round(BATCH / per_step, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--timed", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--row", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.row:  # child process (one of them for a multi-process row)
        result = run_row(args.row, args.warmup, args.timed, args.threads, args.tmp)
        if result is not None:
            print(json.dumps(result))
        return


    rows = []
    for name in ROWS:
        processes = ROWS[name].get("processes", 1)
        launch = ([sys.executable] if processes == 1 else
                  [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)])
        with tempfile.TemporaryDirectory() as tmp:
            cmd = launch + [__file__, "--row", name, "--warmup", str(args.warmup), "--timed", str(args.timed),
                            "--threads", str(args.threads if processes == 1 else 1), "--tmp", tmp]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"{name:14s} {rows[-1]['seconds_per_step']:.3f} s/step", flush=True)
    base = rows[0]["seconds_per_step"]
    for r in rows:
        r["vs_stylegan2"] = round(r["seconds_per_step"] / base, 2)

    meta = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": __import__("torch").__version__, "threads": args.threads,
            "note": "toyfaces-64 networks, batch 16, CPU; the mean wall time per step of train_gan over "
                    f"{args.timed} steps after {args.warmup} warm-up steps, one subprocess per row (two for the "
                    f"2proc rows, 1 thread each; the others {args.threads} threads)"}
    RESULTS.mkdir(parents=True, exist_ok=True)

    lines = ["| row | processes x threads | s/step | images/s | x StyleGAN2 D |", "|---|---|---|---|---|"]
    lines += [f"| {r['row']} | {r['processes']} x {r['threads']} | {r['seconds_per_step']} | {r['images_per_s']} | "
              f"{r['vs_stylegan2']} |" for r in rows]
    table = "\n".join(lines)
    write_results("gan_step", {"meta": meta, "rows": rows}, f"# GAN training step\n\n{table}\n\n{meta['note']}\n"
                  "Reproduce: `python benchmarks/gan_step.py`\n")
    print(table)


if __name__ == "__main__":
    main()
