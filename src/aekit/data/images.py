"""Image files, folders and arrays -> float32 (N, C, H, W) in [0, 1], with resizing."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from aekit.data.arrayfile import load_array_file
from aekit.data.preprocess import as_images, to_float01
from aekit.errors import ConfigError, DataError, DataFileError

__all__ = [
    "convert_channels",
    "has_image_suffix",
    "load_images",
    "read_image",
    "read_image_folder",
    "resize_images",
]

logger = logging.getLogger(__name__)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's "L"
_GRAY_MODES = {"1", "L", "LA", "La", "P;L"}
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


@functools.cache
def _image_suffixes() -> frozenset[str]:
    return frozenset(Image.registered_extensions())  # ".png", ".jpg", ... (loads plugins once)


def has_image_suffix(path: str | os.PathLike) -> bool:
    """True when the file name ends in a suffix Pillow knows (``.png``, ``.jpg``, ...)."""
    return Path(path).suffix.lower() in _image_suffixes()


def _check_options(
    size: Sequence[int] | None, channels: int | None
) -> tuple[tuple[int, int] | None, int | None]:
    if size is not None:
        try:
            h, w = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ConfigError(f"size must be (height, width), got {size!r}") from None
        if h < 1 or w < 1:
            raise ConfigError(f"size must be positive (height, width), got {size!r}")
        size = (h, w)
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    return size, channels  # type: ignore[return-value]


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Convert (N, C, H, W) images to ``channels`` (1 or 3): RGB -> gray by luminance,
    gray -> RGB by repetition, alpha (a 4th channel) dropped."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 4:
        x, c = x[:, :3], 3
    if c == 2:  # gray + alpha
        x, c = x[:, :1], 1
    if c == channels:
        return np.ascontiguousarray(x)
    if c == 1 and channels == 3:
        return np.ascontiguousarray(np.repeat(x, 3, axis=1))
    if c == 3 and channels == 1:
        gray = np.tensordot(_LUMA, x, axes=([0], [1]))  # (N, H, W)
        return np.clip(gray, 0.0, 1.0)[:, None].astype(np.float32)
    raise DataError(f"cannot convert images with {c} channels to {channels}")


def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of float (N, C, H, W) images to ``size = (H, W)`` with Pillow."""
    h, w = size
    if x.shape[2:] == (h, w):
        return x
    out = np.empty((x.shape[0], x.shape[1], h, w), dtype=np.float32)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            plane = Image.fromarray(np.ascontiguousarray(x[i, c], dtype=np.float32))
            out[i, c] = np.asarray(plane.resize((w, h), Image.Resampling.BILINEAR))
    return np.clip(out, 0.0, 1.0, out=out)


def read_image(
    path: str | os.PathLike,
    *,
    size: Sequence[int] | None = None,
    channels: int | None = None,
) -> np.ndarray:
    """Read one image file as float32 (C, H, W) in [0, 1].

    Grayscale files give 1 channel and others 3 (alpha is dropped) unless ``channels`` says
    otherwise; 16-bit files are scaled by 1/65535.
    """
    path = Path(path)
    size, channels = _check_options(size, channels)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in _WIDE_MODES:
                arr = np.asarray(img, dtype=np.float32) / np.float32(65535.0)
                arr = np.clip(arr, 0.0, 1.0)
            elif img.mode == "F":
                arr = to_float01(np.asarray(img, dtype=np.float32), name=str(path))
            else:
                arr = to_float01(np.asarray(img.convert("L" if img.mode in _GRAY_MODES else "RGB")))
    except UnidentifiedImageError as exc:
        raise DataFileError(
            f"{path} is not an image file Pillow can read (PNG, JPEG, BMP, TIFF, ...): move it "
            "out of the folder or convert it"
        ) from exc
    except OSError as exc:
        raise DataFileError(
            f"{path} could not be read as an image ({exc}); re-save it or move it away"
        ) from exc
    x = arr[None, None] if arr.ndim == 2 else arr.transpose(2, 0, 1)[None]  # (1, C, H, W)
    if channels is not None:
        x = convert_channels(x, channels)
    if size is not None:
        x = resize_images(x, size)
    return np.ascontiguousarray(x[0], dtype=np.float32)


def _folder_files(folder: Path) -> tuple[list[Path], list[int] | None, tuple[str, ...] | None]:
    """Image paths in ``folder`` (sorted), with labels when it holds only class subfolders."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file()]
    dirs = [p for p in entries if p.is_dir()]
    if files:
        if dirs:
            logger.info(
                "%s: loading its %d files, ignoring %d subfolders", folder, len(files), len(dirs)
            )
        return files, None, None
    if not dirs:
        raise DataError(f"no images found in {folder}: the folder is empty")
    paths: list[Path] = []
    labels: list[int] = []
    for label, d in enumerate(dirs):
        found = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
        if not found:
            raise DataError(f"no images found in class folder {d}: add images to it or remove it")
        paths += found
        labels += [label] * len(found)
    return paths, labels, tuple(d.name for d in dirs)


def read_image_folder(
    folder: str | os.PathLike,
    *,
    size: Sequence[int] | None = None,
    channels: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None, list[str]]:
    """Read every image in a folder (not recursive; sorted by name).

    A folder holding only subfolders is read as one class per subfolder.

    Returns
    -------
    x : ndarray of shape (N, C, H, W), float32 in [0, 1]
    y : ndarray of shape (N,), int64, or None
    class_names : tuple of str or None
    names : list of str
        Paths relative to ``folder``.
    """
    folder = Path(folder)
    size, channels = _check_options(size, channels)
    files, labels, class_names = _folder_files(folder)
    images: list[np.ndarray] = []
    for path in files:
        img = read_image(path, size=size, channels=channels)
        if images and img.shape != images[0].shape:
            first, ref = files[0], images[0].shape
            if img.shape[0] != ref[0]:
                raise DataError(
                    f"images in {folder} have different numbers of channels: {first.name} has "
                    f"{ref[0]} and {path.relative_to(folder)} has {img.shape[0]}; pass "
                    "channels=1 or channels=3 to convert them all"
                )
            raise DataError(
                f"images in {folder} differ in size: {first.name} is {ref[1]}x{ref[2]} (HxW) but "
                f"{path.relative_to(folder)} is {img.shape[1]}x{img.shape[2]}; pass "
                "size=(H, W) to resize them all"
            )
        images.append(img)
    x = np.stack(images)
    y = None if labels is None else np.asarray(labels, dtype=np.int64)
    names = [p.relative_to(folder).as_posix() for p in files]
    return x, y, class_names, names


def _read_array_file(path: Path) -> np.ndarray:
    """The image array in a .npy, or in a .npz holding one array or an ``x``/``X`` key."""
    arrays = load_array_file(path)
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    for key in ("x", "X", "images"):
        if key in arrays:
            return arrays[key]
    raise DataError(
        f"{path} holds arrays {sorted(arrays)}; for images, save one array or name it 'x'"
    )


def load_images(
    path: str | os.PathLike,
    *,
    size: Sequence[int] | None = None,
    channels: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Load images to feed a model: one image file, a folder of images, or a .npy/.npz array.

    Parameters
    ----------
    path : str or path-like
        An image file (PNG, JPEG, ...), a folder of images (sorted by name; a folder of only
        subfolders is read one level down), or a ``.npy`` / ``.npz`` array shaped
        ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``.
    size : (int, int), optional
        Resize every image to ``(H, W)`` (bilinear), e.g. to a model's input size.
    channels : {1, 3}, optional
        Convert to grayscale (luminance) or RGB.

    Returns
    -------
    x : ndarray of shape (N, C, H, W), float32 in [0, 1]
    names : list of str
        File names relative to the folder, or ``"<stem>_<index>"`` for arrays.

    Raises
    ------
    DataFileError
        Missing path, unreadable or non-image file (named).
    DataError
        No images, mixed sizes or channels without ``size``/``channels``, NaN/inf, bad shape.
    """
    path = Path(path)
    size, channels = _check_options(size, channels)
    if not path.exists():
        raise DataFileError(f"{path} does not exist: pass an image, a folder or a .npy/.npz file")
    if path.is_dir():
        x, _, _, names = read_image_folder(path, size=size, channels=channels)
        return x, names
    if path.suffix.lower() in (".npy", ".npz"):
        x = as_images(_read_array_file(path), name=str(path))
        if channels is not None:
            x = convert_channels(x, channels)
        if size is not None:
            x = resize_images(x, size)
        width = len(str(len(x) - 1))
        return x, [f"{path.stem}_{i:0{width}d}" for i in range(len(x))]
    if not has_image_suffix(path):
        raise DataFileError(
            f"{path}: unsupported file type {path.suffix or '(no suffix)'}; pass an image "
            "(PNG, JPEG, ...), a folder of images or a .npy/.npz file"
        )
    return read_image(path, size=size, channels=channels)[None], [path.name]
