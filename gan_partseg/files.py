"""Files and folders written so that an interrupted run never leaves a half-written one: atomic writes,
atomic folder swaps and section updates."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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


def swap_in_folder(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Put the finished folder ``tmp`` at ``path``: the old folder is moved aside until the new one is in
    place, so a reader sees the old folder or the new one, never half of one."""
    tmp, out = Path(tmp), Path(path)
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
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_folder(out) as tmp:`` write into the empty folder ``tmp`` beside ``out``; when the block
    ends it replaces ``out`` (``swap_in_folder``). On an error ``tmp`` is removed and ``out`` is untouched."""
    out = Path(path)
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
    swap_in_folder(tmp, out)
