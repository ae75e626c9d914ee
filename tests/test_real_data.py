"""CelebAMask-HQ and PASCAL-Part converters on tiny fixtures written in the exact released layouts."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_partseg.cli import main as cli_main
from gan_partseg.data.celebamask import CelebAMaskError, import_celebamask, label_map, split_faces, split_of
from gan_partseg.data.export import load_hf_dataset
from gan_partseg.data.pascal_part import PascalPartError, import_pascal_part, read_annotation
from gan_partseg.errors import ArgumentError
from gan_partseg.evaluation.evaluate import evaluate_segmenter
from gan_partseg.evaluation.metrics import evaluate_arrays
from gan_partseg.labels import CLASSES_3, CLASSES_10, id2label, to_three_class
from gan_partseg.models.autoshot import AutoShotSegmenter, AutoShotSegmenterConfig

C10 = {name: i for i, name in enumerate(CLASSES_10)}


def _mask(shape, box, value=255):
    m = np.zeros(shape, np.uint8)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = value
    return m


@pytest.fixture
def celeba(tmp_path):
    """Faces 0, 1 and 2001 (mask folder 1), 32 px images, 16 px masks, as released (jpg + per-part png)."""
    root = tmp_path / "CelebAMask-HQ"
    (root / "CelebA-HQ-img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for idx in (0, 1, 2001):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "CelebA-HQ-img" / f"{idx}.jpg")
        folder = root / "CelebAMask-HQ-mask-anno" / str(idx // 2000)
        folder.mkdir(parents=True, exist_ok=True)
        parts = {"skin": (2, 14, 2, 14), "hair": (0, 5, 0, 16), "l_eye": (6, 8, 4, 6), "r_eye": (6, 8, 10, 12),
                 "nose": (8, 10, 7, 9), "u_lip": (11, 12, 6, 10), "l_lip": (12, 13, 6, 10), "cloth": (14, 16, 0, 16)}
        if idx == 1:
            parts["hat"] = (0, 3, 0, 16)  # a hat over the hair falls to background
            parts["eye_g"] = (5, 9, 3, 13)  # glasses are painted (as background) *before* the eyes
        for part, box in parts.items():
            Image.fromarray(_mask((16, 16), box)).save(folder / f"{idx:05d}_{part}.png")
    # antialiased edge: 0.3 * 255 stays out, 0.5 * 255 goes in
    edge = _mask((16, 16), (13, 14, 0, 16), value=0)
    edge[13, :8], edge[13, 8:] = int(0.3 * 255), int(0.5 * 255)
    Image.fromarray(edge).save(root / "CelebAMask-HQ-mask-anno" / "0" / "00000_neck.png")
    return root


def test_celebamask_g_mask_rule_follows_the_release_painting_order(celeba):
    lab = label_map(celeba, 0, overlap="g-mask")
    assert lab.shape == (16, 16) and lab.dtype == np.uint8
    assert lab[1, 8] == C10["hair"] and lab[3, 3] == C10["hair"]  # hair painted after skin
    assert lab[7, 5] == C10["eye"] and lab[7, 11] == C10["eye"] and lab[9, 8] == C10["nose"]
    assert lab[11, 7] == C10["mouth"] and lab[12, 7] == C10["mouth"] and lab[10, 3] == C10["skin"]
    assert lab[15, 3] == C10["clothes"] and lab[13, 12] == C10["neck"] and lab[13, 3] == C10["skin"]  # > 0.4 only
    with_hat = label_map(celeba, 1, overlap="g-mask")
    assert with_hat[1, 8] == C10["background"] and with_hat[4, 8] == C10["hair"]
    assert with_hat[7, 5] == C10["eye"] and with_hat[5, 4] == C10["background"]  # glasses: background, eyes over them
    three = label_map(celeba, 0, classes=3, overlap="g-mask")
    assert set(np.unique(three)) == {0, 1, 2, 3}
    assert (three == CLASSES_3.index("eye")).sum() == (lab == C10["eye"]).sum()


OVERLAP_FACE = {  # face 3, 16 px masks: (y0, y1, x0, x1) boxes that overlap where the two rules differ
    "skin": (2, 14, 2, 14), "hair": (0, 6, 0, 16), "hat": (0, 2, 0, 16),  # a hat over the hair
    "l_brow": (5, 8, 3, 7), "l_eye": (7, 9, 3, 7),  # brow row 5 under the hair; eye row 7 under the brow
    "r_eye": (4, 7, 10, 12),  # eye rows 4-5 under the hair
    "nose": (8, 11, 7, 9), "u_lip": (10, 11, 6, 10), "l_lip": (11, 12, 6, 10), "mouth": (12, 13, 6, 10),
    "l_ear": (7, 10, 0, 3), "ear_r": (9, 10, 0, 2),  # ear column 2 over the skin; an earring on the ear
    "eye_g": (11, 12, 3, 5),  # glasses over bare skin
    "neck": (12, 15, 4, 12), "neck_l": (13, 14, 2, 4), "cloth": (14, 16, 0, 16),  # a necklace over the skin
}
SOFT = {(7, 14): 76, (8, 14): 102, (9, 14): 127}  # r_brow grey 0.3 / 0.4 / 0.5 of 255 on bare background


@pytest.fixture
def overlap_face(tmp_path):
    root = tmp_path / "overlap"
    (root / "CelebA-HQ-img").mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(root / "CelebA-HQ-img" / "3.jpg")
    folder = root / "CelebAMask-HQ-mask-anno" / "0"
    folder.mkdir(parents=True)
    for part, box in OVERLAP_FACE.items():
        Image.fromarray(_mask((16, 16), box)).save(folder / f"00003_{part}.png")
    soft = np.zeros((16, 16), np.uint8)
    for yx, v in SOFT.items():
        soft[yx] = v
    Image.fromarray(soft).save(folder / "00003_r_brow.png")
    return root


def _paper_loader(root, idx, n_class):
    """The paper's utils.load_celeba_mask, restated: one channel per class (its sub-part masks binarised at
    >= 0.4 and or-ed), a last background channel 1 - sum, argmax (the first maximum wins)."""
    parts = ({"eye": ["l_eye", "r_eye"], "lip": ["l_lip", "u_lip", "mouth"], "nose": ["nose"]} if n_class == 4 else
             {"hair": ["hair"], "eyebrow": ["l_brow", "r_brow"], "eye": ["l_eye", "r_eye"],
              "lip": ["l_lip", "u_lip", "mouth"], "nose": ["nose"], "skin": ["skin"], "ear": ["l_ear", "r_ear"],
              "neck": ["neck"], "clothes": ["cloth"]})
    folder = root / "CelebAMask-HQ-mask-anno" / str(idx // 2000)
    total = np.zeros((16, 16, n_class))
    for i, subparts in enumerate(parts.values()):
        part = np.zeros((16, 16))
        for sub in subparts:
            f = folder / f"{idx:05d}_{sub}.png"
            if f.exists():
                part += (np.asarray(Image.open(f).convert("L"), dtype="uint8") / 255 >= 0.4)
        total[..., i] = part >= 1
    total[..., n_class - 1] = 1 - total[..., :n_class - 1].sum(-1)
    ours = [C10["mouth" if c == "lip" else c] for c in parts] if n_class == 10 else [1, 2, 3]
    return np.array(ours + [0], np.uint8)[total.argmax(-1)]


def test_celebamask_paper_rule_is_the_default(overlap_face):
    lab = label_map(overlap_face, 3)
    assert np.array_equal(lab, _paper_loader(overlap_face, 3, 10))
    assert lab[1, 8] == C10["hair"]  # the hat is never read: hair under it
    assert lab[5, 4] == C10["hair"] and lab[6, 4] == C10["eyebrow"] and lab[7, 4] == C10["eyebrow"]
    assert lab[8, 4] == C10["eye"] and lab[4, 10] == C10["hair"] and lab[6, 10] == C10["eye"]
    assert lab[10, 7] == C10["mouth"] and lab[12, 7] == C10["mouth"]  # lips over the nose; the mouth file is mouth
    assert lab[8, 2] == C10["skin"] and lab[8, 0] == C10["ear"] and lab[9, 0] == C10["ear"]  # skin > ear; no earring
    assert lab[11, 3] == C10["skin"]  # glasses never read
    assert lab[12, 5] == C10["skin"] and lab[14, 5] == C10["neck"] and lab[15, 5] == C10["clothes"]  # skin > neck > cloth
    assert lab[13, 2] == C10["skin"]  # no necklace
    assert lab[7, 14] == C10["background"] and lab[8, 14] == C10["eyebrow"] and lab[9, 14] == C10["eyebrow"]  # >= 0.4


def test_celebamask_g_mask_rule_keeps_the_earlier_labels(overlap_face):
    lab = label_map(overlap_face, 3, overlap="g-mask")
    assert lab[1, 8] == C10["background"] and lab[3, 8] == C10["hair"]  # the hat paints background over the hair
    assert lab[5, 4] == C10["hair"] and lab[7, 4] == C10["eyebrow"] and lab[4, 10] == C10["hair"]
    assert lab[8, 2] == C10["ear"] and lab[9, 0] == C10["background"]  # the ear over the skin; the earring over the ear
    assert lab[11, 3] == C10["background"]  # the glasses paint background
    assert lab[12, 5] == C10["neck"] and lab[14, 5] == C10["clothes"]  # later parts win
    assert lab[13, 2] == C10["background"]  # the necklace
    assert lab[7, 14] == C10["background"] and lab[8, 14] == C10["background"] and lab[9, 14] == C10["eyebrow"]  # > 0.4
    assert (lab != label_map(overlap_face, 3)).sum() > 20


def test_celebamask_paper_three_class_view_is_built_from_the_masks(overlap_face):
    e, m, n = (CLASSES_3.index(c) for c in ("eye", "mouth", "nose"))
    three = label_map(overlap_face, 3, classes=3)
    assert np.array_equal(three, _paper_loader(overlap_face, 3, 4))
    assert three[4, 10] == e and three[7, 4] == e  # an eye under the hair, an eye under the brow: eye
    assert three[10, 7] == m and three[9, 7] == n and three[1, 8] == 0 and three[8, 2] == 0
    reduced = to_three_class(label_map(overlap_face, 3))
    assert reduced[4, 10] == 0 and reduced[7, 4] == 0  # the 10-class map says hair / eyebrow there
    assert np.array_equal(np.argwhere(three != reduced), [[4, 10], [4, 11], [5, 10], [5, 11], [7, 3], [7, 4], [7, 5],
                                                          [7, 6]])
    g = label_map(overlap_face, 3, classes=3, overlap="g-mask")  # the earlier rule: the 10-class map reduced
    assert np.array_equal(g, to_three_class(label_map(overlap_face, 3, overlap="g-mask")))


def test_celebamask_overlap_option_of_import_data(overlap_face, tmp_path):
    for overlap in ("paper", "g-mask"):
        out = tmp_path / overlap
        assert cli_main(["import-data", "celebamask-hq", str(overlap_face), str(out), "--size", "16",
                         *(["--overlap", overlap] if overlap == "g-mask" else [])]) == 0
        ds, _ = load_hf_dataset(out)
        assert np.array_equal(np.asarray(ds[0]["label"]), label_map(overlap_face, 3, overlap=overlap))
    ds = import_celebamask(overlap_face, tmp_path / "api3", size=16, classes=3, progress=False)
    assert np.array_equal(np.asarray(ds[0]["label"]), label_map(overlap_face, 3, classes=3))
    with pytest.raises(ArgumentError, match="overlap must be one of paper, g-mask"):
        import_celebamask(overlap_face, tmp_path / "bad", overlap="gmask", progress=False)


MAPPING_TXT = """idx         orig_idx    orig_file
0           162770      162771.jpg
1           162771      162772.jpg
2           182637      182638.jpg
2001        182638      182639.jpg
"""  # face 2 has no image in the fixture (a row of the full release file)


def test_celebamask_official_split_from_the_mapping_file(celeba, tmp_path, capsys):
    assert cli_main(["import-data", "celebamask-hq", str(celeba), str(tmp_path / "nomap"), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert "split 'val' needs" in err and "CelebA-HQ-to-CelebA-mapping.txt" in err and "Traceback" not in err
    assert not (tmp_path / "nomap").exists()
    with pytest.raises(CelebAMaskError, match="which is missing"):
        split_faces(celeba, "train")
    assert split_faces(celeba, "all") == [0, 1, 2001]  # needs no mapping file
    (celeba / "CelebA-HQ-to-CelebA-mapping.txt").write_text(MAPPING_TXT)
    assert [split_faces(celeba, s) for s in ("train", "val", "test")] == [[0], [1], [2001]]
    assert [split_of(i) for i in (0, 162770, 162771, 182637, 182638, 202598)] == ["train", "train", "val", "val",
                                                                                  "test", "test"]
    for split, seeds in (("val", [1]), ("test", [2001]), ("all", [0, 1, 2001])):
        assert cli_main(["import-data", "celebamask-hq", str(celeba), str(tmp_path / split), "--size", "16",
                         *(["--split", split] if split != "all" else [])]) == 0
        assert sorted(load_hf_dataset(tmp_path / split)[0]["seed"]) == seeds
    assert cli_main(["import-data", "celebamask-hq", str(celeba), str(tmp_path / "n1"), "--size", "16", "--split",
                     "test", "--n", "1"]) == 0
    assert load_hf_dataset(tmp_path / "n1")[0]["seed"] == [2001]  # the first face of the split, not face 0
    ds = import_celebamask(celeba, tmp_path / "api", size=16, split="train", indices=[0, 1], progress=False)
    assert ds["seed"] == [0]  # indices within the split
    # a mapping file without a row for a face of the folder; a row that is not 'idx orig_idx orig_file'
    (celeba / "CelebA-HQ-to-CelebA-mapping.txt").write_text(MAPPING_TXT.replace("2001        182638", "2002  1"))
    with pytest.raises(CelebAMaskError, match="has no row for face 2001"):
        split_faces(celeba, "test")
    (celeba / "CelebA-HQ-to-CelebA-mapping.txt").write_text(MAPPING_TXT + "3 x.jpg\n")
    with pytest.raises(CelebAMaskError, match="line 6 is '3 x.jpg', not 'idx orig_idx orig_file'"):
        split_faces(celeba, "val")
    with pytest.raises(ArgumentError, match="split must be one of"):
        split_faces(celeba, "validation")


def test_celebamask_import_to_hf_dataset(celeba, tmp_path):
    ds = import_celebamask(celeba, tmp_path / "out", size=24, progress=False)
    assert len(ds) == 3
    loaded, labels = load_hf_dataset(tmp_path / "out")
    assert labels == id2label(CLASSES_10) and sorted(loaded["seed"]) == [0, 1, 2001]
    row = loaded[0]
    assert np.asarray(row["image"]).shape == (24, 24, 3) and np.asarray(row["label"]).shape == (24, 24)
    assert json.loads((tmp_path / "out" / "id2label.json").read_text())["3"] == "eye"


def test_celebamask_missing_files_are_named(celeba, tmp_path):
    for p in (celeba / "CelebAMask-HQ-mask-anno" / "1").iterdir():
        p.unlink()
    with pytest.raises(CelebAMaskError, match=r"face 2001 has no mask files.*02001_skin\.png"):
        import_celebamask(celeba, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(CelebAMaskError, match="not a CelebAMask-HQ folder: CelebA-HQ-img/ is missing"):
        import_celebamask(tmp_path, tmp_path / "out2", progress=False)


def _write_mat(path, imname, objects):
    from scipy.io import savemat

    obj_dtype = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
    objs = np.zeros((1, len(objects)), dtype=obj_dtype)
    for i, (cls, mask, parts) in enumerate(objects):
        pr = np.zeros((1, len(parts)), dtype=[("part_name", "O"), ("mask", "O")])
        for j, (name, pm) in enumerate(parts):
            pr[0, j]["part_name"] = name
            pr[0, j]["mask"] = pm.astype(np.uint8)
        objs[0, i]["class"] = cls
        objs[0, i]["class_ind"] = 7 if cls == "car" else 13
        objs[0, i]["mask"] = mask.astype(np.uint8)
        objs[0, i]["parts"] = pr if parts else np.zeros((0, 0))
    anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0]["imname"] = imname
    anno[0, 0]["objects"] = objs
    savemat(str(path), {"anno": anno})


@pytest.fixture
def pascal(tmp_path):
    ann, img = tmp_path / "Annotations_Part", tmp_path / "JPEGImages"
    ann.mkdir()
    img.mkdir()
    shape = (60, 80)
    Image.fromarray(np.full((*shape, 3), 128, np.uint8)).save(img / "2008_000001.jpg")
    car = _mask(shape, (10, 50, 10, 70)) > 0
    _write_mat(ann / "2008_000001.mat", "2008_000001", [
        ("car", car, [("wheel_1", _mask(shape, (40, 50, 15, 25)) > 0), ("window_1", _mask(shape, (12, 20, 20, 60)) > 0),
                      ("fliplate", _mask(shape, (30, 34, 35, 45)) > 0), ("headlight_2", _mask(shape, (25, 28, 10, 14)) > 0),
                      ("door_1", _mask(shape, (20, 40, 30, 50)) > 0)]),
        ("person", _mask(shape, (0, 10, 0, 10)) > 0, []),
        ("car", _mask(shape, (0, 3, 0, 3)) > 0, [("wheel_1", _mask(shape, (0, 1, 0, 1)) > 0)]),  # too small
    ])
    Image.fromarray(np.full((*shape, 3), 90, np.uint8)).save(img / "2008_000002.jpg")
    horse = _mask(shape, (5, 55, 5, 75)) > 0
    _write_mat(ann / "2008_000002.mat", "2008_000002", [
        ("horse", horse, [("head", _mask(shape, (5, 20, 5, 20)) > 0), ("lfuleg", _mask(shape, (40, 55, 10, 15)) > 0),
                          ("rbho", _mask(shape, (50, 55, 60, 65)) > 0), ("torso", _mask(shape, (20, 40, 20, 70)) > 0),
                          ("tail", _mask(shape, (20, 30, 70, 75)) > 0)])])
    return ann, img


def test_pascal_part_reads_the_released_mat_structure(pascal):
    ann, _ = pascal
    imname, objects = read_annotation(ann / "2008_000001.mat")
    assert imname == "2008_000001" and [o["class"] for o in objects] == ["car", "person", "car"]
    assert [p[0] for p in objects[0]["parts"]][:2] == ["wheel_1", "window_1"] and objects[1]["parts"] == []


@pytest.mark.parametrize("obj,expected", [("car", {"background", "body", "light", "plate", "wheel", "window"}),
                                          ("horse", {"background", "head", "leg", "neck+torso", "tail"})])
def test_pascal_part_import(pascal, tmp_path, obj, expected):
    ann, img = pascal
    ds = import_pascal_part(ann, img, tmp_path / obj, object_class=obj, size=32, min_pixels=16, progress=False)
    assert len(ds) == 1  # the tiny car and the person are left out
    loaded, labels = load_hf_dataset(tmp_path / obj)
    present = {labels[i] for i in np.unique(np.asarray(loaded[0]["label"]))}
    assert present == expected and loaded[0]["source"].endswith("#0")


def test_pascal_part_other_schemas_are_named(tmp_path, pascal):
    from scipy.io import savemat

    ann, img = pascal
    savemat(str(tmp_path / "other.mat"), {"record": np.zeros(3)})
    with pytest.raises(PascalPartError, match="no 'anno' struct"):
        read_annotation(tmp_path / "other.mat")
    shape = (60, 80)
    _write_mat(ann / "2008_000003.mat", "2008_000001", [("car", _mask(shape, (10, 50, 10, 70)) > 0,
                                                         [("propeller", _mask(shape, (10, 20, 10, 20)) > 0)])])
    with pytest.raises(PascalPartError, match=r"\['propeller'\] are not in the car schema"):
        import_pascal_part(ann, img, tmp_path / "out", "car", size=32, progress=False)
    assert not (tmp_path / "out").exists()


def test_evaluate_cli_scores_a_unet_on_an_imported_data_set(celeba, tmp_path, capsys):
    import_celebamask(celeba, tmp_path / "c3", size=24, classes=3, progress=False)
    torch.manual_seed(0)
    unet = AutoShotSegmenter(AutoShotSegmenterConfig(widths=[4, 8], image_size=16, id2label=id2label(CLASSES_3)))
    unet.save_pretrained(tmp_path / "unet")
    assert cli_main(["evaluate", "--segmenter", str(tmp_path / "unet"), "--data", str(tmp_path / "c3"),
                     "--out", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    ds, _ = load_hf_dataset(tmp_path / "c3")
    imgs = [Image.fromarray(np.asarray(r["image"])) for r in ds]
    preds = np.stack([p.numpy() for p in unet.eval().segment(imgs)])
    expected = evaluate_arrays(preds, np.stack([np.asarray(r["label"]) for r in ds]), 4, CLASSES_3)
    assert result["weighted_iou"] == pytest.approx(expected["weighted_iou"]) and result["kind"] == "gan_partseg_autoshot"
    # and a per-class IoU bar chart beside the JSON, one group of bars per class
    chart = np.asarray(Image.open(tmp_path / "r.png"))
    assert chart.ndim == 3 and chart.shape[0] > 12 * len(result["per_class_iou"])
    # the 10-class data set does not fit a 3-class segmenter
    import_celebamask(celeba, tmp_path / "c10", size=24, progress=False)
    with pytest.raises(ValueError, match="evaluate on a data set of the same classes"):
        evaluate_segmenter(str(tmp_path / "unet"), tmp_path / "c10")


# --- PASCAL-Part: occlusion by later objects, other instances of the class ignored (issue 23 item 10) ---
# Imports stay local to this block (another block of this file is edited in parallel).

def _pascal_scene(tmp_path, name, shape, objects):
    """One image (grey) and its .mat of ``objects`` [(class, box, [(part, box)])] in the released layout."""
    ann, img = tmp_path / f"{name}_ann", tmp_path / f"{name}_img"
    ann.mkdir()
    img.mkdir()
    Image.fromarray(np.full((*shape, 3), 100, np.uint8)).save(img / f"{name}.jpg")
    _write_mat(ann / f"{name}.mat", name, [(cls, _mask(shape, box) > 0, [(p, _mask(shape, b) > 0) for p, b in parts])
                                           for cls, box, parts in objects])
    return ann, img


CAR = {name: i for i, name in enumerate(("background", "body", "light", "plate", "wheel", "window"))}
OCCLUDED = [  # (60, 80) image; file order is painting order
    ("car", (10, 40, 5, 45), [("wheel_1", (30, 40, 8, 20)), ("window_1", (12, 20, 10, 40))]),  # car A
    ("car", (20, 50, 15, 60), [("wheel_1", (40, 50, 40, 55))]),  # car B, later: covers A's wheel columns 15-19
    ("person", (12, 16, 5, 12), []),  # later still: covers A's body and window corner
]


def test_pascal_part_a_later_object_occludes_an_earlier_ones_parts(tmp_path):
    from gan_partseg.labels import IGNORE_INDEX

    ann, img = _pascal_scene(tmp_path, "occl", (60, 80), OCCLUDED)
    # car A's crop: 40 px wide box -> 48 px square from image row 1, column 1; size 48 keeps it pixel for pixel
    ds = import_pascal_part(ann, img, tmp_path / "out", "car", size=48, min_pixels=16, progress=False)
    rows = {r["source"]: np.asarray(r["label"]) for r in load_hf_dataset(tmp_path / "out")[0]}
    assert sorted(rows) == ["occl#0", "occl#1"] and len(ds) == 2
    want = np.zeros((60, 80), np.uint8)  # car A as mat2map.m would leave it visible
    want[10:40, 5:45] = CAR["body"]
    want[12:20, 10:40] = CAR["window"]
    want[30:40, 8:20] = CAR["wheel"]
    want[20:50, 15:60] = IGNORE_INDEX  # car B's pixels: another car, not A's wheel / body
    want[12:16, 5:12] = CAR["background"]  # the person's
    a = rows["occl#0"]
    assert np.array_equal(a, want[1:49, 1:49])
    wheel = np.argwhere(a == CAR["wheel"]) + 1  # back to image coordinates
    assert wheel[:, 1].max() == 14 and (a[29:39, 14:19] == IGNORE_INDEX).all()  # no wheel under car B
    # car B owns the overlap: its own labels there, and car A's visible rest is ignored in B's labels
    from gan_partseg.data.pascal_part import SCHEMAS, crop_labels, instance_owner

    _, objects = read_annotation(ann / "occl.mat")
    owner = instance_owner(objects)
    assert owner[35, 17] == 1 and owner[13, 6] == 2 and owner[11, 6] == 0 and owner[0, 0] == -1
    b = crop_labels(objects, 1, SCHEMAS["car"], owner)
    assert (b[20:40, 15:45] == CAR["body"]).all() and (b[owner == 0] == IGNORE_INDEX).all()
    assert (b[30:40, 5:15] == IGNORE_INDEX).all() and (b[40:50, 40:55] == CAR["wheel"]).all()
    assert np.array_equal(crop_labels(objects, 1, SCHEMAS["car"]), b)  # the owner map is only reused


NEIGHBOURS = [  # (40, 70) image
    ("car", (5, 35, 10, 30), [("wheel_1", (30, 35, 12, 20))]),  # car A: crop rows / columns 2..37
    ("car", (5, 35, 32, 60), [("wheel_1", (30, 35, 40, 50))]),  # car B beside it: columns 32..37 in A's crop
    ("car", (0, 4, 12, 20), []),  # a car without parts: no sample of its own, still a car in A's crop
    ("person", (36, 40, 5, 25), []),  # another class in A's crop
]


def test_pascal_part_other_cars_in_a_crop_are_ignored_not_background(tmp_path):
    from gan_partseg.labels import IGNORE_INDEX

    ann, img = _pascal_scene(tmp_path, "side", (40, 70), NEIGHBOURS)
    import_pascal_part(ann, img, tmp_path / "out", "car", size=36, min_pixels=16, progress=False)
    rows = {r["source"]: np.asarray(r["label"]) for r in load_hf_dataset(tmp_path / "out")[0]}
    assert sorted(rows) == ["side#0", "side#1"]
    want = np.zeros((40, 70), np.uint8)
    want[5:35, 10:30] = CAR["body"]
    want[30:35, 12:20] = CAR["wheel"]
    want[5:35, 32:60] = IGNORE_INDEX  # car B
    want[0:4, 12:20] = IGNORE_INDEX  # the part-less car
    a = rows["side#0"]
    assert np.array_equal(a, want[2:38, 2:38])
    assert (a[3:33, 30:36] == IGNORE_INDEX).all() and (a[34:36, 3:23] == 0).all()  # car B ignored, the person background
    from gan_partseg.data.pascal_part import SCHEMAS, crop_labels

    _, objects = read_annotation(ann / "side.mat")
    b = crop_labels(objects, 1, SCHEMAS["car"])
    assert (b[5:35, 10:30] == IGNORE_INDEX).all() and (b[5:35, 32:60] != IGNORE_INDEX).all()
    # horses: a neighbour horse is ignored whole, parts or not
    horses = [("horse", (5, 35, 10, 30), [("head", (5, 15, 10, 20))]), ("horse", (5, 35, 32, 60), [])]
    _, h_objects = read_annotation(_pascal_scene(tmp_path, "horses", (40, 70), horses)[0] / "horses.mat")
    h = crop_labels(h_objects, 0, SCHEMAS["horse"])
    assert (h[5:35, 32:60] == IGNORE_INDEX).all() and (h[5:15, 10:20] == 1).all() and (h[20:35, 10:30] == 0).all()


def test_evaluate_skips_ignored_pixels_of_a_label_folder(tmp_path):
    from gan_partseg.labels import IGNORE_INDEX

    torch.manual_seed(0)
    unet = AutoShotSegmenter(AutoShotSegmenterConfig(widths=[4, 8], image_size=16, id2label=id2label(CLASSES_3)))
    unet.save_pretrained(tmp_path / "unet")
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
    preds = [p.numpy().astype(np.uint8) for p in unet.eval().segment([Image.fromarray(a) for a in arrays])]
    for i, (a, p) in enumerate(zip(arrays, preds)):
        truth = p.copy()
        truth[:6, :6] = IGNORE_INDEX  # the prediction is wrong only here: no class is 255
        Image.fromarray(a).save(tmp_path / "images" / f"{i}.png")
        Image.fromarray(truth, mode="L").save(tmp_path / "labels" / f"{i}.png")
    result = evaluate_segmenter(str(tmp_path / "unet"), tmp_path / "images", labels=tmp_path / "labels")
    assert result["weighted_iou"] == pytest.approx(1.0) and result["n_images"] == 2
    assert sum(map(sum, result["confusion"])) == 2 * (16 * 16 - 6 * 6)  # the ignored pixels count nowhere
    assert all(v in (None, 1.0) for v in result["per_class_iou"].values())


# --- the labelled-data-set writer every importer goes through (gan_partseg.data.export.save_labelled_dataset) ---


def _writer_rows(n, size=64, seed=0, before_each=None):
    """``n`` rows as the importers yield them (noise, so a 4-row batch of PNGs is tens of kB), PASCAL-Part's
    extra "source" column included; ``before_each(i)`` runs just before row ``i`` is made."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        if before_each is not None:
            before_each(i)
        yield {"image": Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
               "label": Image.fromarray(rng.integers(0, 10, (size, size), dtype=np.uint8), mode="L"),
               "seed": 1000 + i, "source": f"2008_{i:06d}#0"}


def _write(rows, out, **kw):
    import datasets

    from gan_partseg.data.export import save_labelled_dataset

    return save_labelled_dataset(rows, out, id2label(CLASSES_10), source="test rows", size=64,
                                 extra_columns={"source": datasets.Value("string")}, **kw)


def test_labelled_dataset_writer_streams_rows_in_batches_and_round_trips(tmp_path, monkeypatch):
    import logging
    import warnings

    import datasets

    import gan_partseg.data.export as export

    monkeypatch.setattr(export, "WRITER_BATCH_SIZE", 4)
    monkeypatch.setattr(export, "MAX_SHARD_BYTES", 1)  # a new shard after every batch: 13 rows -> 4 shards
    hf_cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", hf_cache)
    out, tmp = tmp_path / "ds", tmp_path / ".ds.tmp"
    written = []  # bytes already in the temp folder's arrow files when row i is asked for

    def before_each(i):
        written.append(sum(p.stat().st_size for p in tmp.iterdir() if p.suffix == ".arrow") if tmp.exists() else 0)

    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger("datasets").addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. datasets' "couldn't be hashed properly" fingerprint warning
            ds = _write(_writer_rows(13, before_each=before_each), out)
    finally:
        logging.getLogger("datasets").removeHandler(handler)
    assert not records and not hf_cache.exists()
    # lazy: nothing is on disk while the first batch is made; each later batch is asked for only after the
    # batch before it was written out
    assert written[:4] == [0, 0, 0, 0] and 0 < written[4] < written[8] < written[12]
    assert sorted(p.name for p in out.iterdir()) == [f"data-{i:05d}-of-00004.arrow" for i in range(4)] + [
        "dataset_info.json", "id2label.json", "state.json"]  # no cache or temp files left behind
    assert not tmp.exists() and len(ds) == 13
    loaded, labels = load_hf_dataset(out)
    assert labels == id2label(CLASSES_10) and loaded.column_names == ["image", "label", "seed", "source"]
    assert json.loads(loaded.info.description) == {"id2label": {str(k): v for k, v in id2label(CLASSES_10).items()},
                                                   "source": "test rows", "size": 64}
    assert json.loads((out / "id2label.json").read_text()) == {str(k): v for k, v in id2label(CLASSES_10).items()}
    for got, want in zip(loaded, _writer_rows(13), strict=True):
        assert np.array_equal(np.asarray(got["image"]), np.asarray(want["image"]))
        assert np.array_equal(np.asarray(got["label"]), np.asarray(want["label"]))
        assert got["seed"] == want["seed"] and got["source"] == want["source"]


def test_labelled_dataset_writer_writes_what_save_to_disk_writes(tmp_path):
    """The streamed folder is byte-for-byte the metadata, schema and table ``from_list`` + ``save_to_disk`` give."""
    import datasets
    import pyarrow as pa

    from gan_partseg.data.export import labelled_features, labelled_info

    _write(_writer_rows(5), tmp_path / "ours")
    features = labelled_features({"source": datasets.Value("string")})
    info = labelled_info(features, id2label(CLASSES_10), "test rows", 64)
    datasets.Dataset.from_list(list(_writer_rows(5)), features=features, info=info).save_to_disk(str(tmp_path / "ref"))
    names = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == sorted([*names, "id2label.json"])
    assert (tmp_path / "ours" / "dataset_info.json").read_text() == (tmp_path / "ref" / "dataset_info.json").read_text()
    ours, ref = (json.loads((tmp_path / d / "state.json").read_text()) for d in ("ours", "ref"))
    assert ours.pop("_fingerprint") != "" and ref.pop("_fingerprint") and ours == ref
    with pa.memory_map(str(tmp_path / "ours" / names[0])) as a, pa.memory_map(str(tmp_path / "ref" / names[0])) as b:
        table, want = pa.ipc.open_stream(a).read_all(), pa.ipc.open_stream(b).read_all()
    assert table.schema.equals(want.schema, check_metadata=True) and table.equals(want)
    # the fingerprint is a hash of the rows: the same rows give the same one, other rows another
    _write(_writer_rows(5), tmp_path / "again")
    _write(_writer_rows(5, seed=1), tmp_path / "other")
    fp = {d: json.loads((tmp_path / d / "state.json").read_text())["_fingerprint"] for d in ("ours", "again", "other")}
    assert fp["ours"] == fp["again"] != fp["other"]


def test_labelled_dataset_writer_refusals_leave_nothing_behind(tmp_path, monkeypatch):
    import gan_partseg.data.export as export
    from gan_partseg.errors import OutputError

    with pytest.raises(ArgumentError, match="no samples to write to"):
        _write(iter(()), tmp_path / "empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "a-file").write_text("x")
    started = []
    with pytest.raises(OutputError, match="is a file"):
        _write(_writer_rows(3, before_each=started.append), tmp_path / "a-file")
    assert started == []  # refused before a single row was made
    # rows that fail half-way (after a batch is on disk): the earlier data set stays, the temp folder goes
    monkeypatch.setattr(export, "WRITER_BATCH_SIZE", 4)
    _write(_writer_rows(2), tmp_path / "ds")

    def fail(i):
        if i == 6:
            raise RuntimeError("a broken source file")

    with pytest.raises(RuntimeError, match="a broken source file"):
        _write(_writer_rows(9, before_each=fail), tmp_path / "ds")
    assert load_hf_dataset(tmp_path / "ds")[0]["seed"] == [1000, 1001]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "ds"]


def test_evaluate_cli_scores_an_imported_pascal_part_set_skipping_its_ignored_neighbours(tmp_path):
    """The imported data set holds 255 (other cars); evaluate --data reads it and leaves those pixels out."""
    from gan_partseg.data.labelled import load_training_set
    from gan_partseg.labels import IGNORE_INDEX

    ann, img = _pascal_scene(tmp_path, "side", (40, 70), NEIGHBOURS)
    import_pascal_part(ann, img, tmp_path / "cars", "car", size=36, min_pixels=16, progress=False)
    _, labels, _, info = load_training_set(tmp_path / "cars")
    assert (labels == IGNORE_INDEX).any() and len(info["id2label"]) == len(CAR)
    torch.manual_seed(0)
    unet = AutoShotSegmenter(AutoShotSegmenterConfig(widths=[4, 8], image_size=16,
                                                     id2label={i: n for n, i in CAR.items()}))
    unet.save_pretrained(tmp_path / "unet")
    assert cli_main(["evaluate", "--segmenter", str(tmp_path / "unet"), "--data", str(tmp_path / "cars"),
                     "--out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n_images"] == 2
    result = evaluate_segmenter(str(tmp_path / "unet"), tmp_path / "cars")
    assert sum(map(sum, result["confusion"])) == int((labels != IGNORE_INDEX).sum())  # the ignored count nowhere
