"""Export rendered toy faces as an HF ``datasets`` data set or a folder of PNG pairs.

PNG folder layout (also what ``--images DIR --labels DIR`` options read)::

    OUT/images/0000042.png    RGB image
    OUT/labels/0000042.png    class indices (mode "L", value = class id)
    OUT/id2label.json         {"0": "background", ...}

HF data set: ``save_to_disk`` folder with columns ``image`` and ``label`` (both
``datasets.Image``, stored as lossless PNG bytes), ``seed`` (int64), and the
``id2label`` mapping in ``DatasetInfo.description`` (JSON) and ``id2label.json``. Written row by row
(:func:`save_labelled_dataset`), so importing all 30,000 CelebAMask-HQ faces takes no more memory than 500.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator
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


WRITER_BATCH_SIZE = 100
"""Rows a labelled data set's writer encodes and holds before it writes them out: its memory, about 100 PNG
pairs (~50 MB at 512 px), whatever the number of rows."""

MAX_SHARD_BYTES = 500_000_000
"""Encoded bytes per ``data-*.arrow`` shard, as ``Dataset.save_to_disk`` aims for (its default "500MB")."""


def labelled_features(extra_columns: dict | None = None):
    """``datasets.Features`` of a labelled data set: image, label (``datasets.Image``), seed (int64), then
    ``extra_columns`` (name -> feature)."""
    import datasets

    columns = {"image": datasets.Image(), "label": datasets.Image(), "seed": datasets.Value("int64")}
    columns.update(extra_columns or {})
    return datasets.Features(columns)


def labelled_info(features, id2label_map: dict[int, str], source: str, size: int | None = None):
    """The ``datasets.DatasetInfo`` of a labelled data set: ``features`` and a JSON description holding
    ``id2label`` (str keys), ``source`` and ``size``."""
    import datasets

    return datasets.DatasetInfo(
        features=features,
        description=json.dumps({"id2label": {str(k): v for k, v in id2label_map.items()}, "source": source,
                                "size": size}),
    )


def save_labelled_dataset(rows: Iterable[dict], out_dir: str | Path, id2label_map: dict[int, str], source: str,
                          size: int | None = None, extra_columns: dict | None = None, overwrite: bool = True):
    """Write rows {"image": PIL RGB, "label": PIL L (class ids), "seed": int, ...} as a labelled data set.

    The one format every labelled data set of this package uses (rendered toy faces, CelebAMask-HQ,
    PASCAL-Part): ``save_to_disk`` folder, lossless PNG image and label columns, ``id2label`` in the
    description and in ``id2label.json``. Written to a temp folder, then swapped in. ``rows`` is consumed
    lazily, :data:`WRITER_BATCH_SIZE` encoded rows at a time, so memory stays flat however many rows there
    are. Returns the data set read back (memory-mapped) from ``out_dir``.
    """
    import datasets

    features = labelled_features(extra_columns)
    info = labelled_info(features, id2label_map, source, size)
    check_output(out_dir, "labelled data set", overwrite)  # before the rows are made: nothing is lost to a refusal
    rows = iter(rows)
    first = next(rows, None)  # an empty iterator is refused before a temp folder exists
    if first is None:
        raise ArgumentError(f"no samples to write to {out_dir}")
    with atomic_folder(out_dir, "labelled data set", overwrite) as tmp:
        _write_saved_dataset(itertools.chain([first], rows), tmp, features, info)
        atomic_write_text(tmp / "id2label.json", json.dumps({str(k): v for k, v in id2label_map.items()}, indent=2))
    return datasets.load_from_disk(str(out_dir))


def _digest_cells(digest, value) -> int:
    """Feed an encoded row (nested dicts of bytes, str, int, None) into ``digest``; returns its bytes' length."""
    if isinstance(value, bytes):
        digest.update(value)
        return len(value)
    if isinstance(value, dict):
        total = 0
        for k in sorted(value):
            digest.update(k.encode())
            total += _digest_cells(digest, value[k])
        return total
    digest.update(repr(value).encode())
    return 0


def _write_saved_dataset(rows: Iterator[dict], folder: Path, features, info) -> None:
    """Stream ``rows`` into the empty ``folder`` as the files ``Dataset.save_to_disk`` writes.

    ``data-XXXXX-of-YYYYY.arrow`` shards of about :data:`MAX_SHARD_BYTES` (Arrow IPC streams, written by
    ``datasets``' own ``ArrowWriter`` in batches of :data:`WRITER_BATCH_SIZE` rows), ``state.json`` and
    ``dataset_info.json``. Why not ``Dataset.from_generator`` + ``save_to_disk``: that writes every row twice
    (a cache file, then the copy), and the copy pages the whole memory-mapped cache file into the process.
    The fingerprint in ``state.json`` is a hash of the encoded rows, so the same rows give the same one.
    """
    from datasets.arrow_writer import ArrowWriter
    from datasets.utils.py_utils import asdict

    digest = hashlib.blake2b(digest_size=8)  # 16 hex digits, like datasets' own fingerprints
    parts: list[Path] = []
    writer = None
    shard_rows = shard_bytes = 0
    try:
        for row in rows:
            if writer is None:
                parts.append(folder / f".shard-{len(parts):05d}.arrow")  # renamed once the shard count is known
                writer = ArrowWriter(features=features, path=str(parts[-1]), writer_batch_size=WRITER_BATCH_SIZE,
                                     embed_local_files=True)  # images given by path are stored as bytes, as save_to_disk does
                shard_rows = shard_bytes = 0
            cells = features.encode_example(row)  # PIL images -> PNG bytes now, so only bytes wait in the batch
            shard_bytes += _digest_cells(digest, cells)
            writer.write(cells)
            shard_rows += 1
            if shard_rows % WRITER_BATCH_SIZE == 0 and shard_bytes >= MAX_SHARD_BYTES:
                writer.finalize()
                writer = None
        if writer is not None:
            writer.finalize()
            writer = None
    finally:
        if writer is not None:  # an error in the rows: close the file; atomic_folder removes the temp folder
            writer.close()
    names = [f"data-{i:05d}-of-{len(parts):05d}.arrow" for i in range(len(parts))]
    for part, name in zip(parts, names):
        os.replace(part, folder / name)
    # state.json and dataset_info.json exactly as save_to_disk writes them for a fresh, unformatted data set
    state = {"_data_files": [{"filename": name} for name in names], "_fingerprint": digest.hexdigest(),
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
             "_split": None}
    atomic_write_text(folder / "state.json", json.dumps(state, indent=2, sort_keys=True))
    info_dict = asdict(info)
    atomic_write_text(folder / "dataset_info.json", json.dumps({k: info_dict[k] for k in sorted(info_dict)}, indent=2))


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
