"""Generator throughput and peak memory, with and without ``return_features``.

Each (config, batch, features) case runs in its own subprocess so its peak
memory is its own: on the CPU the figure is the rise of the process's peak RSS
over its RSS right before the timed forwards (activations + outputs), on CUDA
``torch.cuda.max_memory_allocated``. Configs: a 256 px config-f generator
(random weights, 30 M parameters) and the tiny 64 px toyfaces config.

    python benchmarks/generator.py [--device cpu|cuda] [--reps 3] [--quick]

Writes benchmarks/results/generator.json and generator.md (a table).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import write_results

RESULTS = Path(__file__).resolve().parent / "results"

CONFIGS = {
    "config-f-256": dict(size=256, style_dim=512, n_mlp=8, channel_multiplier=2),
    "toyfaces-64": dict(size=64, style_dim=128, n_mlp=4, channel_multiplier=1,
                        channels={"4": 128, "8": 128, "16": 128, "32": 64, "64": 32}),
}


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(name: str, batch: int, features: bool, device: str, reps: int) -> dict:
    import torch

    from gan_partseg import StyleGAN2Config, StyleGAN2Generator

    torch.manual_seed(0)
    g = StyleGAN2Generator(StyleGAN2Config(**CONFIGS[name])).eval().to(device)
    z = torch.randn(batch, g.config.style_dim, device=device)
    with torch.no_grad():
        g([z], randomize_noise=False, return_features=features)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        base = _rss_mib()
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            out = g([z], randomize_noise=False, return_features=features)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
            del out
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base, 0.0)
        peak = max(peak, peak_before - base)
    best = min(times)
    return {"config": name, "batch": batch, "return_features": features, "device": device,
            "params_m": round(sum(p.numel() for p in g.parameters()) / 1e6, 2),
            "seconds_per_batch": round(best, 4), "images_per_s": round(batch / best, 2),
            "peak_mib": round(peak, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer batch sizes")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.case:  # child process
        name, batch, feats = args.case.split(",")
        print(json.dumps(run_case(name, int(batch), feats == "1", args.device, args.reps)))
        return

    batches = {"config-f-256": [1, 4] if args.quick else [1, 4, 8],
               "toyfaces-64": [1, 16] if args.quick else [1, 16, 64]}
    rows = []
    for name, sizes in batches.items():
        for batch in sizes:
            for feats in (False, True):
                cmd = [sys.executable, __file__, "--case", f"{name},{batch},{int(feats)}",
                       "--device", args.device, "--reps", str(args.reps)]
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(res.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"{name:14s} batch {batch:3d} features {str(feats):5s} "
                      f"{row['images_per_s']:8.2f} img/s  peak {row['peak_mib']:8.1f} MiB", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": __import__("torch").__version__, "device": args.device, "reps": args.reps,
            "note": "best of reps; peak = rise of peak RSS over the pre-forward RSS (CPU) "
                    "or torch.cuda.max_memory_allocated (CUDA); one subprocess per row"}

    lines = ["| config | batch | return_features | images/s | s/batch | peak MiB |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['batch']} | {r['return_features']} | {r['images_per_s']} | "
                     f"{r['seconds_per_batch']} | {r['peak_mib']} |")
    table = "\n".join(lines)
    write_results("generator", {"meta": meta, "rows": rows},
                  f"# Generator benchmark ({args.device})\n\n{table}\n\n{meta['note']}\n"
                  "Reproduce: `python benchmarks/generator.py`\n")
    print(table)


if __name__ == "__main__":
    main()
