"""CelebAMask-HQ, from its released folder layout, into a labelled HF ``datasets`` folder.

Released layout (https://github.com/switchablenorms/CelebAMask-HQ)::

    ROOT/CelebA-HQ-img/<idx>.jpg                                 1024 x 1024 RGB, idx = 0 .. 29999
    ROOT/CelebAMask-HQ-mask-anno/<k>/<idx:05d>_<part>.png        512 x 512 masks, k = idx // 2000
    ROOT/CelebA-HQ-to-CelebA-mapping.txt                         header, then rows ``idx orig_idx orig_file``

Parts: skin, nose, eye_g, l_eye, r_eye, l_brow, r_brow, l_ear, r_ear, mouth, u_lip, l_lip, hair,
hat, ear_r, neck_l, neck, cloth. A face lacks the files of parts it does not show. ``ear_r`` is the
earring, ``eye_g`` the glasses, ``neck_l`` the necklace; ``l_ear`` and ``r_ear`` are the ears.

Two rules turn the overlapping part masks into one label map (``overlap``):

* ``"paper"`` (default): the paper's own loader (``utils.load_celeba_mask`` of the RepurposeGANs code).
  Each mask is read as 8-bit grey, divided by 255 and kept where ``>= 0.4`` (grey >= 102). A pixel takes
  the first class, in the priority order hair > eyebrow (l_brow, r_brow) > eye (l_eye, r_eye) > mouth
  (the paper's "lip": u_lip, l_lip, mouth) > nose > skin > ear (l_ear, r_ear) > neck > clothes (cloth),
  whose masks cover it; else background. ``eye_g``, ``hat``, ``ear_r`` and ``neck_l`` are never read. The
  3-class view is built the same way directly from the masks, eye > mouth > nose, so an eye under the
  hair is an eye there although the 10-class map calls it hair.
* ``"g-mask"``: this package's earlier rule, after the release's ``g_mask.py``: masks kept where grey / 255
  ``> 0.4`` (grey >= 103), painted in ``PART_ORDER`` (later parts over earlier ones), ``eye_g``, ``hat``,
  ``ear_r`` and ``neck_l`` painting background (a hat hides the hair under it); the 3-class view is the
  10-class map reduced (``labels.to_three_class``). (``g_mask.py`` itself paints every non-zero pixel.)

Splits (``split``): CelebA's official partition through the mapping file's ``orig_idx`` column: 162771 ..
182637 is val, 182638 and over test, the rest train; ``"all"`` takes every face and needs no mapping file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from gan_partseg.data.export import save_labelled_dataset
from gan_partseg.errors import ArgumentError, DatasetError
from gan_partseg.labels import CLASSES_3, CLASSES_10, id2label, to_three_class

PART_ORDER = ("skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth", "u_lip",
              "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
"""Every part file of the release, in the painting order of ``overlap="g-mask"`` (later wins)."""

PART_TO_CLASS = {"skin": "skin", "nose": "nose", "eye_g": "background", "l_eye": "eye", "r_eye": "eye",
                 "l_brow": "eyebrow", "r_brow": "eyebrow", "l_ear": "ear", "r_ear": "ear", "mouth": "mouth",
                 "u_lip": "mouth", "l_lip": "mouth", "hair": "hair", "hat": "background",
                 "ear_r": "background", "neck_l": "background", "neck": "neck", "cloth": "clothes"}
"""Part file -> 10-class name under ``overlap="g-mask"``."""

PAPER_PRIORITY_10 = (("hair", ("hair",)), ("eyebrow", ("l_brow", "r_brow")), ("eye", ("l_eye", "r_eye")),
                     ("mouth", ("l_lip", "u_lip", "mouth")), ("nose", ("nose",)), ("skin", ("skin",)),
                     ("ear", ("l_ear", "r_ear")), ("neck", ("neck",)), ("clothes", ("cloth",)))
"""``overlap="paper"``, 10 classes: (class, the part files it reads), highest priority first (first wins)."""

PAPER_PRIORITY_3 = (("eye", ("l_eye", "r_eye")), ("mouth", ("l_lip", "u_lip", "mouth")), ("nose", ("nose",)))
"""``overlap="paper"``, 3-class view, built directly from the masks (first wins)."""

OVERLAP_RULES = ("paper", "g-mask")
THRESHOLD = 0.4
"""Of grey / 255: ``overlap="paper"`` keeps ``>= THRESHOLD`` (grey >= 102), ``"g-mask"`` ``> THRESHOLD`` (>= 103)."""

IMAGES, MASKS, MAPPING = "CelebA-HQ-img", "CelebAMask-HQ-mask-anno", "CelebA-HQ-to-CelebA-mapping.txt"
SPLITS = ("train", "val", "test", "all")
VAL_FIRST, TEST_FIRST = 162771, 182638
"""CelebA ``orig_idx`` (mapping file, second column) where the val and the test split begin."""


class CelebAMaskError(DatasetError):
    """A folder that does not follow the released CelebAMask-HQ layout."""


def mask_folder(root: Path, idx: int) -> Path:
    return Path(root) / MASKS / str(idx // 2000)


def _read_mask(path: Path) -> np.ndarray:
    try:
        return np.asarray(Image.open(path).convert("L"), dtype=np.uint8)
    except OSError as err:
        raise CelebAMaskError(f"{path} is not a readable image: {err}") from None


def label_map(root: str | os.PathLike, idx: int, classes: int = 10, overlap: str = "paper") -> np.ndarray:
    """The (512, 512) uint8 label map of face ``idx`` (10 or 3 classes) under the ``overlap`` rule (module doc)."""
    if overlap not in OVERLAP_RULES:
        raise ArgumentError(f"overlap must be one of {', '.join(OVERLAP_RULES)}, got {overlap!r}")
    if classes not in (10, 3):
        raise ArgumentError(f"classes must be 10 or 3, got {classes}")
    root = Path(root)
    folder = mask_folder(root, idx)
    files = {p: folder / f"{idx:05d}_{p}.png" for p in PART_ORDER}
    present = {p: f for p, f in files.items() if f.is_file()}
    if not present:
        raise CelebAMaskError(f"face {idx} has no mask files: expected e.g. {files['skin']} "
                              f"(is {root / MASKS} complete?)")
    masks: dict[str, np.ndarray] = {}

    def read(part: str) -> np.ndarray | None:
        if part not in present:
            return None
        if part not in masks:
            mask = _read_mask(present[part])
            first = next(iter(masks.values()), mask)
            if mask.shape != first.shape:
                raise CelebAMaskError(f"{present[part]} is {mask.shape[1]}x{mask.shape[0]} but the other masks of "
                                      f"face {idx} are {first.shape[1]}x{first.shape[0]}")
            masks[part] = mask
        return masks[part]

    if overlap == "g-mask":
        labels = None
        for part in present:
            mask = read(part)
            if labels is None:
                labels = np.zeros(mask.shape, np.uint8)
            labels[mask.astype(np.float32) / 255.0 > THRESHOLD] = CLASSES_10.index(PART_TO_CLASS[part])
        return to_three_class(labels) if classes == 3 else labels

    priority, names = (PAPER_PRIORITY_10, CLASSES_10) if classes == 10 else (PAPER_PRIORITY_3, CLASSES_3)
    covers = {}
    for name, parts in priority:
        read_ = [m for m in map(read, parts) if m is not None]
        covers[name] = np.logical_or.reduce([m / 255.0 >= THRESHOLD for m in read_]) if read_ else None
    if masks:
        shape = next(iter(masks.values())).shape
    else:  # only files the paper never reads (a hat, an earring): all background, at their size
        with Image.open(next(iter(present.values()))) as im:
            shape = (im.height, im.width)
    labels = np.zeros(shape, np.uint8)
    taken = np.zeros(shape, bool)
    for name, cover in covers.items():
        if cover is not None:
            labels[cover & ~taken] = names.index(name)
            taken |= cover
    return labels


def list_faces(root: str | os.PathLike) -> list[int]:
    root = Path(root)
    for sub in (IMAGES, MASKS):
        if not (root / sub).is_dir():
            raise CelebAMaskError(f"{root} is not a CelebAMask-HQ folder: {sub}/ is missing (expected "
                                  f"{IMAGES}/<idx>.jpg and {MASKS}/<k>/<idx:05d>_<part>.png)")
    ids = sorted(int(p.stem) for p in (root / IMAGES).iterdir() if p.stem.isdigit() and p.suffix.lower() in
                 (".jpg", ".jpeg", ".png"))
    if not ids:
        raise CelebAMaskError(f"{root / IMAGES} holds no <idx>.jpg images")
    return ids


def split_of(orig_idx: int) -> str:
    """The official CelebA split of a CelebA ``orig_idx`` (the mapping file's second column)."""
    return "test" if orig_idx >= TEST_FIRST else "val" if orig_idx >= VAL_FIRST else "train"


def read_mapping(root: str | os.PathLike, split: str = "") -> dict[int, int]:
    """``CelebA-HQ-to-CelebA-mapping.txt`` of the release as {CelebA-HQ idx: CelebA orig_idx}."""
    path = Path(root) / MAPPING
    if not path.is_file():
        raise CelebAMaskError(f"split {split!r} needs {path} (the release's mapping of CelebA-HQ to CelebA "
                              "indices), which is missing: copy it from the release, or import --split all")
    mapping = {}
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        cols = line.split()
        if not cols or (n == 1 and not cols[0].isdigit()):  # blank lines; the header "idx orig_idx orig_file"
            continue
        if len(cols) != 3 or not (cols[0].isdigit() and cols[1].isdigit()):
            raise CelebAMaskError(f"{path} line {n} is {line.strip()[:60]!r}, not 'idx orig_idx orig_file'")
        mapping[int(cols[0])] = int(cols[1])
    return mapping


def split_faces(root: str | os.PathLike, split: str) -> list[int]:
    """The faces of ``root`` (sorted) in the official ``split`` (train, val, test; ``all``: every face)."""
    if split not in SPLITS:
        raise ArgumentError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    ids = list_faces(root)
    if split == "all":
        return ids
    mapping = read_mapping(root, split)
    unmapped = [i for i in ids if i not in mapping]
    if unmapped:
        raise CelebAMaskError(f"{Path(root) / MAPPING} has no row for face {unmapped[0]} of {Path(root) / IMAGES} "
                              f"({len(unmapped)} faces unmapped): is it the release's mapping file?")
    chosen = [i for i in ids if split_of(mapping[i]) == split]
    if not chosen:
        raise CelebAMaskError(f"no face of {Path(root) / IMAGES} is in the {split} split")
    return chosen


def import_celebamask(root: str | os.PathLike, out_dir: str | os.PathLike, size: int = 512, classes: int = 10,
                      indices: Iterable[int] | None = None, progress: bool = True, overlap: str = "paper",
                      split: str = "all"):
    """Convert (a subset of) CelebAMask-HQ into a labelled data set at ``size`` px; returns it.

    ``overlap``: ``"paper"`` or ``"g-mask"`` (module doc). ``split``: the official ``train``, ``val`` or
    ``test`` split (from the mapping file), or ``all``. ``indices``: these faces only (of the split, when
    one is named). Images are resized with bilinear filtering, label maps with nearest neighbour. ``seed``
    holds the face index.
    """

    if classes not in (10, 3):
        raise ArgumentError(f"classes must be 10 or 3, got {classes}")
    if overlap not in OVERLAP_RULES:
        raise ArgumentError(f"overlap must be one of {', '.join(OVERLAP_RULES)}, got {overlap!r}")
    if split not in SPLITS:
        raise ArgumentError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = Path(root)
    if split == "all":
        ids = list_faces(root) if indices is None else list(indices)
    else:
        ids = split_faces(root, split)
        if indices is not None:
            keep = set(ids)
            ids = [i for i in indices if i in keep]
    image_dir = root / IMAGES

    def rows():
        for idx in tqdm(ids, desc="CelebAMask-HQ", disable=not progress):
            path = next((image_dir / f"{idx}{ext}" for ext in (".jpg", ".png", ".jpeg")
                         if (image_dir / f"{idx}{ext}").is_file()), None)
            if path is None:
                raise CelebAMaskError(f"image {idx} not found in {image_dir}")
            labels = label_map(root, idx, classes, overlap)
            try:
                image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
            except OSError as err:  # UnidentifiedImageError, a truncated file
                raise CelebAMaskError(f"{path} is not a readable image: {err}") from None
            label = Image.fromarray(labels, mode="L").resize((size, size), Image.NEAREST)
            yield {"image": image, "label": label, "seed": idx}

    names = CLASSES_10 if classes == 10 else CLASSES_3
    return save_labelled_dataset(rows(), out_dir, id2label(names), size=size,
                                 source=f"CelebAMask-HQ ({root}; split {split}; overlap {overlap})")
