"""Print the tables from exp/results/*.json."""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from gan_partseg.labels import CLASSES_10
R = Path(__file__).parent / "results"
hdr = "| row | " + " | ".join(CLASSES_10) + " | mean | weighted |\n|---|" + "---|" * 12


def line(name, r):
    pc = r["per_class_iou"]
    return f"| {name} | " + " | ".join(f"{100 * pc[c]:.1f}" if pc[c] is not None else "nan" for c in CLASSES_10) + \
        f" | {100 * r['mean_iou']:.1f} | {100 * r['weighted_iou']:.1f} |"


ref = json.loads((R / "reference.json").read_text())["rows"]
order = ["ce", "balanced-ce", "ce+dice", "soft", "balanced-ce+dice", "median-freq-ce"]
res = {p.stem: json.loads(p.read_text()) for p in R.glob("*.json") if p.stem != "reference"}
names = [n for n in order if n in res] + sorted(set(res) - set(order))
for key, title in (("vs_teacher_gen", "U-Net vs its teacher (cnn-s) on 200 held-out generated images"),
                   ("vs_truth_render", "U-Net vs truth on HELD_OUT_SEEDS[:200] renders")):
    print(f"\n### {title}\n\n{hdr}")
    if key == "vs_truth_render":
        print(line("part detector (true-label U-Net)", ref["detector vs truth (render)"]))
        print(line("shipped auto-shot U-Net (cnn-l teacher)", ref["shipped U-Net vs truth (render)"]))
    else:
        print(line("shipped U-Net vs ITS teacher cnn-l", ref["shipped U-Net vs cnn-l teacher (gen)"]))
    for n in names:
        for w in ("best", "final"):
            print(line(f"{n} ({w})", res[n][w][key]))
print(f"\n### Teachers vs the part detector on the 200 held-out generated images\n\n{hdr}")
for k in ("teacher cnn-s vs detector (gen)", "teacher cnn-l vs detector (gen)"):
    print(line(k, ref[k]))
print("\ntrain seconds:", {n: round(res[n]["train_s"]) for n in names})
print("best epoch (val wIoU):", {n: max(res[n]["val_log"], key=lambda r: r["weighted_iou"])["epoch"] for n in names})
