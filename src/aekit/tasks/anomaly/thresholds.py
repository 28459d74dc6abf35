"""Turning anomaly scores into alarms: threshold rules given as short spec strings.

Scores are *anomaly scores* (higher = more anomalous, e.g. reconstruction error); a point is
anomalous when ``score > threshold.value``.

Spec forms (see :func:`fit_threshold`)::

    fpr:Q             false-alarm budget Q on normal calibration data (0 < Q < 1); extreme-value
                      extrapolation (peaks over threshold) when the data are too few for the quantile
    alarms_per_day:A  the same budget in alarms per day of a series (needs points_per_day)
    contamination:C   the top C (0 < C < 0.5) of the training scores are anomalies (scikit-learn, PyOD)
    f1                maximise F1 on labelled validation scores
    quantile:P        the plain P-quantile of the scores (0 < P < 1)
    std:K             mean + K * std of the scores
    value:V           a fixed value V
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aekit.errors import ConfigError, DataError
from aekit.tasks.anomaly.evaluation import _check_labels, _check_scores, best_f1

__all__ = ["METHODS", "Threshold", "fit_threshold", "parse_threshold", "pot_threshold"]

# method -> (needs a number, description for error messages)
METHODS: dict[str, tuple[bool, str]] = {
    "fpr": (True, "fpr:Q with 0 < Q < 1 (false-alarm rate on normal data, e.g. fpr:0.001)"),
    "alarms_per_day": (True, "alarms_per_day:A with A > 0 (needs points_per_day, e.g. alarms_per_day:1)"),
    "contamination": (True, "contamination:C with 0 < C < 0.5 (expected anomaly share, e.g. contamination:0.05)"),
    "f1": (False, "f1 (best F1 on labelled validation data)"),
    "quantile": (True, "quantile:P with 0 < P < 1 (e.g. quantile:0.99)"),
    "std": (True, "std:K with K finite (mean + K * std, e.g. std:3)"),
    "value": (True, "value:V with V finite (a fixed threshold, e.g. value:0.05)"),
}

_F1_NEEDS_POSITIVES = (
    "threshold='f1' needs labelled anomalies in the validation data (labels with at least one 1); "
    "with normal-only data use 'fpr:0.001' (a false-alarm budget) instead"
)


def _valid_forms() -> str:
    return "; ".join(desc for _, desc in METHODS.values())


@dataclass(frozen=True)
class Threshold:
    """A fitted threshold: ``score > value`` means anomalous.

    Attributes
    ----------
    method : str
        One of ``fpr``, ``alarms_per_day``, ``contamination``, ``f1``, ``quantile``, ``std``, ``value``.
    value : float
        The score threshold.
    spec : str
        The spec string as given, e.g. ``"fpr:0.001"``.
    details : dict
        JSON-serialisable facts about the fit: ``n_calibration``, ``estimator`` (``"empirical"`` or
        ``"pot"``), POT parameters, the achieved false-alarm rate on the calibration data, F1 numbers, ...
    """

    method: str
    value: float
    spec: str
    details: dict = field(default_factory=dict)

    def flag(self, scores: Any) -> np.ndarray:
        """Bool ndarray of shape (n_samples,): ``scores > value``."""
        return _check_scores(scores) > self.value

    def to_dict(self) -> dict:
        """A JSON-ready dict; :meth:`from_dict` inverts it."""
        return {"method": self.method, "value": float(self.value), "spec": self.spec, "details": dict(self.details)}

    @classmethod
    def from_dict(cls, d: dict) -> Threshold:
        """Rebuild a Threshold from :meth:`to_dict` output (e.g. read back from JSON)."""
        if not isinstance(d, dict):
            raise ConfigError(f"a threshold must be a dict, got {type(d).__name__}")
        missing = [k for k in ("method", "value", "spec") if k not in d]
        if missing:
            raise ConfigError(f"threshold dict lacks {missing}; expected keys method, value, spec, details")
        if d["method"] not in METHODS:
            raise ConfigError(f"unknown threshold method {d['method']!r}; valid forms: {_valid_forms()}")
        value = float(d["value"])
        if not math.isfinite(value):
            raise ConfigError(f"threshold value must be finite, got {d['value']!r}")
        return cls(method=str(d["method"]), value=value, spec=str(d["spec"]), details=dict(d.get("details") or {}))


def parse_threshold(spec: str) -> tuple[str, float | None]:
    """Split and validate a spec string: ``"fpr:0.001"`` -> ``("fpr", 0.001)``, ``"f1"`` -> ``("f1", None)``.

    Raises :class:`ConfigError` listing the valid forms when the spec is malformed or out of range.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"threshold spec must be a non-empty string, got {spec!r}; valid forms: {_valid_forms()}")
    method, sep, number = spec.strip().partition(":")
    method = method.strip().lower()
    if method not in METHODS:
        raise ConfigError(f"unknown threshold method {method!r} in {spec!r}; valid forms: {_valid_forms()}")
    needs_number, desc = METHODS[method]
    if not needs_number:
        if sep:
            raise ConfigError(f"threshold {spec!r}: {method!r} takes no number; use {desc}")
        return method, None
    if not sep or not number.strip():
        raise ConfigError(f"threshold {spec!r} needs a number: {desc}")
    try:
        x = float(number)
    except ValueError:
        raise ConfigError(f"threshold {spec!r}: {number.strip()!r} is not a number; use {desc}") from None
    ok = (
        math.isfinite(x)
        and {
            "fpr": 0.0 < x < 1.0,
            "alarms_per_day": x > 0.0,
            "contamination": 0.0 < x < 0.5,
            "quantile": 0.0 < x < 1.0,
            "std": True,
            "value": True,
        }[method]
    )
    if not ok:
        raise ConfigError(f"threshold {spec!r} is out of range: {desc}")
    return method, x


# ----------------------------------------------------------------------------- peaks over threshold


def _gpd_profile_loglik(theta: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Profile log-likelihood of a GPD over ``theta = xi / sigma`` (Grimshaw's reduction).

    For fixed theta the likelihood is maximised at ``xi = mean(log(1 + theta * y))``, ``sigma = xi / theta``,
    leaving ``l(theta) = -k (log(xi / theta) + 1 + xi)``; theta -> 0 is the exponential tail.
    """
    theta = np.atleast_1d(theta)
    k, ybar = y.size, y.mean()
    small = np.abs(theta) < 1e-12 / ybar
    t = np.where(small, 1.0, theta)
    xi = np.log1p(t[:, None] * y[None, :]).mean(axis=1)  # (G, k) -> (G,)
    scale = np.where(small, ybar, xi / t)
    xi = np.where(small, 0.0, xi)
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = -k * (np.log(scale) + 1.0 + xi)
    return np.where(np.isfinite(ll), ll, -np.inf), xi


def _fit_gpd(y: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (xi, sigma) of a GPD for excesses ``y >= 0`` (not all zero).

    A grid over theta, both signs and the exponential limit, then a bounded Brent refinement between the
    best point's neighbours. The shape is kept >= -1, where the likelihood is still bounded.
    """
    from scipy.optimize import minimize_scalar

    ymax, ybar = y.max(), y.mean()
    neg = -(1.0 - np.geomspace(1e-6, 1.0 - 1e-6, 60)) / ymax  # (-1/ymax, 0)
    pos = np.geomspace(1e-6, 1e6, 120) / ybar
    grid = np.unique(np.concatenate((neg, [0.0], pos)))
    ll, xi = _gpd_profile_loglik(grid, y)
    ll = np.where(xi >= -1.0, ll, -np.inf)
    i = int(np.argmax(ll))
    if not np.isfinite(ll[i]):
        raise FloatingPointError("GPD likelihood is not finite on the grid")
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    best = float(grid[i])
    if hi > lo:

        def nll(t: float) -> float:
            l_t, x_t = _gpd_profile_loglik(np.array([t]), y)
            return float(-l_t[0]) if x_t[0] >= -1.0 else math.inf

        res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10 / ybar})
        if np.isfinite(res.fun) and -res.fun >= ll[i]:
            best = float(res.x)
    ll_b, xi_b = _gpd_profile_loglik(np.array([best]), y)
    xi_hat = float(xi_b[0])
    sigma = ybar if xi_hat == 0.0 else xi_hat / best
    if not (math.isfinite(xi_hat) and math.isfinite(sigma) and sigma > 0):
        raise FloatingPointError(f"GPD fit gave xi={xi_hat}, sigma={sigma}")
    return xi_hat, float(sigma)


def pot_threshold(scores: Any, q: float, *, init_quantile: float = 0.98) -> tuple[float, dict]:
    """Extreme-value estimate of the score exceeded with probability ``q`` (peaks over threshold).

    Following Siffer et al. (2017), "Anomaly detection in streams with extreme value theory" (SPOT's
    initialisation): take an initial threshold u with ``n_u`` of the ``n`` scores above it (the
    ``init_quantile`` of the scores, but at least ``min(20, n // 2)`` exceedances and more than ``q n``),
    fit a generalized Pareto distribution (shape xi, scale sigma) to the excesses by maximum likelihood,
    and extrapolate::

        value = u + sigma / xi * ((q n / n_u) ** (-xi) - 1)      (xi != 0)
        value = u - sigma * log(q n / n_u)                       (xi == 0, the exponential tail)

    With fewer than 5 exceedances, all-equal excesses, or a failed fit, the exponential tail with
    ``sigma = mean excess`` is used and ``details["fallback"]`` says why.

    Parameters
    ----------
    scores : ndarray of shape (n_samples,)
        Calibration anomaly scores (assumed normal); at least 2.
    q : float
        Target exceedance probability, 0 < q < 1.
    init_quantile : float, default 0.98
        Quantile of the scores used as the initial threshold u.

    Returns
    -------
    value : float
    details : dict
        ``estimator="pot"``, ``u``, ``xi``, ``sigma``, ``n_exceed``, ``init_quantile``, ``tail``
        (``"gpd"`` or ``"exponential"``) and ``fallback`` (None or the reason).
    """
    s = np.sort(_check_scores(scores))
    n = s.size
    if not 0.0 < q < 1.0:
        raise ConfigError(f"q must be in (0, 1), got {q!r}")
    if not 0.0 < init_quantile < 1.0:
        raise ConfigError(f"init_quantile must be in (0, 1), got {init_quantile!r}")
    if n < 2:
        raise DataError(f"peaks-over-threshold needs at least 2 calibration scores, got {n}")
    k = max(math.ceil((1.0 - init_quantile) * n - 1e-9), min(20, n // 2), math.floor(q * n) + 1)
    k = min(k, n - 1)
    if q * n >= k:
        raise ConfigError(f"q={q} is not in the tail of {n} scores; use the empirical quantile instead")
    u = float(s[n - k - 1])  # exactly k scores sit above index n-k-1
    y = s[n - k :] - u  # (k,) excesses, >= 0
    ratio = q * n / k
    fallback = None
    if k < 5:
        fallback = f"only {k} exceedances; too few for a GPD fit"
    elif y.max() == y.min():
        fallback = "all exceedances are equal"
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                xi, sigma = _fit_gpd(y)
        except (FloatingPointError, ValueError, ArithmeticError) as e:
            fallback = f"GPD fit failed: {e}"
    if fallback is not None:
        xi, sigma = 0.0, float(y.mean())
    if abs(xi) < 1e-9:
        value = u - sigma * math.log(ratio)
    else:
        value = u + sigma / xi * (ratio ** (-xi) - 1.0)
    details = {
        "estimator": "pot",
        "u": u,
        "xi": float(xi),
        "sigma": float(sigma),
        "n_exceed": int(k),
        "init_quantile": float(init_quantile),
        "tail": "exponential" if fallback is not None or xi == 0.0 else "gpd",
        "fallback": fallback,
    }
    return float(value), details


# ----------------------------------------------------------------------------- fitting


def _fpr_threshold(s: np.ndarray, q: float, min_tail: int) -> tuple[float, dict]:
    n = s.size
    if n < 2:
        raise DataError(f"a false-alarm budget needs at least 2 normal calibration scores, got {n}")
    if n * q >= min(min_tail, n - 1):  # enough exceedances (or q too large for a tail fit)
        value = float(np.quantile(s, 1.0 - q, method="higher"))  # "higher": achieved rate <= q
        details: dict[str, Any] = {"estimator": "empirical"}
    else:
        value, details = pot_threshold(s, q)
    details.update(target_fpr=q, achieved_fpr=float(np.mean(s > value)), min_tail=int(min_tail))
    return value, details


def fit_threshold(
    spec: str,
    scores: Any,
    *,
    labels: Any = None,
    points_per_day: float | None = None,
    min_tail: int = 10,
) -> Threshold:
    """Fit a threshold rule to anomaly scores.

    Parameters
    ----------
    spec : str
        ``"fpr:Q"``, ``"alarms_per_day:A"``, ``"contamination:C"``, ``"f1"``, ``"quantile:P"``, ``"std:K"``
        or ``"value:V"`` (see the module docstring).
    scores : ndarray of shape (n_samples,)
        Anomaly scores (higher = more anomalous), finite.
    labels : ndarray of shape (n_samples,), optional
        0 normal / 1 anomaly. Required by ``f1`` (both classes). For ``fpr``/``alarms_per_day`` only the
        label-0 scores are used; other methods ignore labels.
    points_per_day : float, optional
        Sampling rate of the series; required by ``alarms_per_day`` (``Q = A / points_per_day``).
    min_tail : int, default 10
        ``fpr`` uses the empirical (1 - Q) quantile when ``n * Q >= min_tail`` (enough exceedances to
        resolve it), else a peaks-over-threshold extrapolation (:func:`pot_threshold`).

    Returns
    -------
    Threshold
        ``score > threshold.value`` means anomalous.
    """
    method, x = parse_threshold(spec)
    s = _check_scores(scores)
    y = None if labels is None else _check_labels(labels, s.size)
    if isinstance(min_tail, bool) or not isinstance(min_tail, (int, np.integer)) or min_tail < 1:
        raise ConfigError(f"min_tail must be an integer >= 1, got {min_tail!r}")
    details: dict[str, Any] = {"n_calibration": int(s.size)}

    if method in ("fpr", "alarms_per_day"):
        q = x
        if method == "alarms_per_day":
            if points_per_day is None:
                raise ConfigError("alarms_per_day needs timestamps; use fpr:Q instead")
            ppd = float(points_per_day)
            if not (math.isfinite(ppd) and ppd > 0):
                raise ConfigError(f"points_per_day must be a positive number, got {points_per_day!r}")
            q = x / ppd
            if not q < 1.0:
                raise ConfigError(
                    f"{spec!r} with {ppd:g} points per day asks for an alarm on every point; choose A < {ppd:g}"
                )
            details.update(alarms_per_day=x, points_per_day=ppd)
        if y is not None:
            s = s[y == 0]
            if s.size == 0:
                raise DataError(f"{method} calibrates on normal scores, but every label is 1")
            details["n_calibration"] = int(s.size)
        value, fit = _fpr_threshold(s, q, int(min_tail))
        details.update(fit)
        if method == "alarms_per_day":
            details["expected_alarms_per_day"] = details["achieved_fpr"] * details["points_per_day"]
    elif method == "contamination":
        value = float(np.quantile(s, 1.0 - x))
        details.update(estimator="empirical", contamination=x, achieved_rate=float(np.mean(s > value)))
    elif method == "f1":
        if y is None or not y.any():
            raise ConfigError(_F1_NEEDS_POSITIVES)
        if y.all():
            raise ConfigError(
                "threshold='f1' needs normal points too (labels with at least one 0) to count false alarms"
            )
        best = best_f1(y, s)
        value = best.pop("threshold")
        details.update(estimator="empirical", n_anomalies=int(y.sum()), **best)
    elif method == "quantile":
        value = float(np.quantile(s, x))
        details.update(estimator="empirical", quantile=x)
    elif method == "std":
        mean, std = float(s.mean()), float(s.std())
        value = mean + x * std
        details.update(estimator="empirical", mean=mean, std=std, k=x)
    else:  # value
        value = float(x)
        details["estimator"] = "fixed"
    if not math.isfinite(value):
        raise DataError(f"threshold {spec!r} came out as {value}; the scores' range is too extreme")
    return Threshold(method=method, value=float(value), spec=spec, details=details)
