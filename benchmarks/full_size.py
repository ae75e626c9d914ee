"""The whole pipeline at the paper's full size on the CPU: peak memory and wall time of each command.

A 1024 px config-f generator (random weights, 30 M parameters) is written as a rosinality-layout ``.pt``
file and taken through the commands users run, each in its own process: ``convert rosinality``,
``sample`` (1 shot; its label map painted here with four classes), ``invert`` (the latent optimizer on 8
copies of that picture, its default batch and 2), ``train-fewshot`` at the paper's setting (every synthesis layer,
512 px output, 1 shot; CNN-L and MLP-1 with the default style mixing, MLP-1 also without it),
``make-dataset`` (16 samples, at the old fixed batch and at its
default), ``train-autoshot`` (one epoch on them). Peak memory is the child's own ``ru_maxrss`` (from
``wait4``), so each row is one command's peak; the goal is every command within 8 GiB.

    python benchmarks/full_size.py [--steps 3] [--inv-steps 3] [--samples 16] [--unet-batch 4] [--size 1024]

Writes benchmarks/results/full_size.json and full_size.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_results

LIMIT_MIB = 8192
OUTPUT_SIZE = {1024: 512}  # the paper's setting: a 1024 px generator, 512 px logits


def _paint_shot(shots: Path) -> None:
    """Give the sampled shot four classes (ellipses), as a user would paint them."""
    import numpy as np
    from PIL import Image, ImageDraw

    for path in (shots / "labels").glob("*.png"):
        w, h = Image.open(path).size
        img = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(img)
        draw.ellipse((w * 0.2, h * 0.15, w * 0.8, h * 0.9), fill=1)
        draw.ellipse((w * 0.3, h * 0.4, w * 0.42, h * 0.48), fill=2)
        draw.ellipse((w * 0.58, h * 0.4, w * 0.7, h * 0.48), fill=2)
        draw.ellipse((w * 0.4, h * 0.65, w * 0.6, h * 0.75), fill=3)
        assert len(np.unique(np.asarray(img))) == 4
        img.save(path)


def run_command(label: str, argv: list[str], threads: int, check_limit: bool = True) -> dict:
    """Run ``gan-partseg argv`` in a child process; its wall time and its own peak RSS."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "gan_partseg.cli", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{out[-3000:]}")
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    print(f"{label}: {seconds:.1f} s, peak {peak:.0f} MiB", flush=True)
    return {"command": label, "argv": " ".join(argv), "seconds": round(seconds, 1), "peak_rss_mib": round(peak, 1),
            "within_limit": peak <= LIMIT_MIB, "baseline": not check_limit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="generator size (1024: the paper's FFHQ / CelebA-HQ)")
    ap.add_argument("--steps", type=int, default=3, help="few-shot head steps")
    ap.add_argument("--samples", type=int, default=16, help="make-dataset samples (16: one batch of its default size)")
    ap.add_argument("--unet-batch", type=int, default=4, help="train-autoshot batch size (also run at twice that)")
    ap.add_argument("--inv-steps", type=int, default=3, help="latent optimizer steps (peak memory does not grow with them)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from gan_partseg import StyleGAN2Config, StyleGAN2Generator

    out_size = OUTPUT_SIZE.get(args.size, args.size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="full_size_") as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        g = StyleGAN2Generator(StyleGAN2Config(size=args.size, style_dim=512, n_mlp=8, channel_multiplier=2))
        # the layout of rosinality's checkpoints: g_ema (our state dict is that layout) + latent_avg
        torch.save({"g_ema": g.state_dict(), "latent_avg": torch.randn(512)}, tmp / "ffhq-config-f.pt")
        params = sum(p.numel() for p in g.parameters())
        del g
        gen, shots = tmp / "gen", tmp / "shots"
        rows.append(run_command("convert rosinality", ["convert", "rosinality", str(tmp / "ffhq-config-f.pt"), str(gen)],
                                args.threads))
        rows.append(run_command("sample (1 shot)", ["sample", "--generator", str(gen), "--n", "1", "--out", str(shots),
                                                    "--classes", "3"], args.threads))
        _paint_shot(shots)
        photos = tmp / "photos"  # "real" images for the latent optimizer: the shot's picture, 8 times
        photos.mkdir()
        shot_png = next((shots / "images").glob("*.png"))
        for i in range(8):
            (photos / f"{i}.png").write_bytes(shot_png.read_bytes())
        # the old fixed default, 8, was killed by the kernel above 24 GiB on this machine; 2 shows the cost of one more
        from gan_partseg.inversion.latent_optimizer import auto_inversion_batch

        inv_auto = auto_inversion_batch(StyleGAN2Generator.from_pretrained(str(gen)))
        for batch in (None, 2):
            rows.append(run_command(
                f"invert, {f'default batch (auto: {inv_auto})' if batch is None else f'batch {batch} (reference)'} "
                f"({args.inv_steps} steps, default perceptual loss)",
                ["invert", "--generator", str(gen), "--steps", str(args.inv_steps), *(["--batch-size", str(batch)] if batch
                 else []), str(photos), str(tmp / f"inv-{batch}")], args.threads, check_limit=batch is None))
        for head, mix in (("cnn-l", None), ("mlp-1", None), ("mlp-1", 0)):  # one shot: style mixing on by default
            rows.append(run_command(
                f"train-fewshot {head}, all layers, {out_size} px, 1 shot, {args.steps} steps"
                + (", --style-mix 0 (reference)" if mix == 0 else ""),
                ["train-fewshot", "--generator", str(gen), "--shots", str(shots), "--out",
                 str(tmp / f"seg-{head}{'-nomix' if mix == 0 else ''}"), "--head", head, "--steps", str(args.steps),
                 "--output-size", str(out_size), *(["--style-mix", "0"] if mix == 0 else [])], args.threads,
                check_limit=mix is None))
        from gan_partseg import FewShotSegmenter
        from gan_partseg.jobs.generated import auto_batch_size

        auto = auto_batch_size(FewShotSegmenter.from_pretrained(str(tmp / "seg-mlp-1")))
        rows.append(run_command(
            f"make-dataset, {args.samples} samples (mlp-1), batch 16 (the old fixed default; baseline)",
            ["make-dataset", "--segmenter", str(tmp / "seg-mlp-1"), "--out", str(tmp / "data-16"), "--n",
             str(args.samples), "--batch-size", "16"], args.threads, check_limit=False))
        rows.append(run_command(
            f"make-dataset, {args.samples} samples (mlp-1), default batch (auto: {auto})",
            ["make-dataset", "--segmenter", str(tmp / "seg-mlp-1"), "--out", str(tmp / "data"), "--n", str(args.samples)],
            args.threads))
        for batch in (args.unet_batch, 2 * args.unet_batch):  # the second: what a larger batch costs (reference)
            steps = (args.samples - 1) // batch
            reference = batch != args.unet_batch
            rows.append(run_command(
                f"train-autoshot, one epoch ({steps} step(s) of batch {batch}, {out_size} px)"
                + (" (reference)" if reference else ""),
                ["train-autoshot", "--data", str(tmp / "data"), "--out", str(tmp / f"unet-{batch}"), "--epochs", "1",
                 "--n-val", "1", "--batch-size", str(batch)], args.threads, check_limit=not reference))

    lines = [f"# The pipeline at full size on the CPU ({args.size} px config-f, {out_size} px output)", "",
             f"| command | seconds | peak RSS MiB | within {LIMIT_MIB // 1024} GiB |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['command']} | {r['seconds']} | {r['peak_rss_mib']} | {'yes' if r['within_limit'] else 'NO'} |")
    rows_now = [r for r in rows if not r["baseline"]]  # the baseline and reference rows only compare
    worst = max(rows_now, key=lambda r: r["peak_rss_mib"])
    lines += ["", f"Generator: random weights, {params / 1e6:.1f} M parameters, written as a rosinality-layout `.pt`. "
              "Highest peak of today's commands (baseline and reference rows aside): "
              f"{worst['command']}, {worst['peak_rss_mib']:.0f} MiB; "
              f"{'every command within' if all(r['within_limit'] for r in rows_now) else 'NOT every command within'} "
              f"{LIMIT_MIB // 1024} GiB. Each command runs in its own process (`{args.threads}` threads); peak RSS is "
              "that process's `ru_maxrss` (libraries and weights included).",
              "", "Reproduce: `python benchmarks/full_size.py`"]
    write_results("full_size", {"size": args.size, "output_size": out_size, "parameters": params, "rows": rows,
                                "limit_mib": LIMIT_MIB}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
