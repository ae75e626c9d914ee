"""Markdown tables from exp/rows.jsonl (+ the protocol's stored paper-dilation rows in runs/results/rows.jsonl)."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CL = ["background", "skin", "hair", "eye", "eyebrow", "mouth", "nose", "ear", "neck", "clothes"]
rows = []
for line in (ROOT / "runs/results/rows.jsonl").read_text().splitlines():
    r = json.loads(line)
    if r["classes"] == 10 and r["draw"] in (0, 1) and r["head"] in ("cnn-s", "cnn-m", "cnn-l", "mlp-1"):
        rows.append({**r, "steps": 400, "lr": 0.001, "src": "stored"})
for line in (ROOT / "exp/rows.jsonl").read_text().splitlines():
    r = json.loads(line)
    rows.append({**r, "src": "new"})
order = ["mlp-1", "cnn-s", "cnn-s/scale", "cnn-m", "cnn-m/scale", "cnn-m/cap", "cnn-l", "cnn-l/scale", "cnn-l/cap"]
key = lambda r: (order.index(r["head"]) if r["head"] in order else 99, r["head"], -r["steps"], r["lr"], r["draw"], r["src"])
for k in (10, 1, 5):
    rs = sorted([r for r in rows if r["k"] == k], key=key)
    if not rs:
        continue
    print(f"\n### {k}-shot\n")
    print("| head | steps | lr | draw | src | mIoU | wIoU | " + " | ".join(CL) + " | train s |")
    print("|" + "---|" * (7 + len(CL) + 1))
    for r in rs:
        pc = r["per_class_iou"]
        print(f"| {r['head']} | {r['steps']} | {r['lr']:g} | {r['draw']} | {r['src']} | {100*r['mean_iou']:.1f} | {100*r['weighted_iou']:.1f} | "
              + " | ".join(f"{100*pc[c]:.1f}" for c in CL) + f" | {r['train_seconds']} |")
    # mean over draws 0,1 (new rows preferred over stored)
    print(f"\nMean over draws 0 and 1 ({k}-shot):\n")
    print("| head | steps | lr | n | mIoU | wIoU | eye | eyebrow | ear | train s (new runs) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    groups = {}
    for r in rs:
        groups.setdefault((r["head"], r["steps"], r["lr"]), {}).setdefault(r["draw"], []).append(r)
    for (h, st, lr), by in sorted(groups.items(), key=lambda x: key({"head": x[0][0], "steps": x[0][1], "lr": x[0][2], "draw": 0, "src": ""})):
        pick = [next((x for x in v if x["src"] == "new"), v[0]) for v in by.values()]
        n = len(pick)
        f = lambda g: sum(g(x) for x in pick) / n * 100
        news = [x["train_seconds"] for v in by.values() for x in v if x["src"] == "new"]
        ts = f"{sum(news)/len(news):.1f}" if news else "-"
        print(f"| {h} | {st} | {lr:g} | {n} | {f(lambda x: x['mean_iou']):.1f} | {f(lambda x: x['weighted_iou']):.1f} | "
              f"{f(lambda x: x['per_class_iou']['eye']):.1f} | {f(lambda x: x['per_class_iou']['eyebrow']):.1f} | "
              f"{f(lambda x: x['per_class_iou']['ear']):.1f} | {ts} |")
