"""The error families of ordinary user mistakes, and the range checks of counts, sizes and seeds.

Every family is an ``Exception`` subclass (and, for code written against earlier releases, a ``ValueError``
or ``FileExistsError``) whose message names the file or argument at fault and what to do. The CLI prints
``gan-partseg CMD: error: MESSAGE`` and exits 2 for them; anything else is a real fault and keeps its
traceback. ``docs/bad-inputs.md`` lists the inputs the tests try and the answer each gets.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the ordinary user errors: a bad file, argument or folder, never a fault of the package."""


class ArgumentError(UserError, ValueError):
    """A count, size, seed or option outside its range (the message gives the range)."""


class ModelFolderError(UserError, ValueError):
    """A model folder whose config.json or weights cannot be read as this package's model."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is unsafe, of another architecture, or inconsistent."""


class ImageError(UserError, ValueError):
    """An image or label map that cannot be read, or one too large to decode safely."""


class ShotsError(UserError, ValueError):
    """A shots folder that cannot be trained on; the message names the file."""


class DatasetError(UserError, ValueError):
    """A data set folder that is incomplete, corrupt or of another layout; the message names the part."""


class OutputError(UserError, FileExistsError):
    """An output path the package will not write: it is a file, or a folder holding what the package did not
    write (or, without ``overwrite``, an earlier output of the same kind). Raised before any work starts."""


SEED_MAX = 2**63 - 1
"""Seeds are 64-bit signed integers everywhere (torch.Generator.manual_seed, numpy, the toy faces)."""


def check_count(name: str, value: int, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum]; raises :class:`ArgumentError` naming ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ArgumentError(f"{name} must be {allowed}, got {value}")
    return value


def check_seed(name: str, value: int) -> int:
    return check_count(name, value, 0, SEED_MAX)
