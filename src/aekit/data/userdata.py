"""User data as a Dataset: image folders, single images, .npy and .npz files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aekit.data.arrayfile import load_array_file
from aekit.data.dataset import Dataset, encode_labels, split_train_test
from aekit.data.images import (
    convert_channels,
    has_image_suffix,
    read_image,
    read_image_folder,
    resize_images,
)
from aekit.data.preprocess import as_images, validate_array
from aekit.errors import ConfigError, DataError, DataFileError

__all__ = ["USER_FORMATS", "load_user_dataset"]

USER_FORMATS = "a folder of images, an image file, a .npy file or a .npz file"
_NPZ_LAYOUTS = "keys x_train [y_train x_test y_test], or x [y], or a single array"


def _prepare_x(
    x: np.ndarray,
    name: str,
    size: tuple[int, int] | None,
    channels: int | None,
) -> np.ndarray:
    """Tables (N, D) stay 2-D float32; anything else becomes (N, C, H, W) images in [0, 1]."""
    if np.asarray(x).ndim == 2:
        if size is not None or channels is not None:
            raise ConfigError(f"{name} is a 2-D feature table: size= and channels= apply to images")
        return validate_array(x, name=name, min_rank=2, max_rank=2)
    images = as_images(x, name=name)
    if channels is not None:
        images = convert_channels(images, channels)
    if size is not None:
        images = resize_images(images, size)
    return images


def _labels(
    y_train: np.ndarray | None, y_test: np.ndarray | None, name: str
) -> tuple[np.ndarray | None, np.ndarray | None, tuple[str, ...] | None]:
    """Encode train and test labels together so string classes share one index."""
    present = [y for y in (y_train, y_test) if y is not None]
    if not present:
        return None, None, None
    flat = []
    for y in present:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:  # a column vector
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"{name} labels must be 1-D (one per sample), got shape {y.shape}")
        flat.append(y)
    codes, class_names = encode_labels(np.concatenate(flat), name=f"{name} labels")
    n_train = len(flat[0]) if y_train is not None else 0
    return (
        codes[:n_train] if y_train is not None else None,
        codes[n_train:] if y_test is not None else None,
        class_names,
    )


def _from_arrays(
    arrays: dict[str, np.ndarray],
    path: Path,
    *,
    test_size: float,
    random_state: int,
    size: tuple[int, int] | None,
    channels: int | None,
) -> Dataset:
    name = str(path)
    if "x_train" in arrays:
        x_train, y_train = arrays["x_train"], arrays.get("y_train")
        x_test, y_test = arrays.get("x_test"), arrays.get("y_test")
    elif "x" in arrays or "X" in arrays:
        x_train = arrays["x"] if "x" in arrays else arrays["X"]
        y_train, x_test, y_test = arrays.get("y", arrays.get("Y")), None, None
    elif len(arrays) == 1:
        x_train, y_train, x_test, y_test = next(iter(arrays.values())), None, None, None
    else:
        raise DataError(f"{path} holds arrays {sorted(arrays)}; expected {_NPZ_LAYOUTS}")
    y_train, y_test, class_names = _labels(y_train, y_test, name)
    x_train = _prepare_x(x_train, f"{name} x_train" if x_test is not None else name, size, channels)
    if y_train is not None and len(y_train) != len(x_train):
        raise DataError(f"{name}: {len(x_train)} samples but {len(y_train)} labels")
    if x_test is None:
        x_train, x_test, y_train, y_test = split_train_test(
            x_train, y_train, test_size=test_size, random_state=random_state, name=name
        )
    else:
        x_test = _prepare_x(x_test, f"{name} x_test", size, channels)
    source = f"{path.resolve()}" + ("" if "x_test" in arrays else f" (split {test_size:g} test)")
    return Dataset(path.stem, x_train, y_train, x_test, y_test, source, class_names)


def load_user_dataset(
    path: str | os.PathLike,
    *,
    test_size: float = 0.2,
    random_state: int = 0,
    size: Sequence[int] | None = None,
    channels: int | None = None,
) -> Dataset:
    """Load a user's data as a Dataset.

    Parameters
    ----------
    path : str or path-like
        A folder of images (a folder of only subfolders gives one class per subfolder), an
        image file, a ``.npy`` array, or a ``.npz`` with keys ``x_train``/``x_test``/
        ``y_train``/``y_test``, or ``x``/``y``, or a single array. 2-D arrays are feature
        tables and stay ``(N, D)``; others become ``(N, C, H, W)`` images in [0, 1].
    test_size : float, default=0.2
        Test fraction when the data has no explicit test split (0 keeps all for training).
    random_state : int, default=0
        Seed of that split (stratified by label when possible).
    size : (int, int), optional
        Resize images to ``(H, W)``.
    channels : {1, 3}, optional
        Convert images to grayscale or RGB.

    Returns
    -------
    Dataset
    """
    path = Path(path)
    size_hw = None if size is None else (int(size[0]), int(size[1]))
    if not path.exists():
        raise DataFileError(f"{path} does not exist; expected {USER_FORMATS}")
    if path.is_dir():
        x, y, class_names, _ = read_image_folder(path, size=size_hw, channels=channels)
        x_train, x_test, y_train, y_test = split_train_test(
            x, y, test_size=test_size, random_state=random_state, name=str(path)
        )
        source = f"{path.resolve()} (image folder, split {test_size:g} test)"
        return Dataset(path.name, x_train, y_train, x_test, y_test, source, class_names)
    if path.suffix.lower() in (".npy", ".npz"):
        return _from_arrays(
            load_array_file(path),
            path,
            test_size=test_size,
            random_state=random_state,
            size=size_hw,
            channels=channels,
        )
    if not has_image_suffix(path):
        raise DataFileError(
            f"{path}: unsupported file type {path.suffix or '(no suffix)'}; expected {USER_FORMATS}"
        )
    x = read_image(path, size=size_hw, channels=channels)[None]
    x_train, x_test, _, _ = split_train_test(
        x, None, test_size=test_size, random_state=random_state, name=str(path)
    )
    return Dataset(path.stem, x_train, None, x_test, None, f"{path.resolve()} (one image)")
