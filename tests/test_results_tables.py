"""The results tables pick and report by mean IoU, per class, and name the classes a model loses."""

from gan_partseg.cards import fewshot_card, lost_sentence
from gan_partseg.results.fewshot_table import best_heads, per_class_table, summarize


def _row(head, k, draw, mean, weighted, eye):
    return {"classes": 10, "head": head, "k": k, "draw": draw, "mean_iou": mean, "weighted_iou": weighted,
            "per_class_iou": {"background": 0.95, "eye": eye}}


def test_the_shipped_head_is_the_best_by_mean_iou_not_by_weighted_iou():
    rows = [_row("cnn-l", 10, d, 0.45, 0.90, 0.0) for d in range(2)] + \
           [_row("cnn-s", 10, d, 0.55, 0.88, 0.5) for d in range(2)] + [_row("mlp-1", 1, 0, 0.40, 0.80, 0.2)]
    assert best_heads(rows) == {10: "cnn-s", 1: "mlp-1"}
    table = "\n".join(per_class_table(summarize(rows)))
    assert "| cnn-l | 10 | 45.0 | 95.0 | 0.0 | eye |" in table  # the class it loses, named
    assert "| cnn-s | 10 | 55.0 | 95.0 | 50.0 | none |" in table


def test_a_card_says_which_class_its_model_loses():
    assert "loses eye, eyebrow" in lost_sentence({"background": 0.9, "eye": 0.0, "eyebrow": 0.05, "ear": 0.3})
    assert lost_sentence({"background": 0.9, "eye": 0.5}).startswith("Every class")
    summary = summarize([_row("cnn-l", 10, d, 0.45, 0.90, 0.0) for d in range(2)])[0]
    config = {"id2label": {"0": "background", "1": "eye"}, "generator": "g", "head": "cnn", "cnn_size": "L"}
    meta = {"n_test": 200, "shipped": {"10": {"head": "cnn-l", "mean_iou": 0.45, "weighted_iou": 0.9,
                                              "per_class_iou": {"background": 0.95, "eye": 0.0}}}}
    card = str(fewshot_card("x", config, {"k": 10, "config": {"head": "cnn-l"}}, {"summary_row": summary, "meta": meta}))
    assert "mean IoU **45.0 ± 0.0** (weighted IoU 90.0" in card
    assert "**This model loses eye**" in card and "| this model (draw 0) | 45.0 | 90.0 | 95.0 | 0.0 |" in card
