"""Label schemas (CelebAMask-HQ 10-class and the 3-class view) and their palettes."""

from __future__ import annotations

import numpy as np

CLASSES_10: tuple[str, ...] = (
    "background", "skin", "hair", "eye", "eyebrow", "mouth", "nose", "ear", "neck", "clothes",
)
"""The 10-class face schema of docs/method.md section 6, in index order."""

CLASSES_3: tuple[str, ...] = ("background", "eye", "mouth", "nose")
"""The 3-class task (eye, mouth, nose) plus background."""

# 10-class index -> 3-class index
TEN_TO_THREE = np.array([0, 0, 0, 1, 0, 2, 3, 0, 0, 0], dtype=np.uint8)

PALETTE_10 = np.array(
    [[0, 0, 0], [255, 204, 153], [102, 51, 0], [0, 128, 255], [153, 0, 204],
     [255, 0, 85], [255, 170, 0], [0, 204, 102], [255, 255, 102], [51, 102, 204]],
    dtype=np.uint8,
)
PALETTE_3 = PALETTE_10[[0, 3, 5, 6]]

IGNORE_INDEX = 255
"""Label id of pixels that belong to no class of the schema and are scored and trained on by nobody: the
loss (``training.losses``) and ``evaluate`` (``evaluation.metrics``) skip them. Label maps are uint8, so
it is the one id no schema (at most 255 classes, ids 0..254) can take. Defined here, below every layer
that writes or reads it (importers, metrics, losses)."""


MISS_BELOW = 0.20
"""A class scored under this IoU (0..1) is named as *missed* by every printout, card and table."""


def missed_classes(per_class_iou: dict[str, float | None], below: float = MISS_BELOW) -> dict[str, float]:
    """The classes a model misses: present in the truth (IoU not None) but scored under ``below``.

    per_class_iou: class name -> IoU in [0, 1] (None: the class is absent from truth and prediction).
    """
    return {c: v for c, v in per_class_iou.items() if v is not None and v < below}


def misses_text(per_class_iou: dict[str, float | None], below: float = MISS_BELOW) -> str:
    """``"misses: eye 0.0, eyebrow 3.1"`` (IoU x 100), or ``""`` when every class scores ``below`` or more."""
    missed = missed_classes(per_class_iou, below)
    return "misses: " + ", ".join(f"{c} {100 * v:.1f}" for c, v in missed.items()) if missed else ""


def counted(n: int, noun: str) -> str:
    """``"1 shot"``, ``"5 shots"``: a count with its noun in the right number (nouns that take an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


MIRROR_PREFIXES: tuple[tuple[str, str], ...] = (("left_", "right_"), ("left", "right"), ("l_", "r_"), ("l", "r"))
"""Name prefixes of a left / right class pair: CelebAMask-HQ's ``l_eye`` / ``r_eye``, PASCAL-Part's ``leye`` / ``reye``."""


def mirror_classes(id2label: dict[int, str]) -> np.ndarray:
    """Lookup table (256,) uint8: class id -> its id in the left-right mirrored image.

    A class named with a left prefix (``MIRROR_PREFIXES``) swaps with the class of the same name and the right
    prefix when the schema holds both (``l_eye`` <-> ``r_eye``); every other id, 255 (ignore) included, maps to
    itself. The 10- and 3-class face schemas have no sided class, so mirroring only flips their maps.
    """
    table = np.arange(256, dtype=np.uint8)
    ids = {name: i for i, name in id2label.items()}
    for name, i in ids.items():
        for left, right in MIRROR_PREFIXES:
            if name.startswith(left) and right + name[len(left):] in ids:
                j = ids[right + name[len(left):]]
                table[i], table[j] = j, i
                break
    return table


def mirror_label_map(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(H, W) label map of the left-right mirrored image: columns reversed, sided classes swapped (``table``)."""
    return np.ascontiguousarray(table[np.asarray(labels)[:, ::-1]])


def id2label(classes: tuple[str, ...] | list[str]) -> dict[int, str]:
    return {i: c for i, c in enumerate(classes)}


def to_three_class(labels: np.ndarray) -> np.ndarray:
    """Map 10-class label maps (any shape, values 0..9) to the 3-class view (0..3)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES_10)):
        raise ValueError(f"10-class labels must lie in [0, 9], got range [{labels.min()}, {labels.max()}]")
    return TEN_TO_THREE[labels]


def palette_for(n_classes: int) -> np.ndarray:
    """A palette (n_classes, 3) uint8: the 10- or 3-class palette, else a generated one."""
    if n_classes == len(CLASSES_3):
        return PALETTE_3
    if n_classes <= len(PALETTE_10):
        return PALETTE_10[:n_classes]
    rng = np.random.default_rng(0)
    return np.concatenate([PALETTE_10, rng.integers(0, 256, (n_classes - len(PALETTE_10), 3), dtype=np.uint8)])
