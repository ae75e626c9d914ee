"""``make demo`` / ``gan-partseg demo``: the main job on the embedded default, pictures out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .io import make_grid, save_image, tensor_to_uint8, upscale
from .models.stylegan2 import StyleGAN2Generator
from .visualize import feature_pca_grid

DEFAULT_GENERATOR = "toyfaces-64"


def run_demo(out_dir: str | Path = "demo_out", generator: str = DEFAULT_GENERATOR, n: int = 16,
             seed: int = 0, truncation: float = 0.8) -> dict[str, Path]:
    """Sample the generator, write a sample grid and a per-layer feature PCA picture.

    Returns the written paths by name.
    """
    out = Path(out_dir)
    t0 = time.time()
    g = StyleGAN2Generator.from_pretrained(generator).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(n, g.config.style_dim, generator=gen)
        mean = g.mean_latent(4096, generator=gen)
        res = g([z], truncation=truncation, truncation_latent=mean, randomize_noise=False, return_features=True)
    scale = max(1, 256 // g.config.size)
    paths = {
        "samples": save_image(out / "samples.png", upscale(make_grid(tensor_to_uint8(res.images), ncol=8), scale)),
        "features": save_image(out / "feature_pca.png",
                               upscale(feature_pca_grid(res.images[:8], {k: v[:8] for k, v in res.features.items()}),
                                       scale)),
    }
    summary = {
        "generator": generator,
        "n_samples": n,
        "truncation": truncation,
        "layers": {k: list(v.shape[1:]) for k, v in res.features.items()},
        "seconds": round(time.time() - t0, 2),
    }
    from .io import atomic_write_text

    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    paths["summary"] = out / "summary.json"
    return paths
