"""Evaluating anomaly scores and alarms: point metrics, events, labelled windows and the NAB score.

Scores are *anomaly scores*: higher means more anomalous (e.g. reconstruction error); a point is
flagged when ``score > threshold``. Labels are 1 for anomalous, 0 for normal.

Point metrics (:func:`roc_auc`, :func:`average_precision`, :func:`best_f1`, :func:`binary_report`)
treat every point on its own. For series, :func:`find_events` groups flagged points into alarm
events, :func:`window_report` matches events to labelled anomaly windows, and :func:`nab_score`
scores alarms with the Numenta Anomaly Benchmark's rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aekit.errors import ConfigError, DataError, UnknownNameError

__all__ = [
    "NAB_PROFILES",
    "Event",
    "average_precision",
    "best_f1",
    "binary_report",
    "event_ids",
    "find_events",
    "nab_score",
    "roc_auc",
    "window_report",
]


# ----------------------------------------------------------------------------- input checks


def _check_scores(scores: Any, name: str = "scores") -> np.ndarray:
    """Return ``scores`` as a finite 1-D float64 array, or raise :class:`DataError`."""
    arr = np.asarray(scores)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of shape (n_samples,), got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty; need at least one score")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise DataError(f"{name} contains {bad} NaN/inf value(s) out of {arr.size}; drop or fix them first")
    return arr


def _check_labels(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D int array of 0/1 with ``n`` entries, or raise :class:`DataError`."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"{name} must have shape ({n},) to match the scores, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{name} must be 0/1 (or bool), got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        bad = np.unique(arr[(arr != 0) & (arr != 1)])[:5]
        raise DataError(f"{name} must contain only 0 (normal) and 1 (anomaly); found {bad.tolist()}")
    return arr.astype(np.int64)


def _check_flags(flags: Any, n: int | None = None, name: str = "flags") -> np.ndarray:
    """Return ``flags`` as a 1-D bool array (0/1 or bool accepted)."""
    arr = np.asarray(flags)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of shape (n_samples,), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{name} must have shape ({n},), got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or not np.all((arr == 0) | (arr == 1)):
            raise DataError(f"{name} must be bool or 0/1")
        arr = arr.astype(bool)
    return arr


def _check_windows(windows: Any, n: int, *, disjoint: bool = False) -> list[tuple[int, int]]:
    """Validate ``(start, end)`` windows (inclusive indices into a series of length ``n``)."""
    out = []
    for w in windows:
        try:
            start, end = (int(v) for v in w)
        except (TypeError, ValueError) as e:
            raise DataError(f"windows must be (start, end) pairs of integer indices, got {w!r}") from e
        if not 0 <= start <= end < n:
            raise DataError(f"window {w!r} must satisfy 0 <= start <= end < n={n} (end is inclusive)")
        out.append((start, end))
    if disjoint:
        out.sort()
        for (_, e0), (s1, _) in zip(out, out[1:]):
            if s1 <= e0:
                raise DataError(f"windows overlap ({e0} >= {s1}); NAB windows must be disjoint")
    return out


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n (the series length) must be a positive integer, got {n!r}")
    return int(n)


def _both_classes(y: np.ndarray, what: str) -> None:
    if y.min() == y.max():
        only = "anomalies (1)" if y[0] == 1 else "normal points (0)"
        raise DataError(f"{what} needs labels with both classes; got only {only}")


# ----------------------------------------------------------------------------- point metrics


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve of anomaly scores against 0/1 labels.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        1 for anomalies, 0 for normal points; both classes must be present.
    scores : ndarray of shape (n_samples,)
        Anomaly scores, higher = more anomalous.
    """
    from sklearn.metrics import roc_auc_score

    s = _check_scores(scores)
    y = _check_labels(labels, s.size)
    _both_classes(y, "roc_auc")
    return float(roc_auc_score(y, s))


def average_precision(labels: Any, scores: Any) -> float:
    """Average precision (area under the precision-recall curve, step-wise) with anomalies as positives.

    Needs at least one anomaly; its chance level is the anomaly rate, not 0.5.
    """
    from sklearn.metrics import average_precision_score

    s = _check_scores(scores)
    y = _check_labels(labels, s.size)
    if not y.any():
        raise DataError("average_precision needs at least one anomaly (label 1)")
    return float(average_precision_score(y, s))


def best_f1(labels: Any, scores: Any) -> dict:
    """The best F1 over all thresholds at the distinct scores.

    Returns
    -------
    dict
        ``{"f1", "precision", "recall", "threshold"}``; flagging ``scores > threshold`` gives that F1.
        ``threshold`` is the largest float just below the chosen score, so the rule is exact on this
        data. Among equally good thresholds the highest (fewest alarms) wins.
    """
    from sklearn.metrics import precision_recall_curve

    s = _check_scores(scores)
    y = _check_labels(labels, s.size)
    if not y.any():
        raise DataError("best_f1 needs at least one anomaly (label 1)")
    precision, recall, thr = precision_recall_curve(y, s)  # thr ascending; last P/R point has no threshold
    precision, recall = precision[:-1], recall[:-1]
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    i = int(np.flatnonzero(f1 == f1.max())[-1])
    return {
        "f1": float(f1[i]),
        "precision": float(precision[i]),
        "recall": float(recall[i]),
        "threshold": float(np.nextafter(thr[i], -np.inf)),  # score >= thr[i]  <=>  score > threshold
    }


def binary_report(labels: Any, flags: Any) -> dict:
    """Confusion counts and rates of 0/1 alarms against 0/1 labels.

    Anomalies are the positive class for ``precision``, ``recall`` and ``f1``; ``normal_precision`` and
    ``normal_recall`` treat normal points as positives, as the TensorFlow ECG autoencoder tutorial reports.
    A rate whose denominator is zero is reported as 0.0.
    """
    f = _check_flags(flags)
    y = _check_labels(labels, f.size).astype(bool)
    tp = int(np.count_nonzero(f & y))
    fp = int(np.count_nonzero(f & ~y))
    fn = int(np.count_nonzero(~f & y))
    tn = int(np.count_nonzero(~f & ~y))

    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0,
        "accuracy": ratio(tp + tn, f.size),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "normal_precision": ratio(tn, tn + fn),
        "normal_recall": ratio(tn, tn + fp),
    }


# ----------------------------------------------------------------------------- events


def _iso(t: Any) -> str:
    """ISO-8601 text for a timestamp (datetime, numpy datetime64, pandas Timestamp, or anything else)."""
    if isinstance(t, np.datetime64):
        t = t.astype("datetime64[us]").item()
    return t.isoformat() if hasattr(t, "isoformat") else str(t)


def _as_timedelta(d: Any) -> Any:
    if isinstance(d, np.timedelta64):
        return d.astype("timedelta64[us]").item()
    return d


@dataclass
class Event:
    """A run of flagged points (gaps of at most ``min_gap`` unflagged points merged in).

    ``start`` and ``end`` are inclusive indices; ``peak`` is the flagged point with the highest score;
    ``n_points`` counts flagged points only (merged gaps make ``end - start + 1`` larger).
    """

    start: int
    end: int
    peak: int
    peak_score: float
    n_points: int

    def to_dict(self, timestamps: Any = None) -> dict:
        """JSON-ready dict of indices; ``timestamps`` (one per point) adds ISO ``*_time`` keys for start/end/peak."""
        d = {
            "start": self.start,
            "end": self.end,
            "peak": self.peak,
            "peak_score": self.peak_score,
            "n_points": self.n_points,
        }
        if timestamps is not None:
            d["start_time"] = _iso(timestamps[self.start])
            d["end_time"] = _iso(timestamps[self.end])
            d["peak_time"] = _iso(timestamps[self.peak])
        return d


def find_events(flags: Any, scores: Any, *, min_gap: int = 0, min_length: int = 1) -> list[Event]:
    """Group flagged points into events.

    Parameters
    ----------
    flags : ndarray of shape (n,)
        Bool (or 0/1) alarm per point, e.g. ``scores > threshold.value``.
    scores : ndarray of shape (n,)
        Anomaly scores, used for each event's peak.
    min_gap : int, default 0
        Events separated by at most this many unflagged points are merged into one.
    min_length : int, default 1
        Events spanning fewer points (``end - start + 1``, after merging) are dropped.

    Returns
    -------
    list of Event, in time order.
    """
    s = _check_scores(scores)
    f = _check_flags(flags, s.size)
    if isinstance(min_gap, bool) or not isinstance(min_gap, (int, np.integer)) or min_gap < 0:
        raise ConfigError(f"min_gap must be an integer >= 0, got {min_gap!r}")
    if isinstance(min_length, bool) or not isinstance(min_length, (int, np.integer)) or min_length < 1:
        raise ConfigError(f"min_length must be an integer >= 1, got {min_length!r}")
    edges = np.diff(np.concatenate(([0], f.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1  # runs of flags, inclusive
    if starts.size == 0:
        return []
    keep = (starts[1:] - ends[:-1] - 1) > min_gap  # gap before run i+1 too long to merge -> new event
    starts = np.concatenate((starts[:1], starts[1:][keep]))
    ends = np.concatenate((ends[:-1][keep], ends[-1:]))
    masked = np.where(f, s, -np.inf)  # peaks come from flagged points only
    events = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        if b - a + 1 < min_length:
            continue
        peak = a + int(np.argmax(masked[a : b + 1]))
        events.append(Event(a, b, peak, float(s[peak]), int(np.count_nonzero(f[a : b + 1]))))
    return events


def event_ids(flags: Any, events: list[Event], n: int) -> np.ndarray:
    """Event number per point: ndarray of shape (n,), 1-based within each event's span, 0 elsewhere.

    Every point of an event's span gets its number, including unflagged points merged in by ``min_gap``.
    ``flags`` (shape (n,), as given to :func:`find_events`) is only checked for its length.
    """
    n = _check_n(n)
    if flags is not None:
        _check_flags(flags, n)
    ids = np.zeros(n, dtype=np.int64)
    for k, ev in enumerate(events, start=1):
        if not 0 <= ev.start <= ev.end < n:
            raise DataError(f"event {k} ({ev.start}..{ev.end}) does not fit a series of length {n}")
        ids[ev.start : ev.end + 1] = k
    return ids


def window_report(
    events: list[Event],
    windows: list[tuple[int, int]],
    n: int,
    *,
    timestamps: Any = None,
    step: Any = None,
) -> dict:
    """Match alarm events to labelled anomaly windows (a NAB-style, event-level view).

    Parameters
    ----------
    events : list of Event
        From :func:`find_events`.
    windows : list of (start, end)
        Labelled anomaly windows as inclusive indices.
    n : int
        Series length.
    timestamps : sequence of length n, optional
        Datetimes per point; adds ISO times and ``lead_time`` (a timedelta string).
    step : timedelta or numpy timedelta64, optional
        Time between points, used for ``lead_time`` when ``timestamps`` is not given.

    Returns
    -------
    dict
        ``windows``: one dict per window with ``start``, ``end``, ``hit``, ``event`` (1-based number of the
        first overlapping event or None), ``first_detection`` (first index inside the window covered by an
        event, or None), ``lead`` (``end - first_detection`` in points: how long before the window closed the
        alarm came; None when missed) and ``lead_time`` when times are known. ``false_alarms``: dicts of the
        events that overlap no window (with their 1-based ``event`` number). Totals: ``windows_hit``,
        ``windows_missed``, ``false_alarm_events``, ``n_events``.
    """
    n = _check_n(n)
    wins = _check_windows(windows, n)
    if timestamps is not None and len(timestamps) != n:
        raise DataError(f"timestamps must have length n={n}, got {len(timestamps)}")
    for k, ev in enumerate(events, start=1):
        if not 0 <= ev.start <= ev.end < n:
            raise DataError(f"event {k} ({ev.start}..{ev.end}) does not fit a series of length {n}")
    used = np.zeros(len(events), dtype=bool)
    rows = []
    for start, end in wins:
        row: dict[str, Any] = {
            "start": start,
            "end": end,
            "hit": False,
            "event": None,
            "first_detection": None,
            "lead": None,
        }
        for k, ev in enumerate(events):
            if ev.start <= end and ev.end >= start:  # overlaps
                used[k] = True
                if row["event"] is None:
                    first = max(ev.start, start)
                    row.update(hit=True, event=k + 1, first_detection=first, lead=end - first)
        if timestamps is not None:
            row["start_time"], row["end_time"] = _iso(timestamps[start]), _iso(timestamps[end])
            if row["hit"]:
                row["first_detection_time"] = _iso(timestamps[row["first_detection"]])
                row["lead_time"] = str(_as_timedelta(timestamps[end] - timestamps[row["first_detection"]]))
        elif step is not None and row["hit"]:
            row["lead_time"] = str(_as_timedelta(step) * row["lead"])
        rows.append(row)
    false_alarms = [{"event": k + 1, **ev.to_dict(timestamps)} for k, ev in enumerate(events) if not used[k]]
    hit = sum(r["hit"] for r in rows)
    return {
        "windows": rows,
        "false_alarms": false_alarms,
        "windows_hit": hit,
        "windows_missed": len(rows) - hit,
        "false_alarm_events": len(false_alarms),
        "n_events": len(events),
    }


# ----------------------------------------------------------------------------- NAB


NAB_PROFILES: dict[str, dict[str, float]] = {
    # Weights as in numenta/NAB config/profiles.json (A_FP is applied with a minus sign below).
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}


def _scaled_sigmoid(y: float) -> float:
    """NAB's sigma(y) = 2 / (1 + exp(5 y)) - 1, with sigma = -1 for y > 3 (far past a window)."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def nab_score(
    detections: Any,
    windows: list[tuple[int, int]],
    n: int,
    *,
    profile: str = "standard",
    probation: float = 0.15,
) -> dict:
    """Score alarms on one series with the Numenta Anomaly Benchmark (NAB) rules.

    Parameters
    ----------
    detections : ndarray of int indices, or bool ndarray of shape (n,)
        Points where the detector raised an alarm. NAB itself counts *every* point whose score crosses
        the threshold; pass the first point of each event instead to score one alarm per event.
    windows : list of (start, end)
        Labelled anomaly windows as inclusive indices; disjoint.
    n : int
        Series length.
    profile : {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
        Weights (A_TP, A_FP, A_FN): standard (1, 0.11, 1), reward_low_FP_rate (1, 0.22, 1),
        reward_low_FN_rate (1, 0.11, 2). NAB writes A_FP = -0.11; here it is a positive weight on a
        negative sigma.
    probation : float, default 0.15
        NAB's probationary fraction: detections before ``min(floor(probation * n), probation * 5000)``
        are ignored (the detector is still learning). Pass 0 to score every point.

    Returns
    -------
    dict
        ``raw``: the file's NAB score, ``normalized``: ``100 * (raw - null) / (perfect - null)`` (None when
        there are no windows), ``tp``: windows detected, ``fn``: windows missed, ``fp``: detections outside
        every window, ``tp_points``: detections inside windows (all of them, as NAB's ``TP`` column counts),
        ``null``: the score with no detections (``-A_FN * n_windows``), ``perfect``: every window detected at
        its first point with no false positives (``A_TP * n_windows``).

    Notes
    -----
    Following numenta/NAB ``nab/scorer.py`` (v1.0+, which ``nab/sweeper.py`` reproduces), with
    sigma(y) = 2 / (1 + exp(5 y)) - 1 (and -1 for y > 3):

    * A window of L points (start s, end e) is a TP if it holds a detection; only the first one, at
      index i, counts: y = -(e - i + 1) / L, so y = -1 at the window's first point and -1/L at its last;
      the window scores ``A_TP * sigma(y) / sigma(-1)`` (exactly A_TP at the start, about
      ``A_TP * 5 / (2 L * 0.9866)`` at the end). Later detections in the same window score nothing.
    * A window with no detection scores ``-A_FN``.
    * A detection outside every window is an FP. Before the first window it scores ``-A_FP`` (full weight).
      After a window ending at e with length L it scores ``A_FP * sigma(y)``, y = (i - e) / (L - 1): near 0
      (mild) right after the window, about -A_FP from ``3 (L - 1)`` points on.
    * ``raw`` is the sum over windows and FPs. This is the same concept as NAB's per-file ``Score`` column
      (``<detector>_<profile>_scores.csv``), before normalisation - e.g. HTM's 1.36 on
      ``machine_temperature_system_failure`` (4 windows; its 5 TP / 5 FP there count *points*).

    Deviations from NAB: NAB normalises the *corpus* total, ``100 (S - S_null) / (S_perfect - S_null)``
    summed over files; ``normalized`` here applies the same formula to one series. A window of one
    point (NAB divides by ``L - 1 = 0`` for later FPs) uses ``L - 1 = 1``. Windows that end before the
    probationary period are left out (NAB's labels never have any; NAB would count them as misses).
    ``tp``/``fn`` count windows, not points.
    """
    n = _check_n(n)
    if profile not in NAB_PROFILES:
        raise UnknownNameError(f"unknown NAB profile {profile!r}; choose one of {sorted(NAB_PROFILES)}")
    if not 0.0 <= float(probation) < 1.0:
        raise ConfigError(f"probation must be in [0, 1), got {probation!r}")
    w = NAB_PROFILES[profile]
    det = np.asarray(detections)
    if det.dtype == bool:
        det = np.flatnonzero(_check_flags(det, n, "detections"))
    else:
        det = det.reshape(-1)
        if det.size and not np.issubdtype(det.dtype, np.integer):
            if not np.all(np.mod(det, 1) == 0):
                raise DataError("detections must be integer indices (or a bool array of shape (n,))")
            det = det.astype(np.int64)
        if det.size and (det.min() < 0 or det.max() >= n):
            raise DataError(f"detections must be indices in [0, {n}), got range [{det.min()}, {det.max()}]")
    probation_len = min(math.floor(probation * n), probation * 5000)
    det = np.unique(det)
    det = det[det >= probation_len]
    wins = [(s, e) for s, e in _check_windows(windows, n, disjoint=True) if e >= probation_len]

    max_tp = _scaled_sigmoid(-1.0)
    tp = fn = tp_points = 0
    raw = 0.0
    in_window = np.zeros(det.size, dtype=bool)
    for s, e in wins:
        inside = (det >= s) & (det <= e)
        in_window |= inside
        if inside.any():
            first = int(det[inside][0])
            length = e - s + 1
            raw += w["tp"] * _scaled_sigmoid(-(e - first + 1) / length) / max_tp
            tp += 1
            tp_points += int(inside.sum())
        else:
            raw -= w["fn"]
            fn += 1
    ends = np.array([e for _, e in wins], dtype=np.int64)
    lengths = np.array([e - s + 1 for s, e in wins], dtype=np.int64)
    fp = 0
    for i in det[~in_window].tolist():
        fp += 1
        k = int(np.searchsorted(ends, i, side="left")) - 1  # last window ending before i
        if k < 0:
            raw -= w["fp"]
        else:
            y = (i - ends[k]) / max(int(lengths[k]) - 1, 1)
            raw += w["fp"] * _scaled_sigmoid(float(y))
    null = -w["fn"] * len(wins)
    perfect = w["tp"] * len(wins)
    normalized = 100.0 * (raw - null) / (perfect - null) if wins else None
    return {
        "raw": float(raw),
        "normalized": None if normalized is None else float(normalized),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tp_points": tp_points,
        "null": float(null),
        "perfect": float(perfect),
        "profile": profile,
        "probation": int(math.ceil(probation_len)),
    }
