"""How far does FD-Lite0 move for small, known changes to rendered faces? A yardstick for the generator's figure.

    python scripts/fd_sensitivity.py [--n 2000] [--features lite0,detector] [--out docs/results/fd-sensitivity.json]

``--features``: which FDs, each written under its own key (``fd_lite0``, ``fd_detector``: the part
detector's features, ``gan_partseg.evaluation.frechet.DetectorFeatures``); keys not measured are kept from the file.

Reference: the first n held-out rendered faces (as in ``fd_report``). Compared sets: n other rendered
faces (the floor), the same faces blurred (Gaussian, sigma in pixels at 64 px), and with extra pixel noise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from gan_partseg.data import HELD_OUT_SEEDS, TRAIN_SEEDS
from gan_partseg.evaluation.frechet import (
    DetectorFeatures,
    ImageNetFeatures,
    feature_stats,
    frechet_distance,
    rendered_batches,
)
from gan_partseg.files import atomic_write_text
from gan_partseg.results.part_detector import load_part_detector

ROOT = Path(__file__).resolve().parents[2]  # the checkout: results are written into its docs/ and runs/


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, 3, H, W) blurred with a separable Gaussian of ``sigma`` pixels (reflect padding)."""
    r = max(1, int(round(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    x = F.pad(x, [r, r, r, r], mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "fd-sensitivity.json"))
    ap.add_argument("--features", default="lite0,detector", help="comma-separated: lite0, detector")
    args = ap.parse_args()
    n, size, batch = args.n, args.size, 50
    nb = (n + batch - 1) // batch
    networks = {}
    for kind in args.features.split(","):
        if kind == "lite0":
            networks["fd_lite0"] = ImageNetFeatures()
        elif kind == "detector":
            networks["fd_detector"] = DetectorFeatures(load_part_detector())
        else:
            raise SystemExit(f"unknown --features {kind!r}; use lite0 and/or detector")
    refs = feature_stats(rendered_batches(HELD_OUT_SEEDS[:n], size, batch), networks, nb, "held-out faces")
    other = TRAIN_SEEDS[n: 2 * n]
    gen = torch.Generator().manual_seed(0)
    variants = {
        "rendered (floor)": lambda x: x,
        "blur sigma 0.5 px": lambda x: gaussian_blur(x, 0.5),
        "blur sigma 1.0 px": lambda x: gaussian_blur(x, 1.0),
        "noise std 0.05": lambda x: (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(-1, 1),
    }
    rows = {key: {} for key in networks}
    for name, fn in variants.items():
        stats = feature_stats((fn(b) for b in rendered_batches(other, size, batch)), networks, nb, name)
        for key in networks:
            rows[key][name] = frechet_distance(*stats[key], *refs[key])
            print(f"{name:>20}: {key} {rows[key][name]:.4g}", flush=True)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    report.update({"n_images": n, "reference": f"HELD_OUT_SEEDS[:{n}]",
                   "compared": f"TRAIN_SEEDS[{n}:{2 * n}], changed as named", **rows})
    atomic_write_text(out, json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
