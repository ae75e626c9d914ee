"""python exp/train_variant.py NAME EPOCHS [key=value ...]  -> exp/runs/NAME, exp/results/NAME.json"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa
from evaluate import evaluate, fmt
from gan_partseg.training.autoshot import TrainAutoShotConfig, train_autoshot
from gan_partseg.unet import AutoShotSegmenter

ROOT = Path(__file__).resolve().parents[1]
name, epochs = sys.argv[1], int(sys.argv[2])
kw = {}
for a in sys.argv[3:]:
    k, v = a.split("=", 1)
    kw[k] = {"True": True, "False": False}.get(v, float(v) if v.replace(".", "").isdigit() and "." in v else v)
data = kw.pop("data", str(ROOT / "exp" / "data-cnn-s"))
cfg = TrainAutoShotConfig(data=data, out=str(ROOT / "exp" / "runs" / name), widths="16,32,64,128",
                          epochs=epochs, batch=32, n_val=100, **kw)
t0 = time.time()
best = train_autoshot(cfg, progress=False)
train_s = time.time() - t0
res = {"name": name, "config": cfg.__dict__, "train_s": train_s,
       "best": evaluate(AutoShotSegmenter.from_pretrained(best)),
       "final": evaluate(AutoShotSegmenter.from_pretrained(best.parent / "final"))}
res["eval_s"] = time.time() - t0 - train_s
log = [json.loads(l) for l in (best.parent / "log.jsonl").read_text().splitlines()]
res["val_log"] = [r for r in log if "weighted_iou" in r]
(ROOT / "exp" / "results").mkdir(exist_ok=True)
json.dump(res, open(ROOT / "exp" / "results" / f"{name}.json", "w"), indent=2)
for which in ("best", "final"):
    for k in ("vs_teacher_gen", "vs_truth_render"):
        print(f"{name:18s} {which:5s} {k:16s} {fmt(res[which][k])}")
print("train_s", round(train_s, 1), "val", [(r["epoch"], round(r["weighted_iou"], 4), round(r["mean_iou"], 4)) for r in res["val_log"]])
