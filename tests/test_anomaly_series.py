"""SeriesAnomalyDetector: finds injected faults, windows checked, streaming equals batch, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import aekit
from aekit.data.series import as_series
from aekit.errors import ConfigError, DataError
from aekit.tasks.anomaly.series import SeriesAnomalyDetector

# short injected faults: no score smoothing (the default, 4 windows, suits slow faults like NAB's)
FAST = dict(window=24, steps=250, batch_size=64, threads=1, hidden=(32, 16), latent_dim=4, smooth=1, min_event_gap=0)
STEP = np.timedelta64(5, "m")


def make_series(n: int, seed: int, *, spike_at: int | None = None, channel: int = 1):
    """Two periodic channels (period 40 steps) with noise; optionally a level fault on one channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.stack([np.sin(2 * np.pi * t / 40), 0.5 * np.cos(2 * np.pi * t / 40) + 1.0], 1)
    x += 0.05 * rng.normal(size=x.shape)
    if spike_at is not None:
        x[spike_at : spike_at + 6, channel] += 2.5
    ts = np.datetime64("2024-01-01T00:00") + t * STEP
    return x, ts


@pytest.fixture(scope="module")
def fitted():
    x, ts = make_series(2400, 0)
    return SeriesAnomalyDetector(**FAST).fit(x, timestamps=ts)


def test_finds_an_injected_fault_and_nothing_else(fitted):
    x, ts = make_series(1500, 1, spike_at=900)
    r = fitted.detect(x, timestamps=ts)
    assert r.scores.shape == (1500,)
    assert len(r.events) >= 1
    peak = max(r.events, key=lambda e: e.peak_score)
    assert 890 <= peak.peak <= 915, peak
    outside = r.flags.copy()
    outside[860:950] = False
    assert outside.mean() < 0.01  # budget fpr:0.001, calibrated on 480 held-out steps
    assert r.timestamps[peak.peak] == ts[peak.peak]


def test_explain_names_the_broken_channel(fitted):
    x, ts = make_series(1200, 2, spike_at=600, channel=0)
    share = fitted.explain(x, timestamps=ts)
    assert share.shape == (1200, 2)
    np.testing.assert_allclose(share.sum(1), 1.0, rtol=1e-6)
    assert share[600:606, 0].mean() > 0.8


def test_sklearn_conventions_per_time_step(fitted):
    x, ts = make_series(600, 3, spike_at=300)
    a = fitted.anomaly_score(x, timestamps=ts)
    np.testing.assert_allclose(fitted.score_samples(x, timestamps=ts), -a)
    pred = fitted.predict(x, timestamps=ts)
    np.testing.assert_array_equal(pred == -1, a > fitted.threshold_.value)
    assert fitted.threshold_.details["calibrated_on"] == "held-out end of the series"


@pytest.mark.parametrize("point_score,smooth", [("mean", 1), ("last", 1), ("mean", 7)])
def test_streaming_equals_batch(point_score, smooth, fitted):
    det = fitted
    if (point_score, smooth) != ("mean", 1):
        det = SeriesAnomalyDetector(**{**FAST, "point_score": point_score, "smooth": smooth})
        det.fit(*make_series(2400, 0)[:1], timestamps=make_series(2400, 0)[1])
    x, ts = make_series(700, 4, spike_at=400)
    # two skipped readings (a short gap, interpolated) and a NaN in one channel
    keep = np.ones(700, bool)
    keep[[100, 101]] = False
    x[250, 0] = np.nan
    batch = det.detect(x[keep], timestamps=ts[keep])
    stream = det.stream()
    got = []
    for i in np.flatnonzero(keep):
        if i < 300:
            got += stream.update(ts[i], x[i]).points  # one reading at a time
    block = np.flatnonzero(keep)[np.flatnonzero(keep) >= 300]
    got += stream.update(ts[block], x[block]).points  # then a block
    got += stream.flush().points
    assert len(got) == 700
    assert [p[0] for p in got] == list(batch.timestamps)
    np.testing.assert_allclose([p[1] for p in got], batch.scores, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal([p[2] for p in got], batch.flags)
    assert [(e.start, e.end, e.peak) for e in stream.events] == [(e.start, e.end, e.peak) for e in batch.events]
    assert [e.start_time for e in stream.events] == [batch.timestamps[e.start] for e in batch.events]


def test_stream_memory_is_bounded(fitted):
    x, ts = make_series(3000, 5)
    stream = fitted.stream()
    for i in range(0, 3000, 250):
        stream.update(ts[i : i + 250], x[i : i + 250])
        assert len(stream._buf) <= fitted.window and len(stream._sums) <= fitted.window + 250


def test_stream_rejects_time_going_backwards(fitted):
    x, ts = make_series(50, 6)
    stream = fitted.stream()
    stream.update(ts[10], x[10])
    with pytest.raises(DataError, match="not after"):
        stream.update(ts[5], x[5])


def test_save_load_round_trip(fitted, tmp_path):
    x, ts = make_series(400, 7, spike_at=200)
    aekit.save(fitted, tmp_path / "det")
    back = aekit.load(tmp_path / "det")
    assert isinstance(back, SeriesAnomalyDetector)
    assert back.threshold_ == fitted.threshold_
    assert back.step_ == fitted.step_ and back.columns_ == fitted.columns_
    np.testing.assert_allclose(back.anomaly_score(x, timestamps=ts), fitted.anomaly_score(x, timestamps=ts),
                               rtol=1e-6)


def test_window_checked_at_fit_and_at_scoring(fitted):
    x, ts = make_series(100, 8)
    with pytest.raises(DataError, match="window"):
        SeriesAnomalyDetector(window=200, steps=10, threads=1).fit(x)
    with pytest.raises(DataError, match="window"):
        fitted.anomaly_score(x[:10], timestamps=ts[:10])
    with pytest.raises(ConfigError, match="window"):
        SeriesAnomalyDetector(window=1).fit(x)
    with pytest.raises(ConfigError, match="point_score"):
        SeriesAnomalyDetector(point_score="median").fit(x)


def test_scoring_data_must_match_training_channels(fitted):
    x, ts = make_series(200, 9)
    with pytest.raises(DataError, match="channels"):
        fitted.anomaly_score(x[:, :1], timestamps=ts)
    with pytest.raises(DataError, match="timestamps"):
        fitted.anomaly_score(x)


def test_constant_channel_and_untimed_arrays():
    x, _ = make_series(800, 10)
    x[:, 1] = 3.0  # a stuck sensor: zero variance in training
    before = x.copy()
    det = SeriesAnomalyDetector(**{**FAST, "steps": 60}).fit(x)
    assert det.constant_channels_ == ["x1"] or det.constant_channels_ == [det.columns_[1]]
    s = det.anomaly_score(x)
    assert np.isfinite(s).all()
    np.testing.assert_array_equal(x, before)
    y = x.copy()
    y[400:410, 1] = 6.0  # the stuck sensor moves (constant channels keep raw units): must stand out
    assert det.anomaly_score(y)[400:410].min() > np.quantile(s, 0.999)


def test_alarms_per_day_needs_timestamps():
    x, ts = make_series(800, 11)
    det = SeriesAnomalyDetector(**{**FAST, "steps": 60}, threshold="alarms_per_day:1").fit(x, timestamps=ts)
    assert det.threshold_.method == "alarms_per_day"
    assert det.threshold_.details["points_per_day"] == pytest.approx(288.0)
    with pytest.raises(ConfigError, match="timestamps"):
        SeriesAnomalyDetector(**{**FAST, "steps": 60}, threshold="alarms_per_day:1").fit(x)


def test_labelled_steps_stay_out_of_training_and_allow_f1():
    x, ts = make_series(1600, 12, spike_at=1450)
    y = np.zeros(1600, int)
    y[1450:1456] = 1
    det = SeriesAnomalyDetector(**{**FAST, "steps": 200}, threshold="f1").fit(x, y, timestamps=ts)
    assert det.threshold_.method == "f1"
    with pytest.raises(ConfigError, match="labelled anomalies"):
        SeriesAnomalyDetector(**{**FAST, "steps": 20}, threshold="f1").fit(x, timestamps=ts)


def test_long_gaps_are_marked_and_never_flagged(fitted):
    x, ts = make_series(900, 13)
    keep = np.ones(900, bool)
    keep[500:540] = False  # 40 missing readings: over max_gap
    s = as_series(x[keep], ts[keep], max_gap=3)
    r = fitted.detect(s)
    assert r.gap[500:540].all() and not r.gap[:500].any()
    assert not r.flags[r.gap].any()


def test_csv_input(tmp_path, fitted):
    x, ts = make_series(500, 14, spike_at=300)
    path = tmp_path / "s.csv"
    with open(path, "w") as f:
        f.write("timestamp,x0,x1\n")
        for t, row in zip(ts, x):
            f.write(f"{str(t).replace('T', ' ')},{row[0]},{row[1]}\n")
    r = fitted.detect(path)
    np.testing.assert_allclose(r.scores, fitted.anomaly_score(x, timestamps=ts), rtol=1e-5)
    out = r.to_csv(tmp_path / "scores.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,score,flag,event,gap" and len(lines) == 501


def test_auto_smoothing_and_event_gap_follow_the_window():
    det = SeriesAnomalyDetector(window=50)
    assert det.smooth_steps_ == 200 and det.event_gap_steps_ == 25
    det = SeriesAnomalyDetector(window=50, smooth=3, min_event_gap=0)
    assert det.smooth_steps_ == 3 and det.event_gap_steps_ == 0
    with pytest.raises(ConfigError, match="smooth"):
        SeriesAnomalyDetector(smooth=0).fit(np.zeros(100))


def test_smoothing_averages_the_trailing_steps(fitted):
    x, ts = make_series(500, 15, spike_at=300)
    raw = fitted.anomaly_score(x, timestamps=ts)
    det = SeriesAnomalyDetector(**{**FAST, "smooth": 5})
    det.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    smoothed = det.anomaly_score(x, timestamps=ts)
    np.testing.assert_allclose(smoothed[10], raw[6:11].mean(), rtol=1e-9)
    np.testing.assert_allclose(smoothed[2], raw[:3].mean(), rtol=1e-9)


def test_warns_when_the_training_period_is_mostly_unlike_the_calibration_period():
    x, ts = make_series(2000, 16)
    rng = np.random.default_rng(0)
    spikes = rng.choice(1500, 300, replace=False)  # the first 75% is riddled with faults
    x[spikes, 0] += rng.choice([-3.0, 3.0], 300)
    with pytest.warns(UserWarning, match="training time steps score above the threshold"):
        SeriesAnomalyDetector(**{**FAST, "steps": 150}).fit(x, timestamps=ts)
