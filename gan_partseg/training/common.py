"""Pieces every training loop shares: run folders, atomic checkpoints, step-seeded RNG, logs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write_text

CHECKPOINT_PREFIX = "step_"


def step_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (run seed, step, process index, ...)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def step_generator(*parts: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(*parts))
    return g


def world_size() -> int:
    """How many processes the launcher started (``WORLD_SIZE``, set by torchrun and ``accelerate launch``); 1 alone."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_launch_main() -> bool:
    """Whether this is the first (or only) launched process: the one that prints summaries."""
    return int(os.environ.get("RANK", "0")) == 0


def make_accelerator(**kwargs):
    """``accelerate.Accelerator(**kwargs)`` that also spreads over several processes of one CPU machine.

    Under ``torchrun --nproc_per_node N`` on a machine without a GPU, accelerate joins the processes into
    one (gloo) group only when told ``cpu=True``; without it each process would train alone, on the same
    run folder. So here ``cpu=True`` is set for a multi-process launch without CUDA, and a launch whose
    processes did not join up is an error. (``accelerate launch --num_processes N`` without a GPU starts a
    single process: its multi-CPU mode needs MPI. On one CPU machine use torchrun.)
    """
    from accelerate import Accelerator

    n = world_size()
    if n > 1 and not torch.cuda.is_available():
        kwargs.setdefault("cpu", True)
    accelerator = Accelerator(**kwargs)
    if accelerator.num_processes != n:
        raise RuntimeError(f"{n} processes were launched but accelerate joined {accelerator.num_processes} "
                           f"({accelerator.distributed_type}); launch with torchrun --nproc_per_node {n}, or "
                           "accelerate launch with a config for this machine (accelerate config)")
    return accelerator


def any_process(accelerator, flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (e.g. a time limit each process reads off its own
    clock): processes that decided apart would stop apart and wait on each other for ever."""
    if accelerator.num_processes == 1:
        return bool(flag)
    return bool(accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), "sum").item() > 0)


def check_replicas_agree(accelerator, modules: dict[str, torch.nn.Module]) -> None:
    """Under several processes, raise unless every process holds the same weights in each of ``modules``
    (one checksum per module gathered: cheap enough for every checkpoint). Data-parallel training keeps
    them equal; a difference means gradients were not shared and the run would checkpoint rank 0 alone."""
    if accelerator.num_processes == 1:
        return
    sums = torch.stack([sum((p.detach().double().sum() for p in m.parameters()), torch.zeros((), dtype=torch.float64))
                        for m in modules.values()]).to(accelerator.device)
    gathered = accelerator.gather(sums[None]).cpu()
    differ = [name for i, name in enumerate(modules) if not bool((gathered[:, i] == gathered[0, i]).all())]
    if differ:
        raise RuntimeError(f"the {accelerator.num_processes} processes hold different {', '.join(differ)} weights: "
                           "the data-parallel gradient exchange failed; the last complete checkpoint is intact")


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / "DONE").exists()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(accelerator, run_dir: Path, step: int, keep: int = 2) -> Path:
    """``accelerator.save_state`` into a temp folder, then rename: a crash never leaves a half checkpoint."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{CHECKPOINT_PREFIX}{step:08d}"
    tmp = root / f".tmp_{CHECKPOINT_PREFIX}{step:08d}"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        (tmp / "DONE").write_text(str(step))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def check_resume_config(run_dir: Path, config: Any, keys_that_must_match: list[str]) -> None:
    """Refuse to resume a run whose recorded config differs in a key that changes the model."""
    path = Path(run_dir) / "train_config.json"
    if not path.exists():
        return
    diff = config_differences(path, config, keys_that_must_match)
    if diff:
        lines = ", ".join(f"{k}: run has {a!r}, you asked {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"{run_dir} holds a run with a different configuration ({lines}). "
            "Resume with the same settings, or pass a new --out folder."
        )


def config_differences(path: Path, config: Any, keys: list[str]) -> dict[str, tuple[Any, Any]]:
    """{key: (recorded, asked)} for each of ``keys`` where the config recorded at ``path`` differs from ``config``.

    A key the record lacks (written before that setting existed) counts as the setting's default.
    """
    saved = json.loads(Path(path).read_text())
    current = asdict(config)
    defaults = {f.name: f.default for f in fields(config) if f.default is not MISSING}
    recorded = {k: saved.get(k, defaults.get(k)) for k in keys}
    return {k: (recorded[k], current.get(k)) for k in keys if recorded[k] != _jsonable(current.get(k))}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def write_config(run_dir: Path, config: Any) -> None:
    atomic_write_text(Path(run_dir) / "train_config.json", json.dumps(asdict(config), indent=2, sort_keys=True))


def config_from_dict(cls, values: dict):
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**values)


class JsonlLog:
    """Appends one JSON object per line (flushed), truncated to ``upto_step`` on resume."""

    def __init__(self, path: Path, upto_step: int | None = None):
        self.path = Path(path)
        if upto_step is not None and self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= upto_step]
            atomic_write_text(self.path, "".join(ln + "\n" for ln in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def temp_dir_beside(path: Path) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{Path(path).name}.", dir=Path(path).parent))
