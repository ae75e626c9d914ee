"""Ship the embedded GAN: run folder -> bundled artifact, sample grid, quality figures, model card.

    python scripts/ship_embedded_gan.py [--run runs/toyfaces-64] [--n-fid 2000] [--no-fid]

Writes gan_partseg/artifacts/toyfaces-64/ (generator + discriminator/ + README.md),
model_cards/toyfaces-64.md and its sample grid, docs/results/toyfaces-64.json
(quality figures) and docs/results/toyfaces-64-training.md (log summary).
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
    args = ap.parse_args()
    run = Path(args.run)

    cfg = load_run_config(run)
    g_ema, disc, step = models_from_checkpoint(run)
    out = ARTIFACTS_DIR / NAME
    save_pretrained_atomic(g_ema, out)
    save_pretrained_atomic(disc, out / "discriminator")
    print(f"shipped step {step} to {out}")

    z = torch.randn(32, cfg.style_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        imgs = g_ema([z], randomize_noise=False).images
    grid = make_grid(tensor_to_uint8(imgs), ncol=8)
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


if __name__ == "__main__":
    main()
