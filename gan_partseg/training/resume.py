"""A compact copy of one training checkpoint that can live in git, and its expansion back into a run folder.

An Accelerate checkpoint of the embedded GAN is 31 MB; most of it is state a tracked copy need not hold:

- Adam's first moments: with beta1 = 0 (StyleGAN2's setting) the next step sets ``exp_avg`` to the
  gradient whatever it held (``lerp`` with weight 1 returns its end point exactly), so they are dropped
  and restored as zeros without changing a single bit of the resumed run;
- weights equal, tensor for tensor, to a file the repository already carries (the bundled EMA generator
  and discriminator) are stored as a reference to that file and a SHA-256 of their bytes;
- the RNG states become JSON + safetensors instead of pickles, so unpacking unpickles nothing.

    python -m gan_partseg.training.resume pack CHECKPOINT OUT [--reference FILE ...]
    python -m gan_partseg.training.resume unpack OUT RUN     # RUN/checkpoints/step_N, then resume RUN
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from gan_partseg.errors import CheckpointError, MissingFileError
from gan_partseg.files import atomic_folder, atomic_write_text
from gan_partseg.hub import tensor_digest
from gan_partseg.training.checkpoints import CHECKPOINT_PREFIX

MANIFEST = "manifest.json"
RUN_FILES = ("train_config.json", "log.jsonl")
"""What a resume needs beside the checkpoint: kept in the packed checkpoint's parent, so that folder reads as a
run folder (``training_summary`` follows its ``init_from`` lineage to sibling folders)."""


def _same(tensors: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> bool:
    return all(k in reference and reference[k].dtype == t.dtype and torch.equal(reference[k], t)
               for k, t in tensors.items())


def pack_checkpoint(checkpoint: Path, out: Path, references: list[Path] = ()) -> dict:
    """Write the compact form of the Accelerate checkpoint folder ``checkpoint`` (``RUN/checkpoints/step_N``)
    into ``out``, and RUN's config and log (up to step N) beside it into ``out.parent``.

    ``references``: safetensors files the unpacking checkout will hold at the same relative place; a
    state dict equal to one of them is stored as a reference. Returns the manifest.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if not (checkpoint / "DONE").exists():
        raise MissingFileError(f"{checkpoint} is not a complete checkpoint (no DONE file)")
    step = int((checkpoint / "DONE").read_text())
    refs = [(Path(r), load_file(str(r))) for r in references]
    with atomic_folder(out, "packed checkpoint") as tmp:
        manifest = _pack_into(tmp, checkpoint, step, refs, out)
    run = checkpoint.parent.parent
    if (run / "train_config.json").exists():
        atomic_write_text(out.parent / "train_config.json", (run / "train_config.json").read_text())
    if (run / "log.jsonl").exists():
        kept = [ln for ln in (run / "log.jsonl").read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= step]
        atomic_write_text(out.parent / "log.jsonl", "".join(ln + "\n" for ln in kept))
    return manifest


def _pack_into(tmp: Path, checkpoint: Path, step: int, refs: list, out: Path) -> dict:
    files: dict[str, dict] = {}
    for path in sorted(checkpoint.iterdir()):
        name = path.name
        if name == "DONE":
            continue
        if name.startswith("random_states_"):
            files[name] = _pack_random_state(path, tmp)
            continue
        if name.startswith("optimizer"):
            files[name] = _pack_optimizer(path, tmp)
            continue
        if name.endswith(".safetensors"):
            tensors, kind = load_file(str(path)), "safetensors"
        elif name.startswith("custom_checkpoint_"):
            tensors, kind = torch.load(path, map_location="cpu", weights_only=True), "torch"
        else:
            raise ValueError(f"{path}: a checkpoint file this packer does not know; extend pack_checkpoint")
        entry = {"kind": kind, "keys": list(tensors), "sha256": tensor_digest(tensors)}
        match = next((r for r, ref in refs if _same(tensors, ref)), None)
        if match is not None:
            entry["reference"] = os.path.relpath(match.resolve(), out.resolve())
        else:
            save_file(dict(tensors), str(tmp / f"{name}.safetensors"))
        files[name] = entry
    manifest = {"format": 1, "step": step, "files": files}
    atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def _pack_optimizer(path: Path, tmp: Path) -> dict:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    first_moment_free = all(float(g["betas"][0]) == 0.0 for g in sd["param_groups"])
    tensors = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if key == "exp_avg" and first_moment_free:
                continue  # beta1 = 0: the next step overwrites it exactly (module docstring)
            tensors[f"{pid}.{key}"] = value
    save_file(tensors, str(tmp / f"{path.name}.safetensors"))
    order = {str(pid): list(state) for pid, state in sd["state"].items()}
    return {"kind": "optimizer", "param_groups": sd["param_groups"], "order": order,
            "zeroed": ["exp_avg"] if first_moment_free else []}


def _pack_random_state(path: Path, tmp: Path) -> dict:
    # weights_only with exactly the numpy types Accelerate's RNG file holds allowed: nothing else unpickles
    from numpy._core.multiarray import _reconstruct

    allowed = [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(allowed):
        rs = torch.load(path, map_location="cpu", weights_only=True)
    unknown = set(rs) - {"step", "random_state", "numpy_random_seed", "torch_manual_seed"}
    if unknown:
        raise ValueError(f"{path}: RNG states {sorted(unknown)} (a GPU run?) are not packed; extend _pack_random_state")
    version, internal, gauss = rs["random_state"]
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = rs["numpy_random_seed"]
    save_file({"torch": rs["torch_manual_seed"], "numpy": torch.from_numpy(np.asarray(np_keys, dtype=np.int64))},
              str(tmp / f"{path.name}.safetensors"))
    return {"kind": "random_state", "step": rs["step"], "python": [version, list(internal), gauss],
            "numpy": [np_name, int(np_pos), int(np_has_gauss), float(np_gauss)]}


def unpack_checkpoint(packed: Path, run_dir: Path) -> Path:
    """Rebuild ``run_dir/checkpoints/step_N`` from a packed checkpoint (and the run's config and log from beside
    it, where ``run_dir`` lacks them); returns that folder."""
    packed, run_dir = Path(packed), Path(run_dir)
    manifest = json.loads((packed / MANIFEST).read_text())
    step = manifest["step"]
    root = Path(run_dir) / "checkpoints"
    with atomic_folder(root / f"{CHECKPOINT_PREFIX}{step:08d}", "checkpoint") as tmp:
        _unpack_into(tmp, packed, manifest)
    for name in RUN_FILES:
        if (packed.parent / name).exists() and not (run_dir / name).exists():
            atomic_write_text(run_dir / name, (packed.parent / name).read_text())
    return root / f"{CHECKPOINT_PREFIX}{step:08d}"


def _unpack_into(tmp: Path, packed: Path, manifest: dict) -> None:
    for name, entry in manifest["files"].items():
        kind = entry["kind"]
        if kind == "random_state":
            t = load_file(str(packed / f"{name}.safetensors"))
            version, internal, gauss = entry["python"]
            np_name, np_pos, np_has_gauss, np_gauss = entry["numpy"]
            torch.save({"step": entry["step"], "random_state": (version, tuple(internal), gauss),
                        "numpy_random_seed": (np_name, t["numpy"].numpy().astype(np.uint32), np_pos, np_has_gauss,
                                              np_gauss),
                        "torch_manual_seed": t["torch"]}, tmp / name)
        elif kind == "optimizer":
            t = load_file(str(packed / f"{name}.safetensors"))
            state = {}
            for pid, keys in entry["order"].items():
                kept = {k: t[f"{pid}.{k}"] for k in keys if k not in entry["zeroed"]}
                like = kept.get("exp_avg_sq")
                state[int(pid)] = {k: kept[k] if k in kept else torch.zeros_like(like) for k in keys}
            groups = [{**g, "betas": tuple(g["betas"])} for g in entry["param_groups"]]
            torch.save({"state": state, "param_groups": groups}, tmp / name)
        else:
            if "reference" in entry:
                ref = (packed / entry["reference"]).resolve()
                if not ref.exists():
                    raise MissingFileError(f"{packed}: {name} refers to {ref}, which this checkout lacks")
                every = load_file(str(ref))
                missing = [k for k in entry["keys"] if k not in every]
                if missing:
                    raise CheckpointError(f"{packed}: {name} refers to {ref}, which lacks {missing[:3]}: "
                                          "that file changed since packing; pack the checkpoint again")
                tensors = {k: every[k] for k in entry["keys"]}
            else:
                tensors = load_file(str(packed / f"{name}.safetensors"))
            if tensor_digest(tensors) != entry["sha256"]:
                raise CheckpointError(f"{packed}: {name} does not match its recorded SHA-256 (the referenced file changed?)")
            tensors = {k: tensors[k] for k in entry["keys"]}  # the order the checkpoint had
            if kind == "safetensors":
                save_file(tensors, str(tmp / name), metadata={"format": "pt"})
            else:
                torch.save(tensors, tmp / name)
    (tmp / "DONE").write_text(str(manifest["step"]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="checkpoint folder -> compact tracked folder")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--reference", action="append", default=[], help="a safetensors file the checkout carries")
    u = sub.add_parser("unpack", help="compact folder -> RUN/checkpoints/step_N")
    u.add_argument("packed")
    u.add_argument("run")
    args = ap.parse_args(argv)
    if args.command == "pack":
        m = pack_checkpoint(Path(args.checkpoint), Path(args.out), [Path(r) for r in args.reference])
        refs = [n for n, e in m["files"].items() if "reference" in e]
        print(f"packed step {m['step']} into {args.out} ({', '.join(refs) or 'no file'} by reference)")
    else:
        final = unpack_checkpoint(Path(args.packed), Path(args.run))
        print(f"wrote {final}; resume it with: gan-partseg train-gan --out {args.run} --resume (same settings)")


if __name__ == "__main__":
    main()
