"""Reference rows: teachers vs the part detector on generated held-out images; part detector and the shipped
auto-shot U-Net vs truth on renders; shipped U-Net vs its own (cnn-l) teacher on generated held-out images."""
import json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa
import torch, torch.nn.functional as F
from evaluate import evaluate, fmt, score
from gan_partseg.fewshot import FewShotSegmenter
from gan_partseg.generated_data import generate_latents
from gan_partseg.io import tensor_to_uint8, uint8_to_tensor
from gan_partseg.unet import AutoShotSegmenter

ROOT = Path(__file__).resolve().parents[1]
t0 = time.time()
# the bundled cnn-l teacher's labels on the same 200 held-out seeds (same images: same generator, same seeds)
seg = FewShotSegmenter.from_pretrained("toyfaces-64-fewshot-10c-10shot").eval()
seeds = [10_000_000 + i for i in range(200)]
imgs, labs = [], []
with torch.no_grad():
    for i in range(0, 200, 25):
        w, noise = generate_latents(seg.generator, seeds[i:i + 25])
        out = seg.segment_latents(w, noise)
        imgs.append(uint8_to_tensor(tensor_to_uint8(out.images))); labs.append(out.labels)
torch.save({"seeds": seeds, "images": torch.cat(imgs), "labels": torch.cat(labs)}, ROOT / "exp" / "heldout-gen-cnn-l.pt")
hs = torch.load(ROOT / "exp" / "heldout-gen.pt")
hl = torch.load(ROOT / "exp" / "heldout-gen-cnn-l.pt")
assert torch.equal(hs["images"], hl["images"])
det = AutoShotSegmenter.from_pretrained(str(ROOT / "runs" / "part-detector" / "run" / "best")).eval()
det_pred = det.segment(hs["images"])
rows = {"teacher cnn-s vs detector (gen)": score(hs["labels"].long(), det_pred),
        "teacher cnn-l vs detector (gen)": score(hl["labels"].long(), det_pred)}
# (score(pred=teacher, target=detector): the detector plays truth)
r_det = evaluate(det)
rows["detector vs truth (render)"] = r_det["vs_truth_render"]
ship = AutoShotSegmenter.from_pretrained("toyfaces-64-autoshot-10c").eval()
r_ship = evaluate(ship, str(ROOT / "exp" / "heldout-gen-cnn-l.pt"))
rows["shipped U-Net vs cnn-l teacher (gen)"] = r_ship["vs_teacher_gen"]
rows["shipped U-Net vs truth (render)"] = r_ship["vs_truth_render"]
rows["teacher cnn-s: pixel frac of labels (gen)"] = {"pred_frac": score(hs["labels"].long(), hs["labels"].long())["pred_frac"]}
json.dump({"rows": rows, "s": time.time() - t0}, open(ROOT / "exp" / "results" / "reference.json", "w"), indent=2)
for k, v in rows.items():
    if "per_class_iou" in v:
        print(f"{k:40s} {fmt(v)}")
print("s", round(time.time() - t0, 1))
