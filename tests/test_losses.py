"""The segmentation losses both trainers share: class weights, soft Dice, ignored pixels, the boundary band."""

import pytest
import torch
import torch.nn.functional as F

from gan_partseg.training.losses import IGNORE, boundary_band, class_weights, segmentation_loss, soft_dice_loss


def test_class_weights_lift_rare_classes_and_keep_the_average_pixel_at_one():
    labels = torch.zeros(2, 10, 10, dtype=torch.long)
    labels[:, :2, :2] = 1  # 4% of pixels
    labels[:, 5:, :] = 2  # 50%
    w = class_weights(labels, 4, "inv-sqrt", max_weight=50.0)
    freq = torch.tensor([0.46, 0.04, 0.5, 0.0])
    assert w[1] > w[0] > w[2]  # rarer weighs more
    assert float((freq * w).sum()) == pytest.approx(1.0, abs=1e-5)
    assert w[3] == 50.0  # a class absent from the labels takes the cap
    assert class_weights(labels, 4, "median-freq")[1] > 1
    with pytest.raises(ValueError, match="balance"):
        class_weights(labels, 4, "nope")


def test_soft_dice_is_zero_for_a_perfect_prediction_and_high_for_a_missed_class():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, :2, :2] = 1
    perfect = F.one_hot(target, 2).permute(0, 3, 1, 2).float() * 40
    assert float(soft_dice_loss(perfect, target)) < 1e-3
    background_only = torch.zeros(1, 2, 8, 8)
    background_only[:, 0] = 40  # never predicts the small class
    assert float(soft_dice_loss(background_only, target)) > 0.35  # the missed class alone costs ~0.4


def test_boundary_band_ignores_exactly_the_pixels_next_to_a_boundary():
    labels = torch.zeros(1, 9, 9, dtype=torch.long)
    labels[:, 3:6, 3:6] = 2  # a 3x3 part
    one = boundary_band(labels, 1)
    assert torch.equal(boundary_band(labels, 0), labels)
    # width 1: the 5x5 ring around and on the part's edge is ignored, only the part's centre survives
    assert int((one == IGNORE).sum()) == 5 * 5 - 1 and int(one[0, 4, 4]) == 2
    assert int(one[0, 0, 0]) == 0 and int(one[0, 1, 1]) == 0  # far from the part: kept
    assert int((boundary_band(labels, 2) == IGNORE).sum()) == 7 * 7


def test_ignored_pixels_change_neither_cross_entropy_nor_dice():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, generator=g)
    target = torch.randint(0, 3, (2, 6, 6), generator=g)
    masked = target.clone()
    masked[:, :2] = IGNORE
    w = class_weights(masked, 3)
    for loss in ("ce", "balanced-ce", "ce+dice", "balanced-ce+dice"):
        full = segmentation_loss(logits[:, :, 2:], target[:, 2:], loss, w)
        assert float(segmentation_loss(logits, masked, loss, w)) == pytest.approx(float(full), rel=1e-5), loss
    # the ignored pixels are not counted in the class weights either
    assert torch.allclose(class_weights(masked, 3), class_weights(target[:, 2:], 3))
    with pytest.raises(ValueError, match="loss must be one of"):
        from gan_partseg.training.losses import check_loss
        check_loss("focal")


def test_the_loss_ignores_the_labels_ignore_index_through_the_boundary_band():
    from gan_partseg.labels import IGNORE_INDEX

    assert IGNORE == IGNORE_INDEX == 255  # one constant: what importers write, evaluate and the loss skip
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[:, :, 5:] = IGNORE_INDEX  # e.g. another car in a PASCAL-Part crop
    labels[:, 2:4, 1:3] = 1
    for width in (0, 1):
        banded = boundary_band(labels, width)
        assert (banded[:, :, 5:] == IGNORE_INDEX).all()  # stays ignored, never a class
        assert set(banded.unique().tolist()) <= {0, 1, IGNORE_INDEX}
    logits = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    w = class_weights(labels, 2)
    assert torch.isfinite(w).all() and w.shape == (2,)
    for loss in ("ce", "balanced-ce+dice"):
        full = segmentation_loss(logits[..., :5], labels[..., :5], loss, w)
        assert float(segmentation_loss(logits, labels, loss, w)) == pytest.approx(float(full), rel=1e-5), loss
