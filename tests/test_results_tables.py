"""The results tables pick and report by mean IoU, per class, and name the classes a model misses."""

from gan_partseg.cards import fewshot_card, lost_sentence
from gan_partseg.labels import MISS_BELOW, missed_classes, misses_text
from gan_partseg.results.fewshot_table import best_heads, per_class_table, summarize


def _row(head, k, draw, mean, weighted, eye):
    return {"classes": 10, "head": head, "k": k, "draw": draw, "mean_iou": mean, "weighted_iou": weighted,
            "per_class_iou": {"background": 0.95, "eye": eye}}


def test_the_shipped_head_is_the_best_by_mean_iou_not_by_weighted_iou():
    rows = [_row("cnn-l", 10, d, 0.45, 0.90, 0.0) for d in range(2)] + \
           [_row("cnn-s", 10, d, 0.55, 0.88, 0.5) for d in range(2)] + [_row("mlp-1", 1, 0, 0.40, 0.80, 0.2)]
    assert best_heads(rows) == {10: "cnn-s", 1: "mlp-1"}  # no default-head row at k 10: the best by mean
    table = "\n".join(per_class_table(summarize(rows)))
    assert "| cnn-l | 10 | 45.0 | 95.0 | 0.0 | eye |" in table  # the class it loses, named
    assert "| cnn-s | 10 | 55.0 | 95.0 | 50.0 | none |" in table


def test_the_default_head_ships_unless_another_leads_it_by_more_than_the_draws_spread():
    """mlp-1 (the default) at 0.54 +- 0.02 against cnn-s at 0.55 +- 0.0: a lead within the spread, mlp-1 ships;
    at 0.50 +- 0.02 the lead (0.05) is larger than the spread, cnn-s ships."""
    cnn = [_row("cnn-s", 10, d, 0.55, 0.88, 0.5) for d in range(2)]
    close = [_row("mlp-1", 10, d, m, 0.90, 0.5) for d, m in enumerate((0.52, 0.56))]
    far = [_row("mlp-1", 10, d, m, 0.90, 0.5) for d, m in enumerate((0.48, 0.52))]
    assert best_heads(cnn + close) == {10: "mlp-1"}
    assert best_heads(cnn + far) == {10: "cnn-s"}
    assert best_heads(cnn + close, default="cnn-l") == {10: "cnn-s"}


def test_a_card_says_which_class_its_model_loses():
    assert "misses: eye 0.0, eyebrow 5.0" in lost_sentence({"background": 0.9, "eye": 0.0, "eyebrow": 0.05, "ear": 0.3})
    assert lost_sentence({"background": 0.9, "eye": 0.5}).startswith("Every class")
    summary = summarize([_row("cnn-l", 10, d, 0.45, 0.90, 0.0) for d in range(2)])[0]
    config = {"id2label": {"0": "background", "1": "eye"}, "generator": "g", "head": "cnn", "cnn_size": "L"}
    meta = {"n_test": 200, "shipped": {"10": {"head": "cnn-l", "mean_iou": 0.45, "weighted_iou": 0.9,
                                              "per_class_iou": {"background": 0.95, "eye": 0.0}}}}
    card = str(fewshot_card("x", config, {"k": 10, "config": {"head": "cnn-l"}}, {"summary_row": summary, "meta": meta}))
    assert "mean IoU **45.0 ± 0.0** (weighted IoU 90.0" in card
    assert "**This model misses: eye 0.0**" in card and "| this model (draw 0) | 45.0 | 90.0 | 95.0 | 0.0 |" in card


def test_one_rule_names_the_missed_classes_and_skips_classes_absent_from_the_truth():
    per_class = {"background": 0.97, "eye": 0.0, "eyebrow": 0.195, "ear": 0.2, "hat": None}
    assert MISS_BELOW == 0.20
    assert missed_classes(per_class) == {"eye": 0.0, "eyebrow": 0.195}  # 0.2 itself is not a miss
    assert misses_text(per_class) == "misses: eye 0.0, eyebrow 19.5"
    assert misses_text({"background": 0.9, "eye": 0.5}) == ""


def test_the_settings_table_reports_validation_figures_per_class_and_the_best_change():
    from gan_partseg.results.fewshot_settings import markdown

    pc = {c: 0.5 for c in ("background", "skin", "hair", "eye", "eyebrow", "mouth", "nose", "ear", "neck", "clothes")}
    rows = [{"k": 1, "change": {}, "draws": 3, "n_val": 29, "val_mean_iou": 0.49, "val_weighted_iou": 0.89,
             "val_per_class_iou": {**pc, "ear": 0.08}, "train_seconds": 13.0},
            {"k": 1, "change": {"lr": 0.003}, "draws": 3, "n_val": 29, "val_mean_iou": 0.50, "val_weighted_iou": 0.9,
             "val_per_class_iou": pc, "train_seconds": 13.5}]
    text = markdown(rows, 400)
    assert "| **defaults** | 49.0 | 89.0 | 50.0 | 50.0 | 50.0 | 50.0 | 8.0 | ear 8.0 | 13.0 |" in text
    assert "| lr 0.003 | 50.0 | 90.0 |" in text and "| none |" in text
    assert "Best: lr 0.003, +1.0 mean IoU over the defaults." in text


def test_the_settings_sweep_refuses_an_unknown_setting_before_any_work(tmp_path):
    import pytest

    from gan_partseg.results.fewshot_settings import run

    with pytest.raises(ValueError, match="unknown TrainFewShotConfig field"):
        run(1, tmp_path, grid=[{"stepz": 10}])  # tmp_path has no pool: the check comes first


def test_the_bundled_one_shot_head_is_trained_on_a_face_that_shows_every_class():
    """An annotator picks a face with its eyebrows and ears in view; k >= 2 keeps the table's draw 0."""
    import numpy as np

    from gan_partseg.data.shots import Shot
    from gan_partseg.results.fewshot_table import ship_shots

    seeds = [500000 + i for i in range(6)]
    every = np.arange(10, dtype=np.uint8).repeat(10).reshape(10, 10)

    def shot(seed, labels):
        return Shot(f"{seed:07d}", np.zeros((10, 10, 3), np.uint8), labels, None, [], "g", "w+")

    pool = [shot(s, every if s in (500002, 500004) else np.minimum(every, 3)) for s in seeds]  # two show all ten
    chosen, rule = ship_shots(pool, seeds, 1)
    assert len(chosen) == 1 and chosen[0].name in ("0500002", "0500004") and "showing every class" in rule
    five, rule5 = ship_shots(pool, seeds, 5)
    want = np.random.default_rng(5000).choice(seeds, size=5, replace=False)
    assert rule5 == "draw 0" and [s.name for s in five] == [f"{s:07d}" for s in want]
    none_all = [shot(s, np.minimum(every, 3)) for s in seeds]  # no face shows every class: draw 0 again
    assert ship_shots(none_all, seeds, 1)[1] == "draw 0"
    # the card names the rule in its per-class table
    summary = summarize([_row("mlp-1", 1, d, 0.45, 0.90, 0.3) for d in range(2)])[0]
    meta = {"n_test": 200, "shipped": {"1": {"head": "mlp-1", "mean_iou": 0.46, "weighted_iou": 0.9, "rule": rule,
                                             "per_class_iou": {"background": 0.95, "eye": 0.3}}}}
    config = {"id2label": {"0": "background", "1": "eye"}, "generator": "g", "head": "mlp"}
    card = str(fewshot_card("x", config, {"k": 1, "config": {"head": "mlp-1"}}, {"summary_row": summary, "meta": meta}))
    assert f"| this model ({rule}) | 46.0 |" in card


def test_rows_of_an_older_default_are_measured_again_and_mixed_dates_are_named(tmp_path):
    """A 1-shot row trained before the default style mixing is not reused (5-shot rows are: their default did not
    change), nor a row trained before the default layer scaling; a table whose columns come from different days
    says so."""
    import json

    from gan_partseg.results.fewshot_table import _dates_text, dates_by_k, load_rows

    old1 = {**_row("mlp-1", 1, 0, 0.47, 0.88, 0.3), "loss": "balanced-ce", "feature_scale": "layer-rms"}  # no style_mix
    new1 = {**old1, "draw": 1, "style_mix": 8, "date": "2026-12-04"}
    five = {**_row("mlp-1", 5, 0, 0.57, 0.91, 0.45), "loss": "balanced-ce", "date": "2026-12-03",
            "feature_scale": "layer-rms"}
    unscaled = {k: v for k, v in five.items() if k != "feature_scale"} | {"draw": 1}  # before layer scaling
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (old1, new1, five, unscaled)))
    assert sorted(load_rows(tmp_path)) == [(10, "mlp-1", 1, 1), (10, "mlp-1", 5, 0)]
    text = _dates_text(dates_by_k([new1, five]))
    assert "1-shot: 2026-12-04; 5-shot: 2026-12-03" in text and "not bit-reproducible" in text
    assert _dates_text(dates_by_k([new1, {**five, "date": "2026-12-04"}])) == ""


def test_the_settings_sweep_knows_the_shot_settings(tmp_path):
    """"mirror" is a setting of the shots, not of TrainFewShotConfig: the field check lets it through (what fails
    next is reading the pool that tmp_path lacks, not the check's ValueError)."""
    import pytest

    from gan_partseg.data.shots import ShotsError
    from gan_partseg.results.fewshot_settings import GRIDS, run

    assert {"mirror": True} in GRIDS["shots"] and {"style_mix": 8} in GRIDS["shots"]
    with pytest.raises((ShotsError, FileNotFoundError)):  # no pool at all in tmp_path: the reading fails, not the check
        run(1, tmp_path, grid=[{"mirror": True}])
