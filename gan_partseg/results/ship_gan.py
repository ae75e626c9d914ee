"""Ship the embedded GAN: run folder -> bundled artifact, sample grid, quality figures, model card.

    python scripts/ship_embedded_gan.py [--run runs/toyfaces-64-ddp] [--n-fid 2000] [--no-fid] [--checkpoint DIR]
    python scripts/ship_embedded_gan.py --evaluate-only   # FD of the newest checkpoint, ships nothing
    # parts + detector FD only:
    python scripts/ship_embedded_gan.py --evaluate-only --no-fid --checkpoint runs/toyfaces-64/checkpoints/step_00021755

Writes gan_partseg/artifacts/toyfaces-64/ (generator + discriminator/ + README.md),
model_cards/toyfaces-64.md and its sample grid, docs/results/toyfaces-64.json
(quality figures) and docs/results/toyfaces-64-training.md (log summary).
Shipping a new generator invalidates every downstream artifact and table: rerun
scripts/run_results.sh afterwards (its caches notice the new weights and start afresh).

--evaluate-only measures the newest checkpoint (generator vs rendered, beside the floor) into
RUN/quality/step_NNNNNNNN.json and a sample grid beside it, touching nothing shipped: to decide
whether a longer run is worth re-shipping.

Both also measure part presence: how often each part shows up in generated samples vs rendered faces,
by the part detector of scripts/part_detector.py (train it once first), as a table and a bar chart.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from gan_partseg.evaluation.frechet import DetectorFeatures, fd_report, part_presence_report
from gan_partseg.files import atomic_write_text
from gan_partseg.hub import ARTIFACTS_DIR, save_pretrained_atomic
from gan_partseg.images import make_grid, save_image, tensor_to_uint8, upscale
from gan_partseg.models.stylegan2 import StyleGAN2Generator
from gan_partseg.results.cards import write_cards
from gan_partseg.results.part_detector import load_part_detector, presence_chart
from gan_partseg.training.gan import load_run_config, models_from_checkpoint

ROOT = Path(__file__).resolve().parents[2]  # the checkout: results are written into its docs/ and runs/
NAME = "toyfaces-64"
LINE = "toyfaces-64-ddp"  # the run the shipped weights come from (scripts/train_embedded_gan.sh trains it on)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(ROOT / "runs" / LINE))
    ap.add_argument("--n-fid", type=int, default=2000)
    ap.add_argument("--no-fid", action="store_true", help="skip the FD (with --evaluate-only: keep the FD already "
                    "measured for that step and add part presence)")
    ap.add_argument("--evaluate-only", action="store_true", help="measure the newest checkpoint; ship nothing")
    ap.add_argument("--parts-shipped", action="store_true",
                    help="add part presence and the detector FD of the shipped generator to its quality figures "
                    "and card; ship nothing")
    ap.add_argument("--checkpoint", help="measure (--evaluate-only) or ship this checkpoint folder of the run "
                    "instead of its newest")
    args = ap.parse_args()
    run = Path(args.run)
    if args.checkpoint and not args.evaluate_only and Path(args.checkpoint).resolve().parent != (
            run / "checkpoints").resolve():
        raise SystemExit(f"--checkpoint {args.checkpoint} is not one of {run}/checkpoints: the card and training "
                         "summary are read from the run it belongs to; pass that run as --run")

    detector = load_part_detector()
    if args.parts_shipped:
        measure_shipped_parts(detector, args.n_fid)
        return
    cfg = load_run_config(run)
    g_ema, disc, step = models_from_checkpoint(run, Path(args.checkpoint) if args.checkpoint else None)
    if args.evaluate_only:
        evaluate_checkpoint(run, g_ema, step, cfg.style_dim, args.n_fid, detector, fid=not args.no_fid)
        return
    if disc is None:
        raise SystemExit(f"{run} trains a {cfg.disc} discriminator; the artifact ships a StyleGAN2 one (the latent "
                         "optimizer needs it): train one against this generator first")
    out = ARTIFACTS_DIR / NAME
    g_ema.store_average_latent()  # the truncation latent ships inside the weights (docs/architecture.md)
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
        quality = fd_figures(g_ema, detector, args.n_fid, untrained=True)
        quality.update(step=step, **measure_parts(g_ema, detector, args.n_fid, f"{NAME} step {step}",
                                                 cards / f"{NAME}-parts.png", out / "parts.png"))
        atomic_write_text(results / f"{NAME}.json", json.dumps(quality, indent=2))
        print(json.dumps(quality, indent=2))
    elif (results / f"{NAME}.json").exists():
        quality = json.loads((results / f"{NAME}.json").read_text())

    shutil.copy(run / "train_config.json", out / "train_config.json")
    write_cards()  # the cards and docs/results/NAME-training.md, from the run's log up to the shipped step


def sample_grid(g_ema, style_dim: int):
    """32 samples (seed 0, no truncation, fixed noise) as one uint8 grid, 8 a row."""
    z = torch.randn(32, style_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        imgs = g_ema([z], randomize_noise=False).images
    return make_grid(tensor_to_uint8(imgs), ncol=8)


def measure_parts(g_ema, detector, n: int, title: str, *charts: Path) -> dict:
    """Part presence of ``g_ema`` (``part_presence_report``), its bar chart written to each of ``charts``."""
    report = part_presence_report(g_ema, detector, n=n)
    chart = presence_chart(report["parts"], f"share of images showing each part: {title}")
    for path in charts:
        save_image(path, chart)
    return {"parts": report["parts"], "parts_n_images": report["n_images"], "parts_min_pixels": report["min_pixels"]}


DETECTOR_FEATURES = "part detector (U-Net on rendered faces) encoder, pooled, 240-d"


def fd_figures(g_ema, detector, n: int, untrained: bool = False) -> dict:
    """FD-Lite0 (``fd_report``) and, under ``fd_detector``, the FD on the part detector's features
    (``DetectorFeatures``), from one pass over the image sets; ``untrained``: with the ceilings.

    The detector FD is a check on FD-Lite0 by a network that owes nothing to ImageNet (a projected
    discriminator trains against EfficientNet-Lite0 features, so it could fit FD-Lite0 without fitting
    the faces)."""
    return fd_report(g_ema, n=n, untrained_factory=(lambda: StyleGAN2Generator(g_ema.config)) if untrained else None,
                     also={"fd_detector": (DetectorFeatures(detector), DETECTOR_FEATURES)})


def detector_fd(g_ema, detector, n: int) -> dict:
    """The detector FD alone (``fd_figures`` without FD-Lite0), as ``{"fd_detector": {...}}``."""
    report = fd_report(g_ema, n=n, features=DetectorFeatures(detector), features_name=DETECTOR_FEATURES)
    return {"fd_detector": {k: v for k, v in report.items() if k != "n_images"}}


def measure_shipped_parts(detector, n: int) -> None:
    """Part presence and the detector FD of the bundled generator, merged into docs/results/NAME.json; cards
    rewritten."""
    path = ROOT / "docs" / "results" / f"{NAME}.json"
    quality = json.loads(path.read_text())
    g = StyleGAN2Generator.from_pretrained(NAME).eval()
    quality.update(measure_parts(g, detector, n, f"{NAME} step {quality['step']}",
                                 ROOT / "model_cards" / f"{NAME}-parts.png", ARTIFACTS_DIR / NAME / "parts.png"))
    quality.update(detector_fd(g, detector, n))
    atomic_write_text(path, json.dumps(quality, indent=2))
    print(json.dumps(quality["parts"], indent=2))
    write_cards()


def evaluate_checkpoint(run: Path, g_ema, step: int, style_dim: int, n: int, detector, fid: bool = True) -> None:
    """Quality of one checkpoint into RUN/quality/step_N.json (+ samples and part chart); ``fid=False`` keeps the
    FD-Lite0 figures already there and measures only part presence and the detector FD."""
    out = run / "quality"
    path = out / f"step_{step:08d}.json"
    if fid:
        quality = {**fd_figures(g_ema, detector, n), "step": step}
    else:
        quality = json.loads(path.read_text()) if path.exists() else {"step": step}
        quality.update(detector_fd(g_ema, detector, n))
    quality.update(measure_parts(g_ema, detector, n, f"step {step}", out / f"step_{step:08d}-parts.png"))
    atomic_write_text(path, json.dumps(quality, indent=2))
    save_image(out / f"step_{step:08d}.png", upscale(sample_grid(g_ema, style_dim), 2))
    print(json.dumps(quality, indent=2))
    print(f"wrote {out}/step_{step:08d}.{{json,png}} and step_{step:08d}-parts.png; nothing shipped")


if __name__ == "__main__":
    main()
