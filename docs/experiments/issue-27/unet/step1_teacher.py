"""Train a cnn-s head on the bundled 10-shot segmenter's shots (same order, 400 steps, seed 0); score vs truth
on the 200 cached held-out inversions (runs/results/heldout), like scripts/fewshot_results.py."""
import json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa
import numpy as np, torch
from gan_partseg.data import HELD_OUT_SEEDS, render
from gan_partseg.fewshot import FewShotSegmenter
from gan_partseg.hub import resolve_pretrained
from gan_partseg.labels import CLASSES_10, id2label
from gan_partseg.metrics import SegmentationMetrics
from gan_partseg.models.stylegan2 import StyleGAN2Generator
from gan_partseg.shots import read_latents, read_shots
from gan_partseg.training.fewshot import TrainFewShotConfig, save_fewshot, train_fewshot

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "exp" / "teacher-cnn-s"
t0 = time.time()
g = StyleGAN2Generator.from_pretrained("toyfaces-64").eval()
names = json.loads((Path(resolve_pretrained("toyfaces-64-fewshot-10c-10shot")) / "training.json").read_text())["shots"]
pool, _ = read_shots(ROOT / "runs" / "results" / "pool")
by = {s.name: s for s in pool}
chosen = [by[n] for n in names]
model = train_fewshot(TrainFewShotConfig(generator="toyfaces-64", head="cnn-s", steps=400, seed=0), generator=g,
                      shots=(chosen, id2label(CLASSES_10)), progress=False)
save_fewshot(model, OUT)
(OUT / "shots_used.json").write_text(json.dumps(names))
train_s = time.time() - t0
seeds = list(HELD_OUT_SEEDS[:200])
lat, noise = read_latents(ROOT / "runs" / "results" / "heldout", [f"{s:07d}" for s in seeds])
truth = np.stack([render(s, 64)[1] for s in seeds])
res = {}
for name, seg in (("cnn-s (new)", model.eval()),
                  ("cnn-l (bundled)", FewShotSegmenter.from_pretrained("toyfaces-64-fewshot-10c-10shot").eval())):
    preds = torch.cat([seg.segment_latents(lat[i:i + 25], [n[i:i + 25] for n in noise]).labels for i in range(0, 200, 25)])
    m = SegmentationMetrics(10, class_names=list(CLASSES_10)); m.update(preds, torch.from_numpy(truth))
    r = m.compute(); res[name] = {k: r[k] for k in ("weighted_iou", "mean_iou", "per_class_iou")}
    print(name, json.dumps({k: round(v, 3) if v is not None else None for k, v in r["per_class_iou"].items()}),
          "w", round(r["weighted_iou"], 4), "m", round(r["mean_iou"], 4), flush=True)
json.dump({"train_s": train_s, "total_s": time.time() - t0, "teacher_vs_truth_via_cached_inversion": res},
          open(ROOT / "exp" / "step1_teacher.json", "w"), indent=2)
print("train", round(train_s, 1), "s total", round(time.time() - t0, 1), "s")
