"""The part detector behind the "does the generator draw every part?" figure.

A U-Net trained on rendered toy faces with their true labels (never on generated images), so it
knows what each part looks like when drawn as the renderer draws it. ``ship_embedded_gan.py`` runs
it over generated samples and over held-out rendered faces and compares how often each part shows
up (``gan_partseg.evaluation.frechet.part_presence_report``).

    python scripts/part_detector.py            # train it once (about 10-15 min on 2 cores), resumable

Data: TRAIN_SEEDS[800_000 : 800_000 + n], which nothing else uses (GAN training takes the first 20,000,
the supervised bound of autoshot_results.py 600,000 onwards up to 605,000). Model selection: the tail of
HELD_OUT_SEEDS, as for every U-Net here. Trained in runs/part-detector (untracked); its best epoch is copied
to reproduce/part-detector (tracked, about 2 MB), which every reader loads.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from gan_partseg.data import TRAIN_SEEDS
from gan_partseg.data.export import export_hf_dataset
from gan_partseg.files import atomic_folder
from gan_partseg.models.autoshot import AutoShotSegmenter
from gan_partseg.results.cache import REPRODUCE, ROOT
from gan_partseg.training.autoshot import TrainAutoShotConfig, train_autoshot
from gan_partseg.visualize import bar_chart

WORK = ROOT / "runs" / "part-detector"
TRACKED = REPRODUCE / "part-detector"
DETECTOR_SEEDS = TRAIN_SEEDS[800_000:]


def train_part_detector(work: Path = WORK, n: int = 4000, epochs: int = 8, widths: tuple[int, ...] = (16, 32, 64, 128),
                        size: int = 64) -> Path:
    """Render ``n`` labelled faces and train the detector into ``work``; returns its best folder."""
    data = work / "rendered"
    if not (data / "dataset_info.json").exists():
        export_hf_dataset(DETECTOR_SEEDS[:n], data, size=size, classes=10)
    # plain CE, as the tracked detector was trained (before the balanced default)
    return train_autoshot(TrainAutoShotConfig(data=str(data), out=str(work / "run"), widths=list(widths), epochs=epochs,
                                              loss="ce", batch=32, n_val=100))


def load_part_detector(folder: Path = TRACKED) -> AutoShotSegmenter:
    """The trained detector (the tracked copy by default); says how to make it when it is missing."""
    if not (Path(folder) / "config.json").exists():
        raise SystemExit(f"no part detector at {folder}: train it first with `python scripts/part_detector.py`")
    return AutoShotSegmenter.from_pretrained(folder).eval()


def track(best: Path, tracked: Path = TRACKED) -> Path:
    """Copy the best epoch's model folder to the tracked place (whole folder swapped at once)."""
    with atomic_folder(tracked, "model folder") as tmp:
        shutil.copytree(best, tmp, dirs_exist_ok=True)
    return tracked


def presence_chart(parts: dict, title: str):
    """Bar chart of ``part_presence_report(...)["parts"]``: per part, the share of images showing it."""
    names = list(parts)
    series = {"generated": [parts[n]["generated_present"] for n in names],
              "rendered (detected)": [parts[n]["rendered_present"] for n in names],
              "rendered (true)": [parts[n]["true_present"] for n in names]}
    return bar_chart(names, series, title=title)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=str(WORK))
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    best = train_part_detector(Path(args.work), args.n, args.epochs)
    print(f"part detector: {best}, tracked copy: {track(best)}")


if __name__ == "__main__":
    main()
