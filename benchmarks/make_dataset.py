"""`make-dataset` wall time: the levers one by one, then the whole command against its baseline.

Rows (each in its own subprocess, 2 threads, the bundled 10-shot segmenter on toyfaces-64):

  compute rows, on ``--n-levers`` seeds (generation + head + the per-image statistics + PNG encoding,
  :func:`gan_partseg.jobs.generated.generate_rows`):
    baseline                  resizes in PyTorch's default layout, batch 16, ``torch.no_grad``
    channels-last resize      bilinear upsampling channels-last (the default now)
    + inference_mode          the same under ``torch.inference_mode``
    + batch 32 / + batch 64   larger batches
  stage rows: where the time of the default goes (generator forward, head, PNG encoding, Parquet writing)
  whole command, ``--n`` pairs (default 5,000, shards of 500): ``make_dataset`` in the baseline layout and as shipped

    python benchmarks/make_dataset.py [--n 5000] [--n-levers 512] [--quick]

Writes benchmarks/results/make_dataset.json and make_dataset.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time

from common import run_row, write_results

SEGMENTER = "toyfaces-64-fewshot-10c-10shot"
LEVERS = {  # name -> (channels-last resize, grad mode, batch)
    "baseline": (False, "no_grad", 16),
    "channels-last resize": (True, "no_grad", 16),
    "+ inference_mode": (True, "inference_mode", 16),
    "+ batch 32": (True, "inference_mode", 32),
    "+ batch 64": (True, "inference_mode", 64),
}


def _setup(channels_last: bool):
    import torch

    import gan_partseg.models.features as features
    from gan_partseg.models.fewshot import FewShotSegmenter

    torch.set_num_threads(2)
    features.RESIZE_CHANNELS_LAST = channels_last
    return FewShotSegmenter.from_pretrained(SEGMENTER).eval()


def lever_row(name: str, n: int) -> dict:
    import torch

    from gan_partseg.jobs.generated import generate_rows

    channels_last, grad_mode, batch = LEVERS[name]
    segmenter = _setup(channels_last)
    mode = torch.inference_mode if grad_mode == "inference_mode" else torch.no_grad
    rows_fn = generate_rows.__wrapped__  # the function inside its own grad-mode decorator
    with mode():
        rows_fn(segmenter, list(range(10_000, 10_000 + batch)), batch_size=batch)  # warm-up
        t = time.perf_counter()
        rows_fn(segmenter, list(range(n)), batch_size=batch)
        seconds = time.perf_counter() - t
    return {"kind": "lever", "variant": name, "n": n, "seconds": round(seconds, 3),
            "ms_per_pair": round(1000 * seconds / n, 2), "batch": batch, "grad_mode": grad_mode,
            "channels_last_resize": channels_last}


def stage_row(n: int) -> dict:
    """Seconds per stage of the default path, on ``n`` seeds."""
    import datasets
    import torch

    from gan_partseg.data.generated import features, png_cell
    from gan_partseg.images import tensor_to_uint8

    segmenter = _setup(True)
    seeds = list(range(n))
    times = dict.fromkeys(("latents", "generator", "head", "png", "parquet"), 0.0)

    @contextlib.contextmanager
    def timed(key):
        t = time.perf_counter()
        yield
        times[key] += time.perf_counter() - t

    cells = []
    with torch.inference_mode():
        for i in range(0, n, 16):
            with timed("latents"):
                w, noise = segmenter.generator.seeded_latents(seeds[i: i + 16], 0.7)
            with timed("generator"):
                images, feats = segmenter.generator_features(w, noise)
            with timed("head"):
                labels = segmenter(feats).labels
            with timed("png"):
                im, lab = tensor_to_uint8(images), labels.to(torch.uint8).numpy()
                cells += [{"image": png_cell(im[j]), "label": png_cell(lab[j], mode="L"), "seed": i + j,
                           "confidence": 1.0, "entropy": 0.0, "disagreement": 0.0} for j in range(len(im))]
    with timed("parquet"), tempfile.TemporaryDirectory() as d:
        datasets.Dataset.from_list(cells, features=features()).to_parquet(f"{d}/x.parquet")
    return {"kind": "stages", "variant": "stages (default)", "n": n,
            **{f"{k}_seconds": round(v, 3) for k, v in times.items()}}


def command_row(name: str, n: int) -> dict:
    from gan_partseg.jobs.generated import make_dataset

    _setup(name != "baseline")
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        make_dataset(SEGMENTER, f"{d}/out", n=n, shard_size=min(500, n), progress=False)
        seconds = time.perf_counter() - t
    return {"kind": "command", "variant": f"make_dataset ({name})", "n": n, "seconds": round(seconds, 2),
            "ms_per_pair": round(1000 * seconds / n, 2)}


def format_table(rows: list[dict]) -> str:
    base = {r["kind"]: r for r in rows if r["variant"] in ("baseline", "make_dataset (baseline)")}
    lines = ["| rows | variant | pairs | seconds | ms / pair | vs baseline |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == "stages":
            continue
        b = base.get(r["kind"])
        speed = f"{b['seconds'] / r['seconds'] * r['n'] / b['n']:.2f}x faster" if b and b is not r else "-"
        lines.append(f"| {r['kind']} | {r['variant']} | {r['n']} | {r['seconds']} | {r['ms_per_pair']} | {speed} |")
    for r in rows:
        if r["kind"] == "stages":
            total = sum(v for k, v in r.items() if k.endswith("_seconds"))
            parts = ", ".join(f"{k[:-8]} {v} s ({100 * v / total:.0f}%)" for k, v in r.items() if k.endswith("_seconds"))
            lines.append(f"\nWhere the default's time goes ({r['n']} pairs): {parts}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="pairs for the whole-command rows")
    ap.add_argument("--n-levers", type=int, default=512, help="pairs for the lever and stage rows")
    ap.add_argument("--quick", action="store_true", help="64 pairs everywhere (a smoke test)")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.n = args.n_levers = 64
    if args.row:
        kind, name, n = args.row.split("|")
        fn = {"lever": lever_row, "command": command_row}.get(kind)
        print(json.dumps(stage_row(int(n)) if kind == "stages" else fn(name, int(n))))
        return
    plan = ([("lever", name, args.n_levers) for name in LEVERS] + [("stages", "-", args.n_levers)]
            + [("command", name, args.n) for name in ("baseline", "shipped")])
    rows = []
    for kind, name, n in plan:
        row = run_row(__file__, f"{kind}|{name}|{n}", f"{kind} {name}")
        if row is not None:
            rows.append(row)
    table = format_table(rows)
    print(table)
    write_results("make_dataset", rows, f"# make-dataset wall time ({SEGMENTER}, 2 threads)\n\n{table}\n\n"
                  "Reproduce: `python benchmarks/make_dataset.py`\n")


if __name__ == "__main__":
    main()
