"""The generated data set format (Parquet shards + ``dataset.json``) and its loader.

A data set written by :func:`gan_partseg.jobs.generated.make_dataset`::

    OUT/dataset.json                     what the data set is (segmenter, n, shard size, id2label, ...)
    OUT/data/train-00003-of-00010.parquet   columns: image (PNG), label (PNG, class ids), seed,
                                         confidence (mean max-probability), entropy (mean, nats),
                                         disagreement (mean Jensen-Shannon between ensemble members, or 0)

Filtering the least certain samples happens at load time (:func:`load_generated_dataset`), so
shards stay resumable.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from gan_partseg.errors import ArgumentError, DatasetError, MissingFileError

FORMAT_VERSION = 1


def png_cell(array: np.ndarray, mode: str | None = None) -> dict:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def features():
    import datasets

    return datasets.Features({
        "image": datasets.Image(), "label": datasets.Image(), "seed": datasets.Value("int64"),
        "confidence": datasets.Value("float32"), "entropy": datasets.Value("float32"),
        "disagreement": datasets.Value("float32"),
    })


def shard_path(out: Path, index: int, total: int) -> Path:
    return Path(out) / "data" / f"train-{index:05d}-of-{total:05d}.parquet"


def shard_complete(path: Path, expected_rows: int) -> bool:
    """Whether the shard reads whole (every page, not only the footer) with ``expected_rows`` rows."""
    return shard_problem(path, expected_rows) is None


def shard_problem(path: Path, expected_rows: int | None = None) -> str | None:
    """None for a good shard, else what is wrong with it (missing, unreadable, too few rows)."""
    if not path.is_file():
        return "missing"
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).num_rows  # reads the pages too: a damaged page is found here, not in training
    except Exception as err:  # noqa: BLE001 -- any failure to read means a damaged shard, redone by make-dataset
        return f"unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    if expected_rows is not None and rows != expected_rows:
        return f"{rows} rows where {expected_rows} were written"
    return None


def load_generated_dataset(folder: str | os.PathLike, drop_uncertain: float = 0.0, by: str = "entropy"):
    """The data set as a ``datasets.Dataset`` (+ its description), optionally without the least certain samples.

    drop_uncertain: fraction in [0, 1) to drop, ranked by ``by`` ("entropy" or "disagreement", higher = less certain).
    """
    import datasets

    folder = Path(folder)
    info_path = folder / "dataset.json"
    if not info_path.is_file():
        raise MissingFileError(f"{folder} is not a generated data set (no dataset.json); make one with "
                               "gan-partseg make-dataset")
    try:
        info = json.loads(info_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DatasetError(f"{info_path} is not valid JSON ({err}): rerun the make-dataset command that wrote "
                           f"{folder}") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{info_path} is not a make-dataset description (a JSON object)")
    if not info.get("complete"):
        raise DatasetError(f"{folder} is incomplete (missing shards {info.get('missing_shards', '?')}); "
                           "rerun the same make-dataset command to finish it")
    files = sorted(str(p) for p in (folder / "data").glob("train-*.parquet"))
    if not files:
        raise DatasetError(f"{folder / 'data'} holds no train-*.parquet shards: rerun the make-dataset command that "
                           f"wrote {folder}")
    try:
        ds = datasets.Dataset.from_parquet(files, features=features())
    except Exception:  # name the damaged shard instead of datasets' DatasetGenerationError
        bad = [(f, why) for f in files if (why := shard_problem(Path(f))) is not None]
        if not bad:
            raise
        f, why = bad[0]
        raise DatasetError(f"{f} is {why}: rerun the make-dataset command that wrote {folder} (same settings); "
                           f"it rewrites only the damaged shard{'s' if len(bad) > 1 else ''} "
                           f"({len(bad)} of {len(files)})") from None
    if drop_uncertain:
        if not 0 <= drop_uncertain < 1:
            raise ArgumentError("drop_uncertain must be in [0, 1)")
        if by not in ("entropy", "disagreement"):
            raise ArgumentError("by must be 'entropy' or 'disagreement'")
        scores = np.asarray(ds[by])
        keep = np.argsort(scores, kind="stable")[: int(round(len(scores) * (1 - drop_uncertain)))]
        ds = ds.select(sorted(keep.tolist()))
    return ds, info
