"""Every labelled set, one loader: PNG folders, saved labelled data sets and generated data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gan_partseg.data.export import load_hf_dataset
from gan_partseg.data.generated import load_generated_dataset
from gan_partseg.data.shots import read_id2label
from gan_partseg.errors import ArgumentError, DatasetError, MissingFileError
from gan_partseg.images import (
    list_images,
    load_image,
    load_label_map,
    matching_label,
)
from gan_partseg.labels import IGNORE_INDEX


def find_id2label(labels_dir) -> dict[int, str]:
    """id2label.json in the labels folder or its parent."""
    for folder in (Path(labels_dir), Path(labels_dir).parent):
        if (folder / "id2label.json").is_file():
            return read_id2label(folder)
    raise MissingFileError(f"no id2label.json in {labels_dir} or its parent; pass --classes 10|3")


def load_labelled(data, size: int | None = None, n: int | None = None, labels=None
                  ) -> tuple[np.ndarray, np.ndarray, dict | None, list]:
    """Images (N, H, W, 3) uint8, labels (N, H, W) uint8, id2label and notes from a labelled data set.

    ``data``: a saved labelled data set (``export-data``, ``import-data``), a generated one
    (``make-dataset``), a PNG folder (``images/``, ``labels/``, ``id2label.json``), or, with ``labels``, a
    folder of images whose label maps (same names) are in ``labels`` (id2label None when no id2label.json
    is beside them). With ``size`` every image is resized (bilinear) and every label map (nearest) to it.
    """

    folder = Path(data)
    if labels is not None:
        return _png_pairs(folder, Path(labels), size, n, required_id2label=False)
    if (folder / "images").is_dir() and (folder / "labels").is_dir():
        return _png_pairs(folder / "images", folder / "labels", size, n, required_id2label=True)
    notes: list[str] = []
    x, y, _, info = load_training_set(str(folder))
    if n is not None:
        x, y = x[:n], y[:n]
    images = x.permute(0, 2, 3, 1).numpy()  # back to the (N, H, W, 3) bytes it was read as
    labels = y.numpy()
    if size is not None and images.shape[1] != size:
        from PIL import Image

        notes.append(f"resized {images.shape[1]} px images to {size} px")
        images = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR)) for a in images])
        labels = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.NEAREST)) for a in labels])
    return images, labels, {int(k): v for k, v in info["id2label"].items()}, notes


def _png_pairs(images_dir: Path, labels_dir: Path, size: int | None, n: int | None, required_id2label: bool):
    paths = list_images(images_dir)[:n]
    try:
        id2label = find_id2label(labels_dir)
    except FileNotFoundError:
        if required_id2label:
            raise
        id2label = None
    images, labels, notes = [], [], []
    for p in paths:
        arr, note = load_image(p, size)
        images.append(arr)
        notes += note
        labels.append(load_label_map(matching_label(labels_dir, p), size or arr.shape[0]))
    return np.stack(images), np.stack(labels).astype(np.uint8), id2label, notes


def _stack_columns(ds, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The image (N, H, W, 3) and label (N, H, W) columns as uint8 arrays, filled a chunk of rows at a time, so the
    peak is the arrays plus one chunk (``np.stack`` of a whole column holds every row twice)."""
    n = len(ds)
    if n == 0:
        return np.zeros((0, 0, 0, 3), np.uint8), np.zeros((0, 0, 0), np.uint8)
    first = ds[0]
    img0, lab0 = np.asarray(first["image"]), np.asarray(first["label"])
    if img0.ndim != 3 or img0.shape[-1] != 3:
        raise DatasetError(f"{folder}: images must all be RGB of one size, got an image of shape {img0.shape}")
    if lab0.ndim != 2 or lab0.dtype.itemsize != 1:
        raise DatasetError(f"{folder}: label maps must be one-channel 8-bit class ids, got shape {lab0.shape} "
                           f"of {lab0.dtype}")
    images = np.empty((n, *img0.shape), np.uint8)
    labels = np.empty((n, *lab0.shape), np.uint8)
    for start in range(0, n, 256):
        chunk = ds[start: start + 256]
        for j, (img, lab) in enumerate(zip(chunk["image"], chunk["label"])):
            img, lab = np.asarray(img), np.asarray(lab)
            if img.shape != img0.shape:
                raise DatasetError(f"{folder}: images must all be RGB of one size: row {start + j} is {img.shape}, "
                                   f"row 0 {img0.shape}")
            if lab.shape != lab0.shape:
                raise DatasetError(f"{folder}: label maps must all be one size: row {start + j} is {lab.shape}, "
                                   f"row 0 {lab0.shape}")
            images[start + j], labels[start + j] = img, lab
    return images, labels


def load_training_set(data: str, drop_uncertain: float = 0.0, uncertainty: str = "entropy"
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Images (N, 3, H, W) uint8 0..255, labels (N, H, W) uint8 class ids (255 = ignore), seeds (N,), and a
    description with ``id2label``.

    Kept as bytes, converted a batch at a time (:func:`gan_partseg.images.byte_images_to_unit`, ``.long()``):
    5,000 pairs at 512 px hold 5.2 GB so, against 26 GB as float32 images and int64 labels.

    ``data`` is a generated data set (``gan-partseg make-dataset``: its ``segmenter`` is named in the
    description) or a labelled data set saved with ``save_to_disk`` (``gan-partseg export-data``,
    the real-data converters): columns image, label and optionally seed; ``segmenter`` is then None.
    """
    import datasets


    folder = Path(data)
    if (folder / "dataset.json").is_file():
        ds, info = load_generated_dataset(folder, drop_uncertain, uncertainty)
    elif (folder / "dataset_info.json").is_file() or (folder / "state.json").is_file():
        if drop_uncertain:
            raise ArgumentError(f"{folder} holds fixed labels with no confidence column: drop_uncertain needs a "
                                "generated data set")
        ds, id2label = load_hf_dataset(folder)
        if not id2label:
            raise DatasetError(f"{folder} stores no id2label mapping; write one into its description as "
                               "gan-partseg export-data does")
        missing = {"image", "label"} - set(ds.column_names)
        if missing:
            raise DatasetError(f"{folder} lacks the column(s) {sorted(missing)}; a labelled data set needs image and label")
        info = {"id2label": {str(k): v for k, v in id2label.items()}, "segmenter": None, "source": str(folder)}
    else:
        raise MissingFileError(f"{folder} is neither a generated data set (dataset.json) nor a saved labelled "
                               "data set (dataset_info.json); make one with gan-partseg make-dataset or export-data")
    if sorted(int(k) for k in info["id2label"]) != list(range(len(info["id2label"]))):
        raise DatasetError(f"{folder}: id2label must number the classes 0..N-1, got ids "
                           f"{sorted(int(k) for k in info['id2label'])}")
    if not isinstance(ds, datasets.Dataset):
        raise DatasetError(f"{folder} holds several splits; save the training split alone")
    ds = ds.with_format("numpy")
    arrays, raw = _stack_columns(ds, folder)
    images = torch.from_numpy(arrays).permute(0, 3, 1, 2)  # a view: (N, 3, H, W) without a copy
    # IGNORE_INDEX pixels (e.g. other objects in a PASCAL-Part crop) hold no class: the losses and metrics skip them
    top = int(np.max(raw, where=raw != IGNORE_INDEX, initial=0)) if raw.size else 0
    labels = torch.from_numpy(raw)
    if labels.shape[-2:] != images.shape[-2:]:
        raise DatasetError(f"{folder}: labels are {tuple(labels.shape[-2:])} but images {tuple(images.shape[-2:])}")
    if top >= len(info["id2label"]):
        raise DatasetError(f"{folder}: labels reach class id {top} but id2label defines "
                           f"{len(info['id2label'])} classes (pixel value {IGNORE_INDEX} alone means ignore)")
    seeds = torch.as_tensor(np.asarray(ds["seed"])) if "seed" in ds.column_names else torch.arange(len(images))
    return images, labels, seeds, info
