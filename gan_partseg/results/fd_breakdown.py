"""Where does a generator's distance to the renders come from? FD terms, detector stages, spectrum, layout.

    python scripts/fd_breakdown.py --generator shipped --generator runs/toyfaces-64/checkpoints/step_00043750 \
        [--run runs/toyfaces-64] [--n 2000] [--measure fd,attributes,discriminator] [--no-lite0] \
        [--out docs/results/fd-breakdown]

Each ``--generator``: ``shipped`` (the bundled toyfaces-64) or a checkpoint folder of ``--run`` (its EMA), as
``LABEL=...`` to name its rows (two runs' checkpoints of one step).
Against the reference of every FD here (the first n held-out faces, ``quality.reference_stats``) it measures,
beside the floor (n other rendered faces) and a yardstick (those faces blurred by 0.5 px):

* FD-Lite0 and the detector FD split into their two terms (``quality.frechet_terms``): ``mean``, where
  the set sits, and ``cov``, how it spreads (diversity, mode coverage);
* the detector FD per encoder stage (64, 32, 16 and 8 px: from edges and texture to whole parts);
* the luminance power spectrum (``quality.radial_spectrum``) divided by the reference's, by frequency
  band: below 1 the set draws too little detail at that scale (soft), above 1 too much (speckle);
* (``attributes``) the spread of what the faces are made of: per image, each part's area and centroid and
  the mean colour of background, skin, hair and clothes (``quality.part_attributes``, on the part
  detector's label maps of every set, the reference's included), each set's mean shift (in the
  reference's standard deviations) and standard-deviation ratio per attribute: a ratio below 1 is a
  narrower spread than the renders' (fewer poses, sizes or colours), above 1 a wider one;
* (``discriminator``) whether the discriminator has memorised the GAN's training faces: its mean logit on
  n of them (``TRAIN_SEEDS[:n]``, all shown in training when n <= the run's ``n_images``), on the n
  held-out faces and on the set's own samples. The gap seen - held-out against the margin held-out -
  generated says how much of what the discriminator tells apart is memory, not the renderer (more
  training faces or augmentation would help only if it is large); ``r_t`` is ADA's overfitting
  heuristic, the mean sign of the logits on training faces (0.6 is ADA's target).

Writes OUT.json, OUT.md (tables) and OUT-spectrum.png (bar chart of the spectrum ratios). A second run with
other ``--measure`` keeps the figures the first wrote for the same sets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gan_partseg.data import HELD_OUT_SEEDS, TRAIN_SEEDS
from gan_partseg.evaluation.frechet import (
    DetectorFeatures,
    ImageNetFeatures,
    feature_stats,
    frechet_terms,
    generated_batches,
    part_attributes,
    radial_spectrum,
    reference_stats,
    rendered_batches,
)
from gan_partseg.files import atomic_write_text
from gan_partseg.images import save_image
from gan_partseg.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from gan_partseg.results.fd_sensitivity import gaussian_blur
from gan_partseg.results.part_detector import load_part_detector
from gan_partseg.training.gan import models_from_checkpoint
from gan_partseg.visualize import BAR_COLOURS, bar_chart

ROOT = Path(__file__).resolve().parents[2]  # the checkout: results are written into its docs/ and runs/
# frequency bands (cycles per image at 64 px, i.e. the spectrum's bins r + 1), coarse to fine
BANDS = {"1-4": (1, 4), "5-8": (5, 8), "9-16": (9, 16), "17-24": (17, 24), "25-32": (25, 32)}


def run_of(checkpoint: str, run: Path) -> Path:
    """The run a checkpoint folder belongs to (RUN/checkpoints/step_N), else ``run``."""
    path = Path(checkpoint)
    return path.parent.parent if path.parent.name == "checkpoints" else run


def load_generator(spec: str, run: Path):
    """``shipped`` -> (bundled toyfaces-64, its name); a checkpoint folder (of its run, else of ``run``) ->
    (its EMA generator, "step N"); ``LABEL=SPEC`` names the set LABEL instead."""
    if "=" in spec:
        label, spec = spec.split("=", 1)
        return load_generator(spec, run)[0], label
    if spec == "shipped":
        results = json.loads((ROOT / "docs" / "results" / "toyfaces-64.json").read_text())
        return StyleGAN2Generator.from_pretrained("toyfaces-64").eval(), f"shipped (step {results['step']})"

    g_ema, _, step = models_from_checkpoint(run_of(spec, run), Path(spec))
    return g_ema, f"step {step}"


def load_discriminator(spec: str, run: Path):
    """The discriminator beside ``load_generator(spec, run)``'s generator; None for a projected-GAN run."""
    spec = spec.split("=", 1)[1] if "=" in spec else spec
    if spec == "shipped":
        return StyleGAN2Discriminator.from_pretrained("toyfaces-64", subfolder="discriminator").eval()

    return models_from_checkpoint(run_of(spec, run), Path(spec))[1]


def discriminator_logits(disc, batches, total: int, desc: str) -> np.ndarray:
    """(N,) realness logits of every image in ``batches`` ((B, 3, H, W) in [-1, 1])."""
    with torch.no_grad():
        return torch.cat([disc(b).logits.flatten() for b in tqdm(batches, total=total, desc=desc, leave=False)]).numpy()


def discriminator_readout(seen: np.ndarray, unseen: np.ndarray, generated: np.ndarray) -> dict:
    """Mean logits on training faces (``seen``), held-out faces and generated images; the memorisation gap
    seen - unseen, the margin unseen - generated, the gap's share of seen - generated, and ADA's r_t."""
    s, u, g = float(seen.mean()), float(unseen.mean()), float(generated.mean())
    return {"seen": s, "unseen": u, "generated": g, "overfit_gap": s - u, "margin": u - g,
            "overfit_share": (s - u) / (s - g) if s != g else float("nan"), "r_t": float(np.sign(seen).mean())}


def breakdown(stats: dict, ref: dict, stages: list[int], size: int) -> dict:
    """One set's figures against the reference, from ``feature_stats`` dicts of both; ``stages``: the detector's
    encoder widths, level l at ``size`` / 2^l px."""
    row = {}
    if "lite0" in stats:
        terms = frechet_terms(*stats["lite0"], *ref["lite0"])
        row["fd_lite0"] = {"total": sum(terms.values()), **terms}
    terms = frechet_terms(*stats["detector"], *ref["detector"])
    row["fd_detector"] = {"total": sum(terms.values()), **terms, "stages": {}}
    start = 0
    for level, width in enumerate(stages):
        (mu, cov), (mu_r, cov_r) = stats["detector"], ref["detector"]
        sl = slice(start, start + width)
        row["fd_detector"]["stages"][f"{size >> level} px, {width} ch"] = sum(frechet_terms(mu[sl], cov[sl, sl], mu_r[sl],
                                                                        cov_r[sl, sl]).values())
        start += width
    ratio = stats["spectrum"][0] / ref["spectrum"][0]
    row["spectrum_ratio"] = {name: float(np.exp(np.log(ratio[lo - 1: hi]).mean())) for name, (lo, hi) in BANDS.items()}
    row["spectrum_ratio_per_bin"] = ratio.tolist()
    return row


def attribute_table(batches, detector, total: int, desc: str) -> dict[str, torch.Tensor]:
    """``part_attributes`` of every image in ``batches`` ((B, 3, H, W) in [-1, 1]) on the detector's maps."""
    names = [detector.config.id2label[i] for i in range(len(detector.config.id2label))]
    parts = [part_attributes(b, detector.segment(b), names) for b in tqdm(batches, total=total, desc=desc,
                                                                           leave=False)]
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def attribute_spread(table: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Per attribute: the set's mean shift in the reference's standard deviations, and its std / the reference's
    (each over the images where the attribute is defined, i.e. the part is there)."""
    out = {}
    for key, values in table.items():
        a, r = values[~values.isnan()], ref[key][~ref[key].isnan()]
        if len(a) < 2 or len(r) < 2 or float(r.std()) == 0:
            continue
        out[key] = {"shift": float((a.mean() - r.mean()) / r.std()), "std_ratio": float(a.std() / r.std())}
    return out


def markdown(report: dict) -> str:
    rows = {name: r for name, r in report["sets"].items() if "fd_detector" in r}
    if not rows:
        return attributes_markdown(report) + discriminator_markdown(report)
    lite0 = all("fd_lite0" in r for r in rows.values())
    out = [f"# FD breakdown ({report['n_images']} images a set, against {report['reference']})", ""]
    if lite0:
        out += ["| set | FD-Lite0 | mean term | cov term | detector FD | mean term | cov term |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {name} | {r['fd_lite0']['total']:.1f} | {r['fd_lite0']['mean']:.1f} | {r['fd_lite0']['cov']:.1f} "
                f"| {r['fd_detector']['total']:.3f} | {r['fd_detector']['mean']:.3f} | {r['fd_detector']['cov']:.3f} |"
                for name, r in rows.items()]
    else:
        out += ["| set | detector FD | mean term | cov term |", "|---|---|---|---|"]
        out += [f"| {name} | {r['fd_detector']['total']:.3f} | {r['fd_detector']['mean']:.3f} "
                f"| {r['fd_detector']['cov']:.3f} |" for name, r in rows.items()]
    stages = list(next(iter(rows.values()))["fd_detector"]["stages"])
    out += ["", "Detector FD by encoder stage (from edges and grain at full size to whole parts at the coarsest):", "",
            "| set | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    out += [f"| {name} | " + " | ".join(f"{r['fd_detector']['stages'][s]:.4f}" for s in stages) + " |"
            for name, r in rows.items()]
    out += ["", "Luminance power / the reference's, by band (cycles per image; geometric mean over the band's bins; "
            "< 1 soft, > 1 speckle):", "", "| set | " + " | ".join(BANDS) + " |", "|---" * (len(BANDS) + 1) + "|"]
    out += [f"| {name} | " + " | ".join(f"{r['spectrum_ratio'][b]:.2f}" for b in BANDS) + " |"
            for name, r in rows.items()]
    return "\n".join(out) + "\n" + attributes_markdown(report) + discriminator_markdown(report)


def discriminator_markdown(report: dict) -> str:
    rows = {name: r["discriminator"] for name, r in report["sets"].items() if "discriminator" in r}
    if not rows:
        return ""
    out = ["", f"Discriminator memory ({report['n_images']} images a set): mean logit on the GAN's training faces, "
           "on held-out faces and on the generator's samples:", "",
           "| generator | D(training faces) | D(held-out faces) | D(generated) | memory gap (train - held-out) "
           "| margin (held-out - generated) | memory share of train - generated | r_t |",
           "|---|---|---|---|---|---|---|---|"]
    out += [f"| {name} | {d['seen']:+.3f} | {d['unseen']:+.3f} | {d['generated']:+.3f} | {d['overfit_gap']:.3f} | "
            f"{d['margin']:.3f} | {d['overfit_share']:.2f} | {d['r_t']:.2f} |" for name, d in rows.items()]
    return "\n".join(out) + "\n"


def attributes_markdown(report: dict, top: int = 8) -> str:
    rows = {name: r["attributes"] for name, r in report["sets"].items() if "attributes" in r}
    if not rows:
        return ""
    out = ["", f"Layout and colour spread ({report['n_images']} images a set, on the part detector's maps): "
           "std / the reference's, and mean shift in reference stds. Summary over all attributes, then the "
           f"{top} furthest from the reference per generated set:", "",
           "| set | attributes | median std ratio | std ratio < 0.9 | std ratio > 1.1 | |shift| > 0.2 |",
           "|---|---|---|---|---|---|"]
    for name, attrs in rows.items():
        ratios = np.array([a["std_ratio"] for a in attrs.values()])
        shifts = np.array([abs(a["shift"]) for a in attrs.values()])
        out.append(f"| {name} | {len(attrs)} | {np.median(ratios):.2f} | {(ratios < 0.9).sum()} | "
                   f"{(ratios > 1.1).sum()} | {(shifts > 0.2).sum()} |")
    for name, attrs in rows.items():
        if name.startswith("rendered"):
            continue
        far = sorted(attrs, key=lambda k: -max(abs(np.log(attrs[k]["std_ratio"])), abs(attrs[k]["shift"])))[:top]
        out += ["", f"{name}:", "", "| attribute | std ratio | shift |", "|---|---|---|"]
        out += [f"| {k} | {attrs[k]['std_ratio']:.2f} | {attrs[k]['shift']:+.2f} |" for k in far]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", action="append", required=True,
                    help="'shipped' or a checkpoint folder, optionally LABEL=...")
    ap.add_argument("--run", default=str(ROOT / "runs" / "toyfaces-64"),
                    help="the run of checkpoint folders not inside a RUN/checkpoints folder")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--measure", default="fd,attributes", help="comma-separated: fd (FD terms, stages, spectrum), "
                    "attributes (layout and colour spread), discriminator (memory of the training faces)")
    ap.add_argument("--no-lite0", action="store_true", help="skip FD-Lite0 (the slow network)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "fd-breakdown"))
    args = ap.parse_args()

    measure = set(args.measure.split(","))
    if not measure or measure - {"fd", "attributes", "discriminator"}:
        raise SystemExit(f"unknown --measure {args.measure!r}; use fd, attributes and/or discriminator")
    if "discriminator" in measure and args.n % 4:
        raise SystemExit(f"--measure discriminator needs --n divisible by 4 (its minibatch-stddev groups), "
                         f"got {args.n}")
    try:  # fail before the long part, with the reason
        generators = [load_generator(spec, Path(args.run)) for spec in args.generator]
        discs = ([load_discriminator(spec, Path(args.run)) for spec in args.generator]
                 if "discriminator" in measure else [])
    except FileNotFoundError as err:
        raise SystemExit(f"fd_breakdown: {err}") from None
    detector = load_part_detector()
    n, batch, size = args.n, 50, generators[0][0].config.size
    nb = (n + batch - 1) // batch
    out = Path(args.out)
    report = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    if report.get("n_images", n) != n:
        report = {}                                           # figures on another number of images: start afresh
    report.update({"n_images": n, "reference": f"HELD_OUT_SEEDS[:{n}]"})
    report.setdefault("sets", {})
    blurred = (lambda: (gaussian_blur(b, 0.5) for b in rendered_batches(TRAIN_SEEDS[n: 2 * n], size, batch)))
    if "fd" in measure:
        nets = {"detector": DetectorFeatures(detector), "spectrum": radial_spectrum}
        if not args.no_lite0:
            nets["lite0"] = ImageNetFeatures()
        ref, floor = reference_stats(n, size, nets, batch)
        sets = {"rendered (floor)": floor,
                "rendered, blur 0.5 px": feature_stats(blurred(), nets, nb, "blurred faces")}
        for g, name in generators:
            sets[name] = feature_stats(generated_batches(g, n, batch), nets, nb, name)
        for name, stats in sets.items():
            report["sets"].setdefault(name, {}).update(breakdown(stats, ref, list(detector.config.widths), size))
    if "attributes" in measure:
        ref = attribute_table(rendered_batches(HELD_OUT_SEEDS[:n], size, batch), detector, nb, "held-out faces")
        tables = {"rendered (floor)": attribute_table(rendered_batches(TRAIN_SEEDS[n: 2 * n], size, batch), detector,
                                                      nb, "training faces"),
                  "rendered, blur 0.5 px": attribute_table(blurred(), detector, nb, "blurred faces")}
        for g, name in generators:
            tables[name] = attribute_table(generated_batches(g, n, batch), detector, nb, name)
        for name, table in tables.items():
            report["sets"].setdefault(name, {})["attributes"] = attribute_spread(table, ref)
    if "discriminator" in measure:
        db = 40                                           # batches of a multiple of 4: the logits training shaped
        seen = list(rendered_batches(TRAIN_SEEDS[:n], size, db))        # rendered once for every discriminator
        unseen = list(rendered_batches(HELD_OUT_SEEDS[:n], size, db))
        for (g, name), disc in zip(generators, discs):
            if disc is None:
                continue                                  # a projected-GAN run: no logit to read
            report["sets"].setdefault(name, {})["discriminator"] = discriminator_readout(
                discriminator_logits(disc, seen, len(seen), "training faces"),
                discriminator_logits(disc, unseen, len(seen), "held-out faces"),
                discriminator_logits(disc, generated_batches(g, n, db), len(seen), name))
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2))
    text = markdown(report)
    atomic_write_text(out.with_suffix(".md"), text)
    shown = [name for name, r in report["sets"].items()
             if name != "rendered (floor)" and "spectrum_ratio" in r][:len(BAR_COLOURS)]
    if shown:
        series = {name: [report["sets"][name]["spectrum_ratio"][b] for b in BANDS] for name in shown}
        save_image(out.parent / f"{out.name}-spectrum.png",
                   bar_chart([f"{b} cycles" for b in BANDS], series, title="power / rendered, by frequency band",
                             vmax=max(1.5, max(max(v) for v in series.values()))))
    print(text)
    print(f"wrote {out.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main()
