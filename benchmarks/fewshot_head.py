"""Few-shot head training step: efficient per-layer projection vs the naive stacked tensor.

Settings (random weights and random activations of the right shapes; a head
does not care what the values are):

  (a) 256 px config-f layout: 13 layers (conv1 + convs.0-11), 5376 channels, 256 px output
  (b) 1024 px config-f layout at 512 px output, the paper's setting: convs.0-15, 5056 channels

Rows, per setting and head (CNN-L, MLP with one hidden layer):

  naive                      stack every layer resized to the output, then the head (the research code)
  efficient/project-first    project each layer at its own resolution, resize, sum
  efficient/auto             + per layer, resize first where that touches fewer elements, one resize per
                             resolution (the layers there summed first); the CNN body channels-last
  efficient/auto+bf16-cache  + the cached shot activations in bfloat16 (half the cache; the math stays float32,
                             so its logits are compared with naive logits of the same bf16-rounded features)
  efficient/auto+ckpt        + activation checkpointing of the CNN body in ceil(sqrt(blocks)) pieces
  efficient/auto-no-inplace  the auto row with in-place activations turned off (what in-place saves)

Each row runs in its own subprocess: peak_bytes is the rise of the process's
peak RSS over its RSS once the model and the cached shot exist (CPU; glibc told to return
freed blocks at once, QUIET_MALLOC, so RSS follows live tensors), or
torch.cuda.max_memory_allocated over the baseline (CUDA); "cache + step" adds the cached
shot (for naive: the stacked tensor the research code caches) to it. step_seconds is one
training step (forward, backward, Adam) after a warm-up step. max_rel_diff
compares the row's logits with the naive logits (same weights, same inputs).
Where the naive path cannot run here, its row reports the bytes the stacked
tensor alone would take (peak_bytes = null, stacked_bytes set).

    python benchmarks/fewshot_head.py [--quick] [--device cpu|cuda]

--quick measures setting (a), one step per path and head. Writes
benchmarks/results/fewshot_head.json (list of rows) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import write_results

RESULTS = Path(__file__).resolve().parent / "results"
#: glibc hands every block over 128 KiB straight back to the system when freed, so a row's RSS follows its live
#: tensors (otherwise freed blocks stay in the heap for a while and the same row varies by +-30 MiB run to run)
QUIET_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def layout(setting: str) -> tuple[dict[str, tuple[int, int]], int]:
    """layer -> (channels, resolution), output size."""
    import torch

    from gan_partseg import StyleGAN2Config, StyleGAN2Generator

    size, out, skip_conv1 = {"a": (256, 256, False), "b": (1024, 512, True)}[setting]
    with torch.device("meta"):
        g = StyleGAN2Generator(StyleGAN2Config(size=size))
    shapes = g.feature_shapes()
    if skip_conv1:
        shapes.pop("conv1")
    return dict(shapes), out


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_row(setting: str, head: str, variant: str, device: str, steps: int) -> dict:
    from collections import OrderedDict

    import torch
    import torch.nn.functional as F

    from gan_partseg.models.features import stacked_bytes
    from gan_partseg.models.heads import SegmentationHead, parse_head

    shapes, out = layout(setting)
    torch.manual_seed(0)
    fields = parse_head(head)
    path, plan, ckpt, inplace, dtype = {
        "naive": ("naive", "auto", False, True, torch.float32),
        "efficient/project-first": ("efficient", "project-first", False, True, torch.float32),
        "efficient/auto": ("efficient", "auto", False, True, torch.float32),
        "efficient/auto+bf16-cache": ("efficient", "auto", False, True, torch.bfloat16),
        "efficient/auto+ckpt": ("efficient", "auto", True, True, torch.float32),
        "efficient/auto-no-inplace": ("efficient", "auto", False, False, torch.float32),
    }[variant]
    model = SegmentationHead({n: c for n, (c, _) in shapes.items()}, 10, checkpoint_body=ckpt, **fields)
    model.to(device).train()
    if not inplace:
        for m in model.modules():
            if hasattr(m, "inplace"):
                m.inplace = False
    feats = OrderedDict((n, torch.randn(1, c, r, r, device=device).to(dtype)) for n, (c, r) in shapes.items())
    target = torch.randint(0, 10, (1, out, out), device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        logits = model(feats, out, path=path, plan=plan).logits
        loss = F.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    shot_bytes = sum(f.numel() * f.element_size() for f in feats.values())
    step()  # warm-up (allocates Adam state)
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    with torch.no_grad():
        model.eval()
        mine = model(feats, out, path=path, plan=plan).logits
        ref = model(feats, out, path="naive").logits if setting == "a" else None
    diff = None if ref is None else float((mine - ref).abs().max() / ref.abs().max())
    return {"setting": setting, "head": head, "path": "naive" if path == "naive" else "efficient",
            "variant": variant, "device": device, "peak_bytes": int(max(peak, 0)),
            "step_seconds": round(min(times), 4), "max_rel_diff": diff,
            "cached_shot_bytes": int(stacked_bytes({n: c for n, (c, _) in shapes.items()}, out))
            if path == "naive" else shot_bytes,
            "stacked_bytes": stacked_bytes({n: c for n, (c, _) in shapes.items()}, out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="setting (a) only, one step per row")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row (default 1 quick, 2 full)")
    ap.add_argument("--naive-b", action="store_true", help="also try the naive path in setting (b) (needs ~20 GB)")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    args = ap.parse_args()
    steps = args.steps or (1 if args.quick else 2)

    if args.row:
        setting, head, variant = args.row.split("|")
        print(json.dumps(run_row(setting, head, variant, args.device, steps)))
        return

    heads = ["cnn-l", "mlp-1"]
    variants = ["naive", "efficient/project-first", "efficient/auto", "efficient/auto+bf16-cache",
                "efficient/auto+ckpt", "efficient/auto-no-inplace"]
    plan = [("a", h, v) for h in heads for v in variants]
    if not args.quick:
        plan += [("b", h, v) for h in heads for v in variants if v != "naive" or args.naive_b]
    rows = []
    for setting, head, variant in plan:
        if variant.endswith("ckpt") and head.startswith("mlp"):
            continue  # the MLP body is two 1x1 convs; nothing worth checkpointing
        cmd = [sys.executable, __file__, "--row", f"{setting}|{head}|{variant}", "--device", args.device,
               "--steps", str(steps)]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **QUIET_MALLOC})
        if res.returncode != 0:
            print(f"({setting}) {head} {variant}: failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"({setting}) {head:6s} {variant:26s} peak {row['peak_bytes'] / 2**20:9.1f} MiB  "
              f"step {row['step_seconds']:7.3f} s  diff {row['max_rel_diff']}", flush=True)
    if not args.quick:
        shapes, out = layout("b")
        from gan_partseg.models.features import stacked_bytes

        for head in heads:
            if not args.naive_b:
                rows.append({"setting": "b", "head": head, "path": "naive", "variant": "naive (not run)",
                             "device": args.device, "peak_bytes": None, "step_seconds": None, "max_rel_diff": None,
                             "cached_shot_bytes": stacked_bytes({n: c for n, (c, _) in shapes.items()}, out),
                             "stacked_bytes": stacked_bytes({n: c for n, (c, _) in shapes.items()}, out)})

    print(format_table(rows))
    write_results("fewshot_head", rows, f"# Few-shot head training step ({args.device}, steps per row: {steps})\n\n"
                  + format_table(rows) + "\n\nReproduce: `python benchmarks/fewshot_head.py`\n")


def format_table(rows: list[dict]) -> str:
    lines = ["| setting | head | variant | peak MiB | step s | cached shot MiB | cache + step MiB | vs naive: memory "
             "| vs naive: time | max rel diff |", "|---|---|---|---|---|---|---|---|---|---|"]
    naive = {(r["setting"], r["head"]): r for r in rows if r["path"] == "naive"}
    for r in rows:
        n = naive.get((r["setting"], r["head"]))
        mem = time_ = "-"
        if n and r is not n:
            if n["peak_bytes"] and r["peak_bytes"]:
                mem = f"{n['peak_bytes'] / r['peak_bytes']:.1f}x lower"
            elif n["peak_bytes"] is None and r["peak_bytes"]:
                mem = f"naive needs > {n['stacked_bytes'] / 2**30:.1f} GiB for the stack alone"
            if n["step_seconds"] and r["step_seconds"]:
                time_ = f"{n['step_seconds'] / r['step_seconds']:.1f}x faster"
        peak = "-" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.1f}"
        step = "-" if r["step_seconds"] is None else f"{r['step_seconds']:.3f}"
        diff = "-" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        total = "-" if r["peak_bytes"] is None else f"{(r['peak_bytes'] + r['cached_shot_bytes']) / 2**20:.1f}"
        lines.append(f"| {r['setting']} | {r['head']} | {r['variant']} | {peak} | {step} | "
                     f"{r['cached_shot_bytes'] / 2**20:.1f} | {total} | {mem} | {time_} | {diff} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
