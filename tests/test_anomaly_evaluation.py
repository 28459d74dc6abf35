"""Evaluation: point metrics against scikit-learn, events, window reports and NAB scores on hand cases."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from aekit.errors import ConfigError, DataError, UnknownNameError
from aekit.tasks.anomaly.evaluation import (
    Event,
    average_precision,
    best_f1,
    binary_report,
    event_ids,
    find_events,
    nab_score,
    roc_auc,
    window_report,
)


def sig(y: float) -> float:
    """NAB's scaled sigmoid as written in the nab_score docstring."""
    return -1.0 if y > 3 else 2 / (1 + math.exp(5 * y)) - 1


# ----------------------------------------------------------------------------- point metrics


def test_roc_and_ap_match_sklearn():
    rng = np.random.default_rng(0)
    labels = (rng.random(300) < 0.1).astype(int)
    scores = rng.standard_normal(300) + 1.5 * labels
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores))
    assert roc_auc(labels.astype(bool), scores.astype(np.float32)) == pytest.approx(roc_auc_score(labels, scores))


def test_point_metric_errors():
    with pytest.raises(DataError, match="both classes"):
        roc_auc(np.zeros(4, int), np.arange(4.0))
    with pytest.raises(DataError, match="at least one anomaly"):
        average_precision(np.zeros(4, int), np.arange(4.0))
    with pytest.raises(DataError, match="1 NaN"):
        roc_auc(np.array([0, 1, 0]), np.array([0.1, np.nan, 0.3]))


def test_best_f1_hand_case():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 0])
    best = best_f1(labels, scores)
    assert best["f1"] == pytest.approx(0.75)
    assert best["precision"] == pytest.approx(0.6) and best["recall"] == pytest.approx(1.0)
    flags = scores > best["threshold"]
    assert binary_report(labels, flags)["f1"] == pytest.approx(0.75)


def test_binary_report_counts():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    flags = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    r = binary_report(labels, flags)
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (2, 1, 1, 4)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3) and r["accuracy"] == pytest.approx(6 / 8)
    assert r["normal_precision"] == pytest.approx(4 / 5) and r["normal_recall"] == pytest.approx(4 / 5)
    empty = binary_report(np.zeros(3, int), np.zeros(3, bool))
    assert empty["precision"] == 0.0 and empty["normal_recall"] == 1.0
    json.dumps(r)


# ----------------------------------------------------------------------------- events


def test_find_events_runs_and_peaks():
    flags = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    scores = np.array([0, 5, 7, 0, 0, 3, 0, 2, 9, 4], float)
    ev = find_events(flags, scores)
    assert ev == [Event(1, 2, 2, 7.0, 2), Event(5, 5, 5, 3.0, 1), Event(7, 9, 8, 9.0, 3)]
    assert find_events(np.zeros(5, bool), np.zeros(5)) == []
    assert find_events(np.ones(3, bool), np.array([1.0, 3.0, 2.0])) == [Event(0, 2, 1, 3.0, 3)]


def test_find_events_min_gap_and_min_length():
    flags = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    scores = np.array([0, 5, 7, 99, 0, 3, 0, 2, 9, 4], float)  # 99 is unflagged: never a peak
    # gap of 2 between run 1 and 2, gap of 1 between runs 2 and 3
    assert find_events(flags, scores, min_gap=1) == [Event(1, 2, 2, 7.0, 2), Event(5, 9, 8, 9.0, 4)]
    assert find_events(flags, scores, min_gap=2) == [Event(1, 9, 8, 9.0, 6)]
    assert find_events(flags, scores, min_length=2) == [Event(1, 2, 2, 7.0, 2), Event(7, 9, 8, 9.0, 3)]
    assert find_events(flags, scores, min_gap=1, min_length=4) == [Event(5, 9, 8, 9.0, 4)]
    with pytest.raises(ConfigError):
        find_events(flags, scores, min_gap=-1)
    with pytest.raises(ConfigError):
        find_events(flags, scores, min_length=0)
    with pytest.raises(DataError):
        find_events(flags[:5], scores)


def test_event_ids():
    flags = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    events = find_events(flags, np.ones(10), min_gap=1)
    assert event_ids(flags, events, 10).tolist() == [0, 1, 1, 0, 0, 2, 2, 2, 2, 2]
    assert event_ids(flags, [], 10).tolist() == [0] * 10


def test_event_to_dict_with_timestamps():
    ts = np.arange("2024-01-01T00:00", "2024-01-01T00:10", dtype="datetime64[m]")
    ev = Event(2, 4, 3, 1.5, 3)
    d = ev.to_dict(ts)
    assert d["start_time"] == "2024-01-01T00:02:00" and d["end_time"] == "2024-01-01T00:04:00"
    assert d["peak_time"] == "2024-01-01T00:03:00"
    assert ev.to_dict() == {"start": 2, "end": 4, "peak": 3, "peak_score": 1.5, "n_points": 3}
    pyts = [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(10)]
    assert ev.to_dict(pyts)["start_time"] == "2024-01-01T02:00:00"


# ----------------------------------------------------------------------------- window report


def test_window_report_hand_case():
    n = 30
    events = [Event(2, 3, 2, 1.0, 2), Event(8, 12, 10, 2.0, 5), Event(14, 14, 14, 1.0, 1), Event(25, 26, 25, 1.0, 2)]
    windows = [(10, 15), (18, 22), (24, 29)]
    r = window_report(events, windows, n)
    w0, w1, w2 = r["windows"]
    # event 2 starts before window 0: first detection is the window's first point; event 3 overlaps too
    assert w0["hit"] and w0["event"] == 2 and w0["first_detection"] == 10 and w0["lead"] == 5
    assert not w1["hit"] and w1["first_detection"] is None and w1["lead"] is None
    assert w2["hit"] and w2["event"] == 4 and w2["first_detection"] == 25 and w2["lead"] == 4
    assert (r["windows_hit"], r["windows_missed"], r["false_alarm_events"], r["n_events"]) == (2, 1, 1, 4)
    assert r["false_alarms"] == [{"event": 1, "start": 2, "end": 3, "peak": 2, "peak_score": 1.0, "n_points": 2}]
    json.dumps(r)


def test_window_report_times():
    ts = np.arange("2024-01-01T00:00", "2024-01-01T00:30", dtype="datetime64[m]")
    events = [Event(12, 13, 12, 1.0, 2)]
    r = window_report(events, [(10, 15)], 30, timestamps=ts)
    w = r["windows"][0]
    assert w["lead"] == 3 and w["lead_time"] == "0:03:00"
    assert w["first_detection_time"] == "2024-01-01T00:12:00" and w["start_time"] == "2024-01-01T00:10:00"
    r = window_report(events, [(10, 15)], 30, step=dt.timedelta(hours=1))
    assert r["windows"][0]["lead_time"] == "3:00:00"
    r = window_report(events, [(10, 15)], 30, step=np.timedelta64(1, "D"))
    assert r["windows"][0]["lead_time"] == "3 days, 0:00:00"
    with pytest.raises(DataError):
        window_report(events, [(10, 40)], 30)
    with pytest.raises(DataError):
        window_report(events, [(10, 15)], 30, timestamps=ts[:5])


# ----------------------------------------------------------------------------- NAB
# One window (10, 19): L = 10, in a series of n = 100, no probationary period unless stated.

W = [(10, 19)]
MAX_TP = sig(-1.0)  # 2 / (1 + e^-5) - 1 = tanh(2.5) = 0.98661


def test_nab_detection_at_window_start_is_perfect():
    r = nab_score(np.array([10]), W, 100, probation=0)
    assert r["raw"] == pytest.approx(1.0)
    assert (r["tp"], r["fp"], r["fn"], r["null"], r["perfect"]) == (1, 0, 0, -1.0, 1.0)
    assert r["normalized"] == pytest.approx(100.0)


def test_nab_detection_at_window_end():
    r = nab_score(np.array([19]), W, 100, probation=0)
    expected = sig(-1 / 10) / MAX_TP  # y = -(19 - 19 + 1) / 10
    assert expected == pytest.approx(math.tanh(0.25) / math.tanh(2.5))  # 0.24824
    assert r["raw"] == pytest.approx(expected)
    assert r["normalized"] == pytest.approx(100 * (expected + 1) / 2)


def test_nab_only_first_detection_in_window_counts():
    r = nab_score(np.array([15, 10, 12, 19]), W, 100, probation=0)
    assert r["raw"] == pytest.approx(1.0) and r["tp"] == 1 and r["tp_points"] == 4 and r["fp"] == 0
    mid = nab_score(np.array([15]), W, 100, probation=0)["raw"]
    assert mid == pytest.approx(sig(-(19 - 15 + 1) / 10) / MAX_TP)  # y = -0.5: 0.84828 / 0.98661


def test_nab_false_positives_right_after_vs_far_after_vs_before():
    just_after = nab_score(np.array([10, 20]), W, 100, probation=0)
    y = (20 - 19) / (10 - 1)
    assert just_after["raw"] == pytest.approx(1.0 + 0.11 * sig(y))  # 1 - 0.0298
    assert just_after["fp"] == 1
    far_after = nab_score(np.array([10, 60]), W, 100, probation=0)  # y = 41 / 9 > 3: full weight
    assert far_after["raw"] == pytest.approx(1.0 - 0.11)
    before = nab_score(np.array([5, 10]), W, 100, probation=0)  # before the first window: full weight
    assert before["raw"] == pytest.approx(1.0 - 0.11)
    assert far_after["raw"] < just_after["raw"]
    fp_profile = nab_score(np.array([10, 60]), W, 100, probation=0, profile="reward_low_FP_rate")
    assert fp_profile["raw"] == pytest.approx(1.0 - 0.22)


def test_nab_fp_is_measured_from_the_nearest_preceding_window():
    wins = [(10, 19), (40, 44)]  # L = 10 and L = 5
    r = nab_score(np.array([10, 40, 46]), wins, 100, probation=0)
    assert r["raw"] == pytest.approx(2.0 + 0.11 * sig((46 - 44) / (5 - 1)))


def test_nab_miss_and_profiles():
    r = nab_score(np.array([], dtype=int), W, 100, probation=0)
    assert r["raw"] == pytest.approx(-1.0) and r["normalized"] == pytest.approx(0.0)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 0, 1)
    r = nab_score([], W, 100, probation=0, profile="reward_low_FN_rate")
    assert r["raw"] == pytest.approx(-2.0) and r["null"] == -2.0
    two = nab_score(np.array([10]), [(10, 19), (50, 59)], 100, probation=0)
    assert two["raw"] == pytest.approx(0.0) and two["normalized"] == pytest.approx(50.0)
    with pytest.raises(UnknownNameError, match="standard"):
        nab_score([10], W, 100, profile="nope")


def test_nab_probationary_period():
    # n = 100 -> the first floor(0.15 * 100) = 15 points are probationary: detection 12 is ignored
    r = nab_score(np.array([12]), W, 100)
    assert r["raw"] == pytest.approx(-1.0) and r["probation"] == 15
    r = nab_score(np.array([16]), W, 100)
    assert r["raw"] == pytest.approx(sig(-(19 - 16 + 1) / 10) / MAX_TP)
    # the cap: min(floor(0.15 n), 0.15 * 5000) = 750 for long series
    assert nab_score([], [(900, 950)], 10_000)["probation"] == 750
    # a window ending inside the probationary period is left out
    r = nab_score([], [(2, 5), (50, 59)], 100)
    assert r["null"] == -1.0 and r["fn"] == 1


def test_nab_accepts_bool_mask_and_validates():
    mask = np.zeros(100, bool)
    mask[[10, 60]] = True
    assert nab_score(mask, W, 100, probation=0)["raw"] == pytest.approx(0.89)
    with pytest.raises(DataError):
        nab_score([100], W, 100)
    with pytest.raises(DataError, match="overlap"):
        nab_score([], [(10, 19), (15, 30)], 100)
    no_windows = nab_score([50], [], 100, probation=0)
    assert no_windows["normalized"] is None and no_windows["raw"] == pytest.approx(-0.11)
