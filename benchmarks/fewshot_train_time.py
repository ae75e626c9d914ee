"""Wall time to train a 1-shot head on the embedded generator: today's defaults vs the old ones, side by side.

Rows (each ``train_fewshot`` from the shot to the trained model: generator features of the shot, then
the head's steps, on the CPU threads torch picks unless --threads is given):

  baseline (cnn-l, 600 steps)   the defaults before 2026-12-03 (the paper's CNN-L, 600 steps)
  default (TrainFewShotConfig)  what `gan-partseg train-fewshot` trains with no options (one face: with
                                style mixing, a generator forward for each step that draws a copy)
  default, --style-mix 0        the same without the style-mixed copies (the default before 2026-12-04)
  default, --feature-scale none the default without layer scaling (the layers' RMS over 32 random samples:
                                32 generator forwards before training; the default before 2026-12-05)
  Space default                 the Space's "Annotate and train" handler as the tab opens (mlp-1, its
                                slider's steps), preview of four new faces included: what its user waits for

The shot is a generated face of toyfaces-64 labelled by the bundled 1-shot segmenter: a shot as the
Space or `gan-partseg sample` + a painted mask gives one (the labels' content does not change the time).
What the defaults score is in docs/results.md (k-shot table, few-shot head settings), not here.
Writes benchmarks/results/fewshot_train_time.json and .md and prints the table.

    python benchmarks/fewshot_train_time.py [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import write_results

RESULTS = Path(__file__).resolve().parent / "results"
GOALS = {"default (TrainFewShotConfig)": 60.0, "Space default": 30.0}  # seconds (issue 25)


def one_shot(generator, seed: int = 7):
    """A Shot: a generated face, its W latent and noise, labelled by the bundled 1-shot segmenter."""
    import numpy as np

    from gan_partseg.data.shots import Shot
    from gan_partseg.models.fewshot import FewShotSegmenter
    from gan_partseg.models.stylegan2 import TRUNCATION

    labeller = FewShotSegmenter.from_pretrained("toyfaces-64-fewshot-10c-1shot").eval()
    w, noise = generator.seeded_latents([seed], TRUNCATION["data"])
    out = labeller.segment_latents(w, noise)
    image = ((out.images[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    labels = out.labels[0].numpy().astype(np.uint8)
    return Shot(f"{seed:07d}", image, labels, w, noise, "toyfaces-64", "w"), labeller.config.id2label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="10 steps per row; writes nothing")
    args = ap.parse_args()

    import torch

    from gan_partseg.models.stylegan2 import StyleGAN2Generator
    from gan_partseg.training.fewshot import TrainFewShotConfig, train_fewshot

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces_app"))  # the Space is a folder, not a package
    import app as space

    if args.threads:
        torch.set_num_threads(args.threads)
    g = StyleGAN2Generator.from_pretrained("toyfaces-64").eval()
    shot, id2label = one_shot(g)
    default = TrainFewShotConfig(generator="toyfaces-64")
    plan = [("baseline (cnn-l, 600 steps)", "cnn-l", 600, {"style_mix": 0}),
            ("default (TrainFewShotConfig)", default.head, default.steps, {}),
            ("default, --style-mix 0", default.head, default.steps, {"style_mix": 0}),
            ("default, --feature-scale none", default.head, default.steps, {"feature_scale": "none"}),
            ("Space default", "mlp-1", space.DEFAULT_STEPS, {})]
    rows = []
    for label, head, steps, extra in plan:
        steps = 10 if args.quick else steps
        t0 = time.perf_counter()
        if label == "Space default":
            state = {**space.new_session(), "shots": [shot]}
            model = space.train_head(head, steps, state)[0]["head"]
        else:
            model = train_fewshot(TrainFewShotConfig(generator="toyfaces-64", head=head, steps=steps, seed=0, **extra),
                                  generator=g, shots=([shot], id2label), progress=False)
        wall = time.perf_counter() - t0
        rows.append({"row": label, "head": head, "steps": steps, "wall_seconds": round(wall, 2),
                     "goal_seconds": GOALS.get(label), "final_loss": model.training_summary.get("final_loss"),
                     "threads": torch.get_num_threads()})
        print(f"{label:30s} {head:6s} {steps:4d} steps  {wall:7.1f} s", flush=True)
    table = format_table(rows)
    print(table)
    if args.quick:
        return
    write_results("fewshot_train_time", rows, f"# 1-shot head training, wall time ({rows[0]['threads']} threads)\n\n"
                  + table + "\n\nReproduce: `python benchmarks/fewshot_train_time.py`\n")


def format_table(rows: list[dict]) -> str:
    base = rows[0]["wall_seconds"]
    lines = ["| row | head | steps | wall s | vs baseline | goal |", "|---|---|---|---|---|---|"]
    for r in rows:
        goal = "-" if r["goal_seconds"] is None else (
            f"under {r['goal_seconds']:.0f} s: {'met' if r['wall_seconds'] < r['goal_seconds'] else 'NOT met'}")
        speed = "-" if r is rows[0] else f"{base / r['wall_seconds']:.1f}x faster"
        lines.append(f"| {r['row']} | {r['head']} | {r['steps']} | {r['wall_seconds']:.1f} | {speed} | {goal} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
