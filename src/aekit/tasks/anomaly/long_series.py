"""Series detectors on series longer than memory: a year of 1 Hz readings from hundreds of sensors.

A :class:`LongSeries` is a float32 ``(n_steps, channels)`` ``.npy`` on disk, made once from a
CSV by :func:`aekit.data.streaming.csv_to_npy` (one chunked pass) and cached beside it.
:class:`~aekit.tasks.anomaly.SeriesAnomalyDetector` accepts one wherever it accepts a series:

- ``fit`` standardises with each channel's mean and standard deviation over the training part
  (computed in chunks, float64), trains on windows read from the file batch by batch, and
  calibrates the threshold on scores computed block by block;
- ``anomaly_score`` / ``detect`` score the whole series block by block; only the scores (one
  float per step) are held, never the readings;

The rows are taken as they are: evenly spaced, in time order, without gaps (the in-memory path's
timestamp gridding and gap filling need the whole series; clean the file first). On such a
series the results equal the in-memory path's to float rounding (tested).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from ..._utils import atomic_path
from ...data.series import check_window
from ...data.streaming import NpyStream, csv_to_npy
from ...errors import DataError
from ...training.distributed import barrier, is_main

#: rows per block when scoring (plus one window of context on each side)
BLOCK_ROWS = 65_536


@dataclass
class LongSeries:
    """A long, regularly sampled numeric series stored as a float32 ``(n, channels)`` ``.npy``."""

    path: Path
    columns: list[str]
    source: str

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._rows = NpyStream(self.path)
        shape = self._rows.file_shape
        if len(shape) != 2:
            raise DataError(f"{self.path} has shape {shape}; a series is (n_steps, n_channels)")
        if self._rows.dtype != np.float32:
            raise DataError(f"{self.path} holds {self._rows.dtype}; long series are float32 (see csv_to_npy)")
        if len(self.columns) != shape[1]:
            raise DataError(f"{self.path} has {shape[1]} channels but {len(self.columns)} column names")

    @property
    def n(self) -> int:
        return self._rows.n_rows

    @property
    def n_channels(self) -> int:
        return self._rows.file_shape[1]

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo .. hi-1`` as float64 (n, channels)."""
        return self._rows.read_rows(np.arange(lo, hi)).astype(np.float64)

    @classmethod
    def from_npy(cls, path: str | os.PathLike, columns: list[str] | None = None) -> LongSeries:
        rows = NpyStream(path)
        cols = columns or [f"x{i}" for i in range(rows.file_shape[1] if len(rows.file_shape) == 2 else 0)]
        return cls(Path(path), list(cols), str(Path(path).resolve()))

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike,
        *,
        columns: list[str] | None = None,
        cache_dir: str | os.PathLike | None = None,
        chunk_rows: int = 65_536,
    ) -> LongSeries:
        """Convert ``path`` (header row; numeric columns; a time column is skipped) once to a cached
        ``.npy`` (beside the CSV, or in ``cache_dir``), reused while the CSV is unchanged."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path} does not exist (or is not a file)")
        st = path.stat()
        key = hashlib.sha1(
            f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{columns}".encode()
        ).hexdigest()[:12]
        if cache_dir is not None:
            folder = Path(cache_dir)
        elif os.access(path.parent, os.W_OK):
            folder = path.parent
        else:  # a read-only data folder: the user cache
            folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aekit" / "series"
        npy = folder / f".{path.name}.{key}.npy"
        meta = npy.with_suffix(".columns")
        # distributed runs: rank 0 converts, the others wait for it (they must not read a half file)
        if is_main() and not (npy.is_file() and meta.is_file()):
            stats = csv_to_npy(path, npy, columns=columns, chunk_rows=chunk_rows)
            with atomic_path(meta) as tmp:
                tmp.write_text("\n".join(stats.columns) + "\n")
        barrier()
        cols = meta.read_text().splitlines()
        return cls(npy, cols, str(path.resolve()))


def _chunked_moments(series: LongSeries, lo: int, hi: int, chunk: int = BLOCK_ROWS):
    """Per-channel mean and population std of rows lo..hi-1, in chunks (Chan et al., float64)."""
    from ...data.streaming import _merge_moments

    n, mean, m2 = 0, np.zeros(series.n_channels), np.zeros(series.n_channels)
    for a in range(lo, hi, chunk):
        n, mean, m2 = _merge_moments(n, mean, m2, series.rows(a, min(hi, a + chunk)))
    return mean, np.sqrt(m2 / n)


class _Windows(TorchDataset):
    """Scaled windows of a LongSeries starting at ``starts`` (each one pread)."""

    def __init__(self, series: LongSeries, starts: np.ndarray, window: int, center, scale) -> None:
        self.series, self.starts, self.W = series, np.asarray(starts, np.int64), int(window)
        self.center, self.scale = center, scale

    def __len__(self) -> int:
        return len(self.starts)

    def __getitems__(self, idx) -> torch.Tensor:
        st = self.starts[np.asarray(idx, dtype=np.int64)]
        rows = (st[:, None] + np.arange(self.W)).ravel()
        vals = self.series._rows.read_rows(rows).astype(np.float64)
        x = ((vals - self.center) / self.scale).astype(np.float32)
        return torch.from_numpy(x.reshape(len(st), self.W, -1))

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.__getitems__([i])[0]


def training_windows(det, series: LongSeries, n_train: int, starts: np.ndarray):
    return _Windows(series, starts, int(det.window), det.center_, det.scale_)


def raw_point_scores(det, series: LongSeries, *, block: int = BLOCK_ROWS) -> np.ndarray:
    """The detector's per-step scores before smoothing, block by block (see ``_point_scores``)."""
    from .series import _coverage

    det.model_.eval()
    n, W = series.n, int(det.window)
    check_window(n, W, 1, what="series")
    m = n - W + 1
    raw = np.empty(n, np.float64)
    counts = _coverage(n, W) if det.point_score == "mean" else None
    for a in range(0, n, block):
        b = min(n, a + block)
        s_lo, s_hi = max(0, a - W + 1), min(b - 1, m - 1)  # windows covering a step in [a, b)
        if det.point_score == "last":
            s_lo, s_hi = max(0, a - W + 1), min(max(b - W, 0), m - 1)
        vals = series.rows(s_lo, s_hi + W)
        Z = ((vals - det.center_) / det.scale_).astype(np.float32)
        view = np.lib.stride_tricks.sliding_window_view(Z, W, axis=0)  # (k, C, W)
        sums = np.zeros(b - a, np.float64)
        last = np.zeros(s_hi - s_lo + 1, np.float64)
        for c0 in range(0, s_hi - s_lo + 1, 4096):
            c1 = min(s_hi - s_lo + 1, c0 + 4096)
            e, _ = det._window_errors(view[c0:c1].transpose(0, 2, 1))
            last[c0:c1] = e.mean(1)
            if det.point_score == "mean":
                for j in range(W):
                    t0 = s_lo + c0 + j  # step covered by offset j of the chunk's first window
                    lo_t, hi_t = max(t0, a), min(t0 + (c1 - c0), b)
                    if lo_t < hi_t:
                        sums[lo_t - a : hi_t - a] += e[lo_t - t0 : hi_t - t0, j]
        if det.point_score == "mean":
            raw[a:b] = sums / counts[a:b]
        else:
            t = np.arange(a, b)
            s = np.maximum(t - W + 1, 0)  # the window ending at t (the first one before step W-1)
            raw[a:b] = last[s - s_lo]
    return raw
