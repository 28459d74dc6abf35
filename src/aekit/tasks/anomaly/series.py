"""SeriesAnomalyDetector: one or many sensor channels over time, scored per time step.

The series is standardised per channel (on the training part), cut into sliding windows of
``window`` steps, and each window reconstructed by an autoencoder. A window's squared error at each
of its steps is averaged over channels; a time step's anomaly score is the mean of those per-step
errors over all windows that cover it (``point_score="mean"``, centred, final ``window - 1`` steps
later) or the mean error of the window that ends at it (``"last"``, causal, final at once).
Flagged steps (score above the calibrated threshold) are grouped into events.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin

from ..._utils import atomic_path, seed_everything
from ...data.noise import parse_corruption
from ...data.series import Series, as_series, check_window, read_series_csv
from ...errors import ConfigError, DataError, ModelFileError, NotFittedError
from ...models import load_weights, model_from_meta, model_meta
from ...training import TrainConfig, Trainer
from ..embedder import _varies
from ..registry import register_kind
from .detector import (
    _ThresholdMixin,
    build_detector_model,
    check_labels,
    check_threshold_params,
    resolve_model_name,
)
from .evaluation import Event, event_ids, find_events
from .long_series import LongSeries
from .thresholds import Threshold, fit_threshold

POINT_SCORES = ("mean", "last")
DAY = np.timedelta64(86400, "s")


@dataclass
class SeriesResult:
    """What :meth:`SeriesAnomalyDetector.detect` finds in a series.

    ``scores`` (n,) anomaly score per time step (higher = more anomalous); ``flags`` (n,) bool;
    ``events`` runs of flagged steps; ``event`` (n,) 1-based event number per step (0 outside);
    ``gap`` (n,) steps filled in over a gap longer than ``max_gap`` (never flagged).
    """

    timestamps: np.ndarray | None
    values: np.ndarray
    columns: list[str]
    scores: np.ndarray
    threshold: float
    flags: np.ndarray
    gap: np.ndarray
    events: list[Event] = field(default_factory=list)

    @property
    def event(self) -> np.ndarray:
        return event_ids(self.flags, self.events, len(self.scores))

    def events_table(self) -> list[dict[str, Any]]:
        """One dict per event: start, end, peak (timestamps when known), peak score, length."""
        return [e.to_dict(self.timestamps) for e in self.events]

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write ``timestamp`` (or ``row``), ``score``, ``flag`` (1 = anomalous), ``event``, ``gap``."""
        path = Path(path)
        ev = self.event
        first = "timestamp" if self.timestamps is not None else "row"
        if self.timestamps is None:
            keys = np.arange(len(self.scores))
        elif np.issubdtype(self.timestamps.dtype, np.datetime64):
            keys = np.datetime_as_string(self.timestamps, unit="s")
        else:
            keys = self.timestamps
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([first, "score", "flag", "event", "gap"])
            for k, s, fl, e, g in zip(keys, self.scores, self.flags, ev, self.gap):
                w.writerow([str(k).replace("T", " "), f"{s:.6g}", int(fl), int(e), int(g)])
        return path


@register_kind("series_anomaly_detector")
class SeriesAnomalyDetector(_ThresholdMixin, OutlierMixin, BaseEstimator):
    """Anomalies in sensor streams: score every time step, flag, and group flags into events.

    Parameters
    ----------
    model : str, default "auto"
        ``"dense"`` (a window flattened; the default), ``"conv1d"``, ``"lstm"`` / ``"gru"`` (the
        seq2seq autoencoder), or a registered name taking ``(window, channels)`` inputs.
    window : int, default 64
        Steps per window; checked against the series length at fit and at scoring time.
    stride : int or "auto"
        Step between training windows ("auto": 1, or more to keep about 50,000 windows).
        Scoring always slides by one step, so every time step gets a score.
    point_score : {"mean", "last"}
        "mean": a step's score is its error averaged over every window covering it (final
        ``window - 1`` steps later); "last": the mean error of the window ending at the step
        (causal: the streaming scorer reports it at once).
    smooth : int or "auto", default "auto"
        Average each step's score with the ``smooth - 1`` steps before it (a trailing moving
        average): isolated one-step blips fade, sustained faults stay; thresholds are
        calibrated on the smoothed scores. ``"auto"``: four windows (256 steps for the default
        window; on NAB this cut false alarms from 214 to about 25, benchmarks/nab.py). It delays
        alarms: use 1 for instantaneous spikes.
    threshold : str, default "fpr:0.001"
        ``"fpr:Q"`` (a share Q of normal time steps may raise alarms), ``"alarms_per_day:A"``
        (needs timestamps), ``"f1"`` (needs labels ``y`` in ``fit``), ``"quantile:P"``,
        ``"std:K"``, ``"value:V"``. Calibrated on the last ``val_fraction`` of the series.
    contamination : float, optional
        Known anomalous share of the training series (overrides ``threshold``).
    max_gap : int, default 3
        Missing steps up to this run length are interpolated silently; longer runs are filled
        but marked ``gap`` and never flagged.
    freq : str or None, default "auto"
        Sampling step of timestamped data ("auto": the median step; "5min", "1s", ...).
    min_event_gap : int or "auto", default "auto"
        Flagged runs separated by at most this many unflagged steps form one event
        (``"auto"``: half a window).
    Training parameters (hidden, latent_dim, epochs, steps, batch_size, lr, weight_decay,
    noise, val_fraction, patience, seed, device, threads, verbose) as
    :class:`aekit.tasks.anomaly.AnomalyDetector`.

    Data may be a CSV path (``timestamp,value[,value...]``), a :class:`aekit.data.series.Series`,
    or an array ``(n,)`` / ``(n, channels)`` with optional ``timestamps``.

    Attributes
    ----------
    threshold_, offset_, model_, history_, columns_, step_, center_, scale_
    """

    def __init__(
        self,
        model: str = "auto",
        *,
        window: int = 64,
        stride: int | str = "auto",
        preset: str | None = None,
        hidden: tuple[int, ...] | None = None,
        latent_dim: int | None = None,
        model_options: dict[str, Any] | None = None,
        epochs: int | str = "auto",
        steps: int = 3000,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        noise: str | None = None,
        point_score: str = "mean",
        smooth: int | str = "auto",
        threshold: str = "fpr:0.001",
        contamination: float | None = None,
        val_fraction: float = 0.2,
        max_gap: int = 3,
        freq: str | None = "auto",
        min_event_gap: int | str = "auto",
        patience: int | None = None,
        seed: int = 0,
        device: str = "auto",
        threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.window = window
        self.stride = stride
        self.preset = preset
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.model_options = model_options
        self.epochs = epochs
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.noise = noise
        self.point_score = point_score
        self.smooth = smooth
        self.threshold = threshold
        self.contamination = contamination
        self.val_fraction = val_fraction
        self.max_gap = max_gap
        self.freq = freq
        self.min_event_gap = min_event_gap
        self.patience = patience
        self.seed = seed
        self.device = device
        self.threads = threads
        self.verbose = verbose

    # -- input ---------------------------------------------------------------------------------
    def _series(self, X, timestamps=None, *, fitting: bool = False) -> Series:
        kw = dict(max_gap=self.max_gap, freq=self.freq if fitting else getattr(self, "freq_", self.freq))
        if isinstance(X, Series):
            s = X
        elif isinstance(X, (str, os.PathLike)):
            s = read_series_csv(X, **kw)
        else:
            if not fitting and timestamps is None and getattr(self, "step_", None) is not None:
                raise DataError("the detector was trained on a series with timestamps; pass timestamps= too")
            if isinstance(X, np.ndarray) and X.dtype == object:
                raise DataError("X must be numeric (n,) or (n, channels); got an object array")
            columns = None
            if not fitting:
                self._check_fitted()
                arr = np.asarray(X)
                n_ch = arr.shape[1] if arr.ndim == 2 else 1
                if arr.ndim <= 2 and n_ch != len(self.columns_):
                    raise DataError(
                        f"the series has {n_ch} channels but the detector was trained on {len(self.columns_)}: "
                        f"{self.columns_}; pass the same channels in the same order"
                    )
                columns = list(self.columns_)
            s = as_series(X, timestamps, columns=columns, **kw)
        if not fitting:
            self._check_fitted()
            if s.values.shape[1] != len(self.columns_):
                raise DataError(
                    f"the series has {s.values.shape[1]} channels {s.columns} but the detector was trained on "
                    f"{len(self.columns_)}: {self.columns_}; pass the same columns"
                )
            if list(s.columns) != list(self.columns_) and not (_generic(s.columns) or _generic(self.columns_)):
                raise DataError(
                    f"the series has columns {s.columns} but the detector was trained on {self.columns_}; "
                    "pass the same columns in the same order"
                )
            if _timed(s) != (self.step_ is not None):
                had = "with" if self.step_ is not None else "without"
                raise DataError(f"the detector was trained on a series {had} timestamps; score one {had} them too")
        return s

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(series) first")

    def _check_params(self) -> None:
        if self.point_score not in POINT_SCORES:
            raise ConfigError(f"point_score must be one of {POINT_SCORES}, got {self.point_score!r}")
        if not (isinstance(self.window, (int, np.integer)) and self.window >= 2):
            raise ConfigError(f"window must be an integer >= 2, got {self.window!r}")
        if not (self.stride == "auto" or isinstance(self.stride, (int, np.integer)) and self.stride >= 1):
            raise ConfigError(f"stride must be a positive integer or 'auto', got {self.stride!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not (self.smooth == "auto" or isinstance(self.smooth, (int, np.integer)) and self.smooth >= 1):
            raise ConfigError(f"smooth must be an integer >= 1 (1: no smoothing) or 'auto', got {self.smooth!r}")
        gap = self.min_event_gap
        if not (gap == "auto" or isinstance(gap, (int, np.integer)) and gap >= 0):
            raise ConfigError(f"min_event_gap must be an integer >= 0 or 'auto', got {self.min_event_gap!r}")

    @property
    def smooth_steps_(self) -> int:
        """The trailing-mean length in steps (``smooth``, with "auto" resolved)."""
        return 4 * int(self.window) if self.smooth == "auto" else int(self.smooth)

    @property
    def event_gap_steps_(self) -> int:
        """The event-merging gap in steps (``min_event_gap``, with "auto" resolved)."""
        return int(self.window) // 2 if self.min_event_gap == "auto" else int(self.min_event_gap)

    # -- model -----------------------------------------------------------------------------------
    def _model_name(self) -> tuple[str, dict[str, Any]]:
        return ("dense_ae", {}) if self.model == "auto" else resolve_model_name(self.model)

    def _build_model(self, n_channels: int) -> torch.nn.Module:
        name, fixed = self._model_name()
        return build_detector_model(
            name, (int(self.window), int(n_channels)), fixed=fixed, preset=self.preset, hidden=self.hidden,
            latent_dim=self.latent_dim, model_options=self.model_options, quiet_overcomplete=bool(self.noise),
        )

    # -- fit ---------------------------------------------------------------------------------------
    def fit(self, X, y=None, *, timestamps=None):
        """Train on a (mostly normal) series and calibrate the threshold on its last part.

        Parameters
        ----------
        X : CSV path, Series, or ndarray (n,) / (n, channels)
        y : ndarray (n,), optional
            0/1 labels per time step (1 = anomalous): windows touching a labelled step are left
            out of training, and the labels are used by ``threshold="f1"``.
        timestamps : array of datetime64 (n,), optional (arrays only)

        Returns
        -------
        self
        """
        self._check_params()
        spec = check_threshold_params(self.threshold, self.contamination)
        if isinstance(X, LongSeries):
            return self._fit_long(X, y, spec)
        s = self._series(X, timestamps, fitting=True)
        labels = check_labels(y, len(s.values)) if y is not None else None
        if labels is not None and len(labels) != s.n:
            raise DataError(f"y has {len(labels)} labels but the series has {s.n} steps after regularising")
        W = int(self.window)
        n = s.n
        n_cal = int(round(n * self.val_fraction))
        if n_cal and n_cal < W:
            n_cal = min(W, n - W) if n - W >= W else 0  # a calibration part needs at least one window
        n_train = n - n_cal
        check_window(n_train, W, 1, what="training part of the series")
        self.columns_ = list(s.columns)
        self.step_ = s.step if _timed(s) else None
        self.freq_ = self.freq if self.step_ is None else _step_to_freq(self.step_)
        # per-channel standardisation on the training part; constant channels keep scale 1
        train_vals = s.values[:n_train].astype(np.float64)
        center, std = train_vals.mean(0), train_vals.std(0)
        varies = _varies(std, center)
        self.center_ = center.astype(np.float32)
        self.constant_channels_ = [c for c, v in zip(self.columns_, varies) if not v]
        self.scale_ = np.where(varies, std, 1.0).astype(np.float32)
        Z = self._scale(s.values)

        stride = self._train_stride(n_train)
        starts = np.arange(0, n_train - W + 1, stride)
        if labels is not None and labels[:n_train].any():
            bad = np.convolve(labels[:n_train], np.ones(W, int), mode="valid")[: n_train - W + 1] > 0
            starts = starts[~bad[starts]]
            if len(starts) == 0:
                raise DataError("every training window touches a labelled anomaly: nothing normal to learn from")
        windows = np.lib.stride_tricks.sliding_window_view(Z[:n_train], W, axis=0)  # (m, C, W)
        train = np.ascontiguousarray(windows[starts].transpose(0, 2, 1))  # (m, W, C)

        seed_everything(self.seed)
        model = self._build_model(Z.shape[1])
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(train))
        n_val = int(len(train) * 0.1) if self.patience and len(train) >= 50 else 0
        config = self._train_config(self._epochs(len(train) - n_val))
        t = torch.from_numpy(train)
        tr, va = torch.from_numpy(order[n_val:]), torch.from_numpy(order[:n_val])
        val = (t[va], t[va]) if n_val else None
        self.history_ = Trainer(config, corruption=parse_corruption(self.noise)).fit(model, (t[tr], t[tr]), val).records
        self.model_ = model.cpu().eval()
        self.n_train_windows_ = int(len(train))

        # calibration on the held-out end of the series (scored in context, like new data)
        scores, _ = self._point_scores(Z)
        gap = s.gap
        if spec.startswith("contamination"):
            sel = np.arange(n_train)
        elif n_cal:
            sel = np.arange(n_train, n)
        else:
            sel = np.arange(n_train)
        sel = sel[~gap[sel]]
        points_per_day = float(DAY / self.step_) if self.step_ is not None else None
        th = fit_threshold(spec, scores[sel], labels=labels[sel] if labels is not None else None,
                           points_per_day=points_per_day)
        where = "held-out end of the series" if n_cal and not spec.startswith("contamination") else "training part"
        self._set_threshold(Threshold(th.method, th.value, th.spec, {**th.details, "calibrated_on": where}))
        self.n_train_points_, self.n_calibration_points_ = int(n_train), int(n - n_train)
        train_rate = float((scores[:n_train] > th.value).mean())
        self.train_flag_rate_ = train_rate
        budget = th.details.get("target_fpr") if th.method in ("fpr", "alarms_per_day") else None
        if budget is not None and train_rate > max(10 * float(budget), 0.1):
            warnings.warn(
                f"{train_rate:.1%} of the training time steps score above the threshold (budget {budget:g}): the "
                "training period may be mostly anomalous or unlike the calibration period",
                UserWarning,
                stacklevel=2,
            )
        return self

    def _fit_long(self, X: LongSeries, y, spec: str):
        """``fit`` on a series on disk: chunked statistics, windows read per batch, block scores."""
        from .long_series import _chunked_moments, raw_point_scores, training_windows

        if y is not None:
            raise ConfigError("labels (y) are not supported with a LongSeries yet; fit on normal data")
        W, n = int(self.window), X.n
        n_cal = int(round(n * self.val_fraction))
        if n_cal and n_cal < W:
            n_cal = min(W, n - W) if n - W >= W else 0
        n_train = n - n_cal
        check_window(n_train, W, 1, what="training part of the series")
        self.columns_, self.step_, self.freq_ = list(X.columns), None, None
        center, std = _chunked_moments(X, 0, n_train)
        varies = _varies(std, center)
        self.center_ = center.astype(np.float32)
        self.constant_channels_ = [c for c, v in zip(self.columns_, varies, strict=True) if not v]
        self.scale_ = np.where(varies, std, 1.0).astype(np.float32)
        starts = np.arange(0, n_train - W + 1, self._train_stride(n_train))
        seed_everything(self.seed)
        model = self._build_model(X.n_channels)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(starts))
        n_val = int(len(starts) * 0.1) if self.patience and len(starts) >= 50 else 0
        epochs = self._epochs(len(starts) - n_val)
        config = self._train_config(epochs)
        train = training_windows(self, X, n_train, starts[order[n_val:]])
        val = None
        if n_val:
            v = training_windows(self, X, n_train, starts[order[:n_val]]).__getitems__(range(n_val))
            val = (v, v)
        self.history_ = Trainer(config, corruption=parse_corruption(self.noise)).fit(model, train, val).records
        self.model_ = model.cpu().eval()
        self.n_train_windows_ = int(len(starts))
        scores = trailing_mean(raw_point_scores(self, X), self.smooth_steps_)
        sel = np.arange(n_train) if spec.startswith("contamination") or not n_cal else np.arange(n_train, n)
        th = fit_threshold(spec, scores[sel], labels=None, points_per_day=None)
        where = "held-out end of the series" if n_cal and not spec.startswith("contamination") else "training part"
        self._set_threshold(Threshold(th.method, th.value, th.spec, {**th.details, "calibrated_on": where}))
        self.n_train_points_, self.n_calibration_points_ = int(n_train), int(n - n_train)
        self.train_flag_rate_ = float((scores[:n_train] > th.value).mean())
        return self

    def _epochs(self, n_windows: int) -> int:
        per_epoch = max(1, math.ceil(n_windows / self.batch_size))
        epochs = self.epochs
        if epochs == "auto":
            epochs = int(min(300, max(5, math.ceil(self.steps / per_epoch))))
        if not (isinstance(epochs, int) and epochs >= 1):
            raise ConfigError(f"epochs must be a positive integer or 'auto', got {self.epochs!r}")
        return epochs

    def _train_config(self, epochs: int) -> TrainConfig:
        return TrainConfig(
            epochs=epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            optimizer="adamw" if self.weight_decay else "adam", seed=self.seed, device=self.device,
            threads=self.threads, patience=self.patience, progress=None if self.verbose else False,
        )

    def _check_long(self, X: LongSeries) -> None:
        self._check_fitted()
        if X.n_channels != len(self.columns_):
            raise DataError(
                f"the series has {X.n_channels} channels {X.columns} but the detector was trained on "
                f"{len(self.columns_)}: {self.columns_}; pass the same columns"
            )
        if self.step_ is not None:
            raise DataError("the detector was trained on a series with timestamps; a LongSeries has none")

    def _train_stride(self, n_train: int) -> int:
        if self.stride != "auto":
            return int(self.stride)
        return max(1, math.ceil((n_train - int(self.window) + 1) / 50_000))

    def _scale(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((values - self.center_) / self.scale_, dtype=np.float32)

    # -- scoring -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def _window_errors(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-step (m, W) and per-step-per-channel (m, W, C) squared errors of windows (m, W, C)."""
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        p = next(self.model_.parameters())
        r = self.model_.reconstruct(x.to(p.device)).float().cpu()
        e = (r - x).pow(2)
        return e.mean(2).numpy(), e.numpy()

    def _point_scores(self, Z: np.ndarray, *, per_channel: bool = False, chunk: int = 4096):
        """Per-step scores (n,) of a scaled series Z (n, C), and (n, C) channel errors if asked."""
        self.model_.eval()
        n, C = Z.shape
        W = int(self.window)
        check_window(n, W, 1, what="series")
        view = np.lib.stride_tricks.sliding_window_view(Z, W, axis=0)  # (m, C, W), zero-copy
        m = n - W + 1
        sums = np.zeros(n, np.float64)
        chan = np.zeros((n, C), np.float64) if per_channel else None
        last = np.zeros(m, np.float64)
        for s0 in range(0, m, chunk):
            s1 = min(m, s0 + chunk)
            e, ec = self._window_errors(view[s0:s1].transpose(0, 2, 1))
            last[s0:s1] = e.mean(1)
            if self.point_score == "mean":
                for j in range(W):
                    sums[s0 + j : s1 + j] += e[:, j]
                    if per_channel:
                        chan[s0 + j : s1 + j] += ec[:, j]
            elif per_channel:
                chan[s0 + W - 1 : s1 + W - 1] = ec.mean(1)
        if self.point_score == "mean":
            counts = _coverage(n, W)
            scores = sums / counts
            if per_channel:
                chan /= counts[:, None]
        else:
            scores = np.empty(n, np.float64)
            scores[W - 1 :] = last
            scores[: W - 1] = last[0]
            if per_channel:
                chan[: W - 1] = chan[W - 1]
        return trailing_mean(scores, self.smooth_steps_), chan

    def anomaly_score(self, X, *, timestamps=None) -> np.ndarray:
        """Anomaly score per time step, shape (n,): *higher = more anomalous*."""
        if isinstance(X, LongSeries):
            from .long_series import raw_point_scores

            self._check_long(X)
            return trailing_mean(raw_point_scores(self, X), self.smooth_steps_)
        s = self._series(X, timestamps)
        return self._point_scores(self._scale(s.values))[0]

    def predict(self, X, *, timestamps=None) -> np.ndarray:
        """Per time step: 1 normal, -1 anomalous (score above the threshold, outside long gaps)."""
        r = self.detect(X, timestamps=timestamps)
        return np.where(r.flags, -1, 1)

    def detect(self, X, *, timestamps=None) -> SeriesResult:
        """Score, flag and group into events: a :class:`SeriesResult` (``to_csv`` writes it).

        For a :class:`LongSeries` the result holds no readings (``values`` has no columns).
        """
        if isinstance(X, LongSeries):
            scores = self.anomaly_score(X)
            flags = scores > self.threshold_.value
            events = find_events(flags, scores, min_gap=self.event_gap_steps_)
            return SeriesResult(None, np.zeros((X.n, 0), np.float32), list(X.columns), scores,
                                float(self.threshold_.value), flags, np.zeros(X.n, bool), events)
        s = self._series(X, timestamps)
        scores, _ = self._point_scores(self._scale(s.values))
        flags = (scores > self.threshold_.value) & ~s.gap
        events = find_events(flags, scores, min_gap=self.event_gap_steps_)
        return SeriesResult(s.timestamps, s.values, list(s.columns), scores, float(self.threshold_.value), flags,
                            s.gap.copy(), events)

    def explain(self, X, *, timestamps=None) -> np.ndarray:
        """Each channel's share of each time step's reconstruction error: (n, channels), rows sum to 1.

        The per-time-step view is :meth:`anomaly_score` itself.
        """
        s = self._series(X, timestamps)
        _, chan = self._point_scores(self._scale(s.values), per_channel=True)
        total = chan.sum(1, keepdims=True)
        return np.where(total > 0, chan / np.where(total > 0, total, 1), 1.0 / chan.shape[1])

    def fit_predict(self, X, y=None, **kw) -> np.ndarray:
        return self.fit(X, y, **kw).predict(X, **kw)

    def score(self, X, y=None) -> float:  # noqa: D102
        return float(self.score_samples(X).mean())

    def stream(self) -> SeriesStream:
        """A streaming scorer (:class:`SeriesStream`) with this detector's model and threshold."""
        self._check_fitted()
        return SeriesStream(self)

    # -- persistence -------------------------------------------------------------------------------
    def _aekit_state(self):
        self._check_fitted()
        meta = model_meta(self.model_)
        params = self.get_params()
        if isinstance(params.get("hidden"), tuple):
            params["hidden"] = list(params["hidden"])
        meta["params"] = params
        meta["fitted"] = {
            "columns": self.columns_,
            "step_seconds": None if self.step_ is None else float(self.step_ / np.timedelta64(1, "s")),
            "freq": self.freq_,
            "threshold": self.threshold_.to_dict(),
            "constant_channels": self.constant_channels_,
            "n_train_points": self.n_train_points_,
            "n_calibration_points": self.n_calibration_points_,
            "n_train_windows": self.n_train_windows_,
            "train_flag_rate": self.train_flag_rate_,
            "history": self.history_,
        }
        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        tensors["scale.center"] = torch.from_numpy(self.center_)
        tensors["scale.factor"] = torch.from_numpy(self.scale_)
        return meta, tensors

    @classmethod
    def _aekit_from_state(cls, doc, tensors, *, where: str):
        try:
            params = dict(doc["params"])
            if isinstance(params.get("hidden"), list):
                params["hidden"] = tuple(params["hidden"])
            est = cls(**params)
            fitted = doc["fitted"]
            est.columns_ = list(fitted["columns"])
            sec = fitted["step_seconds"]
            est.step_ = None if sec is None else np.timedelta64(int(round(sec * 1e9)), "ns")
            est.freq_ = fitted["freq"]
            est._set_threshold(Threshold.from_dict(fitted["threshold"]))
            est.constant_channels_ = fitted.get("constant_channels", [])
            est.n_train_points_ = fitted["n_train_points"]
            est.n_calibration_points_ = fitted["n_calibration_points"]
            est.n_train_windows_ = fitted.get("n_train_windows", 0)
            est.train_flag_rate_ = fitted.get("train_flag_rate")
            est.history_ = fitted.get("history", [])
            est.center_ = tensors["scale.center"].numpy()
            est.scale_ = tensors["scale.factor"].numpy()
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{where}: aekit.json lacks or mangles {err} for a {cls.__name__}") from err
        est.model_ = load_weights(model_from_meta(doc, where), tensors, where).eval()
        if tuple(est.model_.input_shape) != (int(est.window), len(est.columns_)):
            raise ModelFileError(f"{where}: the model's input shape does not match window x channels")
        return est


def _generic(columns: list[str]) -> bool:
    """Column names made up for an unnamed array (x0, x1, ...): any names may stand in for them."""
    return list(columns) == [f"x{i}" for i in range(len(columns))]


def trailing_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``x[t-k+1 .. t]`` for each t (fewer values at the start), shape of x."""
    if k <= 1:
        return x
    c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    i = np.arange(len(x))
    lo = np.maximum(0, i - k + 1)
    return (c[i + 1] - c[lo]) / (i + 1 - lo)


def _timed(s: Series) -> bool:
    """Whether the series has datetime timestamps on a regular grid (numeric positions do not count)."""
    return s.timestamps is not None and np.issubdtype(s.timestamps.dtype, np.datetime64) and s.step is not None


def _coverage(n: int, W: int) -> np.ndarray:
    """How many stride-1 windows of length W cover each of n steps."""
    t = np.arange(n)
    m = n - W + 1
    return (np.minimum(t, m - 1) - np.maximum(0, t - W + 1) + 1).astype(np.float64)


def _step_to_freq(step: np.timedelta64) -> str:
    sec = step / np.timedelta64(1, "s")
    if sec == int(sec):
        return f"{int(sec)}s"
    return f"{int(round(sec * 1000))}ms"


class SeriesStream:
    """Score a live series one reading (or a block of readings) at a time, with bounded memory.

    ``update(timestamp, values)`` takes one reading (``values`` of shape (channels,)) or a block
    (``timestamps`` (k,), ``values`` (k, channels)) and returns :class:`StreamUpdate`: the time
    steps whose scores became final (with the ``"mean"`` point score a step is final once the
    last window covering it has arrived, ``window - 1`` steps later; ``"last"`` at once), and
    the events that started or ended. ``flush()`` finalises the tail at the end of a stream.
    Scores equal :meth:`SeriesAnomalyDetector.detect` on the whole series (to float rounding)
    for a series on a regular grid; missing steps (timestamps skipped, or NaN values) are
    interpolated as batch scoring does, marked as gaps when longer than ``max_gap``.
    Memory holds one window of readings and the pending partial sums, whatever the length.
    """

    def __init__(self, detector: SeriesAnomalyDetector) -> None:
        self.det = detector
        self.W = int(detector.window)
        self.C = len(detector.columns_)
        self.threshold = float(detector.threshold_.value)
        self.step = detector.step_
        self._buf = np.zeros((0, self.C), np.float32)  # last <= W scaled steps
        self._sums = np.zeros(0, np.float64)  # partial score sums of the not-yet-final steps
        self._counts = np.zeros(0, np.float64)
        self._pending_ts: list = []  # timestamps (or positions) of the not-final steps
        self._pending_gap: list[bool] = []
        self._first_window_score: float | None = None
        self._n = 0  # steps seen
        self._last_ts = None
        self._last_raw: np.ndarray | None = None
        self._held: list[tuple[Any, np.ndarray]] = []  # readings waiting for a NaN channel to resolve
        self._event: Event | None = None
        self._since_flag = 0
        self._recent: deque[float] = deque()  # the last `smooth` raw scores, for the trailing mean
        self._recent_sum = 0.0
        self.events: list[Event] = []

    # -- input regularisation (mirrors batch gap filling for a forward-only stream) ------------
    def _expand(self, ts, raw: np.ndarray) -> list[tuple[Any, np.ndarray, bool]]:
        """Readings -> steps on the grid, interpolating skipped timestamps."""
        out: list[tuple[Any, np.ndarray, bool]] = []
        if self.step is not None:
            ts = np.datetime64(ts, "ns")
            if self._last_ts is not None:
                k = int(round((ts - self._last_ts) / self.step))
                if k <= 0:
                    raise DataError(
                        f"reading at {ts} is not after the previous one ({self._last_ts}); a stream must be "
                        "in time order without duplicates"
                    )
                if k > 1:  # skipped steps: linear interpolation, as batch scoring does
                    gap = k - 1 > self.det.max_gap
                    for i in range(1, k):
                        v = self._last_raw + (raw - self._last_raw) * (i / k)
                        out.append((self._last_ts + i * self.step, v, gap))
                ts = self._last_ts + k * self.step
        else:
            ts = None  # positions are assigned in _advance
        out.append((ts, raw, False))
        return out

    def update(self, timestamp, values) -> StreamUpdate:
        """Feed one reading (or a block); returns the steps finalised and events started/ended."""
        vals = np.asarray(values, dtype=np.float64)
        if vals.ndim <= 1:
            vals = vals.reshape(1, -1)
            stamps = [timestamp]
        else:
            stamps = list(np.asarray(timestamp)) if timestamp is not None else [None] * len(vals)
        if vals.shape[1] != self.C:
            raise DataError(f"each reading needs {self.C} values ({self.det.columns_}), got {vals.shape[1]}")
        if self.step is not None and any(t is None for t in stamps):
            raise DataError("this detector was trained with timestamps: pass each reading's timestamp")
        steps: list[tuple[Any, np.ndarray, bool]] = []
        for ts, raw in zip(stamps, vals):
            if np.isnan(raw).any():
                self._held.append((ts, raw))
                if len(self._held) > 100_000:
                    raise DataError("more than 100,000 readings in a row are missing a value; the stream is stalled")
                continue
            if self._held:  # interpolate the held readings' missing channels between neighbours
                prev = self._last_raw if self._last_raw is not None else raw
                k = len(self._held) + 1
                gap = len(self._held) > self.det.max_gap
                for i, (hts, hraw) in enumerate(self._held, start=1):
                    fill = np.where(np.isnan(hraw), prev + (raw - prev) * (i / k), hraw)
                    for step in self._expand(hts, fill):
                        steps.append((step[0], step[1], step[2] or gap))
                        self._last_ts, self._last_raw = step[0] if self.step is not None else None, step[1]
                self._held = []
            for step in self._expand(ts, raw):
                steps.append(step)
                if self.step is not None:
                    self._last_ts = step[0]
                self._last_raw = step[1]
        return self._advance(steps)

    def _advance(self, steps) -> StreamUpdate:
        upd = StreamUpdate()
        if not steps:
            return upd
        W = self.W
        new = self.det._scale(np.stack([s[1] for s in steps]))
        buf = np.concatenate([self._buf, new])
        n0 = self._n  # index of the first new step
        k = len(steps)
        self._pending_ts.extend(s[0] if s[0] is not None else n0 + i for i, s in enumerate(steps))
        self._pending_gap.extend(bool(s[2]) for s in steps)
        self._sums = np.concatenate([self._sums, np.zeros(k)])
        self._counts = np.concatenate([self._counts, np.zeros(k)])
        # windows ending at each new step t >= W - 1
        first_end = max(n0, W - 1)
        ends = np.arange(first_end, n0 + k)
        off = n0 - len(self._buf)  # global index of buf[0]
        final_upto = n0 - len(self._sums) + k  # global index of _sums[0]
        base = final_upto
        if len(ends):
            idx = ends[:, None] - off - W + 1 + np.arange(W)[None, :]
            e, _ = self.det._window_errors(buf[idx])
            if self.det.point_score == "mean":
                for r, t in enumerate(ends):
                    lo = t - W + 1 - base
                    self._sums[lo : lo + W] += e[r]
                    self._counts[lo : lo + W] += 1
            else:
                wm = e.mean(1)
                if self._first_window_score is None:
                    self._first_window_score = float(wm[0])
                    self._sums[: W - 1 - base] = wm[0]
                    self._counts[: W - 1 - base] = 1
                for r, t in enumerate(ends):
                    self._sums[t - base] = wm[r]
                    self._counts[t - base] = 1
        self._n = n0 + k
        self._buf = buf[-W:] if len(buf) > W else buf
        # a step is final when no later window can cover it
        if self.det.point_score == "mean":
            n_final = max(0, self._n - W + 1 - base) if self._n >= W else 0
        else:
            n_final = max(0, self._n - base) if self._n >= W else 0
        self._emit(n_final, upd)
        return upd

    def _emit(self, n_final: int, upd: StreamUpdate) -> None:
        base = self._n - len(self._sums)
        k = self.det.smooth_steps_
        for i in range(n_final):
            score = float(self._sums[i] / self._counts[i])
            if k > 1:
                self._recent.append(score)
                self._recent_sum += score
                if len(self._recent) > k:
                    self._recent_sum -= self._recent.popleft()
                if len(self._recent) == k and (base + i) % k == 0:
                    self._recent_sum = math.fsum(self._recent)  # keep the running sum from drifting
                score = float(self._recent_sum / len(self._recent))
            gap = self._pending_gap[i]
            flag = bool(score > self.threshold and not gap)
            idx = base + i
            upd.points.append((self._pending_ts[i], score, flag))
            self._track_event(idx, score, flag, upd, self._pending_ts[i])
        self._sums, self._counts = self._sums[n_final:], self._counts[n_final:]
        self._pending_ts, self._pending_gap = self._pending_ts[n_final:], self._pending_gap[n_final:]

    def _track_event(self, idx: int, score: float, flag: bool, upd: StreamUpdate, ts: Any) -> None:
        gap_allowed = self.det.event_gap_steps_
        if flag:
            if self._event is None:
                self._event = StreamEvent(start=idx, end=idx, peak=idx, peak_score=score, n_points=1,
                                          start_time=ts, end_time=ts, peak_time=ts)
                upd.started.append(self._event)
            else:
                ev = self._event
                ev.end, ev.end_time = idx, ts
                ev.n_points += 1
                if score > ev.peak_score:
                    ev.peak, ev.peak_score, ev.peak_time = idx, score, ts
            self._since_flag = 0
        elif self._event is not None:
            self._since_flag += 1
            if self._since_flag > gap_allowed:
                self.events.append(self._event)
                upd.ended.append(self._event)
                self._event = None

    def flush(self) -> StreamUpdate:
        """End of stream: finalise the remaining steps (as batch scoring does at a series' end)."""
        upd = StreamUpdate()
        if self._held:
            raise DataError(f"the stream ends with {len(self._held)} readings missing values that cannot be filled")
        self._emit(len(self._sums) if self._n >= self.W else 0, upd)
        if self._event is not None:
            self.events.append(self._event)
            upd.ended.append(self._event)
            self._event = None
        return upd


@dataclass
class StreamEvent(Event):
    """An :class:`Event` from a stream: indices count steps since the stream began, and the
    timestamps (or positions) of its start, end and peak are kept, since the stream keeps no history."""

    start_time: Any = None
    end_time: Any = None
    peak_time: Any = None

    def to_dict(self, timestamps: Any = None) -> dict:
        d = super().to_dict(timestamps)
        if timestamps is None:
            for key in ("start_time", "end_time", "peak_time"):
                t = getattr(self, key)
                d[key] = str(t).replace("T", " ") if isinstance(t, np.datetime64) else t
        return d


@dataclass
class StreamUpdate:
    """What one :meth:`SeriesStream.update` produced."""

    points: list[tuple[Any, float, bool]] = field(default_factory=list)  # (timestamp or index, score, flag)
    started: list[Event] = field(default_factory=list)
    ended: list[Event] = field(default_factory=list)
