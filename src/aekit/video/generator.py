"""Moving digits: clips in which one or two MNIST digits move and bounce, with exact captions.

Each digit sets off in one of eight directions at its own speed and bounces off the walls of
the frame. Its first bounce comes no earlier than frame ``n_frames // 4`` and no bounce comes in
the last two frames, so the starting direction and every bounce can be seen. Overlapping digits
are combined with a pixel-wise maximum (as in Srivastava et al.'s Moving MNIST).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .grammar import DIRECTION_NAMES, DIRECTIONS, Slot, make_caption

#: tries to place a digit so that its bounces fall where they can be seen
_TRIES = 200


@dataclass(frozen=True)
class MovingDigits:
    """A generated set of clips.

    Attributes
    ----------
    frames : ndarray of shape (n_clips, n_frames, size, size), uint8
    captions : list of str
    digits : ndarray of shape (n_clips, n_digits), int64
        Digit labels, in caption order (ascending).
    directions : ndarray of shape (n_clips, n_digits), int64
        Index into ``DIRECTION_NAMES`` of each digit's starting direction.
    bounces : ndarray of shape (n_clips, n_digits), bool
    positions : ndarray of shape (n_clips, n_frames, n_digits, 2), float32
        Top-left corner (x, y) of each digit in each frame, before rounding to pixels.
    sources : ndarray of shape (n_clips, n_digits), int64
        Index of each digit's image in the images the clips were drawn from.
    """

    frames: np.ndarray
    captions: list[str]
    digits: np.ndarray
    directions: np.ndarray
    bounces: np.ndarray
    positions: np.ndarray
    sources: np.ndarray


def _trajectory(
    rng: np.random.Generator, room: float, n_frames: int, velocity: np.ndarray, min_straight: int, bounce: bool
) -> np.ndarray | None:
    """(n_frames, 2) positions in [0, room]^2 that bounce (or not) as asked; None when no start fits."""
    for _ in range(_TRIES):
        p = rng.uniform(0, room, size=2)
        v = velocity.copy()
        pos = np.empty((n_frames, 2))
        pos[0] = p
        bounce_frames = []
        for t in range(1, n_frames):
            p = p + v
            for a in range(2):
                if p[a] < 0:
                    p[a], v[a] = -p[a], -v[a]
                    bounce_frames.append(t)
                elif p[a] > room:
                    p[a], v[a] = 2 * room - p[a], -v[a]
                    bounce_frames.append(t)
            pos[t] = p
        if bool(bounce_frames) == bounce and all(min_straight <= t <= n_frames - 3 for t in bounce_frames):
            return pos
    return None


def make_moving_digits(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_clips: int,
    n_frames: int = 20,
    size: int = 64,
    n_digits: int = 1,
    speed: tuple[float, float] = (1.0, 2.5),
    bounce_rate: float = 0.5,
    seed: int = 0,
) -> MovingDigits:
    """Generate ``n_clips`` clips from digit ``images`` (deterministic for a given ``seed``).

    Parameters
    ----------
    images : ndarray of shape (n_images, h, w), uint8 (or floats in [0, 1])
        The digits to move (MNIST: 28x28); ``h`` and ``w`` must be smaller than ``size``.
    labels : ndarray of shape (n_images,)
        Digit of each image (0-9).
    n_clips : int
    n_frames : int, default 20
    size : int, default 64
        Frames are ``size`` x ``size`` pixels.
    n_digits : {1, 2}, default 1
        Digits per clip; the two digits of a clip are different digits.
    speed : (float, float), default (1.0, 2.5)
        Range of speeds in pixels per frame (drawn uniformly per digit; a digit that must not
        bounce but is too fast to cross the frame without a bounce gets a new speed).
    bounce_rate : float, default 0.5
        Share of the digits that bounce off a wall at least once.
    seed : int, default 0

    Returns
    -------
    MovingDigits
    """
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels) or len(images) == 0:
        raise DataError(f"images must be (n, h, w) with one label each, got {images.shape} and {labels.shape}")
    if images.dtype != np.uint8:
        images = np.clip(np.rint(images.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    if not 0 <= bounce_rate <= 1:
        raise ConfigError(f"bounce_rate must be in [0, 1], got {bounce_rate}")
    if n_digits not in (1, 2):
        raise ConfigError(f"n_digits must be 1 or 2, got {n_digits}")
    if n_clips < 1 or n_frames < 8:
        raise ConfigError(f"need n_clips >= 1 and n_frames >= 8, got {n_clips} and {n_frames}")
    lo, hi = float(speed[0]), float(speed[1])
    if not 0 < lo <= hi:
        raise ConfigError(f"speed must be a range 0 < low <= high, got {speed}")
    h, w = images.shape[1:]
    if max(h, w) >= size:
        raise ConfigError(f"digits of {h}x{w} pixels do not move in {size}x{size} frames; use a larger size")
    if (labels < 0).any() or (labels > 9).any():
        raise DataError("labels must be digits 0-9")
    if n_digits == 2 and len(np.unique(labels)) < 2:
        raise DataError("two-digit clips need images of at least two different digits")
    room = float(size - max(h, w))
    min_straight = n_frames // 4
    rng = np.random.default_rng(seed)
    by_label = {d: np.flatnonzero(labels == d) for d in np.unique(labels)}
    present = np.array(sorted(by_label))

    frames = np.zeros((n_clips, n_frames, size, size), np.uint8)
    digits = np.zeros((n_clips, n_digits), np.int64)
    directions = np.zeros((n_clips, n_digits), np.int64)
    bounces = np.zeros((n_clips, n_digits), bool)
    positions = np.zeros((n_clips, n_frames, n_digits, 2), np.float32)
    sources = np.zeros((n_clips, n_digits), np.int64)
    captions: list[str] = []
    for i in range(n_clips):
        chosen = np.sort(rng.choice(present, size=n_digits, replace=False))  # caption order
        slots = []
        for j, d in enumerate(chosen):
            bounce = bool(rng.random() < bounce_rate)
            for _ in range(_TRIES):
                k = int(rng.integers(len(DIRECTION_NAMES)))
                dx, dy = DIRECTIONS[DIRECTION_NAMES[k]]
                v = np.array([dx, dy], float) / math.hypot(dx, dy) * rng.uniform(lo, hi)
                pos = _trajectory(rng, room, n_frames, v, min_straight, bounce)
                if pos is not None:
                    break
            else:
                raise ConfigError(
                    f"digits of {h}x{w} pixels cannot {'bounce' if bounce else 'cross'} {size}x{size} frames "
                    f"in {n_frames} frames at speeds {lo:g}-{hi:g} as required; use larger frames, more "
                    "frames or other speeds"
                )
            src = int(rng.choice(by_label[d]))
            img = images[src]
            for t in range(n_frames):
                x, y = (int(round(c)) for c in pos[t])
                patch = frames[i, t, y : y + h, x : x + w]
                np.maximum(patch, img, out=patch)
            digits[i, j], directions[i, j], bounces[i, j], sources[i, j] = d, k, bounce, src
            positions[i, :, j] = pos
            slots.append(Slot(int(d), DIRECTION_NAMES[k], bounce))
        captions.append(make_caption(slots))
    return MovingDigits(frames, captions, digits, directions, bounces, positions, sources)


def mnist_digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST ``split`` ("train" or "test") as uint8 images (n, 28, 28) and labels.

    Looked up like ``aekit.data.load_dataset("mnist")`` ($AEKIT_DATA_HOME, then the cache).
    """
    from ..data import load_dataset

    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    ds = load_dataset("mnist")
    x, y = (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
    return np.rint(x[:, 0] * 255).astype(np.uint8), np.asarray(y, np.int64)


def moving_mnist(split: str = "train", *, n_clips: int, seed: int | None = None, **kwargs) -> MovingDigits:
    """Moving digits from MNIST's ``split``: training clips from training digits, test from test.

    ``seed`` defaults to 0 for "train" and 1 for "test"; other options as :func:`make_moving_digits`.
    """
    images, labels = mnist_digits(split)
    if seed is None:
        seed = 0 if split == "train" else 1
    return make_moving_digits(images, labels, n_clips=n_clips, seed=seed, **kwargs)
