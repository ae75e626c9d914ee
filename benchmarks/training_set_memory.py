"""`load_training_set` peak memory (what `train-autoshot` holds for its whole run): float32 + int64 vs bytes.

Rows, each in its own subprocess (so each peak RSS is that load's own), on one synthetic labelled data set
(smooth 512 px RGB pictures and 10-class label maps, written by ``save_labelled_dataset``):

  float32 + int64 (old, baseline)   the loader as it was, kept below as ``_old_load``: ``np.stack`` of each
                                    column, images converted to float32 in [-1, 1], labels to int64.
  uint8 (new)                       ``gan_partseg.data.labelled.load_training_set`` as shipped: both columns
                                    filled into preallocated uint8 arrays, converted a batch at a time later.

    python benchmarks/training_set_memory.py [--n 1000] [--size 512]

Writes benchmarks/results/training_set_memory.json and training_set_memory.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from common import run_row, write_results

PATHS = {"old": "float32 + int64 (old, baseline)", "new": "uint8 (new)"}


def _rows(n: int, size: int):
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        phase = i / max(1, n)
        img = np.stack([np.sin(6 * xx + phase), np.cos(5 * yy - phase), np.sin(4 * (xx + yy) + 2 * phase)], -1)
        lab = (np.floor(10 * ((xx * (1 + phase) + yy) % 1))).astype(np.uint8)
        yield {"image": Image.fromarray(((img + 1) * 127.5).astype(np.uint8)),
               "label": Image.fromarray(lab, mode="L"), "seed": i}


def build(folder: Path, n: int, size: int) -> None:
    from gan_partseg.data.export import save_labelled_dataset
    from gan_partseg.labels import CLASSES_10, id2label

    save_labelled_dataset(_rows(n, size), folder, id2label(CLASSES_10), source="benchmark", size=size)


def _old_load(folder: Path):
    """The loader before this change, as far as memory goes: whole-column stacks, float32 images, int64 labels."""
    import numpy as np
    import torch

    from gan_partseg.data.export import load_hf_dataset

    ds, _ = load_hf_dataset(folder)
    ds = ds.with_format("numpy")
    images = torch.from_numpy(np.stack(ds["image"])).permute(0, 3, 1, 2).float() / 127.5 - 1
    labels = torch.from_numpy(np.stack(ds["label"]).astype(np.int64))
    return images, labels


def load_row(path: str, folder: str) -> dict:
    import datasets  # noqa: F401  (imported before the baseline is taken, as both loaders import it)
    import torch  # noqa: F401

    from gan_partseg.data.labelled import load_training_set

    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if path == "old":
        images, labels = _old_load(Path(folder))
    else:
        images, labels, _, _ = load_training_set(folder)
    seconds = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    held = images.element_size() * images.nelement() + labels.element_size() * labels.nelement()
    return {"loader": path, "n": len(images), "size": images.shape[-1], "seconds": round(seconds, 2),
            "peak_rss_rise_mb": round((peak_kb - before_kb) / 1024, 1), "held_mb": round(held / 2**20, 1),
            "images_dtype": str(images.dtype), "labels_dtype": str(labels.dtype)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="pairs in the data set")
    ap.add_argument("--size", type=int, default=512, help="image size in px (the paper's auto-shot setting: 512)")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        path, folder = args.row.split("|")
        print(json.dumps(load_row(path, folder)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="training_set_memory_") as d:
        t = time.perf_counter()
        build(Path(d) / "pairs", args.n, args.size)
        build_seconds = round(time.perf_counter() - t, 1)
        print(f"data set: {args.n} pairs at {args.size} px in {build_seconds} s", flush=True)
        for path in PATHS:
            row = run_row(__file__, f"{path}|{Path(d) / 'pairs'}", path)
            if row is not None:
                rows.append(row)
    lines = ["| loader | pairs | px | peak RSS rise (MB) | tensors held (MB) | images / labels | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {PATHS[r['loader']]} | {r['n']} | {r['size']} | {r['peak_rss_rise_mb']} | {r['held_mb']} | "
                     f"{r['images_dtype']} / {r['labels_dtype']} | {r['seconds']} |")
    per_pair = {r["loader"]: r["held_mb"] / r["n"] for r in rows}
    note = ""
    if len(per_pair) == 2:
        note = (f"\n\nHeld per pair: {per_pair['old']:.2f} MB before, {per_pair['new']:.2f} MB now; for 5,000 pairs "
                f"about {5000 * per_pair['old'] / 1024:.1f} GB before and {5000 * per_pair['new'] / 1024:.1f} GB now.")
    write_results("training_set_memory", {"n": args.n, "size": args.size, "build_seconds": build_seconds, "rows": rows},
                  f"# train-autoshot's training set in memory ({args.n} pairs, {args.size} px)\n\n" + "\n".join(lines)
                  + note + "\n\nEach row is a fresh subprocess; peak RSS rise is its `ru_maxrss` after loading minus "
                  "before.\n\nReproduce: `python benchmarks/training_set_memory.py`\n")


if __name__ == "__main__":
    main()
