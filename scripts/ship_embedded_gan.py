"""Ship the embedded GAN: run folder -> bundled artifact, sample grid, quality figures, model card.

    python scripts/ship_embedded_gan.py [--run runs/toyfaces-64] [--n-fid 2000] [--no-fid]
    python scripts/ship_embedded_gan.py --evaluate-only   # FD of the newest checkpoint, ships nothing

Writes gan_partseg/artifacts/toyfaces-64/ (generator + discriminator/ + README.md),
model_cards/toyfaces-64.md and its sample grid, docs/results/toyfaces-64.json
(quality figures) and docs/results/toyfaces-64-training.md (log summary).
Shipping a new generator invalidates every downstream artifact and table: rerun
scripts/run_results.sh afterwards (its caches notice the new weights and start afresh).

--evaluate-only measures the newest checkpoint (generator vs rendered, beside the floor) into
RUN/quality/step_NNNNNNNN.json and a sample grid beside it, touching nothing shipped: to decide
whether a longer run is worth re-shipping.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from gan_partseg.hub import ARTIFACTS_DIR, save_pretrained_atomic
from gan_partseg.io import atomic_write_text, make_grid, save_image, tensor_to_uint8, upscale
from gan_partseg.models.stylegan2 import StyleGAN2Generator
from gan_partseg.quality import fd_report
from gan_partseg.training.gan import load_run_config, models_from_checkpoint, training_summary
from make_cards import write_cards

ROOT = Path(__file__).resolve().parents[1]
NAME = "toyfaces-64"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(ROOT / "runs" / NAME))
    ap.add_argument("--n-fid", type=int, default=2000)
    ap.add_argument("--no-fid", action="store_true")
    ap.add_argument("--evaluate-only", action="store_true", help="measure the newest checkpoint; ship nothing")
    args = ap.parse_args()
    run = Path(args.run)

    cfg = load_run_config(run)
    g_ema, disc, step = models_from_checkpoint(run)
    if args.evaluate_only:
        evaluate_checkpoint(run, g_ema, step, cfg.style_dim, args.n_fid)
        return
    out = ARTIFACTS_DIR / NAME
    save_pretrained_atomic(g_ema, out)
    save_pretrained_atomic(disc, out / "discriminator")
    print(f"shipped step {step} to {out}")

    grid = sample_grid(g_ema, cfg.style_dim)
    cards = ROOT / "model_cards"
    save_image(cards / f"{NAME}-samples.png", upscale(grid, 2))
    save_image(out / "samples.png", grid)

    results = ROOT / "docs" / "results"
    quality = None
    if not args.no_fid:
        quality = fd_report(g_ema, n=args.n_fid, untrained_factory=lambda: StyleGAN2Generator(g_ema.config))
        quality["step"] = step
        atomic_write_text(results / f"{NAME}.json", json.dumps(quality, indent=2))
        print(json.dumps(quality, indent=2))
    elif (results / f"{NAME}.json").exists():
        quality = json.loads((results / f"{NAME}.json").read_text())

    info, table = training_summary(run, upto_step=step)
    atomic_write_text(results / f"{NAME}-training.md",
                      f"# {NAME} training log summary\n\nFrom `{run.name}/log.jsonl` "
                      f"({info['steps_done']} steps, {info['wall_minutes']:.0f} min wall).\n\n{table}\n")
    shutil.copy(run / "train_config.json", out / "train_config.json")
    write_cards()


def sample_grid(g_ema, style_dim: int):
    """32 samples (seed 0, no truncation, fixed noise) as one uint8 grid, 8 a row."""
    z = torch.randn(32, style_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        imgs = g_ema([z], randomize_noise=False).images
    return make_grid(tensor_to_uint8(imgs), ncol=8)


def evaluate_checkpoint(run: Path, g_ema, step: int, style_dim: int, n: int) -> None:
    out = run / "quality"
    quality = {**fd_report(g_ema, n=n), "step": step}
    atomic_write_text(out / f"step_{step:08d}.json", json.dumps(quality, indent=2))
    save_image(out / f"step_{step:08d}.png", upscale(sample_grid(g_ema, style_dim), 2))
    print(json.dumps(quality, indent=2))
    print(f"wrote {out}/step_{step:08d}.{{json,png}}; nothing shipped")


if __name__ == "__main__":
    main()
