"""Run folders: atomic checkpoints, resume checks, saved configs and JSONL logs."""

from __future__ import annotations

import json
import shutil
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

from gan_partseg.errors import ArgumentError, CheckpointError
from gan_partseg.files import atomic_write_text, swap_in_folder

CHECKPOINT_PREFIX = "step_"


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
        swap_in_folder(tmp, final, "checkpoint")
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
        raise ArgumentError(
            f"{run_dir} holds a run with a different configuration ({lines}). "
            "Resume with the same settings, or pass a new --out folder."
        )


def config_differences(path: Path, config: Any, keys: list[str]) -> dict[str, tuple[Any, Any]]:
    """{key: (recorded, asked)} for each of ``keys`` where the config recorded at ``path`` differs from ``config``.

    A key the record lacks (written before that setting existed) counts as the setting's default.
    """
    saved = json.loads(Path(path).read_text())
    current = asdict(config)
    names = {f.name for f in fields(config)}
    try:  # through the config class, so an older spelling of a value ("16,32" for [16, 32]) reads as today's
        saved = {**saved, **asdict(type(config)(**{k: v for k, v in saved.items() if k in names}))}
    except (TypeError, ValueError):
        pass
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
        raise CheckpointError(f"unknown {cls.__name__} fields: {sorted(unknown)}; the run was recorded by another "
                              "version of gan_partseg: resume it with that version, or start a new --out")
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
