"""Score a U-Net (a) vs the teacher on exp/heldout-gen.pt (200 generated images of seeds 10,000,000+ that no
training set holds) and (b) vs truth on the first 200 HELD_OUT_SEEDS renders."""
import sys
from functools import lru_cache
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa
import numpy as np, torch
from gan_partseg.data import HELD_OUT_SEEDS, render_batch
from gan_partseg.io import uint8_to_tensor
from gan_partseg.labels import CLASSES_10
from gan_partseg.metrics import SegmentationMetrics

ROOT = Path(__file__).resolve().parents[1]


def score(pred, target):
    m = SegmentationMetrics(10, class_names=list(CLASSES_10))
    m.update(pred, target)
    r = m.compute()
    return {"weighted_iou": r["weighted_iou"], "mean_iou": r["mean_iou"], "per_class_iou": r["per_class_iou"],
            "pred_frac": (torch.bincount(pred.reshape(-1), minlength=10).double() / pred.numel()).tolist()}


@lru_cache(None)
def heldout_gen(path=str(ROOT / "exp" / "heldout-gen.pt")):
    return torch.load(path)


@lru_cache(None)
def renders(n=200):
    imgs, truth = render_batch(list(HELD_OUT_SEEDS[:n]), 64)
    return uint8_to_tensor(imgs), torch.from_numpy(truth.astype(np.int64))


def evaluate(model, gen_path=str(ROOT / "exp" / "heldout-gen.pt")):
    model = model.eval()
    h = heldout_gen(gen_path)
    x, t = renders()
    return {"vs_teacher_gen": score(model.segment(h["images"]), h["labels"].long()),
            "vs_truth_render": score(model.segment(x), t)}


def fmt(row):
    pc = row["per_class_iou"]
    return " ".join(f"{100 * pc[c]:5.1f}" if pc[c] is not None else "  nan" for c in CLASSES_10) + \
        f" | m {100 * row['mean_iou']:5.1f} w {100 * row['weighted_iou']:5.1f}"
