"""The latent-optimizer comparison says whether its default still stands (scripts/inversion_comparison.py)."""


from gan_partseg.inversion.latent_optimizer import InversionConfig
from gan_partseg.results import inversion_comparison

DEFAULT = InversionConfig()


def _row(perceptual, space, miou):
    return {"perceptual": perceptual, "space": space, "steps": 200, "psnr": 25.0, "weighted_iou": 0.9,
            "mean_iou": miou, "seconds_per_image": 1.0, "per_class_iou": {"eye": 0.5, "eyebrow": 0.2, "ear": None}}


def _section(tmp_path, monkeypatch, other_wiou, rows=None, best=None):
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "docs" / "results.md").write_text("# Results\n\n## Latent optimizer settings\n\nold\n")
    monkeypatch.setattr(inversion_comparison, "ROOT", tmp_path)
    rows = rows or [_row(DEFAULT.perceptual, DEFAULT.space, 0.865), _row("none", "w", other_wiou)]
    best = best or max(rows, key=lambda r: r["mean_iou"])
    inversion_comparison.write_section({"n_images": 16, "segmenter": "seg", "rows": rows, "best": best})
    return (tmp_path / "docs" / "results.md").read_text()


def test_default_within_the_noise_of_the_best_stays(tmp_path, monkeypatch):
    text = _section(tmp_path, monkeypatch, 0.867)
    assert "| none **(best)** | w |" in text and "old" not in text
    assert "0.2 points of mean IoU below the best" in text and "the default stays" in text
    assert "| 50.0 | 20.0 | - |" in text  # the small parts beside the mean


def test_default_beaten_by_more_than_the_noise_says_what_to_do(tmp_path, monkeypatch):
    text = _section(tmp_path, monkeypatch, 0.90)
    assert "3.5 points" in text and "change `InversionConfig`'s defaults and rerun `scripts/run_results.sh`" in text


def test_default_tied_with_the_best_says_so(tmp_path, monkeypatch):
    # the best is picked by PSNR among equal rounded IoUs: it may sit a hair below the default
    rows = [_row(DEFAULT.perceptual, DEFAULT.space, 0.8623), {**_row("lite0", "w+", 0.8622), "psnr": 27.0}]
    text = _section(tmp_path, monkeypatch, None, rows=rows, best=rows[1])
    assert "ties the best on mean IoU (86.2" in text and "the default stays" in text and "-0.0" not in text
