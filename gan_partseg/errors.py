"""The error families of ordinary user mistakes, and the range checks of counts, sizes and seeds.

One family per kind of input, each an ``Exception`` subclass of :class:`UserError` whose message names the
file or argument at fault and what to do:

- :class:`ArgumentError`: a count, size, seed or option outside its range, or options that do not go together;
- :class:`ModelFolderError`: a model folder (or name) that cannot be read as this package's model;
- :class:`CheckpointError`: a checkpoint that is unsafe, of another architecture, or inconsistent;
- :class:`ImageError`: an image or label map that cannot be read, is too large, or holds the wrong values;
- :class:`ShotsError`: a shots folder that cannot be trained on;
- :class:`DatasetError`: a data set folder that is incomplete, corrupt or of another layout;
- :class:`OutputError`: an output path the package will not write, or a Hub push that was refused;
- :class:`MissingFileError`: a file, folder or Hub model the user named that is not there;
- :class:`MissingExtraError`: an optional dependency that is not installed (the message names the extra).

For code written against earlier releases each family is also the built-in exception those sites raised:
``ValueError`` (the first six), ``FileExistsError`` (:class:`OutputError`), ``FileNotFoundError``
(:class:`MissingFileError`) and ``ImportError`` (:class:`MissingExtraError`). The CLI prints
``gan-partseg CMD: error: MESSAGE`` and exits 2 for a :class:`UserError`; anything else is a real fault and
keeps its traceback (as does every error under ``gan-partseg --debug`` or ``GAN_PARTSEG_DEBUG=1``). The Space
logs a :class:`UserError` as one line. ``docs/bad-inputs.md`` lists the inputs the tests try and the answer
each gets.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the ordinary user errors: a bad file, argument or folder, never a fault of the package."""


class ArgumentError(UserError, ValueError):
    """A count, size, seed or option outside its range (the message gives the range), or options that do not
    go together (the message says which to change)."""


class ModelFolderError(UserError, ValueError):
    """A model folder whose config.json or weights cannot be read as this package's model."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is unsafe, of another architecture, or inconsistent."""


class ImageError(UserError, ValueError):
    """An image or label map that cannot be read, one too large to decode safely, or one whose values do not fit
    (a label map with class ids its id2label does not define)."""


class ShotsError(UserError, ValueError):
    """A shots folder that cannot be trained on; the message names the file."""


class DatasetError(UserError, ValueError):
    """A data set folder that is incomplete, corrupt or of another layout; the message names the part."""


class OutputError(UserError, FileExistsError):
    """An output path the package will not write: it is a file, or a folder holding what the package did not
    write (or, without ``overwrite``, an earlier output of the same kind); raised before any work starts. Also a
    push to the Hub that was refused or could not be sent (offline, no token, no write access)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named that is not there (a checkpoint, a run folder, an images folder, a label
    map, id2label.json, a data set), or a Hub model that could not be fetched; the message names the path and
    what would be there. Also a ``FileNotFoundError``, so ``except FileNotFoundError`` code keeps working."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency that is not installed; the message names the ``pip install`` that adds it."""


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
