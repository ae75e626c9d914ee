"""Per-image latency on a "real" image: auto-shot U-Net vs inversion + few-shot head, side by side.

Both answer the same question (the part labels of a held-out rendered face the models never saw):

  autoshot            AutoShotSegmenter.segment(PIL image): preprocessing, U-Net, upsampling, argmax
  autoshot (NCHW)     the same with AutoShotSegmenter.channels_last = False (the layout before it was
                      made the default), to show what the channels-last path buys
  inversion+head      FewShotSegmenter.segment_images: the default latent optimizer (latent_optimizer.InversionConfig),
                      then generator features and the head

Each image is processed alone (batch 1, the latency a user waits for); the auto-shot row is the
median over --repeats runs per image after a warm-up, the inversion row the median over images.
Writes benchmarks/results/realimage_latency.json and .md and prints the table.

    python benchmarks/realimage_latency.py [--n 3] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

from common import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--autoshot", default="toyfaces-64-autoshot-10c")
    ap.add_argument("--fewshot", default="toyfaces-64-fewshot-10c-10shot")
    ap.add_argument("--n", type=int, default=3, help="held-out images (each inverted alone)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="1 image, 20 inversion steps; writes nothing")
    args = ap.parse_args()

    import torch
    from PIL import Image

    from gan_partseg import AutoShotSegmenter, FewShotSegmenter
    from gan_partseg.data import HELD_OUT_SEEDS, render
    from gan_partseg.images import uint8_to_tensor
    from gan_partseg.inversion.latent_optimizer import inversion_settings

    if args.threads:
        torch.set_num_threads(args.threads)
    inv = inversion_settings()
    if args.quick:
        args.n, inv["steps"] = 1, 20
    auto = AutoShotSegmenter.from_pretrained(args.autoshot).eval()
    few = FewShotSegmenter.from_pretrained(args.fewshot).eval()
    images = [render(s, few.generator.config.size)[0] for s in HELD_OUT_SEEDS[: args.n]]

    def time_autoshot(channels_last: bool) -> list[float]:
        auto.channels_last = channels_last
        times = []
        for arr in images:
            pil = Image.fromarray(arr)
            auto.segment(pil)  # warm-up
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                auto.segment(pil)
                times.append(time.perf_counter() - t0)
        return times

    nchw_times = time_autoshot(False)
    auto_times = time_autoshot(True)
    inv_times = []
    for arr in images:
        t0 = time.perf_counter()
        few.segment_images(uint8_to_tensor(arr[None]), progress=False, **inv)
        inv_times.append(time.perf_counter() - t0)

    a, i = statistics.median(auto_times), statistics.median(inv_times)
    rows = [{"method": "autoshot", "model": args.autoshot, "seconds_per_image": a, "runs": len(auto_times)},
            {"method": "autoshot (NCHW)", "model": args.autoshot, "seconds_per_image": statistics.median(nchw_times),
             "runs": len(nchw_times)},
            {"method": "inversion+head", "model": args.fewshot, "seconds_per_image": i, "runs": len(inv_times),
             "inversion": inv}]
    result = {"device": "cpu", "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "rows": rows, "speedup": i / a, "goal_1000x": i / a >= 1000}
    table = ["# Real-image latency: auto-shot vs inversion + head (cpu)", "",
             "| method | model | s / image | runs |", "|---|---|---|---|"]
    table += [f"| {r['method']} | `{r['model']}` | {r['seconds_per_image']:.4f} | {r['runs']} |" for r in rows]
    table += ["", f"Auto-shot is **{i / a:,.0f}x** faster (goal: 1000x). Batch 1, medians, "
              f"{result['threads']} threads; inversion: {inv}.",
              "Reproduce: `python benchmarks/realimage_latency.py`", ""]
    print("\n".join(table))
    if not args.quick:
        write_results("realimage_latency", result, "\n".join(table))


if __name__ == "__main__":
    main()
