"""Figures for anomaly detection: a series with its scores, score histograms, explanations.

Same rules as :mod:`aekit.viz.figures`: numpy arrays in, PNG path out; bare ``Figure`` objects
on the Agg canvas (never pyplot, so no figure is ever registered or leaked); PNGs written
atomically. "Above the threshold" means strictly greater than it, everywhere.

Long series are thinned for drawing with min/max decimation (each bucket keeps its smallest
and largest point), so a one-point spike survives; flags, events, labelled windows and gaps are
drawn as shaded spans of at least a few pixels, so they survive too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import dates as mdates
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from aekit.errors import ConfigError, DataError
from aekit.viz.figures import _check_png_path, _fmt, _new_figure, _numeric_array, _save_png

__all__ = ["explanation_figure", "score_histogram", "series_figure"]

_MAX_CHANNELS = 6  # stacked series panels at most; more channels: the first ones
_WINDOW_COLOUR = "tab:red"  # labelled (true) anomaly windows
_EVENT_COLOUR = "tab:orange"  # flagged points / detected events
_GAP_COLOUR = "0.6"  # imputed or missing stretches
_ABOVE_COLOUR = "crimson"  # scores above the threshold
_SMALL_PT = 8
_MIN_SPAN_FRACTION = 1 / 700  # narrowest span drawn, as a fraction of the x range (~1-2 px)


# ----------------------------------------------------------------------------- helpers


def _decimate_indices(y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` points of ``y`` that keep its extremes.

    The series is cut into ``max_points // 2`` equal buckets; each keeps the index of its
    smallest and largest value (NaN is ignored unless a whole bucket is NaN, which then keeps
    one NaN so the line shows a break). Indices come back sorted and unique.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    size = math.ceil(n / max(1, max_points // 2))  # points per bucket
    n_buckets = math.ceil(n / size)
    padded = np.full(n_buckets * size, np.nan)
    padded[:n] = y
    padded = padded.reshape(n_buckets, size)
    nan = np.isnan(padded)
    lo = np.argmin(np.where(nan, np.inf, padded), axis=1)
    hi = np.argmax(np.where(nan, -np.inf, padded), axis=1)
    offsets = np.arange(n_buckets) * size
    idx = np.concatenate([lo + offsets, hi + offsets])
    return np.unique(idx[idx < n])  # a bucket of padding only cannot occur; be safe anyway


def _minmax_decimate(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Thin the line ``(x, y)`` to at most ``max_points`` points, keeping every bucket's min and max."""
    idx = _decimate_indices(y, max_points)
    return np.asarray(x)[idx], np.asarray(y)[idx]


def _runs(mask: np.ndarray) -> np.ndarray:
    """Inclusive ``(start, end)`` index pairs of the runs of True in a 1-D bool array, shape (k, 2)."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]]).astype(np.int8)
    d = np.diff(m)
    return np.column_stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1])


def _edges(x: np.ndarray) -> np.ndarray:
    """``n + 1`` boundaries half-way between the ``n`` x positions (so one point has a width)."""
    if len(x) == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - (x[1] - x[0]) / 2], mid, [x[-1] + (x[-1] - x[-2]) / 2]])


def _span_verts(runs: np.ndarray, edges: np.ndarray, min_width: float) -> np.ndarray:
    """Rectangles ``(k, 4, 2)`` in (data x, axes y) for inclusive index runs, at least ``min_width`` wide."""
    if len(runs) == 0:
        return np.zeros((0, 4, 2))
    x0, x1 = edges[runs[:, 0]], edges[runs[:, 1] + 1]
    grow = np.maximum(0.0, min_width - (x1 - x0)) / 2
    x0, x1 = x0 - grow, x1 + grow
    ones, zeros = np.ones_like(x0), np.zeros_like(x0)
    return np.stack([np.column_stack(p) for p in ((x0, zeros), (x0, ones), (x1, ones), (x1, zeros))], axis=1)


def _add_spans(ax, verts: np.ndarray, colour, alpha: float, zorder: float = 0.5) -> None:
    if len(verts) == 0:
        return
    coll = PolyCollection(
        verts,
        transform=ax.get_xaxis_transform(),  # x in data, y from 0 to 1 of the axes
        facecolors=colour,
        edgecolors=colour,  # the edge keeps a sub-pixel span at least one pixel wide
        linewidths=0.6,
        alpha=alpha,
        zorder=zorder,
    )
    ax.add_collection(coll, autolim=False)


def _vector(x, what: str, n: int | None = None) -> np.ndarray:
    """A 1-D numeric array (``(n, 1)`` is accepted too) of length ``n`` if given."""
    arr = _numeric_array(x, what)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{what} must be 1-D, one value per time step; got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise DataError(f"{what} has {len(arr)} entries but values has {n} time steps; give one per step")
    return arr


def _mask(x, what: str, n: int) -> np.ndarray:
    arr = _vector(x, what, n)
    if not np.isfinite(arr).all():
        raise DataError(f"{what} must be True/False (or 0/1) per time step, without NaN")
    return arr != 0


def _x_positions(timestamps, n: int) -> tuple[np.ndarray, bool]:
    """Return ``(x as floats, is a date axis)``: datetime64 -> matplotlib date numbers."""
    if timestamps is None:
        return np.arange(n, dtype=np.float64), False
    ts = np.asarray(timestamps)
    if ts.dtype == object:  # e.g. a list of datetime objects or pandas Timestamps
        try:
            ts = ts.astype("datetime64[ns]")
        except (TypeError, ValueError) as exc:
            raise DataError(f"timestamps could not be read as datetimes or numbers: {exc}") from exc
    if ts.ndim != 1:
        raise DataError(f"timestamps must be 1-D, one per time step; got shape {ts.shape}")
    if len(ts) != n:
        raise DataError(f"timestamps has {len(ts)} entries but values has {n} time steps; give one per step")
    if np.issubdtype(ts.dtype, np.datetime64):
        if np.isnat(ts).any():
            raise DataError(f"timestamps contain {int(np.isnat(ts).sum())} NaT (missing) values")
        x, is_date = mdates.date2num(ts), True
    else:
        x, is_date = _numeric_array(ts, "timestamps").astype(np.float64), False
        if not np.isfinite(x).all():
            raise DataError("timestamps contain NaN or infinite values")
    if n > 1 and np.any(np.diff(x) < 0):
        raise DataError("timestamps must be in increasing order (sort the series first)")
    return np.asarray(x, dtype=np.float64), is_date


def _date_axis(ax) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _event_fields(events, n: int) -> list[tuple[int, int, int, float]]:
    """Read duck-typed events: ``(start, end, peak, peak_score)`` with inclusive indices."""
    out = []
    for i, ev in enumerate(events):
        try:
            start, end, peak = int(ev.start), int(ev.end), int(ev.peak)
            ps = getattr(ev, "peak_score", None)
            peak_score = math.nan if ps is None else float(ps)
        except (AttributeError, TypeError, ValueError) as exc:
            raise DataError(
                f"events[{i}] must have integer attributes start, end, peak and a number peak_score: {exc}"
            ) from exc
        if not (0 <= start <= end < n and start <= peak <= end):
            raise DataError(
                f"events[{i}] (start={start}, end={end}, peak={peak}) must satisfy "
                f"0 <= start <= peak <= end < {n} (inclusive indices into the series)"
            )
        out.append((start, end, peak, peak_score))
    return out


def _windows(label_windows, n: int) -> np.ndarray:
    if isinstance(label_windows, str | bytes):
        raise DataError("label_windows must be a list of (start, end) index pairs")
    try:
        w = np.asarray(list(label_windows), dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError) as exc:
        raise DataError(f"label_windows must be a list of (start, end) index pairs: {exc}") from exc
    if not (np.isfinite(w).all() and np.all(w == np.round(w))):
        raise DataError("label_windows must hold integer (start, end) indices")
    w = w.astype(np.int64)
    bad = (w[:, 0] < 0) | (w[:, 1] >= n) | (w[:, 0] > w[:, 1])
    if bad.any():
        s, e = w[np.argmax(bad)]
        raise DataError(
            f"label window ({s}, {e}) is not within the series: need 0 <= start <= end < {n} (inclusive indices)"
        )
    return w


# ----------------------------------------------------------------------------- series figure


def series_figure(
    path: str | os.PathLike,
    values: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float | None = None,
    timestamps: np.ndarray | None = None,
    flags: np.ndarray | None = None,
    events: list | None = None,
    label_windows: list[tuple[int, int]] | None = None,
    columns: list[str] | None = None,
    gap: np.ndarray | None = None,
    title: str | None = None,
    max_points: int = 20000,
    log_scores: str | bool = "auto",
    dpi: int = 110,
) -> Path:
    """Draw a time series above its anomaly scores, with labelled windows, flags and events.

    Parameters
    ----------
    path : str or PathLike
        Where to write the PNG (must end in ``.png``; folders are created).
    values : ndarray of shape (n,) or (n, channels)
        The series. Each channel gets its own panel (sharing x), up to 6; with more channels
        the first 6 are drawn and the title says so. NaN values show as breaks in the line.
    scores : ndarray of shape (n,)
        Anomaly score per time step, higher = more anomalous, drawn in the bottom panel.
        NaN/inf scores (e.g. the warm-up of a windowed detector) are not drawn; their count
        is given in the legend.
    threshold : float, optional
        Drawn as a dashed line labelled with its value; scores above it are marked.
    timestamps : ndarray of shape (n,), optional
        x values: ``datetime64`` (a date axis with concise labels) or increasing numbers.
        By default the position 0..n-1.
    flags : ndarray of bool, shape (n,), optional
        Points flagged as anomalous: a strip at the top of the score panel, and orange spans
        over the series when no ``events`` are given.
    events : list, optional
        Detected events: any objects with attributes ``start``, ``end`` (inclusive indices),
        ``peak`` (index) and ``peak_score``. Drawn as orange spans, with a marker at each peak.
    label_windows : list of (start, end), optional
        True anomaly windows, inclusive indices, shaded light red. A window counts as hit
        when an event (or, without events, a flagged point) overlaps it.
    columns : list of str, optional
        One name per channel (panel y labels); a DataFrame's own column names by default.
    gap : ndarray of bool, shape (n,), optional
        Points that were missing or imputed: drawn grey, with a light grey span.
    title : str, optional
        Figure title; a line under it counts events, windows hit and channels shown.
    max_points : int, default 20000
        Each line is thinned to at most this many points by min/max decimation.
    log_scores : bool or "auto", default "auto"
        Logarithmic score axis; "auto" uses it when all finite scores are positive and span
        more than two decades.
    dpi : int, default 110
        Pixels per inch; the figure is 11 inches wide.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    DataError
        Empty input; values not 1-D/2-D; scores, timestamps, flags or gap of another length
        than values; timestamps with NaT or out of order; events or windows outside the series;
        ``columns`` of the wrong length; ``log_scores=True`` with scores that are not positive.
    ConfigError
        ``max_points < 4``, a bad ``log_scores``, or a path not ending in ``.png``.
    """
    path = _check_png_path(path)
    if int(max_points) < 4:
        raise ConfigError(f"max_points must be at least 4, got {max_points}")
    if not (log_scores == "auto" or isinstance(log_scores, bool | np.bool_)):
        raise ConfigError(f"log_scores must be True, False or 'auto', got {log_scores!r}")
    max_points = int(max_points)

    if columns is None and hasattr(values, "columns"):  # a pandas DataFrame names its channels
        columns = [str(col) for col in values.columns]
    v = _numeric_array(values, "values")
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise DataError(f"values must have shape (n,) or (n, channels), got {v.shape}")
    n, n_channels = v.shape
    if n == 0 or n_channels == 0:
        raise DataError(f"values is empty (shape {v.shape}): nothing to plot")
    v = v.astype(np.float64)
    v[~np.isfinite(v)] = np.nan
    s = _vector(scores, "scores", n).astype(np.float64)
    s[~np.isfinite(s)] = np.nan
    x, is_date = _x_positions(timestamps, n)
    flag_mask = _mask(flags, "flags", n) if flags is not None else None
    gap_mask = _mask(gap, "gap", n) if gap is not None else None
    evs = _event_fields(events, n) if events is not None else None
    wins = _windows(label_windows, n) if label_windows is not None else None
    if columns is not None:
        if isinstance(columns, str) or len(columns) != n_channels:
            got = "a string" if isinstance(columns, str) else f"{len(columns)} names"
            raise DataError(f"columns must give one name per channel ({n_channels}), got {got}")
        names = [str(c) for c in columns]
    else:
        names = [f"channel {j}" for j in range(n_channels)] if n_channels > 1 else ["value"]
    if threshold is not None:
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise DataError(f"threshold must be a finite number, got {threshold}")

    finite = s[np.isfinite(s)]
    n_bad_scores = n - len(finite)
    if log_scores == "auto":
        use_log = bool(len(finite) and finite.min() > 0 and finite.max() > 100 * finite.min())
    else:
        use_log = bool(log_scores)
        if use_log and len(finite) and finite.min() <= 0:
            raise DataError(f"log_scores=True needs positive scores; the smallest is {finite.min():g}")

    shown = min(n_channels, _MAX_CHANNELS)
    edges = _edges(x)
    min_width = (edges[-1] - edges[0]) * _MIN_SPAN_FRACTION
    no_runs = np.zeros((0, 2), np.int64)
    win_verts = _span_verts(wins if wins is not None else no_runs, edges, min_width)
    if evs is not None:
        ev_runs = np.array([(a, b) for a, b, _, _ in evs], dtype=np.int64).reshape(-1, 2)
    elif flag_mask is not None:
        ev_runs = _runs(flag_mask)
    else:
        ev_runs = no_runs
    ev_verts = _span_verts(ev_runs, edges, min_width)
    gap_verts = _span_verts(_runs(gap_mask) if gap_mask is not None else no_runs, edges, min_width)

    # Windows hit: overlapped by an event, or by a flagged point when there are no events.
    n_hit = None
    if wins is not None and (evs is not None or flag_mask is not None):
        if evs is not None:
            hit = [any(a <= we and b >= ws for a, b, _, _ in evs) for ws, we in wins]
        else:
            hit = [bool(flag_mask[ws : we + 1].any()) for ws, we in wins]
        n_hit = int(sum(hit))

    panel_h = max(1.0, 2.5 - 0.3 * shown)  # inches per series panel; the score panel gets 2.1
    height = panel_h * shown + 2.1 + 0.5
    fig = _new_figure((11.0, height), dpi, constrained=True)
    gs = fig.add_gridspec(shown + 1, 1, height_ratios=[panel_h] * shown + [2.1])
    axes = []
    for j in range(shown + 1):
        axes.append(fig.add_subplot(gs[j, 0], sharex=axes[0] if axes else None))
    score_ax = axes[-1]

    for j in range(shown):
        ax = axes[j]
        idx = _decimate_indices(v[:, j], max_points)
        xs, ys = x[idx], v[idx, j]
        _add_spans(ax, win_verts, _WINDOW_COLOUR, 0.15, zorder=0.4)
        _add_spans(ax, gap_verts, _GAP_COLOUR, 0.25, zorder=0.45)
        _add_spans(ax, ev_verts, _EVENT_COLOUR, 0.3, zorder=0.5)
        if gap_mask is not None:
            ax.plot(xs, ys, color=_GAP_COLOUR, linewidth=0.8, zorder=2)  # grey under the gaps
            ys = np.where(gap_mask[idx], np.nan, ys)
        ax.plot(xs, ys, color=f"C{j % 10}" if j % 10 != 1 else "C9", linewidth=0.8, zorder=3)
        if evs:
            peaks = np.array([p for _, _, p, _ in evs])
            ax.plot(
                x[peaks],
                np.full(len(peaks), 0.97),
                transform=ax.get_xaxis_transform(),
                linestyle="none",
                marker="v",
                markersize=5,
                color=_EVENT_COLOUR,
                markeredgecolor="black",
                markeredgewidth=0.4,
                zorder=4,
            )
        ax.set_ylabel(names[j], fontsize=_SMALL_PT + 1)
        ax.tick_params(labelsize=_SMALL_PT, labelbottom=False)
        ax.grid(True, alpha=0.25)

    # Score panel.
    idx = _decimate_indices(s, max_points)
    xs, ys = x[idx], s[idx]
    handles = [Line2D([], [], color="0.25", linewidth=0.9, label="anomaly score")]
    _add_spans(score_ax, win_verts, _WINDOW_COLOUR, 0.12, zorder=0.4)
    score_ax.plot(xs, ys, color="0.3", linewidth=0.7, zorder=2)
    trans = blended_transform_factory(score_ax.transAxes, score_ax.transData)
    if threshold is not None:
        n_above = int((finite > threshold).sum())
        if not use_log or threshold > 0:
            score_ax.axhline(threshold, color="black", linestyle="--", linewidth=1.1, zorder=3)
            score_ax.text(
                0.005,
                threshold,
                f"threshold {threshold:.4g}",
                transform=trans,
                ha="left",
                va="bottom",
                fontsize=_SMALL_PT,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
                zorder=6,
            )
        handles.append(Line2D([], [], color="black", linestyle="--", label=f"threshold = {threshold:.4g}"))
        above = ys > threshold  # NaN compares False
        if above.any():
            score_ax.plot(
                xs[above],
                ys[above],
                linestyle="none",
                marker="o",
                markersize=2.5,
                color=_ABOVE_COLOUR,
                zorder=4,
            )
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markersize=4,
                color=_ABOVE_COLOUR,
                label=f"above threshold ({n_above:,} of {n:,} points)",
            )
        )
    if flag_mask is not None:
        flag_verts = _span_verts(_runs(flag_mask), edges, min_width)
        flag_verts[:, :, 1] = np.where(flag_verts[:, :, 1] > 0, 1.0, 0.93)  # a strip along the top
        _add_spans(score_ax, flag_verts, _EVENT_COLOUR, 0.9, zorder=5)
        handles.append(Patch(color=_EVENT_COLOUR, alpha=0.9, label=f"flagged points ({int(flag_mask.sum()):,})"))
    if evs:
        peaks = np.array([p for _, _, p, _ in evs])
        ps = np.array([q for _, _, _, q in evs])
        ps = np.where(np.isfinite(ps), ps, s[peaks])
        score_ax.plot(
            x[peaks],
            ps,
            linestyle="none",
            marker="D",
            markersize=5,
            color=_EVENT_COLOUR,
            markeredgecolor="black",
            markeredgewidth=0.5,
            zorder=5,
        )
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="D",
                markersize=5,
                color=_EVENT_COLOUR,
                markeredgecolor="black",
                markeredgewidth=0.5,
                label="event peak",
            )
        )
    if n_bad_scores:
        handles.append(Line2D([], [], linestyle="none", label=f"{n_bad_scores:,} NaN/inf scores (not drawn)"))
    if use_log:
        score_ax.set_yscale("log")
    score_ax.set_ylabel("score (log)" if use_log else "score", fontsize=_SMALL_PT + 1)
    score_ax.set_xlabel(
        "time" if is_date else ("timestamp" if timestamps is not None else "position"), fontsize=_SMALL_PT + 1
    )
    score_ax.tick_params(labelsize=_SMALL_PT)
    score_ax.grid(True, alpha=0.25)
    score_ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        fontsize=_SMALL_PT,
        frameon=False,
        borderaxespad=0,
    )
    if len(finite) == 0:
        score_ax.text(0.5, 0.5, "no finite scores", transform=score_ax.transAxes, ha="center", va="center", color="0.4")

    # Legend of the shading, next to the top panel.
    shade = []
    if wins is not None:
        hit_txt = f", {n_hit} hit" if n_hit is not None else ""
        shade.append(Patch(color=_WINDOW_COLOUR, alpha=0.25, label=f"labelled anomaly ({len(wins)}{hit_txt})"))
    if evs is not None:
        shade.append(Patch(color=_EVENT_COLOUR, alpha=0.4, label=f"detected events ({len(evs)})"))
    elif flag_mask is not None:
        shade.append(Patch(color=_EVENT_COLOUR, alpha=0.4, label=f"flagged runs ({len(ev_runs)})"))
    if gap_mask is not None:
        shade.append(Patch(color=_GAP_COLOUR, alpha=0.5, label=f"gap ({int(gap_mask.sum()):,} points)"))
    if shade:
        axes[0].legend(
            handles=shade,
            loc="upper left",
            bbox_to_anchor=(1.005, 1.0),
            fontsize=_SMALL_PT,
            frameon=False,
            borderaxespad=0,
        )

    if is_date:
        for ax in axes:
            _date_axis(ax)
    if edges[-1] > edges[0]:  # all timestamps equal: leave the limits to matplotlib
        score_ax.set_xlim(edges[0], edges[-1])

    summary = []
    if evs is not None:
        summary.append(f"{len(evs)} event{'s' if len(evs) != 1 else ''} detected")
    if wins is not None:
        summary.append(
            f"{n_hit} of {len(wins)} labelled windows hit" if n_hit is not None else f"{len(wins)} labelled windows"
        )
    if n_channels > shown:
        summary.append(f"showing first {shown} of {n_channels} channels")
    if len(idx) < n:
        summary.append(f"{n:,} points, drawn with min/max decimation")
    head = title if title else ""
    sub = "; ".join(summary)
    if head and sub:
        fig.suptitle(f"{head}\n{sub}", fontsize=10)
    elif head or sub:
        fig.suptitle(head or sub, fontsize=10)
    return _save_png(fig, path, dpi)


# ----------------------------------------------------------------------------- score histogram


def _binary_labels(labels, n: int) -> np.ndarray:
    y = _vector(labels, "labels", n)
    if not np.isfinite(y).all() or not np.isin(y, (0, 1)).all():
        raise DataError("labels must be 0 (normal) or 1 (anomaly) for every score")
    return y.astype(bool)


def score_histogram(
    path: str | os.PathLike,
    scores: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    threshold: float | None = None,
    title: str | None = None,
    bins: int = 60,
    dpi: int = 110,
) -> Path:
    """Histogram of anomaly scores, split by label, with the ROC curve when labels are given.

    Parameters
    ----------
    path : str or PathLike
        Where to write the PNG (must end in ``.png``; folders are created).
    scores : ndarray of shape (n,)
        Anomaly scores, higher = more anomalous. NaN/inf scores are left out (their count is
        noted in the title).
    labels : ndarray of shape (n,), optional
        0 (normal) / 1 (anomaly). Draws two overlaid density histograms on shared bins and,
        in a second panel, the ROC curve with its AUC (needs both classes).
    threshold : float, optional
        A dashed line; the legend gives the share of normals above it (false-alarm rate) and
        of anomalies above it (recall), or of all scores without labels. The ROC panel marks
        this operating point.
    title : str, optional
        Figure title.
    bins : int, default 60
        Number of bins, shared by both classes. When all scores are positive and span more
        than two decades the x axis is logarithmic and the bins equal in log space (density
        then per decade).
    dpi : int, default 110
        Pixels per inch; 6.4 x 4.2 inches, 11 x 4.2 with the ROC panel.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    DataError
        No finite scores, scores not 1-D, labels of another length or not 0/1.
    ConfigError
        ``bins < 1``, or a path not ending in ``.png``.
    """
    path = _check_png_path(path)
    if int(bins) < 1:
        raise ConfigError(f"bins must be at least 1, got {bins}")
    s = _vector(scores, "scores").astype(np.float64)
    n_all = len(s)
    if n_all == 0:
        raise DataError("scores is empty: nothing to plot")
    y = _binary_labels(labels, n_all) if labels is not None else None
    ok = np.isfinite(s)
    if not ok.any():
        raise DataError(f"scores holds no finite values ({n_all} NaN/inf)")
    s = s[ok]
    y = y[ok] if y is not None else None
    if threshold is not None:
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise DataError(f"threshold must be a finite number, got {threshold}")

    use_log = bool(s.min() > 0 and s.max() > 100 * s.min())
    t = np.log10(s) if use_log else s
    edges = np.histogram_bin_edges(t, bins=int(bins))
    draw_edges = 10.0**edges if use_log else edges

    with_roc = y is not None
    fig = _new_figure((11.0 if with_roc else 6.4, 4.2), dpi, constrained=True)
    if with_roc:
        gs = fig.add_gridspec(1, 2, width_ratios=[1.6, 1.0])
        ax, roc_ax = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])
    else:
        ax, roc_ax = fig.add_subplot(), None

    groups = (
        [("scores", t, "C0")]
        if y is None
        else [
            ("normal", t[~y], "C0"),
            ("anomalous", t[y], _ABOVE_COLOUR),
        ]
    )
    for name, part, colour in groups:
        if len(part) == 0:
            continue
        h, _ = np.histogram(part, bins=edges, density=True)
        label = f"{name} (n={len(part):,})"
        ax.stairs(h, draw_edges, fill=True, color=colour, alpha=0.35)
        ax.stairs(h, draw_edges, color=colour, linewidth=1.2, label=label)
    if threshold is not None and (not use_log or threshold > 0):
        if y is None:
            label = f"threshold {threshold:.4g}: {np.mean(s > threshold):.1%} of scores above"
        else:
            parts = [f"threshold {threshold:.4g}"]
            if (~y).any():
                parts.append(f"normals above: {np.mean(s[~y] > threshold):.1%} (false alarms)")
            if y.any():
                parts.append(f"anomalies above: {np.mean(s[y] > threshold):.1%} (recall)")
            label = "\n".join(parts)
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1.1, label=label)
    if use_log:
        ax.set_xscale("log")
    ax.set_xlabel("anomaly score (log scale)" if use_log else "anomaly score")
    ax.set_ylabel("density per decade" if use_log else "density")
    ax.grid(True, alpha=0.25)
    ax.legend(loc="upper right", fontsize=_SMALL_PT, framealpha=0.9)

    if roc_ax is not None:
        roc_ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance")
        if y.any() and (~y).any():
            from sklearn.metrics import auc, roc_curve

            fpr, tpr, _ = roc_curve(y, s)
            roc_ax.plot(fpr, tpr, color="C0", linewidth=1.6, label=f"ROC (AUC = {auc(fpr, tpr):.3f})")
            if threshold is not None:
                op_fpr, op_tpr = np.mean(s[~y] > threshold), np.mean(s[y] > threshold)
                roc_ax.plot(
                    op_fpr,
                    op_tpr,
                    linestyle="none",
                    marker="o",
                    markersize=8,
                    color=_EVENT_COLOUR,
                    markeredgecolor="black",
                    label=f"threshold (FPR {op_fpr:.2f}, TPR {op_tpr:.2f})",
                )
        else:
            roc_ax.text(
                0.5,
                0.5,
                "ROC needs both\nnormal and anomalous labels",
                ha="center",
                va="center",
                transform=roc_ax.transAxes,
                color="0.4",
            )
        roc_ax.set_xlim(-0.01, 1.01)
        roc_ax.set_ylim(-0.01, 1.01)
        roc_ax.set_aspect("equal")
        roc_ax.set_xlabel("false positive rate")
        roc_ax.set_ylabel("true positive rate (recall)")
        roc_ax.grid(True, alpha=0.25)
        roc_ax.legend(loc="lower right", fontsize=_SMALL_PT, framealpha=0.9)

    note = f"{n_all - len(s):,} NaN/inf scores left out" if len(s) < n_all else ""
    head = "\n".join(p for p in (title, note) if p)
    if head:
        fig.suptitle(head, fontsize=10)
    return _save_png(fig, path, dpi)


# ----------------------------------------------------------------------------- explanations


def explanation_figure(
    path: str | os.PathLike,
    contributions: np.ndarray,
    *,
    feature_names: Sequence[str] | None = None,
    top: int = 15,
    title: str | None = None,
    kind: str = "bar",
    dpi: int = 110,
) -> Path:
    """Which features carry the reconstruction error: a bar chart, or a time x channel heatmap.

    Parameters
    ----------
    path : str or PathLike
        Where to write the PNG (must end in ``.png``; folders are created).
    contributions : ndarray of shape (d,), (n, d) or, with ``kind="heatmap"``, (T, C)
        ``kind="bar"``: each feature's share of one sample's reconstruction error (summing
        to 1), or one row per sample, in which case the mean share is drawn and the title
        says so. ``kind="heatmap"``: contributions per time step (rows) and channel (columns)
        of one series window, drawn with time on x and channels on y.
    feature_names : sequence of str, optional
        One name per feature (bar) or channel (heatmap); default ``x[i]``.
    top : int, default 15
        Bar chart: the ``top`` largest features are drawn, largest first; the rest are summed
        in a note.
    title : str, optional
        Figure title.
    kind : {"bar", "heatmap"}, default "bar"
    dpi : int, default 110
        Pixels per inch.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    DataError
        Empty, NaN/inf or wrongly shaped contributions; ``feature_names`` of the wrong length.
    ConfigError
        ``top < 1``, an unknown ``kind``, or a path not ending in ``.png``.
    """
    path = _check_png_path(path)
    if kind not in ("bar", "heatmap"):
        raise ConfigError(f"kind must be 'bar' or 'heatmap', got {kind!r}")
    if int(top) < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    c = _numeric_array(contributions, "contributions").astype(np.float64)
    if c.size == 0:
        raise DataError(f"contributions is empty (shape {c.shape}): nothing to plot")
    if not np.isfinite(c).all():
        raise DataError("contributions contain NaN or infinite values")
    if kind == "heatmap" and c.ndim != 2:
        raise DataError(f"kind='heatmap' needs contributions of shape (T, C), got {c.shape}")
    if kind == "bar" and c.ndim not in (1, 2):
        raise DataError(f"contributions must have shape (d,) or (n, d), got {c.shape}")
    d = c.shape[-1]
    if feature_names is not None:
        if isinstance(feature_names, str) or len(feature_names) != d:
            got = "a string" if isinstance(feature_names, str) else f"{len(feature_names)} names"
            what = "channel" if kind == "heatmap" else "feature"
            raise DataError(f"feature_names must give one name per {what} ({d}), got {got}")
        names = [str(f) for f in feature_names]
    else:
        names = [f"x[{i}]" for i in range(d)]

    if kind == "heatmap":
        n_steps = c.shape[0]
        fig = _new_figure((min(11.0, 4.0 + 0.02 * n_steps + 2.0), min(9.0, 1.6 + 0.28 * d)), dpi, constrained=True)
        ax = fig.add_subplot()
        vmin = min(0.0, float(c.min()))
        im = ax.imshow(
            c.T,
            aspect="auto",
            interpolation="nearest",
            origin="upper",
            cmap="RdBu_r" if vmin < 0 else "Reds",
            vmin=-float(np.abs(c).max()) if vmin < 0 else 0.0,
            vmax=float(np.abs(c).max()) if vmin < 0 else None,
            extent=(-0.5, n_steps - 0.5, d - 0.5, -0.5),
        )
        if d <= 40:
            totals = c.sum(axis=0)
            if np.all(c >= 0) and abs(float(c.sum()) - 1.0) < 0.05:  # shares: give each channel's total
                names = [f"{name} ({100 * tot:.0f}%)" for name, tot in zip(names, totals)]
            ax.set_yticks(range(d), names, fontsize=_SMALL_PT)
        ax.set_xlabel("time step")
        ax.set_ylabel("channel")
        fig.colorbar(im, ax=ax, label="share of reconstruction error", shrink=0.9)
        ax.set_title(title or f"Reconstruction-error contributions ({n_steps} steps x {d} channels)", fontsize=10)
        return _save_png(fig, path, dpi)

    n_samples = c.shape[0] if c.ndim == 2 else 1
    share = c.mean(axis=0) if c.ndim == 2 else c
    k = min(int(top), d)
    order = np.argsort(-share, kind="stable")[:k]
    total = float(share.sum())
    as_share = bool(np.all(share >= 0) and abs(total - 1.0) < 0.05)
    name_w = max(len(names[i]) for i in order)

    fig = _new_figure((max(6.4, 4.5 + 0.07 * name_w), 1.4 + 0.32 * k), dpi, constrained=True)
    ax = fig.add_subplot()
    ypos = np.arange(k)
    bars = ax.barh(ypos, share[order], color="C0", height=0.7)
    ax.set_yticks(ypos, [names[i] for i in order], fontsize=_SMALL_PT + 1)
    ax.invert_yaxis()  # largest at the top
    labels = [f"{100 * share[i]:.1f}%" if as_share else _fmt(float(share[i])) for i in order]
    ax.bar_label(bars, labels=labels, padding=3, fontsize=_SMALL_PT)
    lo = min(0.0, float(share[order].min()))
    hi = max(0.0, float(share[order].max()))
    ax.set_xlim(lo * 1.18 if lo < 0 else 0.0, hi * 1.18 if hi > 0 else 1.0)
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel("share of reconstruction error" if as_share else "contribution to reconstruction error")
    ax.grid(True, axis="x", alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    if k < d:
        rest = float(share[np.argsort(-share, kind="stable")[k:]].sum())
        rest_txt = f"{100 * rest:.1f}%" if as_share else _fmt(rest)
        ax.text(
            0.99,
            0.02,
            f"other {d - k} features: {rest_txt}",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=_SMALL_PT,
            color="0.35",
        )
    head = title or "Reconstruction-error contributions"
    if n_samples > 1:
        head += f"\n(mean over {n_samples:,} samples)"
    elif k < d:
        head += f" (top {k} of {d} features)"
    ax.set_title(head, fontsize=10)
    return _save_png(fig, path, dpi)
