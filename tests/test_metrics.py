import math

import numpy as np
import pytest

from gan_partseg.evaluation.metrics import SegmentationMetrics, confusion_matrix, evaluate_arrays, weighted_iou_image


def test_confusion_matrix_counts_true_by_pred():
    t = np.array([[0, 0, 1, 1]])
    p = np.array([[0, 1, 1, 2]])
    cm = confusion_matrix(p, t, 3).numpy()
    assert cm.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]


def test_hand_computed_weighted_iou():
    # 4 pixels: gt = [0, 0, 1, 1]; pred = [0, 1, 1, 1]
    t = np.array([[0, 0, 1, 1]])
    p = np.array([[0, 1, 1, 1]])
    # IoU_0 = 1 / 2, IoU_1 = 2 / 3; shares 0.5, 0.5
    assert weighted_iou_image(p, t, 2) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # without background: only class 1 counts, weight 1; its false positive on background still counts
    assert weighted_iou_image(p, t, 2, exclude_class=0) == pytest.approx(2 / 3)
    res = evaluate_arrays(p, t, 2, class_names=["bg", "part"], exclude_class=0)
    assert res["per_class_iou"] == {"part": pytest.approx(2 / 3)} and res["mean_iou"] == pytest.approx(2 / 3)


def test_absent_and_empty_classes():
    t = np.zeros((1, 4, 4), int)
    p = np.zeros((1, 4, 4), int)
    res = evaluate_arrays(p, t, 3, class_names=["bg", "a", "b"])
    assert res["weighted_iou"] == 1.0 and res["mean_iou"] == 1.0
    assert res["per_class_iou"] == {"bg": 1.0, "a": None, "b": None}  # never present nor predicted
    # a class predicted but absent from gt: IoU 0, weight 0 in weighted IoU, counts in mean IoU
    p2 = p.copy()
    p2[0, 0, 0] = 2
    res2 = evaluate_arrays(p2, t, 3, class_names=["bg", "a", "b"])
    assert res2["per_class_iou"]["b"] == 0.0
    assert res2["weighted_iou"] == pytest.approx(15 / 16)
    assert res2["mean_iou"] == pytest.approx((15 / 16 + 0.0) / 2)


def test_all_background_prediction_scores_background_share_only():
    t = np.array([[0, 0, 0, 1]])
    p = np.zeros_like(t)
    assert weighted_iou_image(p, t, 2) == pytest.approx(0.75 * 0.75)


def test_streaming_equals_one_shot_and_averages_per_image():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, (6, 8, 8))
    p = rng.integers(0, 4, (6, 8, 8))
    m = SegmentationMetrics(4)
    m.update(p[:2], t[:2])
    m.update(p[2:], t[2:])
    a, b = m.compute(), evaluate_arrays(p, t, 4)
    assert a["confusion"] == b["confusion"] and a["mean_iou"] == b["mean_iou"]
    per_image = [weighted_iou_image(pi, ti, 4) for pi, ti in zip(p, t)]
    assert a["weighted_iou"] == pytest.approx(float(np.mean(per_image)))
    assert a["n_images"] == 6


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.full((2, 2), 5), np.zeros((2, 2)), 2)
    assert math.isnan(weighted_iou_image(np.zeros((0,)), np.zeros((0,)), 2))


def test_ignored_pixels_count_nowhere():
    from gan_partseg.labels import IGNORE_INDEX

    t = np.array([[[0, 0, 1, 1], [IGNORE_INDEX, IGNORE_INDEX, 2, 2]]])
    p = np.array([[[0, 0, 1, 1], [1, 2, 2, 2]]])  # wrong only where the truth is ignored
    assert confusion_matrix(p, t, 3).tolist() == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    res = evaluate_arrays(p, t, 3, class_names=["bg", "a", "b"])
    assert res["weighted_iou"] == pytest.approx(1.0) and res["mean_iou"] == 1.0
    assert res["per_class_iou"] == {"bg": 1.0, "a": 1.0, "b": 1.0}
    assert weighted_iou_image(p[0], t[0], 3, exclude_class=0) == pytest.approx(1.0)
    # an image that is all ignored carries no weight; any prediction there, even an id out of range, is not read
    assert math.isnan(weighted_iou_image(np.full((2, 2), 7), np.full((2, 2), IGNORE_INDEX), 3))
    m = SegmentationMetrics(3)
    m.update(np.full((1, 2, 2), 1), np.full((1, 2, 2), IGNORE_INDEX))
    m.update(p, t)
    assert m.compute()["weighted_iou"] == pytest.approx(1.0) and m.compute()["n_images"] == 2
    with pytest.raises(ValueError, match="outside"):  # other ids beyond the classes are still errors
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), IGNORE_INDEX - 1), 3)
