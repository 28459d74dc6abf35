"""Where a collection's images come from: named data sets, folders, image files, ``.npy`` arrays.

:func:`read_images` turns any of them into a batch for a model, with ids and a *collection*
record (kind, name, split, offset, count) that :class:`ImageSearch` saves with its index, so that
:func:`collection_images` can show the stored images behind search results later (figures, the
web page) without keeping a copy of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError

NAMED = ("digits", "mnist", "fashion-mnist")


def is_dataset(spec: Any) -> bool:
    """True for a data set name (``mnist``, ``mnist:test``) that is not also an existing path."""
    return isinstance(spec, str) and spec.split(":")[0] in NAMED and not Path(spec).exists()


def read_images(spec: Any, input_shape: tuple[int, ...], *, split: str = "train", n: int | None = None):
    """Images for a model with ``input_shape`` from a data set name, a folder, an image, ``.npy`` or an array.

    Returns ``(images, ids, labels, collection)``: ids are file paths for image files and
    0..n-1 otherwise; labels come with data sets (else None); ``collection`` records where the
    images came from (None for an in-memory array, which cannot be found again).
    """
    from ...data import load_dataset
    from .search import as_image_batch

    if is_dataset(spec):
        name, _, which = spec.partition(":")
        which = which or split
        if which not in ("train", "test"):
            raise ConfigError(f"{spec!r}: use NAME, NAME:train or NAME:test")
        ds = load_dataset(name)
        x = ds.x_train if which == "train" else ds.x_test
        y = ds.y_train if which == "train" else ds.y_test
        if n is not None:
            x, y = x[:n], (None if y is None else y[:n])
        x, _ = as_image_batch(x, input_shape)
        return x, np.arange(len(x)), y, {"kind": "dataset", "name": name, "split": which}
    if not isinstance(spec, (str, Path)):
        x, _ = as_image_batch(spec, input_shape)
        if n is not None:
            x = x[:n]
        return x, np.arange(len(x)), None, None
    path = Path(spec)
    if not path.exists():
        raise DataError(f"{spec} is neither an existing file or folder nor a data set name ({', '.join(NAMED)})")
    x, names = as_image_batch(path, input_shape)
    if n is not None:
        x, names = x[:n], (None if names is None else names[:n])
    files = path.is_dir() or path.suffix.lower() not in (".npy", ".npz")  # a folder or one image file
    ids = names if names is not None and files else np.arange(len(x))
    return x, ids, None, {"kind": "files" if files else "array", "name": str(path.resolve())}


def collection_images(search, ids: Any, input_shape: tuple[int, ...]) -> np.ndarray:
    """The stored images behind ``ids`` (any shape), from the data sets or files the index was built from.

    Integer ids are looked up in the recorded collections (data set rows, ``.npy`` files), string
    ids are image files. An image that cannot be found any more comes back blank (zeros).
    """
    from ...data import load_dataset
    from .search import as_image_batch

    flat = np.asarray(ids).ravel()
    out = np.zeros((len(flat), *input_shape), np.float32)
    cache: dict[tuple[str, str], np.ndarray] = {}
    for src in getattr(search, "collections_", []) or []:
        if src.get("offset") is None or not np.issubdtype(flat.dtype, np.integer):
            continue
        local = flat - src["offset"]
        hit = (local >= 0) & (local < src["count"])
        if not hit.any():
            continue
        if src["kind"] == "dataset":
            key = (src["name"], src["split"])
            if key not in cache:
                ds = load_dataset(src["name"])
                cache[key] = ds.x_train if src["split"] == "train" else ds.x_test
            out[hit] = as_image_batch(cache[key][local[hit]], input_shape)[0]
        elif Path(src["name"]).is_file():
            arr = as_image_batch(Path(src["name"]), input_shape)[0]
            out[hit] = arr[local[hit]]
    for i, item in enumerate(flat):
        p = Path(str(item))
        if isinstance(item, str) and p.is_file():
            try:
                out[i] = as_image_batch(p, input_shape)[0][0]
            except Exception:  # noqa: BLE001 - a file gone or changed since indexing: shown blank
                pass
    return out.reshape(*np.shape(ids), *input_shape)


def collection_labels(search, ids: Any) -> np.ndarray | None:
    """Labels of integer ``ids`` drawn from recorded data sets (-1 where unknown); None without any."""
    from ...data import load_dataset

    flat = np.asarray(ids).ravel()
    if not np.issubdtype(flat.dtype, np.integer):
        return None
    out = np.full(len(flat), -1, np.int64)
    found = False
    for src in getattr(search, "collections_", []) or []:
        if src.get("kind") != "dataset" or src.get("offset") is None:
            continue
        local = flat - src["offset"]
        hit = (local >= 0) & (local < src["count"])
        if hit.any():
            ds = load_dataset(src["name"])
            y = ds.y_train if src["split"] == "train" else ds.y_test
            if y is not None:
                out[hit] = np.asarray(y)[local[hit]]
                found = True
    return out.reshape(np.shape(ids)) if found else None
