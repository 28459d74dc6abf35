"""Read and write IDX files (the MNIST format), plain or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values, big-endian, row-major. Gzip is detected
from the file's first bytes, not from its name.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from aekit.errors import DataError, DataFileError

__all__ = ["read_idx", "read_idx_header", "write_idx"]

# type code -> big-endian numpy dtype
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_KIND_TO_CODE = {(dt.kind, dt.itemsize): code for code, dt in _CODE_TO_DTYPE.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_FIX_HINT = "re-download it, or delete it so that aekit fetches a fresh copy"


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_bytes(path: Path) -> bytes:
    """Whole file content, decompressed when it is gzip."""
    if not path.is_file():
        raise DataFileError(f"IDX file {path} does not exist (or is not a file)")
    if not _is_gzip(path):
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataFileError(
            f"{path} is not a valid gzip file or is truncated ({exc}): {_FIX_HINT}"
        ) from exc


def _parse_header(head: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (dtype, shape, header length) from the first bytes of an IDX file."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataFileError(
            f"{path} is not an IDX file: it should start with two zero bytes, a type code and "
            f"the number of dimensions, but starts with {head[:4].hex(' ') or 'nothing'}; "
            f"{_FIX_HINT}"
        )
    code, ndim = head[2], head[3]
    if code not in _CODE_TO_DTYPE:
        known = ", ".join(f"0x{c:02X}" for c in _CODE_TO_DTYPE)
        raise DataFileError(
            f"{path} has unknown IDX type code 0x{code:02X} (known: {known}); {_FIX_HINT}"
        )
    if ndim == 0:
        raise DataFileError(f"{path} declares 0 dimensions in its IDX header; {_FIX_HINT}")
    header_len = 4 + 4 * ndim
    if len(head) < header_len:
        raise DataFileError(
            f"{path} is truncated inside its IDX header ({len(head)} of {header_len} bytes); "
            f"{_FIX_HINT}"
        )
    shape = struct.unpack(f">{ndim}I", head[4:header_len])
    return _CODE_TO_DTYPE[code], tuple(int(d) for d in shape), header_len


def read_idx_header(path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...]]:
    """Read only the header of an IDX file (cheap, even for large gzipped files).

    Parameters
    ----------
    path : str or path-like
        IDX file, plain or gzipped.

    Returns
    -------
    dtype : numpy.dtype
        Native-endian dtype of the values.
    shape : tuple of int
        Array shape declared by the header.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"IDX file {path} does not exist (or is not a file)")
    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as f:
            head = f.read(4 + 4 * 255)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(
            f"{path} is not a valid gzip file or is truncated ({exc}): {_FIX_HINT}"
        ) from exc
    dtype, shape, _ = _parse_header(head, path)
    return dtype.newbyteorder("="), shape


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file into a numpy array.

    Parameters
    ----------
    path : str or path-like
        IDX file, plain or gzipped (detected by its magic bytes).

    Returns
    -------
    ndarray
        Array with the shape and dtype the header declares (native byte order, writeable).

    Raises
    ------
    DataFileError
        The file is missing, not gzip although it starts like one, truncated, has trailing
        bytes, or has a bad magic number.
    """
    path = Path(path)
    data = _read_bytes(path)
    dtype, shape, header_len = _parse_header(data[: 4 + 4 * 255], path)
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header_len
    if found < expected:
        raise DataFileError(
            f"{path} is truncated: its header declares shape {shape} ({expected} bytes of "
            f"data) but only {found} bytes follow; {_FIX_HINT}"
        )
    if found > expected:
        raise DataFileError(
            f"{path} has {found - expected} unexpected bytes after the {expected} bytes its "
            f"header declares for shape {shape}; {_FIX_HINT}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_len)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))  # copy: native order, writeable


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array as an IDX file; gzipped when the name ends in ``.gz``.

    The file is written to a temporary name in the same folder and renamed, so a failure
    never leaves a half-written file.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    array : ndarray
        1 to 255 dimensions, dtype uint8, int8, int16, int32, float32 or float64.

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _KIND_TO_CODE.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise DataError(
            f"cannot write dtype {array.dtype} as IDX: use uint8, int8, int16, int32, "
            "float32 or float64"
        )
    if not 1 <= array.ndim <= 255:
        raise DataError(f"IDX needs 1 to 255 dimensions, got an array of shape {array.shape}")
    if any(d >= 2**32 for d in array.shape):
        raise DataError(f"IDX dimensions must be below 2**32, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
