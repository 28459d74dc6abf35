"""Anomaly figures: each writes a PNG Pillow opens, of about the expected size; spikes survive
decimation; bad input fails with DataError; no figure is left open."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import matplotlib
import numpy as np
import pytest
from PIL import Image

from aekit.errors import ConfigError, DataError
from aekit.viz.anomaly import (
    _decimate_indices,
    _minmax_decimate,
    _runs,
    explanation_figure,
    score_histogram,
    series_figure,
)


@dataclass
class _Event:  # duck-types aekit.tasks.anomaly.evaluation.Event
    start: int
    end: int
    peak: int
    peak_score: float


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()  # decodes the whole file: a truncated PNG fails here
        return im.size


@pytest.fixture()
def series():
    """A 2-channel series of 600 steps with a spike at 300 and its scores."""
    rng = np.random.default_rng(0)
    t = np.arange(600)
    values = np.column_stack([np.sin(t / 20), np.cos(t / 30)]) + 0.05 * rng.normal(size=(600, 2))
    values[300, 0] += 5.0
    scores = np.abs(rng.normal(size=600)) * 0.1
    scores[298:303] = 4.0
    return values, scores


@pytest.fixture(autouse=True)
def _no_figure_leaks():
    yield
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        assert plt.get_fignums() == []


# ----------------------------------------------------------------------------- decimation


def test_decimation_keeps_single_spike():
    y = np.random.default_rng(0).normal(size=200_000)
    y[123_457] = 1e6
    x = np.arange(len(y), dtype=float)
    xd, yd = _minmax_decimate(x, y, 2000)
    assert len(yd) <= 2000
    assert yd.max() == 1e6 and xd[np.argmax(yd)] == 123_457
    assert yd.min() == y.min()  # the deepest dip survives too
    assert np.all(np.diff(xd) > 0)  # still in order


def test_decimation_short_and_nan():
    assert np.array_equal(_decimate_indices(np.arange(10.0), 100), np.arange(10))
    y = np.ones(1000)
    y[:500] = np.nan  # an all-NaN stretch keeps a NaN so the line breaks there
    y[700] = 9.0
    idx = _decimate_indices(y, 20)
    assert len(idx) <= 20 and 700 in idx and np.isnan(y[idx]).any()


def test_runs():
    m = np.array([0, 1, 1, 0, 0, 1, 0, 1], bool)
    assert _runs(m).tolist() == [[1, 2], [5, 5], [7, 7]]
    assert _runs(np.zeros(3, bool)).shape == (0, 2)


# ----------------------------------------------------------------------------- series figure


def test_series_figure_full(tmp_path, series):
    values, scores = series
    scores = scores.copy()
    scores[:10] = np.nan  # warm-up of a windowed detector: drawn as a gap, not an error
    gap = np.zeros(600, bool)
    gap[500:520] = True
    out = series_figure(
        tmp_path / "sub" / "series.png",
        values,
        scores,
        threshold=1.0,
        flags=scores > 1.0,
        events=[_Event(298, 302, 300, 4.0), _Event(450, 450, 450, 0.5)],
        label_windows=[(295, 305), (100, 110)],
        columns=["a", "b"],
        gap=gap,
        title="Synthetic",
    )
    assert out == tmp_path / "sub" / "series.png"
    w, h = _png_size(out)
    assert 1100 <= w <= 1300 and 500 <= h <= 900
    assert sorted(p.name for p in out.parent.iterdir()) == ["series.png"]  # no temp files left


def test_series_figure_datetime_many_channels_long(tmp_path):
    n = 10_000
    rng = np.random.default_rng(1)
    values = rng.normal(size=(n, 8))
    scores = np.exp(rng.normal(size=n))  # spans several decades: log axis
    scores[2_345] = 1e4
    ts = np.datetime64("2024-03-01T00:00") + np.arange(n) * np.timedelta64(1, "m")
    out = series_figure(tmp_path / "dt.png", values, scores, timestamps=ts, threshold=50.0, max_points=1000)
    w, h = _png_size(out)
    assert 1100 <= w <= 1300 and 900 <= h <= 1200  # 6 panels of 8 channels plus scores


def test_series_figure_minimal_and_numeric_timestamps(tmp_path):
    out = series_figure(tmp_path / "m.png", np.arange(5.0), np.arange(5.0), timestamps=np.linspace(0, 1, 5), dpi=50)
    assert _png_size(out)[0] == 550  # 11 inches at 50 dpi
    out = series_figure(tmp_path / "one.png", [1.0], [np.nan], dpi=50)  # one point, no finite score
    assert out.stat().st_size > 0


def test_series_figure_errors(tmp_path, series):
    values, scores = series
    p = tmp_path / "x.png"
    with pytest.raises(DataError, match="scores has 599 entries"):
        series_figure(p, values, scores[:-1])
    with pytest.raises(DataError, match="timestamps has 3 entries"):
        series_figure(p, values, scores, timestamps=np.arange(3))
    with pytest.raises(DataError, match="flags has 10"):
        series_figure(p, values, scores, flags=np.zeros(10, bool))
    with pytest.raises(DataError, match="gap has"):
        series_figure(p, values, scores, gap=np.zeros(601, bool))
    with pytest.raises(DataError, match="empty"):
        series_figure(p, np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(DataError, match="columns"):
        series_figure(p, values, scores, columns=["only one"])
    with pytest.raises(DataError, match="increasing"):
        series_figure(p, values, scores, timestamps=np.arange(600)[::-1])
    with pytest.raises(DataError, match="NaT"):
        ts = np.arange(600).astype("datetime64[s]")
        ts[3] = np.datetime64("NaT")
        series_figure(p, values, scores, timestamps=ts)
    with pytest.raises(DataError, match="events\\[0\\]"):
        series_figure(p, values, scores, events=[_Event(10, 700, 20, 1.0)])
    with pytest.raises(DataError, match="events\\[0\\] must have"):
        series_figure(p, values, scores, events=[object()])
    with pytest.raises(DataError, match="label window"):
        series_figure(p, values, scores, label_windows=[(5, 2)])
    with pytest.raises(DataError, match="positive"):
        series_figure(p, values, scores - 1.0, log_scores=True)
    with pytest.raises(ConfigError, match="max_points"):
        series_figure(p, values, scores, max_points=1)
    with pytest.raises(ConfigError, match=r"\.png"):
        series_figure(tmp_path / "x.jpg", values, scores)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- histogram


def test_score_histogram_with_labels_and_roc(tmp_path):
    rng = np.random.default_rng(2)
    scores = np.r_[rng.lognormal(-3, 1, 500), rng.lognormal(0, 1, 50), [np.nan]]
    labels = np.r_[np.zeros(500), np.ones(50), [1]]
    out = score_histogram(tmp_path / "h.png", scores, labels=labels, threshold=0.3, title="Scores")
    w, h = _png_size(out)
    assert 1100 <= w <= 1300 and 420 <= h <= 520


def test_score_histogram_plain_and_one_class(tmp_path):
    scores = np.random.default_rng(3).normal(size=300)
    w, h = _png_size(score_histogram(tmp_path / "p.png", scores, threshold=1.0, bins=20))
    assert 650 <= w <= 760 and 420 <= h <= 520
    out = score_histogram(tmp_path / "o.png", scores, labels=np.zeros(300), threshold=1.0, dpi=50)  # no ROC possible
    assert out.stat().st_size > 0


def test_score_histogram_errors(tmp_path):
    p = tmp_path / "x.png"
    with pytest.raises(DataError, match="empty"):
        score_histogram(p, [])
    with pytest.raises(DataError, match="no finite"):
        score_histogram(p, [np.nan, np.inf])
    with pytest.raises(DataError, match="labels has 2 entries"):
        score_histogram(p, [1.0, 2.0, 3.0], labels=[0, 1])
    with pytest.raises(DataError, match="0 \\(normal\\) or 1"):
        score_histogram(p, [1.0, 2.0], labels=[0, 2])
    with pytest.raises(ConfigError, match="bins"):
        score_histogram(p, [1.0, 2.0], bins=0)


# ----------------------------------------------------------------------------- explanations


def test_explanation_bars_single_and_mean(tmp_path):
    rng = np.random.default_rng(4)
    share = rng.dirichlet(np.ones(30))
    names = [f"feature_{i}" for i in range(30)]
    w, h = _png_size(explanation_figure(tmp_path / "e.png", share, feature_names=names, top=10))
    assert 650 <= w <= 900 and 450 <= h <= 560  # 10 bars
    out = explanation_figure(tmp_path / "m.png", rng.dirichlet(np.ones(5), size=20), title="Mean", dpi=50)
    assert out.stat().st_size > 0


def test_explanation_heatmap(tmp_path):
    c = np.random.default_rng(5).random((50, 4))
    c /= c.sum()
    w, h = _png_size(explanation_figure(tmp_path / "hm.png", c, feature_names=list("abcd"), kind="heatmap"))
    assert 600 <= w <= 1250 and 250 <= h <= 450


def test_explanation_errors(tmp_path):
    p = tmp_path / "x.png"
    with pytest.raises(DataError, match="empty"):
        explanation_figure(p, np.zeros(0))
    with pytest.raises(DataError, match="NaN"):
        explanation_figure(p, [0.5, np.nan])
    with pytest.raises(DataError, match="feature_names"):
        explanation_figure(p, [0.5, 0.5], feature_names=["a"])
    with pytest.raises(DataError, match="heatmap"):
        explanation_figure(p, [0.5, 0.5], kind="heatmap")
    with pytest.raises(DataError, match="shape"):
        explanation_figure(p, np.ones((2, 2, 2)))
    with pytest.raises(ConfigError, match="kind"):
        explanation_figure(p, [1.0], kind="pie")
    with pytest.raises(ConfigError, match="top"):
        explanation_figure(p, [1.0], top=0)


# ----------------------------------------------------------------------------- no pyplot, no leaks


def test_no_pyplot_and_no_leaks(tmp_path, series, monkeypatch):
    values, scores = series
    backend = matplotlib.rcParams._get("backend")
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "matplotlib.pyplot", None)  # importing pyplot now fails
        series_figure(tmp_path / "a.png", values, scores, threshold=1.0, dpi=50)
        score_histogram(tmp_path / "b.png", scores, labels=scores > 1.0, threshold=1.0, dpi=50)
    assert plt.get_fignums() == before == []
    assert matplotlib.rcParams._get("backend") == backend
