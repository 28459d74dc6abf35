"""Figures for generative models: sample grids, interpolations, the manifold map of a 2-D latent.

Numpy arrays in, PNG path out, like :mod:`aekit.viz.figures` (the latent scatter coloured by
label is :func:`aekit.viz.latent_map` on the posterior means).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aekit.errors import ConfigError, DataError
from aekit.viz.figures import _as_images, _check_png_path, _new_figure, _save_png, image_strip, reconstruction_grid

__all__ = ["interpolation_figure", "manifold_map", "sample_grid"]


def sample_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    ncols: int | None = None,
    title: str | None = None,
    dpi: float = 100,
) -> Path:
    """Draw generated images in a square-ish grid.

    Parameters
    ----------
    images : ndarray of shape (n, C, H, W)
        Values in [0, 1] (e.g. ``VAE.sample(n)``); other layouts as :func:`aekit.viz.image_strip`.
    path : str or PathLike
        PNG to write (folders are created).
    ncols : int, optional
        Images per row; default ``ceil(sqrt(n))``.
    title : str, optional
    dpi : float, default 100

    Returns
    -------
    Path
        The PNG written.
    """
    n = len(np.asarray(images))
    if ncols is None:
        ncols = max(1, math.ceil(math.sqrt(n)))
    return image_strip(images, path, ncols=ncols, title=title, dpi=dpi)


def interpolation_figure(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    dpi: float = 100,
) -> Path:
    """One row per pair: the first image, the decoded points between them, the second image.

    Parameters
    ----------
    rows : sequence of (label, a, path_images, b)
        ``a`` and ``b``: the two input images, each of shape (C, H, W); ``path_images``:
        ndarray of shape (steps, C, H, W), the decodings from a to b (``VAE.interpolate``).
        Every row must have the same number of steps.
    path : str or PathLike
        PNG to write.

    Returns
    -------
    Path
        The PNG written.
    """
    if not rows:
        raise DataError("rows is empty: give at least one (label, a, path_images, b) row")
    grid = []
    steps = None
    for label, a, mid, b in rows:
        mid = np.asarray(mid, dtype=np.float32)
        a, b = np.asarray(a, np.float32)[None], np.asarray(b, np.float32)[None]
        if a.shape[1:] != mid.shape[1:] or b.shape[1:] != mid.shape[1:]:
            raise DataError(f"row {label!r}: the end images {a.shape[1:]} do not match the path {mid.shape[1:]}")
        steps = len(mid) if steps is None else steps
        if len(mid) != steps:
            raise DataError(f"every row must have the same number of steps ({steps}); row {label!r} has {len(mid)}")
        grid.append((str(label), np.concatenate([a, mid, b])))
    ts = np.linspace(0, 1, steps)
    titles = ["input a", *(f"t={t:.2g}" for t in ts), "input b"]
    return reconstruction_grid(grid, path, n=steps + 2, titles=titles, title=title, dpi=dpi)


def manifold_map(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    z1: Sequence[float],
    z2: Sequence[float],
    title: str | None = None,
    cmap: str = "gray",
    dpi: float = 100,
) -> Path:
    """The learnt manifold of a 2-D latent space: decoded images tiled on a grid of latent values.

    Parameters
    ----------
    images : ndarray of shape (len(z2), len(z1), C, H, W)
        ``images[i, j]`` is the decoding of ``(z1[j], z2[i])``; also accepted flat, of shape
        (len(z2) * len(z1), C, H, W), in that row-major order.
    z1, z2 : sequence of float
        The latent values along the horizontal and vertical axes (increasing).
    path : str or PathLike
        PNG to write.

    Returns
    -------
    Path
        The PNG written.
    """
    path = _check_png_path(path)
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    nx, ny = len(z1), len(z2)
    if nx < 1 or ny < 1:
        raise ConfigError("z1 and z2 need at least one latent value each")
    arr = np.asarray(images)
    if arr.ndim == 5:  # (ny, nx, C, H, W) -> (ny * nx, C, H, W)
        arr = arr.reshape(ny * nx, *arr.shape[2:]) if arr.shape[:2] == (ny, nx) else arr[:0]
    if len(arr) != nx * ny:
        raise DataError(f"images must hold len(z2) x len(z1) = {ny} x {nx} decodings, got {arr.shape}")
    imgs = _as_images(arr, image_shape=None, what="images")  # (n, H, W[, 3]) in [0, 1]
    h, w = imgs.shape[1:3]
    # row i of the mosaic shows z2[i]; the top row shows the largest z2 (a y axis pointing up)
    tiles = imgs.reshape(ny, nx, *imgs.shape[1:])[::-1]
    mosaic = np.concatenate([np.concatenate(list(row), axis=1) for row in tiles], axis=0)
    side = min(9.0, max(4.0, 0.45 * max(nx, ny)))
    fig = _new_figure((side * 1.08, side * ny * h / (nx * w) + 0.6), dpi, constrained=True)
    ax = fig.add_subplot()
    dx = (z1[-1] - z1[0]) / (nx - 1) if nx > 1 else 1.0
    dy = (z2[-1] - z2[0]) / (ny - 1) if ny > 1 else 1.0
    extent = (z1[0] - dx / 2, z1[-1] + dx / 2, z2[0] - dy / 2, z2[-1] + dy / 2)
    ax.imshow(mosaic, cmap=cmap if mosaic.ndim == 2 else None, vmin=0, vmax=1, extent=extent,
              interpolation="nearest", aspect="auto")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title(title if title is not None else f"Decoded latent grid ({ny} x {nx})", fontsize=10)
    return _save_png(fig, path, dpi)
