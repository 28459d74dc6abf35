"""Data larger than memory: ``.npy`` files read row by row, image folders decoded on demand,
long CSV series converted in one chunked pass (with the scaler fitted in the same pass).

Every class here is a ``torch.utils.data.Dataset`` the :class:`~aekit.training.Trainer` streams
in batches; with several processes each reads only the rows of its shard. Memory stays flat:

- :class:`NpyStream` reads the rows a batch needs with ``os.pread`` (one call per run of
  consecutive rows), not through a memory map, so the file's pages live in the OS page cache and
  never count against the process; only the batch is held.
- :class:`ImageFolderStream` decodes each image when its batch is drawn, in background workers.
- :func:`csv_to_npy` reads a numeric CSV in chunks into a float32 ``.npy`` and computes each
  column's mean and standard deviation in the same pass (Chan et al.'s pairwise update, in
  float64): the same numbers as ``x.mean(0)`` / ``x.std(0)`` of the whole table in memory.
  :class:`SeriesWindows` then serves standardised sliding windows from that file.

For data that fits in memory the in-memory path stays the fast default; ``aekit train
--stream`` picks these paths on purpose (and ``--stream auto`` when a file is larger than a
quarter of the free memory).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from aekit.errors import ConfigError, DataError, DataFileError

__all__ = [
    "ColumnStats",
    "ImageFolderStream",
    "NpyStream",
    "SeriesWindows",
    "csv_to_npy",
    "free_memory_bytes",
]


def free_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# -- .npy files ------------------------------------------------------------------------------------
def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) of a .npy file, checking the file is complete."""
    from numpy.lib import format as npformat

    if not path.is_file():
        raise DataFileError(f"{path} does not exist (or is not a file)")
    try:
        with open(path, "rb") as f:
            version = npformat.read_magic(f)
            reader = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}
            if version not in reader:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran, dtype = reader[version](f)
            offset = f.tell()
    except (ValueError, OSError, EOFError) as exc:
        raise DataFileError(f"{path} is not a readable .npy file ({exc}); save arrays with np.save") from exc
    if dtype.hasobject:
        raise DataFileError(f"{path} holds Python objects, which aekit never unpickles; save numeric arrays")
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = path.stat().st_size
    if have < need:
        raise DataFileError(
            f"{path} is truncated: its header says {shape} {dtype} ({need:,} bytes with the header) but "
            f"the file has {have:,} bytes; copy or write it again"
        )
    return tuple(int(d) for d in shape), dtype, bool(fortran), offset


class NpyStream(TorchDataset):
    """Rows of a ``.npy`` file, read when a batch needs them (flat memory, any file size).

    Parameters
    ----------
    path : path-like
        A C-ordered ``.npy`` array of samples: ``(N, D)`` tables, ``(N, H, W)`` or
        ``(N, C, H, W)`` images. uint8 is scaled by 1/255 (as the in-memory loader does); float
        arrays are used as they are. ``(N, H, W)`` gains a channel axis.
    indices : sequence of int, optional
        The rows this dataset shows (a split), in this order; default all.
    binarize : float, optional
        Map values ``>= binarize`` to 1 and the rest to 0 (after scaling), as the tutorial does.

    ``ds[i]`` is one float32 tensor; ``ds.__getitems__(idx)`` (used by the DataLoader) reads a
    whole batch with one ``pread`` per run of consecutive rows.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        binarize: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.binarize = binarize
        shape, dtype, fortran, offset = _npy_header(self.path)
        if fortran:
            raise DataFileError(f"{self.path} is stored in Fortran order; save it with np.ascontiguousarray first")
        if len(shape) not in (2, 3, 4):
            raise DataError(f"{self.path} has shape {shape}; expected (N, D), (N, H, W) or (N, C, H, W)")
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
            raise DataError(f"{self.path} has dtype {dtype}; expected numbers")
        if shape[0] == 0:
            raise DataError(f"{self.path} holds no samples (shape {shape})")
        self.n_rows, self.dtype, self.offset = shape[0], dtype, offset
        self.file_shape = shape
        self.row_shape = shape[1:]
        self.sample_shape = (1, *shape[1:]) if len(shape) == 3 else shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize
        self.scale = 255.0 if dtype == np.uint8 else None
        if indices is None:
            self.indices = np.arange(self.n_rows, dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64)
            if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= self.n_rows):
                raise DataError(f"indices out of range for {self.path} ({self.n_rows} rows)")
        self._fd: int | None = None
        self._pid: int | None = None

    # file handle per process (DataLoader workers fork)
    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fd"] = state["_pid"] = None
        return state

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, indices: Sequence[int] | np.ndarray) -> NpyStream:
        """A view of some of this dataset's samples (positions into it), sharing the file."""
        sub = NpyStream.__new__(NpyStream)
        sub.__dict__.update(self.__getstate__())
        sub.indices = self.indices[np.asarray(indices, dtype=np.int64)]
        return sub

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """File rows ``rows`` (any order) as an array of the file's dtype, shape (len(rows), *row_shape)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        buf = out.reshape(len(rows), -1).view(np.uint8).reshape(len(rows), self.row_bytes)
        fd = self._file()
        # one pread per run of consecutive rows
        breaks = np.flatnonzero(np.diff(srt) != 1) + 1
        starts = np.r_[0, breaks]
        ends = np.r_[breaks, len(srt)]
        sorted_buf = np.empty_like(buf) if len(rows) > 1 else buf
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            nbytes = (b - a) * self.row_bytes
            data = os.pread(fd, nbytes, self.offset + int(srt[a]) * self.row_bytes)
            if len(data) != nbytes:
                raise DataFileError(
                    f"{self.path} became shorter while reading (row {int(srt[a])}); was it truncated or replaced?"
                )
            sorted_buf[a:b] = np.frombuffer(data, dtype=np.uint8).reshape(b - a, self.row_bytes)
        if sorted_buf is not buf:
            buf[order] = sorted_buf
        return out

    def _convert(self, arr: np.ndarray) -> torch.Tensor:
        if self.scale is not None:  # exactly as the in-memory loader (aekit.data.to_float01)
            x = np.divide(arr, np.float32(255.0), dtype=np.float32)
        else:
            x = arr.astype(np.float32, copy=False)
        x = x.reshape(len(arr), *self.sample_shape)
        if self.binarize is not None:  # as aekit.data.binarize
            x = (x >= self.binarize).astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{self.path} holds NaN/inf values; clean or impute them before training")
        return torch.from_numpy(np.ascontiguousarray(x))

    def __getitems__(self, positions: Sequence[int]) -> torch.Tensor:
        return self._convert(self.read_rows(self.indices[np.asarray(positions, dtype=np.int64)]))

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.__getitems__([i])[0]

    def to_array(self, max_rows: int | None = None) -> np.ndarray:
        """The first ``max_rows`` samples (default all) in memory, as float32."""
        n = len(self) if max_rows is None else min(len(self), max_rows)
        return self.__getitems__(range(n)).numpy()


def stream_collate(batch):
    """DataLoader collate for datasets whose ``__getitems__`` already returns a batch tensor."""
    return batch if torch.is_tensor(batch) else torch.utils.data.default_collate(batch)


# -- image folders ---------------------------------------------------------------------------------
class ImageFolderStream(TorchDataset):
    """A folder of images, decoded when their batch is drawn (two background workers by default).

    The folder is listed once (one class per subfolder when it holds only subfolders, as the
    in-memory reader); only the first image is decoded up front to learn the sample shape, so
    every image must have that size unless ``size`` resizes them. A file that cannot be read
    raises an error naming it, when it is reached.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        size: Sequence[int] | None = None,
        channels: int | None = None,
        workers: int = 2,
    ) -> None:
        from aekit.data.images import _folder_files, read_image

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataFileError(f"{self.folder} is not a folder of images")
        self.files, labels, self.class_names = _folder_files(self.folder)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.channels = channels
        self._read = read_image
        first = read_image(self.files[0], size=self.size, channels=self.channels)
        self.sample_shape = tuple(first.shape)
        self.loader_workers = int(workers)
        self.binarize: float | None = None

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageFolderStream:
        """A view of some of the images (positions into this dataset)."""
        sub = ImageFolderStream.__new__(ImageFolderStream)
        sub.__dict__.update(self.__dict__)
        idx = np.asarray(indices, dtype=np.int64)
        sub.files = [self.files[i] for i in idx.tolist()]
        sub.labels = None if self.labels is None else self.labels[idx]
        return sub

    def to_array(self, max_rows: int | None = None) -> np.ndarray:
        """The first ``max_rows`` images (default all) in memory, as float32 (N, C, H, W)."""
        n = len(self) if max_rows is None else min(len(self), max_rows)
        return torch.stack([self[i] for i in range(n)]).numpy() if n else np.zeros((0, *self.sample_shape), np.float32)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self._read(self.files[i], size=self.size, channels=self.channels)
        if self.binarize is not None:
            img = (img >= self.binarize).astype(np.float32)
        if img.shape != self.sample_shape:
            raise DataError(
                f"{self.files[i]} is {img.shape[1]}x{img.shape[2]} with {img.shape[0]} channel(s), but "
                f"{self.files[0].name} is {self.sample_shape[1]}x{self.sample_shape[2]} with "
                f"{self.sample_shape[0]}; pass size=(H, W) and channels= to convert them all"
            )
        return torch.from_numpy(img)


# -- long CSV series -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnStats:
    """Per-column count, mean and (population) standard deviation, from one pass."""

    columns: tuple[str, ...]
    n: int
    mean: np.ndarray
    std: np.ndarray


def _merge_moments(n_a, mean_a, m2_a, chunk: np.ndarray):
    """Chan et al.'s pairwise update of (count, mean, sum of squared deviations)."""
    n_b = len(chunk)
    mean_b = chunk.mean(0)
    m2_b = ((chunk - mean_b) ** 2).sum(0)
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta**2 * (n_a * n_b / n)
    return n, mean, m2


def csv_to_npy(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    columns: Sequence[str] | None = None,
    skip_columns: Sequence[str] = ("timestamp", "time", "date", "datetime"),
    chunk_rows: int = 65536,
) -> ColumnStats:
    """Convert a numeric CSV (header row; rows in time order) to a float32 ``.npy`` in one pass.

    Reads ``chunk_rows`` lines at a time, so memory holds one chunk whatever the file size, and
    returns the columns' mean and standard deviation computed in the same pass (float64). Columns
    named like a time stamp are skipped unless ``columns`` names the columns to keep. Empty cells
    and words are refused with the line and column; the ``.npy`` is written atomically.
    """
    from aekit._utils import atomic_path

    path, out = Path(path), Path(out)
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if not path.is_file():
        raise DataFileError(f"{path} does not exist (or is not a file)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataFileError(f"{path} is empty; expected a header row and numeric rows") from None
        except UnicodeDecodeError as exc:
            raise DataFileError(f"{path} is not UTF-8 text ({exc})") from exc
        names = [h.strip() for h in header]
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise ConfigError(f"{path} has no column(s) {missing}; its columns are {names}")
            keep = [names.index(c) for c in columns]
        else:
            skip = {s.lower() for s in skip_columns}
            keep = [i for i, n in enumerate(names) if n.lower() not in skip]
        if not keep:
            raise DataFileError(f"{path} has no value columns (header {names})")
        kept = tuple(names[i] for i in keep)
        n_done, mean, m2 = 0, np.zeros(len(keep)), np.zeros(len(keep))
        with atomic_path(out) as tmp, open(tmp, "wb") as dst:
            # the header is rewritten with the final row count at the end (version 1.0, padded)
            header_len = _write_npy_header(dst, (0, len(keep)))
            line_no = 1
            while True:
                rows: list[list[str]] = []
                try:
                    for row in reader:
                        rows.append(row)
                        if len(rows) == chunk_rows:
                            break
                except UnicodeDecodeError as exc:
                    raise DataFileError(f"{path}: not UTF-8 text after line {line_no} ({exc})") from exc
                if not rows:
                    break
                chunk = _parse_chunk(rows, keep, kept, path, line_no)
                line_no += len(rows)
                n_done, mean, m2 = _merge_moments(n_done, mean, m2, chunk.astype(np.float64))
                dst.write(chunk.astype(np.float32).tobytes())
            if n_done == 0:
                raise DataFileError(f"{path} has a header but no data rows")
            dst.seek(0)
            if _write_npy_header(dst, (n_done, len(keep))) != header_len:  # pragma: no cover
                raise RuntimeError("npy header length changed")
    std = np.sqrt(m2 / n_done)
    return ColumnStats(kept, n_done, mean, std)


def _write_npy_header(f, shape: tuple[int, int]) -> int:
    """A version-1.0 header padded to a fixed size (so the row count can be rewritten in place)."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape[0]}, {shape[1]}), }}"
    total = 256  # magic (6) + version (2) + length (2) + dict, padded with spaces, ending in \n
    body = text.ljust(total - 10 - 1) + "\n"
    f.write(b"\x93NUMPY\x01\x00" + np.uint16(len(body)).tobytes() + body.encode("latin1"))
    return total


def _parse_chunk(rows: list[list[str]], keep: list[int], names: tuple[str, ...], path: Path, first_line: int):
    out = np.empty((len(rows), len(keep)), dtype=np.float64)
    width = max(keep) + 1
    for r, row in enumerate(rows):
        if len(row) < width:
            raise DataFileError(f"{path}, line {first_line + r + 1}: {len(row)} cells, expected at least {width}")
        for j, c in enumerate(keep):
            cell = row[c].strip()
            try:
                out[r, j] = float(cell)
            except ValueError:
                raise DataFileError(
                    f"{path}, line {first_line + r + 1}, column {names[j]!r}: {cell!r} is not a number"
                    + ("; fill or drop empty cells first" if not cell else "")
                ) from None
    if not np.isfinite(out).all():
        r = int(np.flatnonzero(~np.isfinite(out).all(1))[0])
        raise DataFileError(f"{path}, line {first_line + r + 1}: NaN/inf value; clean the series first")
    return out


class SeriesWindows(TorchDataset):
    """Standardised sliding windows over a long ``(n, channels)`` float32 ``.npy`` series.

    Window ``k`` covers rows ``starts[k] .. starts[k] + window - 1``, with ``starts`` as
    :func:`aekit.data.sliding_windows` makes them (every ``stride`` rows, plus a last window
    ending at the end); values become ``(x - center) / scale``. Each window is one ``pread``.
    Samples are ``(window, channels)`` float32 tensors.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        window: int,
        stride: int = 1,
        *,
        center: np.ndarray | None = None,
        scale: np.ndarray | None = None,
        rows: tuple[int, int] | None = None,
    ) -> None:
        from aekit.data.series import check_window

        self.source = NpyStream(path)
        if len(self.source.file_shape) != 2:
            raise DataError(f"{path} has shape {self.source.file_shape}; a series is (n_steps, n_channels)")
        lo, hi = rows if rows is not None else (0, self.source.n_rows)
        if not 0 <= lo < hi <= self.source.n_rows:
            raise DataError(f"rows {rows} out of range for {path} ({self.source.n_rows} rows)")
        check_window(hi - lo, window, stride)
        self.window, self.lo = int(window), lo
        starts = np.arange(0, hi - lo - window + 1, stride, dtype=np.int64)
        if starts[-1] != hi - lo - window:
            starts = np.append(starts, np.int64(hi - lo - window))
        self.starts = starts
        ch = self.source.file_shape[1]
        self.center = np.zeros(ch, np.float32) if center is None else np.asarray(center, np.float32)
        self.scale = np.ones(ch, np.float32) if scale is None else np.asarray(scale, np.float32)
        self.sample_shape = (self.window, ch)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int) -> torch.Tensor:
        s = self.lo + int(self.starts[k])
        rows = self.source.read_rows(np.arange(s, s + self.window))
        x = (rows.astype(np.float32) - self.center) / self.scale
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
