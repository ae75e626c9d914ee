import json

import numpy as np
import pytest
from PIL import Image

from gan_partseg.data import HELD_OUT_SEEDS, TRAIN_SEEDS, render
from gan_partseg.data.export import export_hf_dataset, export_png, load_hf_dataset, parse_seeds
from gan_partseg.labels import CLASSES_3, CLASSES_10, id2label, mirror_classes, mirror_label_map, to_three_class

L = {n: i for i, n in enumerate(CLASSES_10)}


def test_render_is_deterministic_and_typed():
    a_img, a_lab = render(123, 64)
    b_img, b_lab = render(123, 64)
    assert a_img.dtype == np.uint8 and a_img.shape == (64, 64, 3)
    assert a_lab.dtype == np.uint8 and a_lab.shape == (64, 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    c_img, _ = render(124, 64)
    assert not np.array_equal(a_img, c_img)


def test_seed_ranges_are_disjoint():
    assert set(TRAIN_SEEDS).isdisjoint(range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.stop)) or \
        TRAIN_SEEDS.stop <= HELD_OUT_SEEDS.start
    assert len(HELD_OUT_SEEDS) >= 10000


def test_labels_are_in_range_and_parts_sit_where_geometry_says():
    for seed in range(40):
        img, lab = render(seed, 64)
        assert lab.max() < len(CLASSES_10)
        present = set(np.unique(lab).tolist())
        for part in ("background", "skin", "eye", "nose", "mouth", "clothes"):
            assert L[part] in present, (seed, part)
        ys, xs = {}, {}
        for part in ("eye", "nose", "mouth", "eyebrow"):
            yy, xx = np.nonzero(lab == L[part])
            if len(yy):
                ys[part], xs[part] = yy.mean(), xx.mean()
        # eyes above the nose tip's centre and the mouth below it (rotation is at most 12 degrees)
        assert ys["eye"] < ys["nose"] < ys["mouth"], seed
        # two eyes: pixels on both sides of the nose
        eye_x = np.nonzero(lab == L["eye"])[1]
        assert eye_x.min() < xs["nose"] < eye_x.max(), seed
        if "eyebrow" in ys:
            assert ys["eyebrow"] < ys["eye"], seed
        # clothes are at the bottom of the picture
        assert np.nonzero(lab == L["clothes"])[0].mean() > 48


def test_variation_covers_hair_styles_and_hidden_ears():
    ear_counts = []
    for seed in range(200):
        _, lab = render(seed, 64)
        ear_counts.append(int((lab == L["ear"]).sum()))
    assert min(ear_counts) == 0 or sorted(ear_counts)[5] < 3  # some faces hide their ears
    assert max(ear_counts) > 10
    images = np.stack([render(s, 64)[0] for s in range(50)]).astype(float)
    assert images.reshape(50, -1).mean(1).std() > 10  # colours vary between faces


def test_three_class_mapping():
    _, lab = render(7, 64)
    three = to_three_class(lab)
    assert set(np.unique(three)) <= {0, 1, 2, 3}
    assert np.array_equal(three == CLASSES_3.index("eye"), lab == L["eye"])
    assert np.array_equal(three == CLASSES_3.index("mouth"), lab == L["mouth"])
    assert np.array_equal(three == CLASSES_3.index("nose"), lab == L["nose"])
    with pytest.raises(ValueError, match="10-class labels"):
        to_three_class(np.array([[12]]))


@pytest.mark.parametrize("seed,size,msg", [(-1, 64, "seed"), (2**40, 64, "seed"), (1.5, 64, "seed"),
                                           (0, 8, "size"), (0, 4096, "size")])
def test_out_of_range_seed_or_size_is_rejected(seed, size, msg):
    with pytest.raises(ValueError, match=msg):
        render(seed, size)


def test_png_export_round_trip(tmp_path):
    out = export_png(range(5, 8), tmp_path / "png", size=32, classes=3, progress=False)
    img = np.asarray(Image.open(out / "images" / "0000006.png"))
    lab = np.asarray(Image.open(out / "labels" / "0000006.png"))
    ref_img, ref_lab = render(6, 32)
    assert np.array_equal(img, ref_img) and np.array_equal(lab, to_three_class(ref_lab))
    assert json.loads((out / "id2label.json").read_text())["1"] == "eye"


def test_hf_dataset_export_round_trip(tmp_path):
    export_hf_dataset(range(3), tmp_path / "ds", size=32, progress=False)
    ds, id2label = load_hf_dataset(tmp_path / "ds")
    assert id2label == dict(enumerate(CLASSES_10))
    assert ds.column_names == ["image", "label", "seed"]
    row = ds[1]
    ref_img, ref_lab = render(1, 32)
    assert row["seed"] == 1
    assert np.array_equal(np.asarray(row["image"]), ref_img)
    assert np.array_equal(np.asarray(row["label"]), ref_lab)


def test_parse_seeds():
    assert parse_seeds("held-out", 3) == HELD_OUT_SEEDS[:3]
    assert parse_seeds("10:20") == range(10, 20)
    with pytest.raises(ValueError, match="START:STOP"):
        parse_seeds("bogus")
    with pytest.raises(ValueError, match="only"):
        parse_seeds("0:5", 10)


def test_mirroring_swaps_sided_classes_and_flips_the_map():
    """CelebAMask-HQ's l_/r_ and PASCAL-Part's l/r prefixes pair up; an unpaired l-name ("leg") and the face
    schemas keep their ids; 255 (ignore) stays 255."""
    table = mirror_classes({0: "background", 1: "l_eye", 2: "r_eye", 3: "lear", 4: "rear", 5: "leg", 6: "hair"})
    assert table[:7].tolist() == [0, 2, 1, 4, 3, 5, 6] and table[255] == 255
    assert np.array_equal(mirror_classes(id2label(CLASSES_10)), np.arange(256))
    lab = np.array([[1, 0, 255], [2, 3, 6]], np.uint8)
    assert mirror_label_map(lab, table).tolist() == [[255, 0, 2], [6, 4, 1]]
