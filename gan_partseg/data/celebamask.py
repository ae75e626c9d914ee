"""CelebAMask-HQ, from its released folder layout, into a labelled HF ``datasets`` folder.

Released layout (https://github.com/switchablenorms/CelebAMask-HQ)::

    ROOT/CelebA-HQ-img/<idx>.jpg                                 1024 x 1024 RGB, idx = 0 .. 29999
    ROOT/CelebAMask-HQ-mask-anno/<k>/<idx:05d>_<part>.png        512 x 512 masks, k = idx // 2000

Parts: skin, nose, eye_g, l_eye, r_eye, l_brow, r_brow, l_ear, r_ear, mouth, u_lip, l_lip, hair,
hat, ear_r, neck_l, neck, cloth. A face lacks the files of parts it does not show.

Label maps (docs/method.md section 6): each mask is binarised at 0.4 (pixel > 0.4 * 255) and painted in
the order above, later parts over earlier ones (the order of the data set's own ``g_mask.py``), into
the 10-class schema: skin; hair; eye = l_eye + r_eye; eyebrow = l_brow + r_brow; mouth = mouth +
u_lip + l_lip; nose; ear = l_ear + r_ear; neck; clothes = cloth; ``eye_g``, ``hat``, ``ear_r`` and
``neck_l`` paint background (so a hat hides the hair under it). The 3-class view maps eye, mouth,
nose and everything else to background.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from gan_partseg.data.export import save_labelled_dataset
from gan_partseg.errors import DatasetError
from gan_partseg.labels import CLASSES_3, CLASSES_10, id2label, to_three_class

PART_ORDER = ("skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth", "u_lip",
              "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
"""Painting order of the released masks (later wins)."""

PART_TO_CLASS = {"skin": "skin", "nose": "nose", "eye_g": "background", "l_eye": "eye", "r_eye": "eye",
                 "l_brow": "eyebrow", "r_brow": "eyebrow", "l_ear": "ear", "r_ear": "ear", "mouth": "mouth",
                 "u_lip": "mouth", "l_lip": "mouth", "hair": "hair", "hat": "background",
                 "ear_r": "background", "neck_l": "background", "neck": "neck", "cloth": "clothes"}
THRESHOLD = 0.4
IMAGES, MASKS = "CelebA-HQ-img", "CelebAMask-HQ-mask-anno"


class CelebAMaskError(DatasetError):
    """A folder that does not follow the released CelebAMask-HQ layout."""


def mask_folder(root: Path, idx: int) -> Path:
    return Path(root) / MASKS / str(idx // 2000)


def label_map(root: str | os.PathLike, idx: int, classes: int = 10) -> np.ndarray:
    """The (512, 512) uint8 label map of face ``idx`` (10 or 3 classes)."""
    root = Path(root)
    folder = mask_folder(root, idx)
    files = {p: folder / f"{idx:05d}_{p}.png" for p in PART_ORDER}
    present = {p: f for p, f in files.items() if f.is_file()}
    if not present:
        raise CelebAMaskError(f"face {idx} has no mask files: expected e.g. {files['skin']} "
                              f"(is {root / MASKS} complete?)")
    labels = None
    for part, path in present.items():
        try:
            mask = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
        except OSError as err:
            raise CelebAMaskError(f"{path} is not a readable image: {err}") from None
        if labels is None:
            labels = np.zeros(mask.shape, np.uint8)
        elif mask.shape != labels.shape:
            raise CelebAMaskError(f"{path} is {mask.shape[1]}x{mask.shape[0]} but the other masks of face {idx} "
                                  f"are {labels.shape[1]}x{labels.shape[0]}")
        labels[mask > THRESHOLD] = CLASSES_10.index(PART_TO_CLASS[part])
    return to_three_class(labels) if classes == 3 else labels


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


def import_celebamask(root: str | os.PathLike, out_dir: str | os.PathLike, size: int = 512, classes: int = 10,
                      indices: Iterable[int] | None = None, progress: bool = True):
    """Convert (a subset of) CelebAMask-HQ into a labelled data set at ``size`` px; returns it.

    Images are resized with bilinear filtering, label maps with nearest neighbour. ``seed`` holds the
    face index.
    """

    if classes not in (10, 3):
        raise ValueError(f"classes must be 10 or 3, got {classes}")
    root = Path(root)
    ids = list_faces(root) if indices is None else list(indices)
    image_dir = root / IMAGES

    def rows():
        for idx in tqdm(ids, desc="CelebAMask-HQ", disable=not progress):
            path = next((image_dir / f"{idx}{ext}" for ext in (".jpg", ".png", ".jpeg")
                         if (image_dir / f"{idx}{ext}").is_file()), None)
            if path is None:
                raise CelebAMaskError(f"image {idx} not found in {image_dir}")
            labels = label_map(root, idx, classes)
            image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
            label = Image.fromarray(labels, mode="L").resize((size, size), Image.NEAREST)
            yield {"image": image, "label": label, "seed": idx}

    names = CLASSES_10 if classes == 10 else CLASSES_3
    return save_labelled_dataset(rows(), out_dir, id2label(names), source=f"CelebAMask-HQ ({root})", size=size)
