"""Quality figures: the Fréchet distance, part presence, and the pictures and card tables that show them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_partseg.cards import generator_card, parts_table
from gan_partseg.data import HELD_OUT_SEEDS, render_batch
from gan_partseg.evaluation.frechet import (
    DetectorFeatures,
    fd_report,
    frechet_distance,
    frechet_terms,
    part_attributes,
    part_presence,
    part_presence_report,
    radial_spectrum,
)
from gan_partseg.labels import CLASSES_10, id2label
from gan_partseg.models.autoshot import AutoShotSegmenter, AutoShotSegmenterConfig
from gan_partseg.visualize import BAR_COLOURS, bar_chart


def test_frechet_distance_of_gaussians_with_known_answer():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 6))
    cov = np.cov(a.T)
    mu = a.mean(0)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    # diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    m1, m2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert frechet_distance(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(expected)
    terms = frechet_terms(m1, np.diag(s1), m2, np.diag(s2))
    assert terms["mean"] == pytest.approx(5.0) and terms["cov"] == pytest.approx(expected - 5.0)
    assert frechet_terms(m1, np.diag(s1), m1, np.diag(s2))["mean"] == 0.0


def test_part_presence_counts_images_and_areas():
    maps = torch.zeros(4, 8, 8, dtype=torch.long)
    maps[0, :2, :2] = 1          # 4 pixels of class 1: present at min_pixels 4
    maps[1, 0, :3] = 1           # 3 pixels: below the threshold
    maps[2, :, :] = 2            # class 2 everywhere, class 0 absent
    out = part_presence(maps, n_classes=4, min_pixels=4)
    assert out["present"] == pytest.approx([0.75, 0.25, 0.25, 0.0])
    assert out["area"] == pytest.approx([(60 + 61 + 0 + 64) / 256, (4 + 3) / 256, 64 / 256, 0.0])
    assert part_presence(maps, 4, min_pixels=1)["present"][1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        part_presence(maps[0], 4)


def test_part_presence_report_compares_generated_with_rendered(tiny_generator):
    torch.manual_seed(0)
    detector = AutoShotSegmenter(AutoShotSegmenterConfig(widths=[4, 8], image_size=32,
                                                         id2label=id2label(CLASSES_10))).eval()
    report = part_presence_report(tiny_generator, detector, n=6, batch=4, min_pixels=2)
    assert report["n_images"] == 6 and list(report["parts"]) == list(CLASSES_10)
    _, truth = render_batch(list(HELD_OUT_SEEDS[:6]), 32)
    true = part_presence(torch.from_numpy(truth.astype(np.int64)), 10, min_pixels=2)["present"]
    for i, name in enumerate(CLASSES_10):
        p = report["parts"][name]
        assert p["true_present"] == pytest.approx(true[i])
        for key in ("generated_present", "rendered_present", "generated_area", "rendered_area", "true_area"):
            assert 0.0 <= p[key] <= 1.0
        if p["rendered_present"] > 0:
            assert p["ratio"] == pytest.approx(p["generated_present"] / p["rendered_present"])
    # every rendered face has skin and background, and the untrained detector's IoU is reported per part
    assert report["parts"]["skin"]["true_present"] == 1.0
    assert all("detector_iou" in p for p in report["parts"].values())


def test_detector_features_pool_each_encoder_stage_and_serve_fd_report(tiny_generator):
    torch.manual_seed(0)
    detector = AutoShotSegmenter(AutoShotSegmenterConfig(widths=[4, 8], image_size=32,
                                                         id2label=id2label(CLASSES_10))).eval()
    feats = DetectorFeatures(detector)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        f = feats(images)
        first = detector.down[0](images)
        second = detector.down[1](torch.nn.functional.max_pool2d(first, 2))
    assert f.shape == (3, 12)
    assert torch.allclose(f, torch.cat([first.mean((2, 3)), second.mean((2, 3))], 1))
    report = fd_report(tiny_generator, n=8, batch=4, features=feats, features_name="tiny detector")
    assert report["features"] == "tiny detector"
    # renders are closer to renders than an untrained generator's noise is
    assert 0 <= report["fd_rendered_vs_rendered"] < report["fd_generator_vs_rendered"]


def test_fd_report_measures_more_networks_in_one_pass_with_the_same_figures(tiny_generator, monkeypatch):
    import gan_partseg.evaluation.frechet as quality

    torch.manual_seed(0)
    nets = {key: AutoShotSegmenter(AutoShotSegmenterConfig(widths=[4, 8], image_size=32,
                                                           id2label=id2label(CLASSES_10))).eval()
            for key in ("a", "b")}
    feats = {key: DetectorFeatures(net) for key, net in nets.items()}

    def untrained():
        torch.manual_seed(1)
        return type(tiny_generator)(tiny_generator.config)

    alone = {key: fd_report(tiny_generator, n=8, batch=4, features=f, features_name=key,
                            untrained_factory=untrained)
             for key, f in feats.items()}
    rendered = []
    real_render = quality.rendered_batches
    monkeypatch.setattr(quality, "rendered_batches", lambda *a, **k: rendered.append(a) or real_render(*a, **k))
    both = fd_report(tiny_generator, n=8, batch=4, features=feats["a"], features_name="a",
                     untrained_factory=untrained,
                     also={"fd_b": (feats["b"], "b")})
    assert len(rendered) == 2  # held-out and training faces, each rendered once for both networks
    assert both["n_images"] == 8 and both["features"] == "a" and both["fd_b"]["features"] == "b"
    for fig in ("fd_rendered_vs_rendered", "fd_generator_vs_rendered", "fd_untrained_vs_rendered"):
        assert both[fig] == pytest.approx(alone["a"][fig], rel=1e-6)
        assert both["fd_b"][fig] == pytest.approx(alone["b"][fig], rel=1e-6)
    assert both["fd_b"]["fd_generator_vs_rendered"] != pytest.approx(both["fd_generator_vs_rendered"])


def test_bar_chart_draws_bars_in_proportion_and_checks_its_input():
    chart = bar_chart(["a", "b"], {"one": [1.0, 0.5], "two": [0.25, None]}, title="t", width=200, bar=10)
    assert chart.dtype == np.uint8 and chart.ndim == 3
    blue = np.all(chart == np.array(BAR_COLOURS[0], dtype=np.uint8), axis=-1)
    orange = np.all(chart == np.array(BAR_COLOURS[1], dtype=np.uint8), axis=-1)
    # bar lengths follow the values (200, 100, 50 px; the axis line covers their first pixel)
    blue_rows = sorted({int(r.sum()) for r in blue if r.sum() > 9}, reverse=True)
    assert blue_rows[:2] == [200, 100]
    assert max(int(r.sum()) for r in orange) == 50
    with pytest.raises(ValueError, match="2 categories"):
        bar_chart(["a", "b"], {"one": [1.0]})
    with pytest.raises(ValueError, match="1 to 4 series"):
        bar_chart(["a"], {str(i): [0.5] for i in range(5)})


def test_generator_card_shows_fd_and_part_presence():
    parts = {"eye": {"generated_present": 0.5, "rendered_present": 1.0, "true_present": 1.0, "generated_area": 0.01,
                     "rendered_area": 0.02, "true_area": 0.02, "ratio": 0.5, "detector_iou": 0.8},
             "ear": {"generated_present": 0.1, "rendered_present": 0.4, "true_present": 0.5, "generated_area": 0.0,
                     "rendered_area": 0.01, "true_area": 0.01, "ratio": 0.25, "detector_iou": None}}
    table = parts_table(parts, 2000)
    assert "| eye | 50.0% | 100.0% | 100.0% | 0.50 | 80.0 |" in table
    assert "| ear | 10.0% | 40.0% | 50.0% | 0.25 | - |" in table
    config = {"size": 64, "style_dim": 128, "n_mlp": 4, "channels": {"4": 8, "8": 8}, "blur_kernel": [1, 3, 3, 1]}
    training = {"n_images": 100, "r1": 1.0, "d_reg_every": 16, "path_regularize": 0.0, "mixing": 0.9,
                "augment": "none", "ema_kimg": 10.0, "ema_rampup": 0.05, "lr": 0.002, "batch": 16, "seed": 0,
                "steps_done": 10, "kimg": 0.16, "wall_minutes": 1.0, "seconds_per_step": 0.5}
    quality = {"fd_rendered_vs_rendered": 6.9, "fd_generator_vs_rendered": 78.4, "n_images": 2000,
               "features": "f", "parts": parts, "parts_n_images": 2000}
    text = str(generator_card("g", config, training, quality, None))
    assert "**78.40**" in text and "| eye | 50.0% |" in text and "yardstick" not in text
    assert "batch 16," in text
    two = str(generator_card("g", config, {**training, "batch": 8, "processes": 2}, quality, None))
    assert "batch 16 (2 processes x 8)," in two
    with_yardsticks = str(generator_card("g", config, training, {**quality, "fd_yardsticks": {"blur 1 px": 72.5}}, None))
    assert "| yardstick: rendered, blur 1 px | 72.50 |" in with_yardsticks
    assert "FD on the part detector's features" not in with_yardsticks
    detector = {"features": "part detector", "fd_rendered_vs_rendered": 0.019, "fd_generator_vs_rendered": 0.325}
    both = str(generator_card("g", config, training, {**quality, "fd_detector": detector,
                                                       "fd_detector_yardsticks": {"blur 1 px": 2.017}}, None))
    assert "**0.325**" in both and "| rendered vs rendered (floor) | 0.019 |" in both
    assert "| yardstick: rendered, blur 1 px | 2.017 |" in both and "**78.40**" in both
    assert "| eye |" not in str(generator_card("g", config, training, {**quality, "parts": None}, None))
    assert "went through" not in text
    # a run's card says what that run did, nothing of the bundled model's history
    assert "2-core" not in text and "train_embedded_gan" not in text and "toyfaces-64" not in text
    assert "1 minutes** of wall time" in text and "mixed precision `no`, 1 process." in text
    assert "`log.jsonl` in the run folder" in text
    from gan_partseg.cards import EMBEDDED_STORY
    bundled = str(generator_card("toyfaces-64", config, training, quality, None, story=EMBEDDED_STORY))
    assert "2-core CPUs" in bundled and "docs/results/toyfaces-64-training.md" in bundled
    staged = str(generator_card("g", config, {**training, "lineage": ["a to step 5", "b"]}, quality, None))
    assert "went through 2 runs" in staged and "`a to step 5`, then `b`" in staged


def test_radial_spectrum_finds_the_frequency_of_a_pattern_and_the_loss_of_blur():
    size = 32
    x = torch.arange(size, dtype=torch.float64)
    stripes = torch.cos(2 * np.pi * 4 * x / size).view(1, 1, 1, size).expand(1, 3, size, size).float() * 0.5
    spec = radial_spectrum(stripes)
    assert spec.shape == (1, size // 2)
    assert int(spec.argmax()) == 3                      # 4 cycles per image: band r = 3
    assert spec[0, 3] > 1e3 * torch.cat([spec[0, :3], spec[0, 4:]]).max()
    faces = torch.from_numpy(render_batch(list(HELD_OUT_SEEDS[:4]), 32)[0]).permute(0, 3, 1, 2).float() / 127.5 - 1
    blurred = torch.nn.functional.avg_pool2d(faces, 3, stride=1, padding=1, count_include_pad=False)
    ratio = radial_spectrum(blurred).mean(0) / radial_spectrum(faces).mean(0)
    assert ratio[-4:].max() < 0.5 < ratio[:2].min()     # a blur removes fine detail, keeps the coarse shapes
    assert torch.allclose(radial_spectrum(faces + 0.3), radial_spectrum(faces), atol=1e-4)   # the mean is removed
    with pytest.raises(ValueError, match="H == W"):
        radial_spectrum(faces[..., :16])


def test_part_attributes_read_area_centroid_and_colour():
    maps = torch.zeros(2, 8, 8, dtype=torch.long)
    maps[0, 0:2, 4:8] = 1                    # part 1: top right of image 0, 8 pixels
    maps[1, 7, 0:3] = 1                      # 3 pixels in image 1: below min_pixels
    images = torch.zeros(2, 3, 8, 8)
    images[0, 0, 0:2, 4:8] = 0.5             # part 1 of image 0 is red
    out = part_attributes(images, maps, ["background", "skin"], colour_parts=("skin",))
    assert out["skin area"].tolist() == pytest.approx([8 / 64, 3 / 64])
    assert out["skin x"][0] == pytest.approx(6 / 8) and out["skin y"][0] == pytest.approx(1 / 8)
    assert torch.isnan(out["skin x"][1]) and torch.isnan(out["skin R"][1])
    assert [float(out[f"skin {c}"][0]) for c in "RGB"] == pytest.approx([0.5, 0.0, 0.0])
    assert "background R" not in out and out["background area"].tolist() == pytest.approx([56 / 64, 61 / 64])
    with pytest.raises(ValueError, match="must match"):
        part_attributes(images[:1], maps, ["background", "skin"])
