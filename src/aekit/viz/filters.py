"""Figures for pretraining: the first layer's learnt filters, and accuracy against labels."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from aekit.errors import ConfigError, DataError
from aekit.viz.figures import _check_png_path, _new_figure, _save_png

__all__ = ["accuracy_vs_labels", "filter_grid"]


def filter_grid(
    weights,
    path: str | os.PathLike,
    *,
    image_shape: Sequence[int] = (28, 28),
    n: int = 100,
    order: str = "index",
    title: str | None = None,
    dpi: float = 100,
) -> Path:
    """Draw the first layer's filters (one row of its weight matrix per unit) as image tiles.

    Parameters
    ----------
    weights : ndarray of shape (n_units, H * W)
        E.g. ``model.enc[0].weight`` of a ``dense_ae`` (a tensor is fine).
    path : str or PathLike
        PNG to write.
    image_shape : (H, W)
        Shape of one input image.
    n : int, default 100
        How many units to draw (a square-ish grid).
    order : {"index", "norm"}
        The first ``n`` units, or the ``n`` with the largest weight norm.
    title : str, optional

    Each tile is scaled on its own to [min, max] (mid-grey is not zero), so the shape of the
    receptive field shows whatever its scale; dead units show as flat tiles.
    """
    path = _check_png_path(path)
    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=np.float64)
    h_, w_ = (int(s) for s in tuple(image_shape)[-2:])
    if w.ndim != 2 or w.shape[1] != h_ * w_:
        raise DataError(f"weights must have shape (n_units, {h_ * w_}) for {h_}x{w_} tiles, got {w.shape}")
    if not np.isfinite(w).all():
        raise DataError("weights hold NaN/inf values")
    if order not in ("index", "norm"):
        raise ConfigError(f"order must be 'index' or 'norm', got {order!r}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    pick = np.arange(len(w)) if order == "index" else np.argsort(-np.linalg.norm(w, axis=1), kind="stable")
    tiles = w[pick[: min(n, len(w))]].reshape(-1, h_, w_)
    k = len(tiles)
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    gap = 1
    mosaic = np.ones((rows * (h_ + gap) - gap, cols * (w_ + gap) - gap))
    for i, t in enumerate(tiles):
        lo, hi = t.min(), t.max()
        t = (t - lo) / (hi - lo) if hi > lo else np.full_like(t, 0.5)
        r, c = divmod(i, cols)
        mosaic[r * (h_ + gap) : r * (h_ + gap) + h_, c * (w_ + gap) : c * (w_ + gap) + w_] = t
    scale = max(1.0, 600 / max(mosaic.shape))  # about 600 px wide at dpi 100
    fig = _new_figure((mosaic.shape[1] * scale / dpi + 0.2, mosaic.shape[0] * scale / dpi + 0.5), dpi,
                      constrained=True)
    ax = fig.add_subplot()
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or f"first-layer filters ({k} of {len(w)} units)", fontsize=10)
    return _save_png(fig, path, dpi)


def accuracy_vs_labels(
    summary: Sequence[Mapping],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    references: Mapping[str, Mapping[int, float]] | None = None,
    dpi: float = 100,
) -> Path:
    """Test accuracy against the number of labelled examples, one line per method (mean ± std).

    Parameters
    ----------
    summary : rows with ``method``, ``n_labels``, ``mean`` and ``std`` (as
        :func:`aekit.tasks.pretraining.summarise` returns).
    references : optional published points, ``{"name": {n_labels: accuracy}}``, drawn dashed.
    """
    path = _check_png_path(path)
    if not summary:
        raise DataError("nothing to draw: the summary is empty")
    methods: dict[str, list[tuple[int, float, float]]] = {}
    for r in summary:
        methods.setdefault(str(r["method"]), []).append((int(r["n_labels"]), float(r["mean"]), float(r.get("std", 0))))
    fig = _new_figure((7.0, 4.6), dpi, constrained=True)
    ax = fig.add_subplot()
    for name, pts in methods.items():
        pts.sort()
        x, m, s = (np.array(v) for v in zip(*pts))
        style = dict(marker="o", lw=2.0) if "+" not in name else dict(marker=".", lw=1.0, alpha=0.8)
        ax.errorbar(x, 100 * m, yerr=100 * s, capsize=3, label=name, **style)
    for name, pts in (references or {}).items():
        x = sorted(pts)
        ax.plot(x, [100 * pts[k] for k in x], ls="--", color="grey", marker="x", lw=1)
        ax.annotate(name, (x[-1], 100 * pts[x[-1]]), fontsize=7, color="grey",
                    xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_xscale("log")
    xs = sorted({int(r["n_labels"]) for r in summary})
    ax.set_xticks(xs, [f"{v:,}" for v in xs])
    ax.minorticks_off()
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title or "accuracy against the number of labels", fontsize=10)
    return _save_png(fig, path, dpi)
