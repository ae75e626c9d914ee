"""scripts/fd_breakdown.py: where a set's distance to the renders comes from (FD terms, stages, spectrum)."""


import numpy as np
import pytest
import torch

from gan_partseg.results import fd_breakdown
from gan_partseg.training.gan import TrainGANConfig, train_gan


def _stats(mu, var):
    return np.asarray(mu, dtype=float), np.diag(np.asarray(var, dtype=float))


def test_breakdown_splits_terms_stages_and_bands():
    ref = {"detector": _stats(np.zeros(5), np.ones(5)), "spectrum": _stats(np.ones(32), np.ones(32))}
    # stage 1 (2 channels) is shifted by (1, 1); stage 2 (3 channels) spreads 4x as wide (std 2): cov term 3
    spectrum = np.ones(32)
    spectrum[16:24] = 0.5                                 # bins 17-24 hold half the power: soft at those scales
    row = fd_breakdown.breakdown({"detector": _stats([1, 1, 0, 0, 0], [1, 1, 4, 4, 4]),
                                  "spectrum": _stats(spectrum, np.ones(32))}, ref, stages=[2, 3], size=64)
    det = row["fd_detector"]
    assert det["mean"] == pytest.approx(2.0) and det["cov"] == pytest.approx(3.0)
    assert det["total"] == pytest.approx(5.0)
    assert det["stages"] == pytest.approx({"64 px, 2 ch": 2.0, "32 px, 3 ch": 3.0})
    assert row["spectrum_ratio"] == pytest.approx({"1-4": 1.0, "5-8": 1.0, "9-16": 1.0, "17-24": 0.5, "25-32": 1.0})
    assert "fd_lite0" not in row
    text = fd_breakdown.markdown({"n_images": 10, "reference": "HELD_OUT_SEEDS[:10]", "sets": {"g": row}})
    assert "| g | 5.000 | 2.000 | 3.000 |" in text and "| g | 2.0000 | 3.0000 |" in text
    assert "| g | 1.00 | 1.00 | 1.00 | 0.50 | 1.00 |" in text


def test_a_folder_that_is_no_checkpoint_fails_before_any_measuring(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a train-gan run folder"):
        fd_breakdown.load_generator(str(tmp_path / "no-such-checkpoint"), tmp_path)
    run = tmp_path / "run"
    train_gan(TrainGANConfig(out=str(run), size=16, style_dim=16, n_mlp=1, channels={"4": 16, "8": 16, "16": 8},
                             n_images=8, batch=4, steps=1, sample_every=100, checkpoint_every=1), progress=False)
    with pytest.raises(FileNotFoundError, match="not a complete train-gan checkpoint.*step_00000001"):
        fd_breakdown.load_generator(str(tmp_path / "no-such-checkpoint"), run)
    g, name = fd_breakdown.load_generator(str(run / "checkpoints" / "step_00000001"), run)
    assert name == "step 1" and g.config.size == 16
    assert fd_breakdown.load_generator(f"arm={run / 'checkpoints' / 'step_00000001'}", run)[1] == "arm"
    # a checkpoint of another run than --run is read with its own run's config
    assert fd_breakdown.load_generator(str(run / "checkpoints" / "step_00000001"), tmp_path / "other")[1] == "step 1"


def test_attribute_spread_reads_narrow_and_shifted_sets_and_skips_missing_parts():
    ref = {"skin x": torch.tensor([0.4, 0.5, 0.6, 0.5]), "ear x": torch.tensor([float("nan")] * 4)}
    narrow = {"skin x": torch.tensor([0.55, 0.6, 0.65, 0.6, float("nan")]), "ear x": torch.tensor([0.1, 0.2])}
    out = fd_breakdown.attribute_spread(narrow, ref)
    assert list(out) == ["skin x"]                        # ear: never present in the reference
    assert out["skin x"]["std_ratio"] == pytest.approx(0.5)
    assert out["skin x"]["shift"] == pytest.approx(0.1 / float(ref["skin x"].std()))
    text = fd_breakdown.markdown({"n_images": 4, "reference": "r", "sets": {"g": {"attributes": out}}})
    assert "| g | 1 | 0.50 | 1 | 0 | 1 |" in text and "| skin x | 0.50 | +1.22 |" in text


def test_discriminator_readout_separates_memory_from_the_real_generated_margin(tmp_path):
    seen, unseen, generated = np.array([1.0, 0.5, -0.1, 0.6]), np.array([0.2, 0.2, -0.2, 0.2]), np.array([-1.0, -0.6])
    d = fd_breakdown.discriminator_readout(seen, unseen, generated)
    assert (d["seen"], d["unseen"], d["generated"]) == pytest.approx((0.5, 0.1, -0.8))
    assert d["overfit_gap"] == pytest.approx(0.4) and d["margin"] == pytest.approx(0.9)
    assert d["overfit_share"] == pytest.approx(0.4 / 1.3) and d["r_t"] == pytest.approx(0.5)
    text = fd_breakdown.markdown({"n_images": 4, "reference": "r", "sets": {"g": {"discriminator": d}}})
    assert "| g | +0.500 | +0.100 | -0.800 | 0.400 | 0.900 | 0.31 | 0.50 |" in text
    # the discriminator beside a checkpoint's generator, and its logits over batches
    run = tmp_path / "run"
    train_gan(TrainGANConfig(out=str(run), size=16, style_dim=16, n_mlp=1, channels={"4": 16, "8": 16, "16": 8},
                             n_images=8, batch=4, steps=1, sample_every=100, checkpoint_every=1), progress=False)
    disc = fd_breakdown.load_discriminator(f"arm={run / 'checkpoints' / 'step_00000001'}", run)
    logits = fd_breakdown.discriminator_logits(disc, [torch.zeros(3, 3, 16, 16), torch.ones(2, 3, 16, 16)], 2, "x")
    assert logits.shape == (5,) and np.isfinite(logits).all() and logits[0] == logits[2] != logits[3]
