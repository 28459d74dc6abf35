"""Clips as animated GIFs (Pillow): write one to look at, read one back as frames."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._utils import atomic_path
from ..errors import DataError, DataFileError


def write_gif(path: str | os.PathLike, frames: np.ndarray, *, fps: float = 10.0, scale: int = 1) -> Path:
    """Write ``frames`` of shape (T, H, W) (uint8, or floats in [0, 1]) as a looping GIF, atomically.

    ``scale`` enlarges each pixel to ``scale`` x ``scale`` so small clips are easy to see.
    """
    from PIL import Image

    frames = as_uint8_frames(frames, "write_gif")
    if scale > 1:
        frames = frames.repeat(scale, 1).repeat(scale, 2)
    images = [Image.fromarray(f, mode="L") for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0
        )
    return Path(path)


def read_gif(path: str | os.PathLike) -> np.ndarray:
    """The frames of a GIF as a uint8 array of shape (T, H, W) (converted to grey).

    GIF writers merge repeated frames into one longer frame; a frame shown k times as long as
    the shortest one is repeated k times, so a clip written by :func:`write_gif` reads back whole.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            frames, durations = [], []
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                frames.append(np.asarray(im.convert("L"), dtype=np.uint8))
                durations.append(int(im.info.get("duration") or 0))
    except (UnidentifiedImageError, OSError, EOFError, SyntaxError, ValueError) as err:
        raise DataFileError(f"{path} is not a readable GIF ({err}); re-export it, or give the clip as .npy") from err
    if min(durations) > 0:
        base = min(durations)
        frames = [f for f, d in zip(frames, durations) for _ in range(max(1, round(d / base)))]
    return np.stack(frames)


def as_uint8_frames(frames: np.ndarray, who: str) -> np.ndarray:
    """Frames (..., H, W) as uint8: uint8 stays, floats in [0, 1] are scaled by 255."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    if not np.issubdtype(frames.dtype, np.number) or frames.dtype == np.bool_:
        raise DataError(f"{who}: frames must be uint8 or floats in [0, 1], got dtype {frames.dtype}")
    f = frames.astype(np.float32)
    if f.size and not np.isfinite(f).all():
        raise DataError(f"{who}: the frames hold NaN or inf values")
    if f.size and (f.min() < 0 or f.max() > 1):
        raise DataError(
            f"{who}: float frames must lie in [0, 1] (got {f.min():.3g}..{f.max():.3g}); "
            "divide 0-255 values by 255 or give uint8"
        )
    return np.rint(f * 255).astype(np.uint8)
