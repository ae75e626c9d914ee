"""Generator throughput and peak memory, with and without ``return_features``, per batch size.

Each (config, batch, features, malloc) case runs in its own quiet subprocess so
its time and peak memory are its own: on the CPU the peak is the rise of the
process's peak RSS over its RSS right before the first forward (activations +
outputs), on CUDA ``torch.cuda.max_memory_allocated``. Configs: a 256 px
config-f generator (random weights, 30 M parameters) and the tiny 64 px
toyfaces config. ``malloc`` compares glibc's default (the baseline: large
blocks mmapped afresh, page-faulted 4 KiB at a time on every forward) with
PyTorch's transparent-huge-page allocations (``THP_MEM_ALLOC_ENABLE=1``) and
with ``gan_partseg.runtime.keep_freed_memory()`` (freed blocks kept in the heap).

    python benchmarks/generator.py [--device cpu|cuda] [--reps 3] [--quick]

Writes benchmarks/results/generator.json and generator.md (a table).
"""

from __future__ import annotations

import argparse
import json
import os
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


MALLOC = ("default", "thp", "keep freed")  # the first is the baseline


def run_case(name: str, batch: int, features: bool, device: str, reps: int, malloc: str) -> dict:
    import torch

    from gan_partseg import StyleGAN2Config, StyleGAN2Generator
    from gan_partseg.runtime import keep_freed_memory

    if malloc == "keep freed" and not keep_freed_memory():
        raise SystemExit("keep_freed_memory() did not apply here (not Linux/glibc, or GAN_PARTSEG_KEEP_MEMORY=0)")
    torch.manual_seed(0)
    g = StyleGAN2Generator(StyleGAN2Config(**CONFIGS[name])).eval().to(device)
    z = torch.randn(batch, g.config.style_dim, device=device)
    with torch.no_grad():
        # The base is taken before the warm-up: with freed memory kept, the timed forwards reuse the
        # warm-up's blocks and would otherwise show no rise at all.
        base = _rss_mib()
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        g([z], randomize_noise=False, return_features=features)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
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
            "malloc": malloc,
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
        name, batch, feats, malloc = args.case.split(",")
        print(json.dumps(run_case(name, int(batch), feats == "1", args.device, args.reps, malloc)))
        return

    batches = {"config-f-256": [1, 4] if args.quick else [1, 4, 8],
               "toyfaces-64": [1, 16] if args.quick else [1, 16, 64]}
    rows = []
    for name, sizes in batches.items():
        for batch in sizes:
            for feats in (False, True):
                for malloc in MALLOC:
                    cmd = [sys.executable, __file__, "--case", f"{name},{batch},{int(feats)},{malloc}",
                           "--device", args.device, "--reps", str(args.reps)]
                    # PyTorch reads THP_MEM_ALLOC_ENABLE once, at its first allocation: so per process.
                    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "1" if malloc == "thp" else "0"}
                    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                    row = json.loads(res.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    print(f"{name:14s} batch {batch:3d} features {str(feats):5s} {row['malloc']:10s} "
                          f"{row['images_per_s']:8.2f} img/s  peak {row['peak_mib']:8.1f} MiB", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": __import__("torch").__version__, "device": args.device, "reps": args.reps,
            "note": "best of reps; peak = rise of peak RSS over the pre-forward RSS (CPU) "
                    "or torch.cuda.max_memory_allocated (CUDA); one subprocess per row"}

    lines = ["| config | batch | return_features | malloc | images/s | s/image | vs default malloc | peak MiB |",
             "|---|---|---|---|---|---|---|---|"]
    default = {(r["config"], r["batch"], r["return_features"]): r for r in rows if r["malloc"] == "default"}
    for r in rows:
        base = default.get((r["config"], r["batch"], r["return_features"]))
        ratio = "-" if r["malloc"] == "default" or base is None else \
            f"{r['images_per_s'] / base['images_per_s']:.2f}x"
        lines.append(f"| {r['config']} | {r['batch']} | {r['return_features']} | {r['malloc']} | {r['images_per_s']} | "
                     f"{r['seconds_per_batch'] / r['batch']:.4f} | {ratio} | {r['peak_mib']} |")
    table = "\n".join(lines)
    # The goal in one line per series: does per-image throughput hold (within 5%) as the batch grows?
    verdicts = []
    for key in sorted({(r["config"], r["return_features"], r["malloc"]) for r in rows}):
        series = [r for r in rows if (r["config"], r["return_features"], r["malloc"]) == key]
        ips = [r["images_per_s"] for r in sorted(series, key=lambda r: r["batch"])]
        holds = all(b >= 0.95 * a for a, b in zip(ips, ips[1:]))
        verdicts.append(f"- {key[0]}, features {key[1]}, malloc {key[2]}: images/s by batch "
                        f"{' -> '.join(str(v) for v in ips)}: {'holds' if holds else 'FALLS'}")
    table += "\n\nPer-image throughput as the batch grows:\n" + "\n".join(verdicts)
    write_results("generator", {"meta": meta, "rows": rows},
                  f"# Generator benchmark ({args.device})\n\n{table}\n\n{meta['note']}\n"
                  "Reproduce: `python benchmarks/generator.py`\n")
    print(table)


if __name__ == "__main__":
    main()
