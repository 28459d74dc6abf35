"""Reading sentence and label files: one item per line, errors that name the file and line."""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, DataError, DataFileError


def read_lines(path: str | os.PathLike, *, encoding: str = "utf-8") -> list[str]:
    """The lines of a text file, split on ``'\\n'`` only (``'\\r\\n'`` is accepted).

    Splitting on ``'\\n'`` alone matters for Latin-1 / Windows-1252 text: ``str.splitlines``
    would also break at byte 0x85 (NEL). A final newline does not add an empty line. A byte
    sequence that is not valid in ``encoding`` raises :class:`DataFileError` naming the file,
    line and byte, and suggesting another encoding.
    """
    path = Path(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"unknown text encoding {encoding!r} (try utf-8 or latin-1)") from None
    if not path.is_file():
        raise DataFileError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for n, line in enumerate(lines, 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            out.append(line.decode(encoding))
        except UnicodeDecodeError as err:
            hint = "latin-1" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "utf-8"
            raise DataFileError(
                f"{path}, line {n}: byte 0x{line[err.start]:02x} at column {err.start + 1} is not valid "
                f"{encoding} ({err.reason}); give the file's encoding (e.g. encoding='{hint}', "
                f"--encoding {hint})"
            ) from None
    return out


def read_labels(path: str | os.PathLike, n_expected: int | None = None, *, encoding: str = "utf-8") -> list[str]:
    """One label per line (surrounding spaces removed); ``n_expected`` checks the count."""
    labels = [s.strip() for s in read_lines(path, encoding=encoding)]
    if n_expected is not None and len(labels) != n_expected:
        raise DataError(
            f"{path} has {len(labels)} label(s) but the data has {n_expected} sentence(s); "
            "give one label per sentence, in the same order"
        )
    empty = [i + 1 for i, s in enumerate(labels) if not s]
    if empty:
        raise DataError(f"{path}, line {empty[0]}: empty label ({len(empty)} empty line(s) in all)")
    return labels


def class_names_for(paths: Sequence[str | os.PathLike]) -> list[str]:
    """A class name per data file, for "one class per file" data sets.

    Files that share a stem are named by their suffix (``rt-polarity.neg``, ``rt-polarity.pos``
    -> ``neg``, ``pos``); files that share a suffix by their stem (``good.txt``, ``bad.txt`` ->
    ``good``, ``bad``); otherwise by their whole name.
    """
    paths = [Path(p) for p in paths]
    names = [p.name for p in paths]
    stems = {p.stem for p in paths}
    suffixes = [p.suffix[1:] for p in paths]
    if len(stems) == 1 and all(suffixes) and len(set(suffixes)) == len(paths):
        out = suffixes
    elif len({p.suffix for p in paths}) == 1 and len({p.stem for p in paths}) == len(paths):
        out = [p.stem for p in paths]
    else:
        out = names
    if len(set(out)) != len(out):
        raise DataError(f"data files must differ in name to stand for one class each, got {names}")
    return out
