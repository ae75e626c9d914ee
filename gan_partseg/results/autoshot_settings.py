"""Auto-shot U-Net settings chosen on validation faces, never on the held-out test faces.

    python scripts/autoshot_settings.py [--work runs/autoshot-results] [--out runs/autoshot-settings]

Trains the U-Net of ``scripts/autoshot_results.py`` (same widths, epochs and batch) once per setting on
the generated data set that script cached (``--work``/generated: the bundled 10-shot segmenter's labels)
and compares the settings by the validation score each run selects its best epoch with: mean IoU on
the *last* 100 HELD_OUT_SEEDS renders (true labels), which the auto-shot table never tests on (it tests
on the first 200). Rows go to docs/results/autoshot_settings.jsonl and a table to docs/results.md.
Each run resumes after an interruption (``train_autoshot`` checkpoints every epoch).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields
from pathlib import Path

from gan_partseg.files import atomic_write_text, replace_markdown_section
from gan_partseg.labels import MISS_BELOW
from gan_partseg.results.autoshot_table import ROOT, UNET
from gan_partseg.results.settings_table import best_line, setting_lines
from gan_partseg.training.autoshot import TrainAutoShotConfig, train_autoshot

#: the base of the comparison: the auto-shot table's U-Net with the loss that was the default before this
#: sweep chose plain "ce" (2026-12-03); each GRID entry changes one thing from it
BASE = {**UNET, "loss": "balanced-ce+dice"}
GRID: list[dict] = [
    {}, {"loss": "ce+dice"}, {"loss": "ce"}, {"balance": "median-freq"}, {"drop_uncertain": 0.1},
    {"widths": [32, 64, 128, 256]},
]
TABLE_CLASSES = ("eye", "eyebrow", "mouth", "nose", "ear")


def slug(change: dict) -> str:
    """A folder name for one setting: 'defaults' or e.g. 'loss=ce+dice'."""
    return "_".join(f"{k}={'-'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in change.items()) or "defaults"


def run(data: Path, out: Path, grid: list[dict] = GRID, base: dict = BASE, progress: bool = True) -> list[dict]:
    """One row per setting (``base`` changed by it): the selected epoch's validation mean / weighted /
    per-class IoU and the seconds. The "defaults" folder is the base."""
    known = {f.name for f in fields(TrainAutoShotConfig)}
    unknown = sorted({name for change in grid for name in change} - known)
    if unknown:  # before any work
        raise ValueError(f"unknown TrainAutoShotConfig field(s) {unknown}")
    rows = []
    for change in grid:
        folder = out / slug(change)
        t0 = time.time()
        train_autoshot(TrainAutoShotConfig(data=str(data), out=str(folder), **{**base, **change}), progress=progress)
        chosen = json.loads((folder / "summary.json").read_text())
        row = {"change": change, "val_mean_iou": chosen["best_val_mean_iou"],
               "val_weighted_iou": chosen["best_val_weighted_iou"], "val_per_class_iou": chosen["best_val_per_class_iou"],
               "best_epoch": chosen["best_epoch"], "n_train": chosen["n_train"], "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        print(f"  {slug(change)}: validation mean IoU {100 * row['val_mean_iou']:.1f}", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    base = next(r for r in rows if not r["change"])
    lines = ["## Auto-shot U-Net settings (chosen on validation faces)", "",
             f"Each setting changes one thing from the base: the auto-shot table's U-Net ({BASE['epochs']} epochs, widths "
             f"{BASE['widths']}) with loss `{BASE['loss']}`, the default before this comparison; today's default is "
             f"`{TrainAutoShotConfig.loss}`. All train on the same {base['n_train']} generated "
             "images; scored by the epoch each run selects: validation on the last 100 held-out renders, which "
             "the auto-shot table never tests on. IoU x 100.", "",
             "Reproduce: `python scripts/autoshot_results.py && python scripts/autoshot_settings.py`", "",
             "| setting | mean IoU | weighted IoU | " + " | ".join(TABLE_CLASSES)
             + f" | misses (IoU < {100 * MISS_BELOW:.0f}) | epoch | minutes |",
             "|" + "---|" * (6 + len(TABLE_CLASSES))]
    lines += setting_lines(rows, TABLE_CLASSES, f"**base** ({BASE['loss']})",
                           lambda r: f"{r['best_epoch']:.0f} | {r['seconds'] / 60:.1f}")
    lines += ["", best_line(rows, "base", " (one seed each: 1-2 points are within noise)")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=str(ROOT / "runs" / "autoshot-results"),
                    help="scripts/autoshot_results.py's cache (its generated/ data set is reused)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "autoshot-settings"), help="one run folder per setting")
    args = ap.parse_args()
    data = Path(args.work) / "generated"
    if not (data / "dataset.json").is_file():
        raise SystemExit(f"no generated data set in {data}: run `python scripts/autoshot_results.py` first")
    rows = run(data, Path(args.out))
    out = ROOT / "docs" / "results" / "autoshot_settings.jsonl"
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    replace_markdown_section(ROOT / "docs" / "results.md", "## Auto-shot U-Net settings", markdown(rows))
    print(f"wrote {out} and its table in docs/results.md")


if __name__ == "__main__":
    main()
