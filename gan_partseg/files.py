"""Files and folders written so that an interrupted run never leaves a half-written one: atomic writes,
atomic folder swaps and section updates."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gan_partseg.errors import OutputError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def replace_markdown_section(path: str | os.PathLike, heading: str, section: str, title: str = "# Results") -> None:
    """Put ``section`` (starting with ``heading``, a '## ' line) into the markdown file, replacing
    the old section of that heading or appending; written atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else f"{title}\n\n"
    section = section.rstrip() + "\n"
    start = text.find(heading)
    if start >= 0:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")  # a blank line before the next
    else:
        text = text.rstrip() + "\n\n" + section
    atomic_write_text(path, text)


MODEL_TYPES = ("stylegan2", "stylegan2_discriminator", "gan_partseg_fewshot", "gan_partseg_autoshot")


def _model_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _has(folder: Path, *names: str) -> bool:
    return all((folder / n).exists() for n in names)


OUTPUT_KINDS: dict[str, Callable[[Path], bool]] = {
    "model folder": lambda p: _model_type(p) in MODEL_TYPES,
    "labelled data set": lambda p: _has(p, "id2label.json", "dataset_info.json"),
    "PNG pairs folder": lambda p: _has(p, "id2label.json", "images", "labels") and not _has(p, "latents"),
    "shots folder": lambda p: _has(p, "id2label.json", "images", "latents"),
    "generated data set": lambda p: _has(p, "dataset.json"),
    "packed checkpoint": lambda p: _has(p, "manifest.json"),
    "checkpoint": lambda p: _has(p, "DONE"),
}
"""What each kind of folder the package writes whole holds, so it can recognise its own earlier output."""


def folder_kind(path: str | os.PathLike) -> str | None:
    """The :data:`OUTPUT_KINDS` name of the folder ``path`` (None: not one the package wrote)."""
    path = Path(path)
    if not path.is_dir():
        return None
    return next((kind for kind, test in OUTPUT_KINDS.items() if test(path)), None)


def _contents(path: Path, n: int = 4) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def check_output(path: str | os.PathLike, kind: str, overwrite: bool = True) -> Path:
    """Refuse, before any work, an output folder ``path`` whose replacement would lose something.

    Allowed: no such path, an empty folder, or an earlier ``kind`` folder (with ``overwrite``). Refused
    with :class:`OutputError`, naming the path and what it holds: a file, a folder of another kind or of
    files the package did not write, an earlier ``kind`` folder without ``overwrite``.
    """
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}; one of {sorted(OUTPUT_KINDS)}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file, not a folder; nothing was written: give a folder path that does not "
                          "exist yet (or an empty folder)")
    if not path.exists() or not any(path.iterdir()):
        return path
    found = folder_kind(path)
    if found == kind:
        if overwrite:
            return path
        raise OutputError(f"{path} holds an earlier {kind}; nothing was written: pass --overwrite to replace it, "
                          "or choose a new folder")
    what = f"a {found}" if found else f"files this package did not write ({_contents(path)})"
    raise OutputError(f"{path} holds {what}; nothing was written or removed: choose a new (or empty) folder for "
                      f"the {kind}")


def swap_in_folder(tmp: str | os.PathLike, path: str | os.PathLike, kind: str) -> Path:
    """Put the finished ``kind`` folder ``tmp`` at ``path``: the old folder (checked again to be absent, empty
    or an earlier ``kind``) is moved aside until the new one is in place, so a reader sees the old folder or
    the new one, never half of one."""
    tmp, out = Path(tmp), Path(path)
    check_output(out, kind)
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
    return out


@contextmanager
def atomic_folder(path: str | os.PathLike, kind: str, overwrite: bool = True) -> Iterator[Path]:
    """``with atomic_folder(out, kind) as tmp:`` write into the empty folder ``tmp`` beside ``out``; when the
    block ends it replaces ``out`` (``swap_in_folder``). ``out`` is checked first (``check_output``): only an
    absent or empty path, or an earlier ``kind`` folder, is ever replaced. On an error ``tmp`` is removed and
    ``out`` is untouched."""
    out = Path(path)
    check_output(out, kind, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    readable = 0o666 & ~_umask()  # safetensors writes its files 0600: give them the user's usual mode
    for f in tmp.rglob("*"):
        if f.is_file():
            os.chmod(f, readable)
    swap_in_folder(tmp, out, kind)
