"""`import_celebamask` peak memory and speed as the face count grows: the old list writer against the streaming one.

Rows (each in its own subprocess, so each peak RSS is that import's own), for each face count (default 500
and 3,000):

  list (old, baseline)   the labelled-data-set writer as it was before it streamed, kept below as
                         ``_list_save_labelled_dataset``: ``rows = list(rows)``, ``Dataset.from_list``,
                         ``save_to_disk``. Every decoded face and its PNG bytes are held until the end.
  streaming (new)        ``gan_partseg.data.export.save_labelled_dataset`` as shipped: rows are encoded and
                         written 100 at a time (``WRITER_BATCH_SIZE``).

Input: a synthetic CelebAMask-HQ folder in the released layout (``CelebA-HQ-img/<idx>.jpg``,
``CelebAMask-HQ-mask-anno/<idx // 2000>/<idx:05d>_<part>.png`` at 512 px, the mapping file), built once in a
temp folder from a few template faces hard-linked per index (the importer still opens and decodes every
file). Peak RSS rise: ``ru_maxrss`` after the import minus before it (the libraries already imported).

    python benchmarks/import_memory.py [--counts 500,3000] [--size 512] [--source-size 512] [--quick]

Writes benchmarks/results/import_memory.json and import_memory.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import run_row, write_results

PATHS = ("list", "streaming")
LABELS = {"list": "list + from_list (old, baseline)", "streaming": "streaming (new)"}
MASK_SIZE = 512  # the release's masks are 512 px whatever the image size
TEMPLATES = 16
FULL_RELEASE = 30_000
PARTS = {  # part -> ellipse box (x0, y0, x1, y1) on a 512 px mask, before each template's shift
    "skin": (136, 96, 376, 400), "hair": (112, 40, 400, 200), "l_brow": (180, 196, 240, 212),
    "r_brow": (272, 196, 332, 212), "l_eye": (188, 220, 236, 244), "r_eye": (276, 220, 324, 244),
    "nose": (236, 240, 276, 310), "u_lip": (212, 326, 300, 342), "l_lip": (212, 342, 300, 360),
    "mouth": (220, 336, 292, 348), "l_ear": (112, 220, 144, 300), "r_ear": (368, 220, 400, 300),
    "neck": (196, 380, 316, 470), "cloth": (40, 440, 472, 512),
}


def _template(t: int, source_size: int, folder: Path) -> None:
    """Template face ``t``: ``folder/t.jpg`` (a smooth face-like picture with sensor-like noise, so its PNG is
    about the size of a real face's) and ``folder/t_<part>.png`` masks."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(t)
    dx, dy = (int(v) for v in rng.integers(-24, 25, 2))
    canvas = Image.new("RGB", (MASK_SIZE, MASK_SIZE), tuple(int(v) for v in rng.integers(40, 200, 3)))
    draw = ImageDraw.Draw(canvas)
    for part, (x0, y0, x1, y1) in PARTS.items():
        draw.ellipse((x0 + dx, y0 + dy, x1 + dx, y1 + dy), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        mask = Image.new("L", (MASK_SIZE, MASK_SIZE), 0)
        ImageDraw.Draw(mask).ellipse((x0 + dx, y0 + dy, x1 + dx, y1 + dy), fill=255)
        mask.save(folder / f"{t}_{part}.png")
    picture = np.asarray(canvas.filter(ImageFilter.GaussianBlur(6)).resize((source_size, source_size)), np.float32)
    picture += rng.normal(0, 6, picture.shape)
    Image.fromarray(picture.clip(0, 255).astype(np.uint8)).save(folder / f"{t}.jpg", quality=90)


def build_fixture(root: str | os.PathLike, n: int, source_size: int = 512, templates: int = TEMPLATES) -> Path:
    """A CelebAMask-HQ folder of faces 0 .. n-1 in the released layout at ``root``; returns ``root``.

    Face ``idx`` is template ``idx % templates``, its files hard-linked (copied where links fail)."""
    from gan_partseg.files import atomic_write_text

    root = Path(root)
    src = root / ".templates"
    src.mkdir(parents=True)
    for t in range(min(templates, n)):
        _template(t, source_size, src)

    def place(a: Path, b: Path) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copyfile(a, b)

    (root / "CelebA-HQ-img").mkdir()
    lines = ["idx         orig_idx    orig_file"]
    for idx in range(n):
        t = idx % templates
        place(src / f"{t}.jpg", root / "CelebA-HQ-img" / f"{idx}.jpg")
        masks = root / "CelebAMask-HQ-mask-anno" / str(idx // 2000)
        masks.mkdir(parents=True, exist_ok=True)
        for part in PARTS:
            place(src / f"{t}_{part}.png", masks / f"{idx:05d}_{part}.png")
        lines.append(f"{idx} {idx + 1} {idx + 1:06d}.jpg")
    atomic_write_text(root / "CelebA-HQ-to-CelebA-mapping.txt", "\n".join(lines) + "\n")
    return root


def _list_save_labelled_dataset(rows, out_dir, id2label_map, source, size=None, extra_columns=None, overwrite=True):
    """BASELINE ONLY: the writer before it streamed (every row in a list, then ``Dataset.from_list``), kept here
    verbatim in behaviour to measure against. Not used by the package."""
    import datasets

    from gan_partseg.errors import ArgumentError
    from gan_partseg.files import atomic_folder, atomic_write_text, check_output

    columns = {"image": datasets.Image(), "label": datasets.Image(), "seed": datasets.Value("int64")}
    columns.update(extra_columns or {})
    features = datasets.Features(columns)
    info = datasets.DatasetInfo(
        features=features,
        description=json.dumps({"id2label": {str(k): v for k, v in id2label_map.items()}, "source": source,
                                "size": size}),
    )
    check_output(out_dir, "labelled data set", overwrite)
    rows = list(rows)  # the whole data set, decoded, in memory
    if not rows:
        raise ArgumentError(f"no samples to write to {out_dir}")
    ds = datasets.Dataset.from_list(rows, features=features, info=info)
    with atomic_folder(out_dir, "labelled data set", overwrite) as tmp:
        ds.save_to_disk(str(tmp))
        atomic_write_text(tmp / "id2label.json", json.dumps({str(k): v for k, v in id2label_map.items()}, indent=2))
    return ds


def import_row(path: str, n: int, root: str, size: int) -> dict:
    """Import the first ``n`` faces of ``root`` at ``size`` px with the ``path`` writer; peak RSS rise and speed."""
    import gc
    import resource

    import datasets  # noqa: F401  (imported before the baseline is taken, as the importer imports it)

    import gan_partseg.data.celebamask as celebamask

    if path == "list":
        celebamask.save_labelled_dataset = _list_save_labelled_dataset
    ids = celebamask.list_faces(root)[:n]
    work = Path(tempfile.mkdtemp(prefix="import_memory_"))
    try:
        gc.collect()
        before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        t = time.perf_counter()
        ds = celebamask.import_celebamask(root, work / "out", size=size, indices=ids, progress=False)
        seconds = time.perf_counter() - t
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows = len(ds)
        out_bytes = sum(f.stat().st_size for f in (work / "out").rglob("*") if f.is_file())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rows != n:
        raise RuntimeError(f"{path}: wrote {rows} rows, expected {n}")
    rise_mb = (peak_kb - before_kb) / 1024
    return {"writer": path, "faces": n, "size": size, "baseline_rss_mb": round(before_kb / 1024, 1),
            "peak_rss_mb": round(peak_kb / 1024, 1), "peak_rss_rise_mb": round(rise_mb, 1),
            "rise_mb_per_face": round(rise_mb / n, 3), "seconds": round(seconds, 2),
            "faces_per_s": round(n / seconds, 2), "output_mb": round(out_bytes / 2**20, 1)}


def format_table(rows: list[dict]) -> str:
    lines = ["| faces | writer | peak RSS rise (MB) | rise / face (MB) | seconds | faces / s | output (MB) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['faces']} | {LABELS[r['writer']]} | {r['peak_rss_rise_mb']} | {r['rise_mb_per_face']} | "
                     f"{r['seconds']} | {r['faces_per_s']} | {r['output_mb']} |")
    notes = []
    for path in PATHS:  # the slope between the smallest and the largest count, carried to the full release
        mine = sorted((r for r in rows if r["writer"] == path), key=lambda r: r["faces"])
        if len(mine) >= 2 and mine[-1]["faces"] > mine[0]["faces"]:
            slope = (mine[-1]["peak_rss_rise_mb"] - mine[0]["peak_rss_rise_mb"]) / (mine[-1]["faces"] - mine[0]["faces"])
            guess = mine[0]["peak_rss_rise_mb"] + slope * (FULL_RELEASE - mine[0]["faces"])
            per_face = (f"flat ({slope:+.4f} MB per extra face)" if abs(slope) < 0.001
                        else f"{slope:.3f} MB more per extra face")
            notes.append(f"{LABELS[path]}: {per_face}, so about {guess / 1024:.1f} GB for all {FULL_RELEASE:,} faces")
    return "\n".join(lines) + ("\n\nExtrapolated peak RSS rise: " + "; ".join(notes) + "." if notes else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="500,3000", help="face counts to import (the fixture has the largest)")
    ap.add_argument("--size", type=int, default=512, help="import size in px")
    ap.add_argument("--source-size", type=int, default=512, help="fixture image size in px (the release: 1024)")
    ap.add_argument("--quick", action="store_true", help="50 and 300 faces (a smoke test)")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        path, n, root, size = args.row.split("|")
        print(json.dumps(import_row(path, int(n), root, int(size))))
        return
    counts = [50, 300] if args.quick else sorted(int(c) for c in args.counts.split(","))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="celebamask_fixture_") as d:
        t = time.perf_counter()
        root = build_fixture(Path(d) / "CelebAMask-HQ", max(counts), args.source_size)
        build_seconds = round(time.perf_counter() - t, 1)
        print(f"fixture: {max(counts)} faces in {build_seconds} s", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for n in counts:
            for path in PATHS:
                row = run_row(__file__, f"{path}|{n}|{root}|{args.size}", f"{path} {n}", env)
                if row is not None:
                    rows.append(row)
    table = format_table(rows)
    print(table)
    meta = {"counts": counts, "size": args.size, "source_size": args.source_size, "mask_size": MASK_SIZE,
            "parts_per_face": len(PARTS), "templates": TEMPLATES, "fixture_seconds": build_seconds}
    write_results("import_memory", {"meta": meta, "rows": rows},
                  f"# CelebAMask-HQ import: peak memory, list writer vs streaming writer ({args.size} px)\n\n{table}\n\n"
                  f"Input: synthetic faces in the released layout, {args.source_size} px JPEG images (the release's "
                  f"are 1024 px), {MASK_SIZE} px masks, {len(PARTS)} parts a face, {TEMPLATES} template faces "
                  f"hard-linked per index (built in {build_seconds} s). Each row is a fresh subprocess "
                  "(OMP_NUM_THREADS=1); peak RSS rise is its `ru_maxrss` after the import minus before it; faces / s "
                  "is the import's wall time (reading, label maps, PNG encoding, writing).\n\n"
                  "Reproduce: `python benchmarks/import_memory.py`\n")


if __name__ == "__main__":
    main()
