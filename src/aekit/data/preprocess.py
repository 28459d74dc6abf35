"""Array checks and conversions: validation, [0, 1] scaling, image layout, binarisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aekit.errors import ConfigError, DataError

__all__ = ["as_images", "binarize", "check_finite", "to_float01", "validate_array"]

# Integer dtypes with a natural full-scale value.
_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_IMAGE_SHAPES = "(N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4"


def _asarray(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and other things numpy refuses
        raise DataError(f"{name} cannot be turned into a numeric array: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"{name} must be numeric (bool, integer or float), got dtype {arr.dtype}; "
            "convert strings or objects to numbers first"
        )
    return arr


def check_finite(x: np.ndarray, name: str = "X") -> None:
    """Raise DataError when ``x`` holds NaN or inf, saying how many and where the first is."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    first = np.unravel_index(int(np.flatnonzero(bad)[0]), x.shape)
    index = tuple(int(i) for i in first)
    raise DataError(
        f"{name} contains {int(bad.sum())} NaN or infinite value(s) out of {x.size}; the first "
        f"is at index {index} (row {index[0]}); drop or impute those rows first"
    )


def validate_array(
    x: Any,
    *,
    name: str = "X",
    min_rank: int = 2,
    max_rank: int = 4,
    allow_empty: bool = False,
) -> np.ndarray:
    """Check an array and return it as C-contiguous float32.

    Parameters
    ----------
    x : array-like
        Numeric data; the first axis indexes samples.
    name : str, default="X"
        Name used in error messages.
    min_rank, max_rank : int, default=2, 4
        Allowed number of dimensions.
    allow_empty : bool, default=False
        Accept zero samples.

    Returns
    -------
    ndarray of dtype float32
        Values are converted, not rescaled.

    Raises
    ------
    DataError
        Non-numeric dtype, rank outside ``[min_rank, max_rank]``, no samples, NaN or inf.
    """
    arr = _asarray(x, name)
    if not min_rank <= arr.ndim <= max_rank:
        allowed = f"{min_rank}" if min_rank == max_rank else f"{min_rank} to {max_rank}"
        raise DataError(
            f"{name} must have {allowed} dimensions (samples first), got shape {arr.shape}"
        )
    if arr.size == 0 and not allow_empty:
        raise DataError(f"{name} is empty (shape {arr.shape}): no samples to work with")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    check_finite(out, name)
    return out


def to_float01(x: Any, *, name: str = "X") -> np.ndarray:
    """Convert pixel values to float32 in [0, 1].

    uint8 is divided by 255 and uint16 by 65535, bool becomes 0/1, and floats must already
    lie in [0, 1]. Other integer types are refused because their scale is ambiguous.

    Parameters
    ----------
    x : array-like
        Pixel values of any shape.
    name : str, default="X"
        Name used in error messages.

    Returns
    -------
    ndarray of dtype float32
        Same shape, C-contiguous, values in [0, 1].
    """
    arr = _asarray(x, name)
    if arr.dtype in _FULL_SCALE:
        scale = np.float32(_FULL_SCALE[arr.dtype])
        return np.divide(arr, scale, dtype=np.float32, order="C")  # one pass
    if arr.dtype.kind == "b":
        return arr.astype(np.float32, order="C")
    if arr.dtype.kind in "iu":
        raise DataError(
            f"{name} has integer dtype {arr.dtype}, whose pixel scale is ambiguous: convert "
            "0..255 values with x.astype(np.uint8), or scale to floats in [0, 1]"
        )
    out = np.ascontiguousarray(arr, dtype=np.float32)
    check_finite(out, name)
    if out.size:
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"{name} must hold values in [0, 1] for images, found min {lo:.4g} and max "
                f"{hi:.4g}; divide 0..255 pixels by 255, or rescale with "
                "(x - x.min()) / (x.max() - x.min())"
            )
    return out


def binarize(x: Any, threshold: float = 0.5) -> np.ndarray:
    """Map values ``>= threshold`` to 1.0 and the rest to 0.0 (float32).

    Parameters
    ----------
    x : array-like
        Values in [0, 1].
    threshold : float, default=0.5
        Cut point, strictly between 0 and 1.
    """
    if not 0.0 < float(threshold) < 1.0:
        raise ConfigError(f"binarize threshold must be in (0, 1), got {threshold}")
    arr = _asarray(x, "X")
    return (arr >= threshold).astype(np.float32)


def _to_channels_first(arr: np.ndarray, name: str) -> np.ndarray:
    """(N,H,W) -> (N,1,H,W); (N,H,W,C) -> (N,C,H,W); (N,C,H,W) unchanged."""
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim != 4:
        raise DataError(f"{name} must be images shaped {_IMAGE_SHAPES}, got shape {arr.shape}")
    channels = (1, 3, 4)
    if arr.shape[-1] in channels and arr.shape[1] not in channels:
        return arr.transpose(0, 3, 1, 2)
    if arr.shape[1] in channels:
        return arr
    raise DataError(
        f"cannot tell which axis of {name} holds the channels in shape {arr.shape}: "
        f"expected {_IMAGE_SHAPES}"
    )


def as_images(x: Any, image_shape: Sequence[int] | None = None, *, name: str = "X") -> np.ndarray:
    """Return images as C-contiguous float32 of shape (N, C, H, W) with values in [0, 1].

    Parameters
    ----------
    x : array-like
        ``(N, H, W)``, ``(N, H, W, C)`` (channel-last when the last axis is 1, 3 or 4 and the
        second is not), ``(N, C, H, W)``, or flat rows ``(N, C*H*W)`` when ``image_shape`` is
        given. uint8 is scaled by 1/255; floats must already be in [0, 1].
    image_shape : sequence of 3 int, optional
        Expected ``(C, H, W)``; required to unflatten 2-D input.
    name : str, default="X"
        Name used in error messages.

    Returns
    -------
    ndarray of shape (N, C, H, W), dtype float32
    """
    arr = _asarray(x, name)
    if arr.size == 0:
        raise DataError(f"no images found in {name} (shape {arr.shape})")
    expected = tuple(int(d) for d in image_shape) if image_shape is not None else None
    if expected is not None and len(expected) != 3:
        raise ConfigError(f"image_shape must be (C, H, W), got {image_shape}")
    if arr.ndim == 2:
        if expected is None:
            raise DataError(
                f"{name} holds flat rows of {arr.shape[1]} values; pass image_shape=(C, H, W) "
                "to turn them into images"
            )
        if arr.shape[1] != int(np.prod(expected)):
            raise DataError(
                f"{name} rows have {arr.shape[1]} values but image_shape {expected} needs "
                f"{int(np.prod(expected))}"
            )
        arr = arr.reshape(arr.shape[0], *expected)
    out = np.ascontiguousarray(to_float01(_to_channels_first(arr, name), name=name))
    if expected is not None and out.shape[1:] != expected:
        raise DataError(
            f"{name} has images of shape (C, H, W) = {out.shape[1:]} but {expected} is "
            "expected; resize them (load_images(..., size=(H, W), channels=C))"
        )
    return out
