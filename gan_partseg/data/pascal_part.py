"""PASCAL-Part car and horse, from the released ``.mat`` annotations, into labelled HF ``datasets``.

Released layout: ``Annotations_Part/<imname>.mat`` (PASCAL-Part, Chen et al. 2014) beside the
PASCAL VOC 2010 images ``JPEGImages/<imname>.jpg``. Each ``.mat`` holds a struct ``anno`` with
``imname`` and ``objects``; every object has ``class`` (e.g. ``car``), ``class_ind``, ``mask``
(H x W) and ``parts`` (``part_name``, ``mask``).

Part classes (the grouping of the paper's car and horse experiments; **ours** where the paper is
silent on the exact part names):

* car: background, body (front/left/right/back/roof sides, mirrors, doors, and any object pixel no
  part covers), light (head lights), plate (front and back licence plates), wheel, window;
* horse: background, head (head, eyes, ears, muzzle), leg (upper and lower legs, hooves),
  neck+torso, tail; horse pixels no part covers stay background.

Overlapping part masks are painted largest first, so a small part (a plate on a door) stays visible.
Each object instance of the class becomes one sample: a square crop around its box (10% margin,
zero padding outside the photo), resized to ``size`` (bilinear image, nearest labels). ``seed``
holds a running index; ``source`` the image name and object number.

Other objects in a crop (:func:`crop_labels`) follow the release's ``mat2map.m``, which paints the
objects in file order so that a later object occludes the earlier ones: a pixel belongs to the *last*
object whose silhouette (``mask``) covers it (:func:`instance_owner`). An object keeps its part labels
only where no later object covers it; pixels of an occluder of another class are background (0).
Pixels that belong to another instance of the *same* class are :data:`~gan_partseg.labels.IGNORE_INDEX`
(255), not background: another car's wheel is not "no car", and neither training nor ``evaluate`` reads
255 (on one real file another car filled 2,121 of a crop's 7,396 px). Pixels of objects of other
classes stay background. The crop box and ``min_pixels`` still use the whole silhouette.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from gan_partseg.data.export import save_labelled_dataset
from gan_partseg.errors import ArgumentError, DatasetError
from gan_partseg.labels import IGNORE_INDEX, id2label

SCHEMAS: dict[str, dict] = {
    "car": {
        "classes": ("background", "body", "light", "plate", "wheel", "window"),
        "parts": [(r"(front|left|right|back|roof)side|(left|right)mirror|door(_\d+)?", "body"),
                  (r"headlight(_\d+)?", "light"), (r"[fb]liplate", "plate"), (r"wheel(_\d+)?", "wheel"),
                  (r"window(_\d+)?", "window")],
        "fill": "body",
    },
    "horse": {
        "classes": ("background", "head", "leg", "neck+torso", "tail"),
        "parts": [(r"head|[lr]eye|[lr]ear|muzzle", "head"), (r"[lr][fb][ul]leg|[lr][fb]ho", "leg"),
                  (r"neck|torso", "neck+torso"), (r"tail", "tail")],
        "fill": "background",
    },
}


class PascalPartError(DatasetError):
    """An annotation file that is not PASCAL-Part's, or a part name outside the schema."""


def _text(value) -> str:
    arr = np.asarray(value)
    return str(arr.reshape(-1)[0]) if arr.size else ""


def read_annotation(path: str | os.PathLike) -> tuple[str, list[dict]]:
    """(imname, objects [{class, mask (H, W) bool, parts [(name, mask)]}]) of one ``.mat`` file."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(str(path))
    except Exception as err:  # scipy raises several types for non-.mat input
        raise PascalPartError(f"{path} is not a readable .mat file: {err}") from None
    if "anno" not in mat:
        raise PascalPartError(f"{path} holds no 'anno' struct (keys: {sorted(k for k in mat if not k.startswith('__'))}): "
                              "not a PASCAL-Part annotation")
    anno = mat["anno"].reshape(-1)[0]
    names = anno.dtype.names or ()
    if "objects" not in names or "imname" not in names:
        raise PascalPartError(f"{path}: 'anno' has fields {names}, expected imname and objects")
    objects = []
    for obj in np.asarray(anno["objects"]).reshape(-1):
        fields = obj.dtype.names or ()
        if not {"class", "mask", "parts"} <= set(fields):
            raise PascalPartError(f"{path}: an object has fields {fields}, expected class, mask and parts")
        parts = []
        raw_parts = np.asarray(obj["parts"])
        for part in raw_parts.reshape(-1) if raw_parts.size else []:
            parts.append((_text(part["part_name"]), np.asarray(part["mask"]).astype(bool)))
        objects.append({"class": _text(obj["class"]), "mask": np.asarray(obj["mask"]).astype(bool), "parts": parts})
    return _text(anno["imname"]), objects


def object_labels(obj: dict, schema: dict, where: str = "") -> np.ndarray:
    """The (H, W) uint8 part labels of one object (0 outside it)."""
    classes = schema["classes"]
    labels = np.zeros(obj["mask"].shape, np.uint8)
    if schema["fill"] != "background":
        labels[obj["mask"]] = classes.index(schema["fill"])
    unknown = []
    for name, mask in sorted(obj["parts"], key=lambda part: -int(part[1].sum())):  # large first: small parts stay
        target = next((cls for pattern, cls in schema["parts"] if re.fullmatch(pattern, name)), None)
        if target is None:
            unknown.append(name)
            continue
        labels[mask] = classes.index(target)
    if unknown:
        raise PascalPartError(f"{where}: part names {sorted(set(unknown))} are not in the {obj['class']} schema")
    return labels


def instance_owner(objects: list[dict]) -> np.ndarray:
    """(H, W) int32 index (into ``objects``) of the object each pixel belongs to, -1 where none does.

    Silhouettes are painted in file order, later over earlier, as ``mat2map.m`` builds its instance map
    (the release orders the objects so that later ones occlude earlier ones).
    """
    shapes = {o["mask"].shape for o in objects}
    if len(shapes) != 1:
        raise PascalPartError(f"the objects' masks differ in size ({sorted(shapes)}): not one image's annotation")
    owner = np.full(shapes.pop(), -1, np.int32)
    for i, obj in enumerate(objects):
        owner[obj["mask"]] = i
    return owner


def crop_labels(objects: list[dict], index: int, schema: dict, owner: np.ndarray | None = None,
                where: str = "") -> np.ndarray:
    """(H, W) uint8 labels of ``objects[index]`` in its whole image, other objects accounted for.

    Its part labels (:func:`object_labels`) where no later object's silhouette covers it; 0 where a later
    object does (the occluder's pixels) and elsewhere; :data:`IGNORE_INDEX` where the pixel belongs
    (:func:`instance_owner`, passed as ``owner`` to reuse it across an image's objects) to another object
    of the same class. Values in 0 .. len(schema["classes"]) - 1, or 255.
    """
    obj = objects[index]
    owner = instance_owner(objects) if owner is None else owner
    labels = object_labels(obj, schema, where)
    labels[owner > index] = 0  # occluded: the later object's pixels, whatever its class
    same = [j for j, o in enumerate(objects) if j != index and o["class"] == obj["class"]]
    if same:
        # a neighbour of the same class is not background; pixels the object itself owns are never in here
        labels[np.isin(owner, same)] = IGNORE_INDEX
    return labels


def _square_crop(image: np.ndarray, labels: np.ndarray, mask: np.ndarray, margin: float = 0.1):
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = int(round(max(y1 - y0, x1 - x0) * (1 + 2 * margin)))
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    top, left = cy - side // 2, cx - side // 2
    out_i = np.zeros((side, side, 3), np.uint8)
    out_l = np.zeros((side, side), np.uint8)
    sy0, sx0 = max(top, 0), max(left, 0)
    sy1, sx1 = min(top + side, image.shape[0]), min(left + side, image.shape[1])
    out_i[sy0 - top: sy1 - top, sx0 - left: sx1 - left] = image[sy0:sy1, sx0:sx1]
    out_l[sy0 - top: sy1 - top, sx0 - left: sx1 - left] = labels[sy0:sy1, sx0:sx1]
    return out_i, out_l


def import_pascal_part(annotations: str | os.PathLike, images: str | os.PathLike, out_dir: str | os.PathLike,
                       object_class: str = "car", size: int = 256, min_pixels: int = 32 * 32,
                       progress: bool = True):
    """Every ``object_class`` instance with parts (and at least ``min_pixels``) -> a labelled data set."""
    import datasets


    if object_class not in SCHEMAS:
        raise ArgumentError(f"object_class must be one of {sorted(SCHEMAS)}, got {object_class!r}")
    schema = SCHEMAS[object_class]
    ann_dir, img_dir = Path(annotations), Path(images)
    files = sorted(ann_dir.glob("*.mat"))
    if not files:
        raise PascalPartError(f"{ann_dir} holds no .mat files (expected PASCAL-Part's Annotations_Part/)")

    def rows():
        n = 0
        for path in tqdm(files, desc=f"PASCAL-Part {object_class}", disable=not progress):
            imname, objects = read_annotation(path)
            wanted = [(i, o) for i, o in enumerate(objects)
                      if o["class"] == object_class and o["parts"] and o["mask"].sum() >= min_pixels]
            if not wanted:
                continue
            image_path = img_dir / f"{imname or path.stem}.jpg"
            if not image_path.is_file():
                raise PascalPartError(f"{path} annotates {image_path}, which does not exist (pass the VOC2010 "
                                      "JPEGImages folder as images)")
            try:
                image = np.asarray(Image.open(image_path).convert("RGB"))
            except OSError as err:  # UnidentifiedImageError, a truncated file
                raise PascalPartError(f"{image_path} (annotated by {path}) is not a readable image: {err}") from None
            for i, obj in enumerate(objects):  # every object: each one may occlude or neighbour a wanted one
                if obj["mask"].shape != image.shape[:2]:
                    raise PascalPartError(f"{path}: object {i} mask is {obj['mask'].shape} but the image is "
                                          f"{image.shape[:2]}")
            owner = instance_owner(objects)
            for i, obj in wanted:
                labels = crop_labels(objects, i, schema, owner, f"{path} object {i}")
                crop_i, crop_l = _square_crop(image, labels, obj["mask"])
                yield {"image": Image.fromarray(crop_i).resize((size, size), Image.BILINEAR),
                       "label": Image.fromarray(crop_l, mode="L").resize((size, size), Image.NEAREST),
                       "seed": n, "source": f"{imname}#{i}"}
                n += 1

    return save_labelled_dataset(rows(), out_dir, id2label(schema["classes"]),
                                 source=f"PASCAL-Part {object_class} ({ann_dir})", size=size,
                                 extra_columns={"source": datasets.Value("string")})
