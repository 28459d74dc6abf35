"""Time series for anomaly detection: CSV loading, a regular time grid, gap filling, windows.

A :class:`Series` is always complete (no NaN): short gaps are interpolated and long ones are
filled too but flagged in ``gap``, so windowed models can run on every point while reports know
which points were made up. Only numpy and the standard library are used (no pandas).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from aekit.data.tables import CsvCells, is_missing, parse_numbers, pick_columns, read_csv_cells
from aekit.errors import ConfigError, DataError, DataFileError

__all__ = [
    "Series",
    "as_series",
    "check_window",
    "parse_freq",
    "read_series_csv",
    "sliding_windows",
    "window_scores_to_points",
]

logger = logging.getLogger(__name__)

_TIME_NAMES = ("timestamp", "time", "date", "datetime")
_DUPLICATE_MODES = ("mean", "first", "last", "error")
_UNITS_NS = {"ms": 10**6, "s": 10**9, "min": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}
_FREQ = re.compile(r"^\s*(\d+(?:\.\d*)?)?\s*(ms|s|min|h|d)\s*$", re.IGNORECASE)
_DATE_START = re.compile(r"^\s*\d{4}-\d{2}")
# Grids more than this many times longer than the data are refused (a freq far too fine).
_MAX_GRID_GROWTH = 100


@dataclass(eq=False)
class Series:
    """A regularly sampled, gap-filled multichannel time series.

    Attributes
    ----------
    timestamps : ndarray of shape (n,) or None
        ``datetime64[ns]`` times; ``int64`` positions when the file's time column is numeric; None
        for plain positions ``0 .. n-1``. Sorted and unique.
    values : ndarray of shape (n, n_channels), float64
        No NaN: every missing point has been filled (see ``filled`` and ``gap``).
    columns : list of str
        One name per channel.
    gap : ndarray of shape (n,), bool
        True where a point was missing (NaN cell or inserted timestamp) in a run longer than
        ``max_gap`` in some channel: its value is made up, not just interpolated.
    filled : ndarray of shape (n,), bool
        True where a value was filled in some channel (gaps of any length).
    source : str
        The file path, or ``"array"``.
    step : numpy.timedelta64, int or None
        The regular sampling step (an int for numeric positions); None without timestamps, with
        ``freq=None`` or with fewer than two distinct timestamps.
    n_duplicates : int
        How many rows were merged into another row with the same (snapped) timestamp.
    n_unsorted : int
        How many rows came earlier in time than some row above them (0 if sorted).
    """

    timestamps: np.ndarray | None
    values: np.ndarray
    columns: list[str]
    gap: np.ndarray
    filled: np.ndarray
    source: str
    step: np.timedelta64 | int | None
    n_duplicates: int = 0
    n_unsorted: int = 0

    @property
    def n(self) -> int:
        """Number of time steps."""
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: slice) -> Series:
        """A contiguous part of the series, e.g. ``s[:2000]`` (the normal period) — slices only."""
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a Series can be sliced by a contiguous range (s[a:b]); use .values for anything else")
        return Series(
            timestamps=None if self.timestamps is None else self.timestamps[key],
            values=self.values[key],
            columns=list(self.columns),
            gap=self.gap[key],
            filled=self.filled[key],
            source=self.source,
            step=self.step,
        )

    @property
    def n_channels(self) -> int:
        return int(self.values.shape[1])

    @property
    def positions(self) -> np.ndarray:
        """``arange(n)`` as int64, shape (n,)."""
        return np.arange(self.n, dtype=np.int64)

    def __repr__(self) -> str:
        span = ""
        if self.timestamps is not None and self.n:
            span = f", {_fmt_time(self.timestamps[0])} .. {_fmt_time(self.timestamps[-1])}"
        step = "" if self.step is None else f", step={_fmt_step(self.step)}"
        return (
            f"Series(n={self.n}, columns={self.columns}{span}{step}, filled={int(self.filled.sum())}, "
            f"gap={int(self.gap.sum())}, n_duplicates={self.n_duplicates}, n_unsorted={self.n_unsorted}, "
            f"source={self.source!r})"
        )


def _fmt_time(t: np.generic) -> str:
    if isinstance(t, np.datetime64):
        return str(np.datetime_as_string(t, unit="auto")).replace("T", " ")
    return str(int(t))


def _fmt_step(step: np.timedelta64 | int) -> str:
    if not isinstance(step, np.timedelta64):
        return str(int(step))
    ns = int(step.astype("timedelta64[ns]").astype(np.int64))
    for unit in ("d", "h", "min", "s", "ms"):
        if ns % _UNITS_NS[unit] == 0:
            return f"{ns // _UNITS_NS[unit]}{unit}"
    return f"{ns}ns"


def parse_freq(freq: str) -> np.timedelta64:
    """A step such as ``"5min"``, ``"1s"``, ``"1h"``, ``"1d"``, ``"250ms"`` or ``"h"`` as timedelta64[ns].

    Units: ms, s, min, h, d (case-insensitive); the number defaults to 1 and may be a decimal
    (``"1.5h"``) as long as the step is a whole number of nanoseconds and positive.
    """
    match = _FREQ.match(freq) if isinstance(freq, str) else None
    if match is None:
        raise ConfigError(
            f"freq={freq!r} is not a step; use a number and a unit (ms, s, min, h, d) like '5min' or '1h', "
            "'auto' to infer it, or None to keep the timestamps as given"
        )
    number = float(match.group(1)) if match.group(1) else 1.0
    ns = number * _UNITS_NS[match.group(2).lower()]
    if ns <= 0 or ns != int(ns):
        raise ConfigError(f"freq={freq!r} must be a positive whole number of nanoseconds")
    return np.timedelta64(int(ns), "ns")


# ----------------------------------------------------------------------------- timestamps


def _parse_datetimes(
    cells: Sequence[str], where: Callable[[int], str], error: type[DataError] = DataFileError
) -> np.ndarray:
    """ISO 8601 strings (n,) -> datetime64[ns] (n,).

    Accepts ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS[.ffffff]]`` and the same with ``T``. A trailing
    ``Z`` (UTC) is dropped; other timezone offsets such as ``+01:00`` are refused. Empty cells are
    refused (a row needs a time). Problems raise ``error`` naming the cell with ``where(i)``.
    """
    times = _try_datetimes(cells)
    if times is None:  # trailing Z, or a bad cell to report
        cells = [c.strip().rstrip("Zz") for c in cells]
        times = _try_datetimes(cells)
    if times is not None:
        nat = np.flatnonzero(np.isnat(times))
        if nat.size == 0:
            return times
        i = int(nat[0])
        raise error(f"{where(i)}: the timestamp is empty ({cells[i]!r}); every row needs a time")
    for i, text in enumerate(cells):  # slow path, only to name the bad cell
        if not _DATE_START.match(text):
            raise error(f"{where(i)}: {text!r} is not a date/time; expected ISO 8601 like '2013-12-02 21:15:00'")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                np.datetime64(text, "ns")
        except (UserWarning, DeprecationWarning):
            raise error(
                f"{where(i)}: {text!r} has a timezone offset, which is not supported; write times in one "
                "zone without an offset (a trailing 'Z' for UTC is accepted)"
            ) from None
        except ValueError:
            raise error(
                f"{where(i)}: {text!r} is not a date/time; expected ISO 8601 like '2013-12-02 21:15:00'"
            ) from None
    raise error(f"{where(0)}: could not read the timestamps")  # pragma: no cover


def _try_datetimes(cells: Sequence[str]) -> np.ndarray | None:
    """Vectorised parse (numpy accepts a space or a T between date and time), or None on any problem."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy only warns about timezone offsets
            return np.array(cells, dtype="datetime64[ns]")
    except (ValueError, TypeError, UserWarning, DeprecationWarning):
        return None


def _numeric_positions(
    values: np.ndarray, where: Callable[[int], str], error: type[DataError] = DataFileError
) -> np.ndarray:
    """Numeric timestamps (n,) -> int64 positions; they must be finite whole numbers."""
    bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
    if bad.size:
        i = int(bad[0])
        raise error(
            f"{where(i)}: numeric timestamp {float(values[i])!r} is not a whole number; numeric time columns "
            "are read as integer positions"
        )
    return values.astype(np.int64)


def _as_timestamps(timestamps: object, n: int) -> np.ndarray:
    """User timestamps -> datetime64[ns] or int64 array (n,), copied."""
    t = np.array(timestamps)  # copies
    if t.ndim != 1 or len(t) != n:
        raise DataError(f"timestamps must be 1-D with one entry per row ({n}), got shape {t.shape}")
    if np.issubdtype(t.dtype, np.datetime64):
        t = t.astype("datetime64[ns]")
        nat = np.flatnonzero(np.isnat(t))
        if nat.size:
            raise DataError(f"timestamps[{int(nat[0])}] is NaT; every row needs a time")
        return t
    if t.dtype.kind in "US":
        return _parse_datetimes(t.astype(str).tolist(), lambda i: f"timestamps[{i}]", DataError)
    if t.dtype.kind == "O":  # datetime / date objects
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # numpy warns when it drops a timezone
                return _as_timestamps(t.astype("datetime64[ns]"), n)
        except UserWarning:
            raise DataError(
                "timezone-aware datetimes are not supported; convert them to naive times in one zone first"
            ) from None
        except (ValueError, TypeError) as e:
            raise DataError(f"timestamps of Python objects could not be read as dates: {e}") from e
    if t.dtype.kind in "iu":
        return t.astype(np.int64)
    if t.dtype.kind == "f":
        return _numeric_positions(t, lambda i: f"timestamps[{i}]", DataError)
    raise DataError(f"timestamps must be datetime64, ISO strings or integer positions, got dtype {t.dtype}")


def _detect_time_column(table: CsvCells, timestamp_column: str | int | None) -> str | None:
    if timestamp_column is None:
        return None
    if isinstance(timestamp_column, bool) or not isinstance(timestamp_column, (str, int)):
        raise ConfigError(f"timestamp_column must be a name, an index, 'auto' or None, got {timestamp_column!r}")
    if isinstance(timestamp_column, int):
        if not -len(table.names) <= timestamp_column < len(table.names):
            raise ConfigError(
                f"timestamp_column={timestamp_column} is out of range: {table.path} has {len(table.names)} columns"
            )
        return table.names[timestamp_column]
    if timestamp_column != "auto":
        pick_columns(table.names, [timestamp_column], what=str(table.path), option="timestamp_column")
        return timestamp_column
    for name in table.names:
        if name.lower() in _TIME_NAMES:
            return name
    first = next((c for c in table.cells[0] if not is_missing(c)), "")
    return table.names[0] if _DATE_START.match(first) else None


def _read_time_column(table: CsvCells, name: str) -> np.ndarray:
    cells = table.column(name)
    where = lambda i: f"{table.path}: line {table.line(i)}, column {name!r}"  # noqa: E731
    first = next((c for c in cells if not is_missing(c)), "")
    if _DATE_START.match(first):
        return _parse_datetimes(cells, where)
    try:
        numbers = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
    except ValueError:
        numbers = None
    if numbers is not None:
        return _numeric_positions(numbers, where)
    for i, text in enumerate(cells):  # slow path, only to name the bad cell
        if is_missing(text):
            raise DataFileError(f"{where(i)}: the timestamp is empty ({text!r}); every row needs a time")
        try:
            float(text)
        except ValueError:
            raise DataFileError(
                f"{where(i)}: {text!r} is neither a number nor a date/time; expected ISO 8601 like "
                "'2013-12-02 21:15:00' (or integer positions)"
            ) from None
    raise DataFileError(f"{where(0)}: could not read the timestamps")  # pragma: no cover


# ----------------------------------------------------------------------------- building a Series


def read_series_csv(
    path: str | os.PathLike,
    *,
    timestamp_column: str | int | None = "auto",
    columns: Sequence[str] | None = None,
    sort: bool = True,
    duplicates: str = "mean",
    freq: str | None = "auto",
    max_gap: int = 3,
) -> Series:
    """Read a time series from a CSV file with a header row ``timestamp,value[,value...]``.

    Parameters
    ----------
    path : str or path-like
        The CSV file. A first row made only of numbers and dates is data, not a header: the
        columns are then named ``x0 .. x{d-1}``.
    timestamp_column : str, int, "auto" or None, default="auto"
        The time column by name or index. "auto": a column named timestamp, time, date or datetime
        (any case), else the first column if it holds ISO dates, else none. None: no timestamps,
        every column is a channel. Times are ISO 8601 (``2013-12-02 21:15:00``, ``...T21:15:00``,
        fractional seconds, or dates only); a trailing ``Z`` is dropped (read as UTC), other
        timezone offsets are refused. A numeric time column is read as integer positions (not as
        seconds since the epoch): they are sorted and gridded like times, with an integer step.
    columns : sequence of str, optional
        The value columns (channels) to use, in this order; default all but the time column.
    sort : bool, default=True
        Sort rows by time (stable) when they are out of order, with a warning; False raises instead.
    duplicates : {"mean", "first", "last", "error"}, default="mean"
        What to do with rows sharing a timestamp: average them (ignoring NaN cells), keep the
        first or last, or raise.
    freq : str, "auto" or None, default="auto"
        The regular step: "auto" infers it as the median positive time difference; or a string
        like "5min", "1s", "1h", "1d", "250ms". "auto" takes the lower median, so the step is
        always one of the observed differences. Times are put on the grid ``t0 + k * step`` (t0 the
        earliest time): off-grid times snap to the nearest grid point (when two rows land on the
        same point the ``duplicates`` rule applies) and missing grid points become NaN rows.
        None keeps the times as given (no snapping, no inserted rows).
    max_gap : int, default=3
        Runs of up to ``max_gap`` missing points per channel are interpolated linearly and only
        flagged ``filled``; longer runs are filled the same way (the nearest value at the start or
        end of the series) and also flagged ``gap``.

    Returns
    -------
    Series

    Raises
    ------
    DataFileError
        Missing or empty file, a header only, no value column, a value that is not a number (with
        its line, column and text), or a timestamp that cannot be read.
    DataError
        A column with no values at all, rows out of order with ``sort=False``, or a duplicate
        timestamp with ``duplicates="error"``.
    ConfigError
        Unknown column names or bad options.
    """
    _check_options(duplicates, freq, max_gap)
    table = read_csv_cells(path)
    time_name = _detect_time_column(table, timestamp_column)
    channels = [n for n in table.names if n != time_name]
    if not channels:
        raise DataFileError(f"{table.path} has only a time column ({time_name!r}) and no value columns")
    if columns is not None:
        if time_name is not None and not isinstance(columns, str) and time_name in columns:
            raise ConfigError(f"{time_name!r} is the time column; columns= picks value columns from {channels}")
        channels = pick_columns(channels, columns, what=str(table.path))
        if not channels:
            raise ConfigError("columns= is empty; name at least one value column")
    others = [n for n in table.names if n != time_name]
    hint = f"; pick the numeric columns with columns=[...] from {others}" if columns is None and len(others) > 1 else ""
    values = np.empty((table.n_rows, len(channels)), dtype=np.float64)
    for j, name in enumerate(channels):
        values[:, j] = parse_numbers(table, name, hint=hint)  # (n_rows,) per channel
    timestamps = _read_time_column(table, time_name) if time_name is not None else None
    return _build(
        values,
        timestamps,
        channels,
        sort=sort,
        duplicates=duplicates,
        freq=freq,
        max_gap=max_gap,
        source=str(table.path),
        where=lambda i: f"line {table.line(i)}",
    )


def as_series(
    values: np.ndarray,
    timestamps: np.ndarray | Sequence | None = None,
    *,
    columns: Sequence[str] | None = None,
    sort: bool = True,
    duplicates: str = "mean",
    freq: str | int | None = "auto",
    max_gap: int = 3,
    source: str = "array",
) -> Series:
    """Make a :class:`Series` from arrays, with the same rules as :func:`read_series_csv`.

    Parameters
    ----------
    values : array-like of shape (n,) or (n, n_channels)
        NaN marks missing values; infinite values are refused. Not modified (it is copied).
    timestamps : array-like of shape (n,), optional
        datetime64 (any unit), ISO strings, datetime objects, or integer positions. None: the
        rows are positions ``0 .. n-1`` (no sorting or grid; only NaN cells are gaps).
    columns : sequence of str, optional
        Channel names; default ``x0 .. x{c-1}``.
    sort, duplicates, freq, max_gap
        As in :func:`read_series_csv`; with integer positions ``freq`` may be an int step.
    source : str, default="array"
        Recorded in ``Series.source``.

    Returns
    -------
    Series
    """
    _check_options(duplicates, freq, max_gap)
    v = np.array(values, dtype=np.float64)  # copies, so the caller's array is never changed
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise DataError(f"values must be (n,) or (n, n_channels), got shape {v.shape}")
    if v.shape[0] == 0 or v.shape[1] == 0:
        raise DataError(f"values is empty (shape {v.shape}); a series needs at least one point and one channel")
    if np.isinf(v).any():
        i, j = (int(k[0]) for k in np.nonzero(np.isinf(v)))
        raise DataError(f"values[{i}, {j}] is {v[i, j]}; values must be finite (NaN marks a missing value)")
    if columns is None:
        names = [f"x{j}" for j in range(v.shape[1])]
    else:
        names = [str(c) for c in columns] if not isinstance(columns, str) else [columns]
        if len(names) != v.shape[1]:
            raise ConfigError(f"columns= has {len(names)} names but values has {v.shape[1]} channels")
        if len(set(names)) != len(names):
            raise ConfigError(f"columns= names a channel twice: {names}")
    t = None if timestamps is None else _as_timestamps(timestamps, v.shape[0])
    if t is None and freq not in ("auto", None):
        raise ConfigError(f"freq={freq!r} needs timestamps; pass timestamps= or freq=None")
    return _build(
        v,
        t,
        names,
        sort=sort,
        duplicates=duplicates,
        freq=freq,
        max_gap=max_gap,
        source=source,
        where=lambda i: f"row {i}",
    )


def _check_options(duplicates: str, freq: object, max_gap: int) -> None:
    if duplicates not in _DUPLICATE_MODES:
        raise ConfigError(f"duplicates={duplicates!r} is not one of {list(_DUPLICATE_MODES)}")
    if isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 0:
        raise ConfigError(f"max_gap must be an integer >= 0, got {max_gap!r}")
    if isinstance(freq, str) and freq != "auto":
        parse_freq(freq)
    elif freq is not None and freq != "auto" and (isinstance(freq, bool) or not isinstance(freq, (int, np.integer))):
        raise ConfigError(f"freq must be 'auto', None, a string like '5min' or an int step, got {freq!r}")


def _build(
    values: np.ndarray,
    timestamps: np.ndarray | None,
    columns: list[str],
    *,
    sort: bool,
    duplicates: str,
    freq: str | int | None,
    max_gap: int,
    source: str,
    where: Callable[[int], str],
) -> Series:
    """Sort, merge duplicates, put on the grid and fill gaps. ``values`` (n, c) may be changed."""
    n = values.shape[0]
    if n == 0:
        raise DataFileError(f"{source} has no data rows")
    all_nan = np.flatnonzero(np.isnan(values).all(axis=0))
    if all_nan.size:
        name = columns[int(all_nan[0])]
        keep = [c for c in columns if c != name]
        raise DataError(
            f"{source}: column {name!r} has no values (every cell is empty or NaN); drop it with columns={keep!r}"
        )
    n_unsorted = n_duplicates = 0
    step: np.timedelta64 | int | None = None
    times: np.ndarray | None = None  # int64 (n,): ns since the epoch, or positions
    if timestamps is not None:
        is_datetime = np.issubdtype(timestamps.dtype, np.datetime64)
        times = timestamps.astype("datetime64[ns]").view(np.int64) if is_datetime else timestamps.astype(np.int64)
        order = np.arange(n)
        times, values, order, n_unsorted = _sort(times, values, order, sort, source, where, is_datetime)
        raw_times = times
        step_units = _grid_step(times, freq, is_datetime)
        if step_units is not None:
            times = times[0] + (times - times[0] + step_units // 2) // step_units * step_units  # snap to the grid
        times, values, n_duplicates = _merge_duplicates(
            times, raw_times, values, order, duplicates, source, where, is_datetime
        )
        if step_units is not None:
            times, values = _insert_missing(times, values, step_units, source, freq)
            step = np.timedelta64(step_units, "ns") if is_datetime else int(step_units)
        timestamps = times.view("datetime64[ns]") if is_datetime else times
    values, filled, gap = _fill_gaps(values, times, max_gap)
    return Series(
        timestamps=timestamps,
        values=values,
        columns=list(columns),
        gap=gap,
        filled=filled,
        source=source,
        step=step,
        n_duplicates=n_duplicates,
        n_unsorted=n_unsorted,
    )


def _time_text(t: int, is_datetime: bool) -> str:
    return _fmt_time(np.int64(t).view("datetime64[ns]")) if is_datetime else str(int(t))


def _sort(
    times: np.ndarray,
    values: np.ndarray,
    order: np.ndarray,
    sort: bool,
    source: str,
    where: Callable[[int], str],
    is_datetime: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    back = np.flatnonzero(times[1:] < times[:-1])
    if back.size == 0:
        return times, values, order, 0
    if not sort:
        i = int(back[0]) + 1
        raise DataError(
            f"{source}: {where(i)} ({_time_text(times[i], is_datetime)}) goes back in time from {where(i - 1)} "
            f"({_time_text(times[i - 1], is_datetime)}); pass sort=True to sort the rows by time"
        )
    n_unsorted = int((times[1:] < np.maximum.accumulate(times)[:-1]).sum())
    logger.warning("%s: %d rows were out of time order; sorted them by time", source, n_unsorted)
    idx = np.argsort(times, kind="stable")
    return times[idx], values[idx], order[idx], n_unsorted


def _grid_step(times: np.ndarray, freq: str | int | None, is_datetime: bool) -> int | None:
    """The grid step in ns (datetimes) or positions, or None for no grid."""
    if freq is None:
        return None
    if freq == "auto":  # the lower median of the positive differences: always an observed step
        diffs = np.sort(np.diff(times))
        diffs = diffs[diffs > 0]
        return int(diffs[(diffs.size - 1) // 2]) if diffs.size else None
    if isinstance(freq, str):
        if not is_datetime:
            raise ConfigError(f"freq={freq!r} needs date/time timestamps; numeric positions take an int freq")
        return int(parse_freq(freq).astype(np.int64))
    if is_datetime:
        raise ConfigError(f"freq={freq!r}: give a date/time series a step with a unit, like '5min'")
    if freq < 1:
        raise ConfigError(f"freq must be a positive step, got {freq}")
    return int(freq)


def _merge_duplicates(
    times: np.ndarray,
    raw_times: np.ndarray,
    values: np.ndarray,
    order: np.ndarray,
    duplicates: str,
    source: str,
    where: Callable[[int], str],
    is_datetime: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows with equal (sorted, snapped) times -> one row each; ``raw_times`` are before snapping."""
    new = np.ones(len(times), dtype=bool)
    new[1:] = times[1:] != times[:-1]
    n_dup = int((~new).sum())
    if n_dup == 0:
        return times, values, 0
    if duplicates == "error":
        i = int(np.flatnonzero(~new)[0])
        a, b = _time_text(raw_times[i - 1], is_datetime), _time_text(raw_times[i], is_datetime)
        what = f"duplicate timestamp {a}" if a == b else f"timestamps {a} and {b} snap to one grid point"
        if a == b and raw_times[i] != times[i]:
            what += f" (on the grid at {_time_text(times[i], is_datetime)})"
        raise DataError(
            f"{source}: {what} at {where(int(order[i - 1]))} and {where(int(order[i]))}; "
            "pass duplicates='mean', 'first' or 'last' to merge such rows"
        )
    starts = np.flatnonzero(new)
    if duplicates == "first":
        merged = values[starts]
    elif duplicates == "last":
        merged = values[np.append(starts[1:], len(times)) - 1]
    else:  # mean over the non-NaN cells of each group
        nan = np.isnan(values)
        sums = np.add.reduceat(np.where(nan, 0.0, values), starts, axis=0)
        counts = np.add.reduceat((~nan).astype(np.int64), starts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            merged = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    logger.info("%s: merged %d rows with a repeated timestamp (duplicates=%r)", source, n_dup, duplicates)
    return times[starts], merged, n_dup


def _insert_missing(
    times: np.ndarray, values: np.ndarray, step: int, source: str, freq: object
) -> tuple[np.ndarray, np.ndarray]:
    """Unique times on the grid -> the full grid, NaN rows where no row was."""
    k = (times - times[0]) // step  # (n,) grid index of every row
    m = int(k[-1]) + 1
    if m == len(times):
        return times, values
    if m > _MAX_GRID_GROWTH * len(times) + 10_000:
        raise ConfigError(
            f"{source}: freq={freq!r} would make a grid of {m:,} points from {len(times):,} rows; "
            "pass a coarser freq, or freq=None to keep the timestamps as given"
        )
    grid_values = np.full((m, values.shape[1]), np.nan)
    grid_values[k] = values
    return times[0] + np.arange(m, dtype=np.int64) * step, grid_values


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) ends of the runs of True in a bool (n,) mask."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _fill_gaps(values: np.ndarray, times: np.ndarray | None, max_gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """values (n, c) with NaN -> filled values (n, c), filled (n,), gap (n,)."""
    n = values.shape[0]
    nan = np.isnan(values)
    filled = nan.any(axis=1)
    gap = np.zeros(n, dtype=bool)
    if not filled.any():
        return values, filled, gap
    x = np.arange(n, dtype=np.float64) if times is None else (times - times[0]).astype(np.float64)
    long_runs = np.zeros(n + 1, dtype=np.int64)
    for j in np.flatnonzero(nan.any(axis=0)):
        ok = ~nan[:, j]
        # np.interp is linear inside and repeats the edge value before the first / after the last point
        values[nan[:, j], j] = np.interp(x[nan[:, j]], x[ok], values[ok, j])
        starts, ends = _runs(nan[:, j])
        long = ends - starts > max_gap
        np.add.at(long_runs, starts[long], 1)
        np.add.at(long_runs, ends[long], -1)
    gap = np.cumsum(long_runs)[:n] > 0
    return values, filled, gap


# ----------------------------------------------------------------------------- windows


def check_window(n: int, window: int, stride: int, *, what: str = "series") -> None:
    """Raise unless windows of length ``window`` every ``stride`` points fit a series of ``n`` points.

    Raises
    ------
    ConfigError
        ``window < 2``, ``stride < 1``, or ``stride > window`` (points would be skipped).
    DataError
        ``n < window``.
    """
    for name, v in (("window", window), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"{name} must be an integer, got {v!r}")
    if window < 2:
        raise ConfigError(f"window must be at least 2 time steps, got {window}")
    if stride < 1:
        raise ConfigError(f"stride must be at least 1, got {stride}")
    if stride > window:
        raise ConfigError(
            f"stride {stride} is larger than the window {window}: points between windows would be skipped; "
            f"use a stride of at most {window}"
        )
    if n < window:
        raise DataError(
            f"the {what} has {n} points but the window is {window}: use a window of at most {n} or more data"
        )


def sliding_windows(values: np.ndarray, window: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``window`` consecutive points every ``stride`` points, the last ending at the end.

    Parameters
    ----------
    values : ndarray of shape (n, n_channels) or (n,)
    window : int
        Points per window (at least 2).
    stride : int, default=1
        Points between window starts (at most ``window``, so every point is covered).

    Returns
    -------
    windows : ndarray of shape (m, window, n_channels), or (m, window) for 1-D ``values``
        Read-only. When ``(n - window) % stride == 0`` it is a zero-copy view of ``values``
        (``numpy.lib.stride_tricks.sliding_window_view``); otherwise one more window, starting at
        ``n - window``, is appended so the last points are covered, and the result is a copy
        (``m * window * n_channels`` values). Use ``np.array(windows)`` for a writable copy.
    starts : ndarray of shape (m,), int64
        The first time step of each window.
    """
    values = np.asarray(values)
    if values.ndim not in (1, 2):
        raise DataError(f"values must be (n,) or (n, n_channels), got shape {values.shape}")
    n = values.shape[0]
    check_window(n, window, stride)
    starts = np.arange(0, n - window + 1, stride, dtype=np.int64)
    view = sliding_window_view(values, window, axis=0)[::stride]  # (m, [c,] window)
    if values.ndim == 2:
        view = view.transpose(0, 2, 1)  # (m, c, window) -> (m, window, c)
    if starts[-1] != n - window:
        starts = np.append(starts, np.int64(n - window))
        view = np.concatenate([view, values[None, n - window :]], axis=0)
        view.flags.writeable = False
    return view, starts


def window_scores_to_points(
    window_scores: np.ndarray,
    starts: np.ndarray,
    window: int,
    n: int,
    *,
    reduce: str = "mean",
) -> np.ndarray:
    """Map scores of windows back to one score per time step.

    Parameters
    ----------
    window_scores : ndarray of shape (m,) or (m, window)
        One score per window, or one per step of each window (e.g. reconstruction errors).
    starts : ndarray of shape (m,)
        First time step of each window (as from :func:`sliding_windows`).
    window : int
        Window length.
    n : int
        Series length.
    reduce : {"mean", "max"}, default="mean"
        How the windows covering a time step are combined: for (m,) scores, the mean/max of the
        scores of the windows that contain step t; for (m, window) scores, the mean/max of
        ``window_scores[j, t - starts[j]]`` over those windows.

    Returns
    -------
    ndarray of shape (n,), float64
        NaN at time steps no window covers.
    """
    if reduce not in ("mean", "max"):
        raise ConfigError(f"reduce={reduce!r} is not one of ['mean', 'max']")
    scores = np.asarray(window_scores, dtype=np.float64)
    starts = np.asarray(starts)
    if starts.ndim != 1 or not np.issubdtype(starts.dtype, np.integer):
        raise DataError(f"starts must be a 1-D integer array, got shape {starts.shape} dtype {starts.dtype}")
    if scores.ndim not in (1, 2) or scores.shape[0] != len(starts) or (scores.ndim == 2 and scores.shape[1] != window):
        raise DataError(
            f"window_scores must be (m,) or (m, window) = ({len(starts)},) or ({len(starts)}, {window}), "
            f"got shape {scores.shape}"
        )
    if len(starts) and (starts.min() < 0 or starts.max() > n - window):
        raise DataError(f"window starts must lie in [0, n - window] = [0, {n - window}]")
    if not np.isfinite(scores).all():
        raise DataError("window_scores must be finite (no NaN or inf)")
    if scores.ndim == 2:
        idx = (starts[:, None] + np.arange(window)).ravel()  # (m * window,) time step of every score
        if reduce == "mean":
            counts = np.bincount(idx, minlength=n)
            sums = np.bincount(idx, weights=scores.ravel(), minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        out = np.full(n, -np.inf)
        np.maximum.at(out, idx, scores.ravel())
        return np.where(np.isneginf(out), np.nan, out)
    if reduce == "mean":
        # difference arrays: +score at the start, -score one past the end; cumsum = the window sums
        sums = np.bincount(starts, weights=scores, minlength=n + 1) - np.bincount(
            starts + window, weights=scores, minlength=n + 1
        )
        counts = np.cumsum(np.bincount(starts, minlength=n + 1) - np.bincount(starts + window, minlength=n + 1))[:n]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, np.cumsum(sums)[:n] / np.maximum(counts, 1), np.nan)
    at_start = np.full(n, -np.inf)
    np.maximum.at(at_start, starts, scores)  # best window starting at each step
    padded = np.concatenate([np.full(window - 1, -np.inf), at_start])
    out = sliding_window_view(padded, window).max(axis=1)  # (n,): max over starts in [t - window + 1, t]
    return np.where(np.isneginf(out), np.nan, out)
