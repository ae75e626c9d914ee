"""Would a longer EMA bring the embedded GAN closer to the floor? EMAs of other half-lives, rebuilt afterwards.

The EMA generator never feeds back into training, so an EMA of another half-life can be rebuilt from
snapshots of the raw generator taken while the run trains (as Karras et al. 2024 do with stored averages;
here plain exponential averages over one snapshot a checkpoint). Two steps:

    python scripts/posthoc_ema.py collect --run runs/toyfaces-64 --into runs/toyfaces-64-snapshots &   # beside training
    python scripts/posthoc_ema.py evaluate --run runs/toyfaces-64 --snapshots runs/toyfaces-64-snapshots

``collect`` copies each new checkpoint's raw generator (``model.safetensors``) and EMA (``custom_checkpoint_0.pkl``,
read ``weights_only``) into ``DIR/step_N/{raw,ema}.safetensors`` (checkpoint rotation deletes old checkpoints, so it
runs while the run trains) and stops once no checkpoint has come for ``--idle-minutes``.

``evaluate`` measures FD-Lite0 and the FD on the part detector's features (as ``ship_embedded_gan.py`` does, the same
2,000 generated images per generator and held-out faces) of: the raw generator at the newest snapshot, the run's
own EMA there, and post-hoc EMAs of each ``--half-lives-kimg``, each started from the run's EMA at the first
snapshot and updated at every later one with that snapshot's raw weights (held over the images shown since the one
before). The post-hoc EMA of the run's own half-life checks the method: it should score like the run's EMA.
Writes ``DIR/report.json`` and ``DIR/report.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from gan_partseg.evaluation.frechet import (
    DetectorFeatures,
    ImageNetFeatures,
    feature_stats,
    frechet_distance,
    generated_batches,
    reference_stats,
)
from gan_partseg.files import atomic_write_bytes, atomic_write_text
from gan_partseg.models.stylegan2 import StyleGAN2Generator
from gan_partseg.results.part_detector import load_part_detector
from gan_partseg.training.checkpoints import checkpoints
from gan_partseg.training.gan import generator_config, load_run_config

ROOT = Path(__file__).resolve().parents[2]  # the checkout: results are written into its docs/ and runs/


def collect(run: Path, into: Path, idle_minutes: float, poll_seconds: float = 20.0) -> None:
    into.mkdir(parents=True, exist_ok=True)
    last_new = time.monotonic()
    while True:
        for ckpt in checkpoints(run):
            step = int(ckpt.name.rsplit("_", 1)[-1])
            out = into / f"step_{step:08d}"
            if (out / "ema.safetensors").exists():
                continue
            try:  # rotation may delete the checkpoint while it is read: the next poll sees the newer one
                raw = load_file(str(ckpt / "model.safetensors"))
                ema = torch.load(ckpt / "custom_checkpoint_0.pkl", map_location="cpu", weights_only=True)
                state = torch.load(ckpt / "custom_checkpoint_1.pkl", map_location="cpu", weights_only=True)
            except (FileNotFoundError, RuntimeError) as err:
                print(f"step {step}: gone before it was read ({err.__class__.__name__}); skipped", flush=True)
                continue
            meta = {"step": str(step), **({"nimg": str(int(state["nimg"]))} if "nimg" in state else {})}
            atomic_write_bytes(out / "raw.safetensors", save(raw, metadata=meta))
            atomic_write_bytes(out / "ema.safetensors", save(ema, metadata=meta))  # last: marks a complete snapshot
            print(f"collected step {step}", flush=True)
            last_new = time.monotonic()
        if time.monotonic() - last_new >= idle_minutes * 60:
            break
        time.sleep(poll_seconds)
    print(f"no new checkpoint for {idle_minutes} min; stopped", flush=True)


def snapshots(folder: Path) -> list[tuple[int, Path]]:
    found = sorted((int(p.name.split("_")[1]), p) for p in folder.glob("step_*") if (p / "ema.safetensors").exists())
    if len(found) < 2:
        raise FileNotFoundError(f"{folder} holds {len(found)} complete snapshots; run `collect` beside training first")
    return found


def images_shown(snaps: list[tuple[int, Path]], batch: int) -> list[int]:
    """Images shown at each snapshot, over all processes: the checkpoint's count, which ``collect`` records;
    step x ``batch`` for a snapshot without it (one process, one batch size all along)."""
    shown = []
    for step, folder in snaps:
        with safe_open(str(folder / "ema.safetensors"), "pt") as f:
            meta = f.metadata() or {}
        shown.append(int(meta["nimg"]) if "nimg" in meta else step * batch)
    return shown


def posthoc_ema(snaps: list[tuple[int, Path]], half_life_kimg: float, batch: int) -> dict[str, torch.Tensor]:
    """Exponential average of the raw snapshots, started from the run's EMA at the first one.

    Each snapshot's raw weights stand for the images shown since the one before (``images_shown``; ``batch``
    only for snapshots that lack the count): the average moves towards them by
    ``1 - 0.5 ** (images / (1000 half_life_kimg))``, as training's EMA does. Buffers (not averaged by
    training either) come from the newest.
    """
    shown = images_shown(snaps, batch)
    avg = load_file(str(snaps[0][1] / "ema.safetensors"))
    for (_, folder), before, now in zip(snaps[1:], shown, shown[1:]):
        raw = load_file(str(folder / "raw.safetensors"))
        weight = 1 - 0.5 ** ((now - before) / (half_life_kimg * 1000))
        for k, v in raw.items():
            avg[k] = avg[k].lerp(v, weight) if v.is_floating_point() else v
    return avg


def evaluate(run: Path, folder: Path, half_lives_kimg: list[float], n: int) -> dict:
    cfg = load_run_config(run)
    snaps = snapshots(folder)
    first, last = snaps[0][0], snaps[-1][0]
    shown = images_shown(snaps, cfg.batch)
    weights = {"raw generator": load_file(str(snaps[-1][1] / "raw.safetensors")),
               f"run EMA ({cfg.ema_kimg:g} kimg)": load_file(str(snaps[-1][1] / "ema.safetensors"))}
    start_share = {}
    for kimg in half_lives_kimg:
        name = f"post-hoc EMA {kimg:g} kimg"
        weights[name] = posthoc_ema(snaps, kimg, cfg.batch)
        start_share[name] = 0.5 ** ((shown[-1] - shown[0]) / (kimg * 1000))
    nets = {"fd_lite0": ImageNetFeatures(), "fd_detector": DetectorFeatures(load_part_detector())}
    nb = (n + 49) // 50
    ref, floor = reference_stats(n, cfg.size, nets)
    rows = {"rendered (floor)": {k: frechet_distance(*floor[k], *ref[k]) for k in nets}}
    g = StyleGAN2Generator(generator_config(cfg)).eval()
    for name, sd in weights.items():
        g.load_state_dict(sd)
        stats = feature_stats(generated_batches(g, n), nets, nb, name)
        rows[name] = {k: frechet_distance(*stats[k], *ref[k]) for k in nets}
        if name in start_share:
            rows[name]["start_share"] = start_share[name]
        print(name, json.dumps(rows[name]), flush=True)
    shown = run.resolve().relative_to(ROOT) if run.resolve().is_relative_to(ROOT) else run
    report = {"run": str(shown), "snapshots": len(snaps), "first_step": first, "last_step": last,
              "snapshot_every_steps": (last - first) / (len(snaps) - 1), "n_images": n, "rows": rows}
    atomic_write_text(folder / "report.json", json.dumps(report, indent=2))
    lines = [f"Steps {first}-{last} of `{shown}`, {len(snaps)} snapshots; {n} images a set.", "",
             "| generator at the last step | FD-Lite0 | FD on part-detector features | share of the start EMA |",
             "|---|---|---|---|"]
    for name, r in rows.items():
        share = f"{r['start_share']:.2f}" if "start_share" in r else ""
        lines.append(f"| {name} | {r['fd_lite0']:.1f} | {r['fd_detector']:.3f} | {share} |")
    atomic_write_text(folder / "report.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="copy each new checkpoint's raw generator and EMA while the run trains")
    c.add_argument("--run", type=Path, default=ROOT / "runs" / "toyfaces-64")
    c.add_argument("--into", type=Path, required=True)
    c.add_argument("--idle-minutes", type=float, default=15.0)
    e = sub.add_parser("evaluate", help="FD of the raw generator, the run's EMA and post-hoc EMAs")
    e.add_argument("--run", type=Path, default=ROOT / "runs" / "toyfaces-64")
    e.add_argument("--snapshots", type=Path, required=True)
    e.add_argument("--half-lives-kimg", type=float, nargs="+", default=[10.0, 20.0, 40.0])
    e.add_argument("--n", type=int, default=2000)
    e.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.cmd == "collect":
        collect(args.run, args.into, args.idle_minutes)
    else:
        torch.set_num_threads(args.threads)
        evaluate(args.run, args.snapshots, args.half_lives_kimg, args.n)


if __name__ == "__main__":
    main()
