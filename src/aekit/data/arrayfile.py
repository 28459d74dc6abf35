"""Read .npy / .npz files safely (no pickles), with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aekit.errors import DataFileError

__all__ = ["load_array_file"]


def _error(path: Path, exc: Exception) -> DataFileError:
    if "pickle" in str(exc):
        return DataFileError(
            f"{path} holds Python objects, which aekit never unpickles (that could run code): "
            "save plain numeric arrays with np.save / np.savez"
        )
    return DataFileError(
        f"{path} could not be read as a numpy .npy/.npz file ({type(exc).__name__}: {exc}); "
        "is it truncated or of another format?"
    )


def load_array_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of a ``.npy`` (under the key ``"x"``) or ``.npz`` file.

    Parameters
    ----------
    path : str or path-like
        The file; the format is detected from its content.

    Returns
    -------
    dict of str to ndarray

    Raises
    ------
    DataFileError
        Missing, truncated or damaged file, or one that needs unpickling.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path} does not exist (or is not a file)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except MemoryError:  # not a damaged file: too big for memory (aekit.data.load_dataset says so)
        raise
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, BadZipFile, ...
        raise _error(path, exc) from exc
    if isinstance(loaded, np.ndarray):
        return {"x": loaded}
    try:
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except MemoryError:
        raise
    except Exception as exc:
        raise _error(path, exc) from exc
