"""Numeric CSV tables for anomaly detection: features ``X`` and an optional 0/1 label column.

The CSV helpers here (reading cells, parsing numbers with line-numbered errors) are shared with
:mod:`aekit.data.series`. Only the standard library and numpy are used; pandas is not needed.
"""

from __future__ import annotations

import csv
import gc
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aekit.errors import ConfigError, DataError, DataFileError

__all__ = ["read_table_csv"]

# Cells read as missing values (compared after stripping blanks and lower-casing).
MISSING_TOKENS = ("", "nan", "na", "n/a", "null", "none")
_DATE_START = re.compile(r"^\s*\d{4}-\d{2}(-\d{2})?")
_LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1, "normal": 0, "anomaly": 1}


class CsvCells:
    """The cells of a CSV file, column by column, with line numbers for messages.

    Attributes
    ----------
    path : Path
    names : list of str
        One name per column: the header row, or ``x0 .. x{d-1}`` when the file has none.
    has_header : bool
    cells : list of tuple of str
        The text of every data row (blank lines skipped), one tuple of length ``n_rows`` per
        column. Tuples of Python strings convert to numbers and dates much faster than numpy
        string arrays do.
    """

    def __init__(self, path: Path, names: list[str], has_header: bool, cells: list[tuple[str, ...]]) -> None:
        self.path = path
        self.names = names
        self.has_header = has_header
        self.cells = cells
        self._lines: list[int] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.cells[0]) if self.cells else 0

    def column(self, name: str) -> tuple[str, ...]:
        return self.cells[self.names.index(name)]

    def line(self, row: int) -> int:
        """1-based line number in the file of data row ``row`` (re-reads the file; error paths only)."""
        if self._lines is None:
            with _open_text(self.path) as f:
                reader = csv.reader(f, skipinitialspace=True)
                self._lines = [reader.line_num for r in reader if r]
            if self.has_header:
                self._lines = self._lines[1:]
        return self._lines[row]

    def error(self, row: int, column: str, text: str, problem: str) -> DataFileError:
        """A DataFileError like ``<path>: line 17, column 'value': 'abc' is not a number``."""
        return DataFileError(f"{self.path}: line {self.line(row)}, column {column!r}: {text!r} {problem}")


def _open_text(path: Path):
    return open(path, newline="", encoding="utf-8-sig")


def is_missing(cell: str) -> bool:
    """True for an empty cell or a missing-value token: nan, NA, N/A, null, None (any case)."""
    return cell.strip().lower() in MISSING_TOKENS


def _looks_like_data(cell: str) -> bool:
    """A header row never holds numbers or ISO dates; a first row that does is data."""
    if is_missing(cell) or _DATE_START.match(cell):
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv_cells(path: str | os.PathLike) -> CsvCells:
    """Read a CSV file into columns of text.

    The first row is the header unless every cell in it is a number, a missing-value token or an
    ISO date: then it is data and the columns are named ``x0 .. x{d-1}``. Blank lines are skipped.
    Raises DataFileError for a missing, empty, binary or ragged file, a header only, or empty or
    repeated column names.
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path} does not exist; expected a CSV file")
    if path.is_dir():
        raise DataFileError(f"{path} is a folder; expected a CSV file")
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small lists: the cyclic GC would otherwise double the reading time
    try:
        with _open_text(path) as f:
            rows = [r for r in csv.reader(f, skipinitialspace=True) if r]
    except UnicodeDecodeError as e:
        raise DataFileError(f"{path} is not a UTF-8 text CSV file ({e.reason} at byte {e.start})") from e
    except csv.Error as e:
        raise DataFileError(f"{path} is not a readable CSV file: {e}") from e
    finally:
        if gc_was_enabled:
            gc.enable()
    if not rows:
        raise DataFileError(f"{path} is empty; expected a CSV file with a header row and data rows")
    has_header = not all(map(_looks_like_data, rows[0])) or all(map(is_missing, rows[0]))
    width = len(rows[0])
    if has_header:
        names = [c.strip() for c in rows[0]]
        for j, name in enumerate(names):
            if not name:
                raise DataFileError(f"{path}: column {j + 1} of the header row has no name (a trailing comma?)")
            if name in names[:j]:
                raise DataFileError(f"{path}: the header names column {name!r} twice")
        rows = rows[1:]
        if not rows:
            raise DataFileError(f"{path} has a header row but no data rows")
    else:
        names = [f"x{j}" for j in range(width)]
    widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    ragged = np.flatnonzero(widths != width)
    if ragged.size:
        i = int(ragged[0])
        first = "header" if has_header else "first row"
        line = CsvCells(path, names, has_header, []).line(i)
        raise DataFileError(f"{path}: line {line} has {widths[i]} cells but the {first} has {width}")
    gc.disable()
    try:
        cells = list(zip(*rows))
    finally:
        if gc_was_enabled:
            gc.enable()
    return CsvCells(path, names, has_header, cells)


def parse_numbers(table: CsvCells, name: str, *, hint: str = "") -> np.ndarray:
    """Column ``name`` as float64 of shape (n_rows,); missing-value tokens become NaN.

    Raises DataFileError naming the line, column and text of the first cell that is not a
    number (``hint`` is appended to the message) or is infinite.
    """
    cells = table.column(name)
    try:
        values = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
    except ValueError:
        values = np.empty(len(cells))
        for i, text in enumerate(cells):  # slower path: missing-value tokens, or a bad cell to report
            try:
                values[i] = float(text)
            except ValueError:
                if not is_missing(text):
                    raise table.error(i, name, text.strip(), f"is not a number{hint}") from None
                values[i] = np.nan
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        i = int(infinite[0])
        raise table.error(i, name, cells[i].strip(), "is not a finite number")
    return values


def pick_columns(
    available: Sequence[str], wanted: Sequence[str] | None, *, what: str, option: str = "columns"
) -> list[str]:
    """Names in ``wanted`` (all of ``available`` when None), or ConfigError listing the available ones."""
    if wanted is None:
        return list(available)
    if isinstance(wanted, str):
        raise ConfigError(f"{option}= takes a list of column names, e.g. {option}=[{wanted!r}]")
    wanted = list(wanted)
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise ConfigError(f"{what} has no column {unknown[0]!r}; available columns: {list(available)}")
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"{option}= names a column twice: {wanted}")
    return wanted


def _parse_labels(table: CsvCells, name: str) -> np.ndarray:
    """Label column -> int64 (n_rows,), 1 = anomaly."""
    cells = table.column(name)
    codes = {text: _LABELS.get(text.strip().lower(), -1) for text in set(cells)}
    y = np.fromiter(map(codes.__getitem__, cells), dtype=np.int64, count=len(cells))
    bad = np.flatnonzero(y < 0)
    if bad.size:
        i = int(bad[0])
        raise table.error(i, name, cells[i].strip(), "is not a label: labels must be 0/1, normal/anomaly or true/false")
    return y


def read_table_csv(
    path: str | os.PathLike,
    *,
    label_column: str | None = None,
    columns: Sequence[str] | None = None,
    drop_columns: Sequence[str] = (),
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Read a numeric CSV table of samples (rows) by features (columns).

    Parameters
    ----------
    path : str or path-like
        A CSV file with a header row. When every cell of the first row is a number, the file has
        no header: the first row is data and the columns are named ``x0 .. x{d-1}`` (use those
        names in ``label_column``, ``columns`` and ``drop_columns``).
    label_column : str, optional
        Column of labels: 0/1, "0"/"1", "normal"/"anomaly" or true/false (case-insensitive);
        it becomes ``y`` with 1 = anomaly and is never a feature.
    columns : sequence of str, optional
        Feature columns to keep, in this order (default: all but the label column).
    drop_columns : sequence of str, default=()
        Columns to leave out, e.g. ids or free text.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
        Complete rows: no NaN or infinite values.
    names : list of str
        The feature column names, one per column of ``X``.
    y : ndarray of shape (n_samples,), int64, or None
        The labels when ``label_column`` is given.

    Raises
    ------
    DataFileError
        Missing, empty or ragged file; a header with no data rows; a cell that is not a number
        (with its line, column and text) or a label that is not one of the accepted values.
    DataError
        A column with no values at all, or rows with missing values (the detector needs
        complete rows: impute or drop them first).
    ConfigError
        Unknown column names, or no feature column left.
    """
    table = read_csv_cells(path)
    what = str(table.path)
    if label_column is not None:
        pick_columns(table.names, [label_column], what=what, option="label_column")
    drop = pick_columns(table.names, drop_columns, what=what, option="drop_columns")
    if columns is None:
        names = [n for n in table.names if n != label_column and n not in drop]
    else:
        names = [n for n in pick_columns(table.names, columns, what=what) if n not in drop]
        if label_column in names:
            raise ConfigError(f"label column {label_column!r} cannot also be a feature in columns=")
    if not names:
        raise ConfigError(f"{what}: no feature columns left (columns: {table.names}, label: {label_column!r})")
    X = np.empty((table.n_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        hint = f"; leave id or text columns out with drop_columns=[{name!r}]"
        X[:, j] = parse_numbers(table, name, hint=hint)  # (n_rows,) per feature
    nan = np.isnan(X)
    empty = [names[j] for j in np.flatnonzero(nan.all(axis=0))]
    if empty:
        raise DataError(
            f"{what}: column {empty[0]!r} has no values (every cell is empty or NaN); "
            f"leave it out with drop_columns={empty!r}"
        )
    if nan.any():
        bad_rows = np.flatnonzero(nan.any(axis=1))
        per_column = ", ".join(f"{names[j]!r} ({int(k)})" for j, k in enumerate(nan.sum(axis=0)) if k)
        raise DataError(
            f"{what}: {bad_rows.size} of {table.n_rows} rows have missing values (first at line "
            f"{table.line(int(bad_rows[0]))}; per column: {per_column}). The detector needs complete rows: "
            "impute the missing values or drop those rows, or leave the columns out with drop_columns=[...]"
        )
    y = _parse_labels(table, label_column) if label_column is not None else None
    return X, names, y
