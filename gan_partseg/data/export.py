"""Export rendered toy faces as an HF ``datasets`` data set or a folder of PNG pairs.

PNG folder layout (also what ``--images DIR --labels DIR`` options read)::

    OUT/images/0000042.png    RGB image
    OUT/labels/0000042.png    class indices (mode "L", value = class id)
    OUT/id2label.json         {"0": "background", ...}

HF data set: ``save_to_disk`` folder with columns ``image`` and ``label`` (both
``datasets.Image``, stored as lossless PNG bytes), ``seed`` (int64), and the
``id2label`` mapping in ``DatasetInfo.description`` (JSON) and ``id2label.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from gan_partseg.data.toyfaces import HELD_OUT_SEEDS, TRAIN_SEEDS, render
from gan_partseg.errors import ArgumentError, DatasetError, check_count
from gan_partseg.files import atomic_folder, atomic_write_text, check_output
from gan_partseg.images import save_image
from gan_partseg.labels import CLASSES_3, CLASSES_10, id2label, to_three_class


def parse_seeds(spec: str, n: int | None = None) -> range:
    """'train', 'held-out' or 'A:B' -> a range of seeds (the first ``n`` of it when given)."""
    if spec == "train":
        seeds = TRAIN_SEEDS
    elif spec in ("held-out", "heldout", "test"):
        seeds = HELD_OUT_SEEDS
    else:
        try:
            a, b = (int(x) for x in spec.split(":"))
        except ValueError:
            raise ArgumentError(f"seeds must be 'train', 'held-out' or 'START:STOP', got {spec!r}") from None
        seeds = range(a, b)
    if n is not None:
        check_count("n", n)
        if n > len(seeds):
            raise ArgumentError(f"asked for {n} seeds but {spec!r} has only {len(seeds)}")
        seeds = seeds[:n]
    return seeds


def _render_labels(seed: int, size: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    image, labels = render(seed, size)
    if classes == 3:
        labels = to_three_class(labels)
    elif classes != 10:
        raise ArgumentError(f"classes must be 10 or 3, got {classes}")
    return image, labels


def class_names(classes: int) -> tuple[str, ...]:
    return CLASSES_10 if classes == 10 else CLASSES_3


def export_png(seeds: Iterable[int], out_dir: str | Path, size: int = 64, classes: int = 10,
               progress: bool = True, overwrite: bool = True) -> Path:
    """Write PNG pairs and ``id2label.json``; files already there are re-written identically. ``out_dir``
    must be new, empty or (with ``overwrite``) an earlier PNG pairs folder."""
    out = check_output(out_dir, "PNG pairs folder", overwrite)
    seeds = list(seeds)
    for seed in tqdm(seeds, desc="export png", disable=not progress):
        image, labels = _render_labels(seed, size, classes)
        save_image(out / "images" / f"{seed:07d}.png", image)
        save_image(out / "labels" / f"{seed:07d}.png", Image.fromarray(labels, mode="L"))
    atomic_write_text(out / "id2label.json", json.dumps(id2label(class_names(classes)), indent=2))
    return out


def export_hf_dataset(seeds: Iterable[int], out_dir: str | Path, size: int = 64, classes: int = 10,
                      progress: bool = True):
    """Build and ``save_to_disk`` a ``datasets.Dataset`` of (image, label, seed); returns the data set."""
    seeds = list(seeds)
    names = class_names(classes)

    def rows():
        for seed in tqdm(seeds, desc="export dataset", disable=not progress):
            image, labels = _render_labels(seed, size, classes)
            yield {"image": Image.fromarray(image), "label": Image.fromarray(labels, mode="L"), "seed": seed}

    return save_labelled_dataset(rows(), out_dir, id2label(names), source="gan_partseg toyfaces", size=size)


def save_labelled_dataset(rows: Iterable[dict], out_dir: str | Path, id2label_map: dict[int, str], source: str,
                          size: int | None = None, extra_columns: dict | None = None, overwrite: bool = True):
    """Write rows {"image": PIL RGB, "label": PIL L (class ids), "seed": int, ...} as a labelled data set.

    The one format every labelled data set of this package uses (rendered toy faces, CelebAMask-HQ,
    PASCAL-Part): ``save_to_disk`` folder, lossless PNG image and label columns, ``id2label`` in the
    description and in ``id2label.json``. Written to a temp folder, then swapped in.
    """
    import datasets

    columns = {"image": datasets.Image(), "label": datasets.Image(), "seed": datasets.Value("int64")}
    columns.update(extra_columns or {})
    features = datasets.Features(columns)
    info = datasets.DatasetInfo(
        features=features,
        description=json.dumps({"id2label": {str(k): v for k, v in id2label_map.items()}, "source": source,
                                "size": size}),
    )
    check_output(out_dir, "labelled data set", overwrite)  # before the rows are made: nothing is lost to a refusal
    rows = list(rows)
    if not rows:
        raise ArgumentError(f"no samples to write to {out_dir}")
    ds = datasets.Dataset.from_list(rows, features=features, info=info)
    with atomic_folder(out_dir, "labelled data set", overwrite) as tmp:
        ds.save_to_disk(str(tmp))
        atomic_write_text(tmp / "id2label.json", json.dumps({str(k): v for k, v in id2label_map.items()}, indent=2))
    return ds


def load_hf_dataset(path: str | Path):
    """``datasets.load_from_disk`` plus the stored ``id2label`` (as ``ds.id2label``-style tuple)."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError) as err:  # a missing arrow file, a damaged state.json, pyarrow's errors
        why = str(err).partition("\n")[0]
        raise DatasetError(f"{path} is not a readable saved data set ({type(err).__name__}: {why}): write it again "
                           "(gan-partseg export-data / import-data)") from err
    try:
        meta = json.loads(ds.info.description or "{}")
        labels = {int(k): v for k, v in meta.get("id2label", {}).items()}
    except (ValueError, AttributeError, TypeError) as err:
        raise DatasetError(f"{path}: its description is not the JSON export-data writes ({err}); write it again "
                           "(gan-partseg export-data / import-data)") from None
    return ds, labels
