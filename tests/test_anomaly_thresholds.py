"""Threshold rules: spec parsing, the false-alarm budget (empirical and peaks-over-threshold), f1 and the rest."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from aekit.errors import ConfigError, DataError
from aekit.tasks.anomaly import thresholds as th_mod
from aekit.tasks.anomaly.thresholds import Threshold, fit_threshold, parse_threshold, pot_threshold


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("fpr:0.001", ("fpr", 0.001)),
        (" FPR : 0.01 ", ("fpr", 0.01)),
        ("alarms_per_day:2", ("alarms_per_day", 2.0)),
        ("contamination:0.1", ("contamination", 0.1)),
        ("f1", ("f1", None)),
        ("quantile:0.99", ("quantile", 0.99)),
        ("std:-1.5", ("std", -1.5)),
        ("value:3e-2", ("value", 0.03)),
    ],
)
def test_parse_threshold_valid(spec, expected):
    assert parse_threshold(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "fpr",
        "fpr:",
        "fpr:abc",
        "fpr:0",
        "fpr:1",
        "fpr:nan",
        "contamination:0.5",
        "quantile:1.2",
        "alarms_per_day:0",
        "std:inf",
        "value:nan",
        "f1:0.3",
        "bogus:1",
        "percentile:0.9",
        None,
        0.5,
    ],
)
def test_parse_threshold_invalid(spec):
    with pytest.raises(ConfigError):
        parse_threshold(spec)


def test_unknown_method_lists_valid_forms():
    with pytest.raises(ConfigError, match="fpr:Q.*contamination:C.*value:V"):
        parse_threshold("bogus:1")


# ----------------------------------------------------------------------------- input checks


def test_empty_and_nonfinite_scores():
    with pytest.raises(DataError, match="empty"):
        fit_threshold("quantile:0.9", np.array([]))
    with pytest.raises(DataError, match="2 NaN/inf"):
        fit_threshold("quantile:0.9", np.array([1.0, np.nan, 2.0, np.inf]))
    with pytest.raises(DataError, match="1-D"):
        fit_threshold("quantile:0.9", np.ones((3, 2)))
    with pytest.raises(DataError, match="labels"):
        fit_threshold("f1", np.arange(4.0), labels=np.array([0, 1, 2, 0]))
    with pytest.raises(DataError, match="shape"):
        fit_threshold("f1", np.arange(4.0), labels=np.array([0, 1]))


# ----------------------------------------------------------------------------- fpr


def test_fpr_empirical_on_many_normal_samples():
    scores = _rng(1).standard_normal(100_000)
    q = 0.001
    th = fit_threshold(f"fpr:{q}", scores)
    assert th.method == "fpr" and th.details["estimator"] == "empirical"
    achieved = float(np.mean(scores > th.value))
    assert achieved <= q
    assert achieved >= 0.95 * q
    assert th.details["achieved_fpr"] == pytest.approx(achieved)
    assert th.details["n_calibration"] == 100_000
    # a fresh sample from the same distribution stays near the budget too
    fresh = _rng(2).standard_normal(100_000)
    assert np.mean(fresh > th.value) == pytest.approx(q, rel=0.35)


def test_fpr_uses_only_normal_labels():
    rng = _rng(3)
    normal = rng.standard_normal(20_000)
    scores = np.concatenate([normal, np.full(500, 50.0)])
    labels = np.concatenate([np.zeros(20_000, int), np.ones(500, int)])
    with_labels = fit_threshold("fpr:0.01", scores, labels=labels)
    assert with_labels.value == fit_threshold("fpr:0.01", normal).value
    assert with_labels.details["n_calibration"] == 20_000
    with pytest.raises(DataError, match="every label is 1"):
        fit_threshold("fpr:0.01", scores[-5:], labels=labels[-5:])


@pytest.mark.parametrize("dist", [stats.expon, stats.norm], ids=["exponential", "gaussian"])
def test_fpr_pot_extrapolates_to_true_quantile(dist):
    q, n = 1e-4, 2000  # n * q = 0.2 exceedances: the data cannot resolve this quantile
    true = dist.ppf(1 - q)
    ratios = []
    for seed in range(20):
        x = dist.rvs(size=n, random_state=_rng(seed))
        t = fit_threshold(f"fpr:{q}", x)
        assert t.details["estimator"] == "pot"
        assert t.details["n_exceed"] == 40 and t.details["tail"] == "gpd" and t.details["fallback"] is None
        assert t.value > t.details["u"]
        ratios.append(t.value / true)
    ratios = np.array(ratios)
    assert np.all((ratios > 0.6) & (ratios < 1.6))  # each fit within a reasonable factor
    assert 0.85 < np.median(ratios) < 1.15  # and no systematic bias


def test_pot_matches_scipy_genpareto_mle():
    x = stats.norm.rvs(size=2000, random_state=_rng(0))
    value, d = pot_threshold(x, 1e-4)
    y = np.sort(x)[-d["n_exceed"] :] - d["u"]
    c, _, scale = stats.genpareto.fit(y, floc=0)
    ours = stats.genpareto.logpdf(y, d["xi"], scale=d["sigma"]).sum()
    theirs = stats.genpareto.logpdf(y, c, scale=scale).sum()
    assert ours >= theirs - 1e-6
    ratio = 1e-4 * 2000 / d["n_exceed"]
    assert value == pytest.approx(d["u"] + d["sigma"] / d["xi"] * (ratio ** -d["xi"] - 1))


def test_pot_exponential_fallback_with_few_exceedances():
    x = np.array([0.1, 0.5, 0.2, 0.9, 0.4, 1.5, 0.3, 2.0])
    t = fit_threshold("fpr:0.01", x)  # n*Q = 0.08 < min_tail
    d = t.details
    assert d["estimator"] == "pot" and d["tail"] == "exponential" and "too few" in d["fallback"]
    assert d["n_exceed"] == 4 and d["u"] == 0.4
    sigma = np.mean([0.5, 0.9, 1.5, 2.0]) - 0.4
    assert d["sigma"] == pytest.approx(sigma)
    assert t.value == pytest.approx(0.4 - sigma * math.log(0.01 * 8 / 4))


def test_pot_fallback_when_fit_fails(monkeypatch):
    def boom(y):
        raise FloatingPointError("no convergence")

    monkeypatch.setattr(th_mod, "_fit_gpd", boom)
    x = stats.expon.rvs(size=2000, random_state=_rng(0))
    value, d = pot_threshold(x, 1e-4)
    assert d["tail"] == "exponential" and "no convergence" in d["fallback"]
    assert value == pytest.approx(d["u"] - d["sigma"] * math.log(1e-4 * 2000 / 40))
    assert value == pytest.approx(stats.expon.ppf(1 - 1e-4), rel=0.3)


def test_pot_equal_excesses_and_tiny_input():
    value, d = pot_threshold(np.r_[np.zeros(50), np.full(20, 7.0)], 1e-3)  # u = 0, 20 excesses of 7
    assert d["fallback"] == "all exceedances are equal" and d["sigma"] == 7.0
    assert value == pytest.approx(-7.0 * math.log(1e-3 * 70 / 20))
    value, d = pot_threshold(np.r_[np.zeros(50), np.full(30, 7.0)], 1e-3)  # u = 7 itself: a flat tail
    assert d["fallback"] == "all exceedances are equal" and value == 7.0
    with pytest.raises(DataError):
        pot_threshold(np.array([1.0]), 0.01)
    with pytest.raises(ConfigError):
        pot_threshold(np.arange(10.0), 1.5)


def test_fpr_small_samples():
    x = np.array([0.1, 0.7, 0.3, 0.9, 0.5])
    t = fit_threshold("fpr:0.9", x)  # n*Q = 4.5 is below min_tail but not a tail: empirical
    assert t.details["estimator"] == "empirical" and t.details["achieved_fpr"] <= 0.9
    with pytest.raises(DataError, match="at least 2"):
        fit_threshold("fpr:0.01", np.array([1.0]))


def test_min_tail_switches_estimator():
    x = _rng(0).exponential(size=5000)
    assert fit_threshold("fpr:0.004", x).details["estimator"] == "empirical"  # 20 exceedances
    assert fit_threshold("fpr:0.004", x, min_tail=50).details["estimator"] == "pot"


# ----------------------------------------------------------------------------- alarms per day


def test_alarms_per_day_converts_to_fpr():
    x = _rng(0).standard_normal(50_000)
    t = fit_threshold("alarms_per_day:1.44", x, points_per_day=1440)  # one point a minute
    ref = fit_threshold("fpr:0.001", x)
    assert t.method == "alarms_per_day"
    assert t.value == ref.value
    d = t.details
    assert d["target_fpr"] == pytest.approx(0.001) and d["alarms_per_day"] == 1.44 and d["points_per_day"] == 1440
    assert d["expected_alarms_per_day"] == pytest.approx(d["achieved_fpr"] * 1440)


def test_alarms_per_day_errors():
    x = np.arange(100.0)
    with pytest.raises(ConfigError, match="alarms_per_day needs timestamps; use fpr:Q instead"):
        fit_threshold("alarms_per_day:1", x)
    with pytest.raises(ConfigError, match="every point"):
        fit_threshold("alarms_per_day:24", x, points_per_day=24)
    with pytest.raises(ConfigError):
        fit_threshold("alarms_per_day:1", x, points_per_day=0)


# ----------------------------------------------------------------------------- f1


def test_f1_picks_the_optimum_on_a_hand_case():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 0])
    # flag >= 0.4: tp 3, fp 2, fn 0 -> P 0.6, R 1, F1 0.75 (best; >= 0.6 gives P 2/3, R 2/3)
    t = fit_threshold("f1", scores, labels=labels)
    assert t.details["f1"] == pytest.approx(0.75)
    assert t.details["precision"] == pytest.approx(0.6) and t.details["recall"] == pytest.approx(1.0)
    assert 0.3 < t.value < 0.4
    assert t.value == pytest.approx(0.4)
    assert list(t.flag(scores)) == [False, False, False, True, True, True, True, True]


def test_f1_errors():
    x = np.arange(6.0)
    msg = "needs labelled anomalies.*fpr:0.001"
    with pytest.raises(ConfigError, match=msg):
        fit_threshold("f1", x)
    with pytest.raises(ConfigError, match=msg):
        fit_threshold("f1", x, labels=np.zeros(6, int))
    with pytest.raises(ConfigError, match="at least one 0"):
        fit_threshold("f1", x, labels=np.ones(6, int))


# ----------------------------------------------------------------------------- the simple rules


def test_contamination_quantile_std_value():
    x = np.arange(1.0, 101.0)  # 1..100
    c = fit_threshold("contamination:0.1", x, labels=np.r_[np.zeros(99, int), 1])
    assert c.value == pytest.approx(np.quantile(x, 0.9)) and np.sum(x > c.value) == 10
    assert c.details["achieved_rate"] == pytest.approx(0.1)
    assert fit_threshold("quantile:0.25", x).value == pytest.approx(np.quantile(x, 0.25))
    s = fit_threshold("std:2", x)
    assert s.value == pytest.approx(x.mean() + 2 * x.std())
    v = fit_threshold("value:42.5", x)
    assert v.value == 42.5 and v.spec == "value:42.5" and v.method == "value"


def test_round_trip_through_json():
    x = stats.norm.rvs(size=2000, random_state=_rng(0))
    for spec in ("fpr:0.0001", "fpr:0.05", "std:3", "f1"):
        labels = (x > 2).astype(int) if spec == "f1" else None
        t = fit_threshold(spec, x, labels=labels)
        back = Threshold.from_dict(json.loads(json.dumps(t.to_dict())))
        assert back == t
    with pytest.raises(ConfigError):
        Threshold.from_dict({"method": "fpr", "spec": "fpr:0.1"})
    with pytest.raises(ConfigError):
        Threshold.from_dict({"method": "nope", "value": 1.0, "spec": "nope"})
