"""Clip sets on disk: ``.npz`` files of frames + captions, single clips (.npy / .gif), and a
loader for the user's own videos (frame folders or ``.npy`` arrays listed in a captions CSV)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._utils import atomic_path
from ..data.arrayfile import load_array_file
from ..errors import ConfigError, DataError, DataFileError
from .gif import as_uint8_frames, read_gif

#: the captions file of a user clip folder: columns ``clip`` (a sub-folder or .npy name) and ``caption``
CAPTIONS_FILE = "captions.csv"


def check_clips(clips: np.ndarray, who: str, *, frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """Validate a batch of grey clips and return it as uint8 (N, T, H, W).

    uint8 values are kept; floats must lie in [0, 1]. ``frame_size`` (H, W), when given, must
    match (a model trained on 64x64 frames reads 64x64 frames).
    """
    clips = np.asarray(clips)
    if clips.ndim != 4:
        hint = " (one clip: add a leading axis, clip[None])" if clips.ndim == 3 else ""
        raise DataError(
            f"{who}: expected clips of shape (n_clips, n_frames, height, width), got shape {clips.shape}{hint}; "
            "colour clips must be converted to grey first"
        )
    if min(clips.shape) < 1:
        raise DataError(f"{who}: the clips are empty (shape {clips.shape})")
    if frame_size is not None and tuple(clips.shape[2:]) != tuple(frame_size):
        raise DataError(
            f"{who}: frames of {clips.shape[2]}x{clips.shape[3]} pixels, but the model reads "
            f"{frame_size[0]}x{frame_size[1]}; resize the frames (load_clip_folder(size=...)) or retrain"
        )
    return as_uint8_frames(clips, who)


def check_captions(captions, n: int | None, who: str) -> list[str]:
    """Captions as a list of non-empty str (one per clip when ``n`` is given)."""
    if isinstance(captions, (str, bytes)):
        raise DataError(f"{who}: expected a list of captions, got a single string; wrap it in a list")
    captions = list(np.asarray(captions).tolist() if isinstance(captions, np.ndarray) else captions)
    bad = [i for i, c in enumerate(captions) if not isinstance(c, str)]
    if bad:
        raise DataError(f"{who}: caption {bad[0]} is a {type(captions[bad[0]]).__name__}, not a str")
    empty = [i for i, c in enumerate(captions) if not c.split()]
    if empty:
        raise DataError(
            f"{who}: {len(empty)} empty caption(s) (the first is caption {empty[0]}); every clip needs a caption"
        )
    if n is not None and len(captions) != n:
        raise DataError(f"{who}: {n} clips but {len(captions)} captions; give one caption per clip")
    return captions


def save_clips(path: str | os.PathLike, frames: np.ndarray, captions: Sequence[str], **extra: np.ndarray) -> Path:
    """Write clips as ``.npz`` (``frames`` uint8, ``captions`` str, plus ``extra`` arrays), atomically."""
    frames = check_clips(frames, "save_clips")
    captions = check_captions(captions, len(frames), "save_clips")
    buf = io.BytesIO()
    np.savez_compressed(buf, frames=frames, captions=np.asarray(captions, dtype=str), **extra)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return Path(path)


def load_clips(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Frames (N, T, H, W) uint8 and captions of a ``.npz`` written by :func:`save_clips`."""
    path = Path(path)
    arrays = load_array_file(path)
    missing = [k for k in ("frames", "captions") if k not in arrays]
    if missing:
        raise DataFileError(f"{path} lacks the array(s) {', '.join(missing)}; write clip sets with save_clips")
    frames = check_clips(arrays["frames"], str(path))
    captions = check_captions([str(c) for c in arrays["captions"]], len(frames), str(path))
    return frames, captions


def read_clip(path: str | os.PathLike) -> np.ndarray:
    """One clip from a ``.npy`` (T, H, W) / (T, H, W, C) array or a ``.gif``, as uint8 (T, H, W)."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        return read_gif(path)
    if path.suffix.lower() != ".npy":
        raise DataFileError(f"{path}: a clip is a .npy array or a .gif; got a {path.suffix or 'suffix-less'} file")
    x = load_array_file(path)["x"]
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4):
        x = _to_grey(x, str(path))
    if x.ndim != 3:
        raise DataError(f"{path}: a clip is an array of shape (frames, height, width), got shape {x.shape}")
    return as_uint8_frames(x, str(path))


def _to_grey(x: np.ndarray, who: str) -> np.ndarray:
    """(..., C) colour frames -> (...) grey by luminance (alpha dropped)."""
    x = as_uint8_frames(x, who).astype(np.float32)
    if x.shape[-1] == 1:
        return np.rint(x[..., 0]).astype(np.uint8)
    grey = x[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def _read_frame_folder(folder: Path) -> np.ndarray:
    from ..data.images import has_image_suffix, read_image

    files = sorted(p for p in folder.iterdir() if p.is_file() and has_image_suffix(p) and not p.name.startswith("."))
    if not files:
        raise DataFileError(f"{folder} holds no image files (frames); name them so they sort in order")
    frames = [read_image(f, channels=1)[0] for f in files]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise DataError(f"{folder}: the frames differ in size ({sorted(shapes)})")
    return np.rint(np.stack(frames) * 255).astype(np.uint8)


def _resample(clip: np.ndarray, n_frames: int | None, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    if n_frames is not None:
        clip = clip[np.linspace(0, len(clip) - 1, n_frames).round().astype(int)]
    if size is not None and tuple(clip.shape[1:]) != tuple(size):
        h, w = size
        clip = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.BILINEAR)) for f in clip])
    return clip


def load_clip_folder(
    root: str | os.PathLike,
    *,
    captions_file: str | os.PathLike | None = None,
    n_frames: int | None = None,
    size: int | Sequence[int] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Load the user's captioned clips: a folder of clips and a CSV of captions.

    Parameters
    ----------
    root : path
        Folder holding one entry per clip: a sub-folder of frame images (sorted by name), a
        ``.npy`` array (T, H, W) or (T, H, W, C), or a ``.gif``.
    captions_file : path, optional
        CSV with a header and the columns ``clip`` (the entry's name in ``root``) and
        ``caption``; default ``root/captions.csv``. A clip may appear on several rows (several
        captions): each row becomes one training example.
    n_frames : int, optional
        Sample this many evenly spaced frames per clip (needed when clips differ in length).
    size : int or (height, width), optional
        Resize frames to this size (needed when clips differ in size). Colour becomes grey.

    Returns
    -------
    frames : ndarray of shape (n_rows, n_frames, height, width), uint8
    captions : list of str
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFileError(f"{root} is not a folder of clips")
    cap_path = Path(captions_file) if captions_file is not None else root / CAPTIONS_FILE
    if not cap_path.is_file():
        raise DataFileError(f"{cap_path} not found: list the clips in a CSV with the columns clip,caption")
    if size is not None:
        size = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"size must be an int or (height, width), got {size!r}")
    if n_frames is not None and n_frames < 1:
        raise ConfigError(f"n_frames must be >= 1, got {n_frames}")
    try:
        with open(cap_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataFileError(f"{cap_path} is not a readable UTF-8 CSV ({err})") from err
    if not rows or not {"clip", "caption"} <= set(rows[0]):
        raise DataFileError(f"{cap_path} needs a header with the columns clip and caption, and at least one row")
    cache: dict[str, np.ndarray] = {}
    clips, captions = [], []
    for line, row in enumerate(rows, start=2):
        name, caption = (row.get("clip") or "").strip(), (row.get("caption") or "").strip()
        if not caption:
            raise DataError(f"{cap_path}, line {line}: empty caption for clip {name!r}")
        if name not in cache:
            p = root / name
            if not name or not p.exists():
                raise DataFileError(f"{cap_path}, line {line}: clip {name!r} not found in {root}")
            clip = _read_frame_folder(p) if p.is_dir() else read_clip(p)
            cache[name] = _resample(clip, n_frames, size)
        clips.append(cache[name])
        captions.append(caption)
    shapes = {c.shape for c in clips}
    if len(shapes) > 1:
        raise DataError(
            f"{root}: the clips differ in shape ({', '.join(map(str, sorted(shapes)[:4]))}); "
            "pass n_frames= and size= to resample them to one shape"
        )
    return np.stack(clips), captions
