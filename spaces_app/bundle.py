"""Build the folder a Hugging Face Space is made from: ``make space-bundle`` (or ``python spaces_app/bundle.py OUT``).

OUT (default build/space) gets the Space's ``app.py``, ``README.md`` (its front matter is what Spaces
reads) and ``requirements.txt``, and the gan_partseg wheel built from this checkout, which carries the
bundled toy-face models. ``requirements.txt`` installs that wheel by its file name, so the Space runs
exactly this package; upload the whole folder as the Space's repository.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FILES = ("app.py", "README.md", "requirements.txt")


def wheel_line(requirements: Path) -> str:
    """The requirement line that installs the gan_partseg wheel (``./gan_partseg-<version>-...whl[demo]``)."""
    lines = [ln.strip() for ln in requirements.read_text().splitlines() if ln.strip().startswith("./gan_partseg-")]
    if len(lines) != 1:
        raise SystemExit(f"{requirements} must install gan_partseg from one ./gan_partseg-*.whl line, found {lines}")
    return lines[0]


def build(out: Path) -> Path:
    """Write the Space folder to ``out`` (replacing an earlier bundle); returns the wheel's path."""
    if out.exists() and not (out / "app.py").is_file():
        raise SystemExit(f"{out} exists and is not a Space bundle: choose another folder or remove it")
    wanted = wheel_line(HERE / "requirements.txt").split("[")[0].removeprefix("./")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # no build isolation: the venv's setuptools builds it, so bundling works offline
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", tmp, str(ROOT)], check=True)
        built = sorted(Path(tmp).glob("gan_partseg-*.whl"))
        if [w.name for w in built] != [wanted]:
            raise SystemExit(f"built {[w.name for w in built]}, but spaces_app/requirements.txt installs {wanted}: "
                             "update its ./gan_partseg-*.whl line to the version in pyproject.toml")
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # beside out: one rename
        for name in FILES:
            shutil.copy(HERE / name, staging / name)
        shutil.copy(built[0], staging / wanted)
    if out.exists():
        shutil.rmtree(out)
    staging.replace(out)
    return out / wanted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=str(ROOT / "build" / "space"))
    wheel = build(Path(ap.parse_args().out))
    print(f"wrote the Space folder {wheel.parent} ({', '.join(FILES)}, {wheel.name}); upload it as the Space, e.g.\n"
          f"  huggingface-cli upload --repo-type space YOU/gan-partseg {wheel.parent} .")


if __name__ == "__main__":
    main()
