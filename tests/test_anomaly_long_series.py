"""Series detectors on series stored on disk (LongSeries): the same results as in memory, block by block."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _cli_helpers import assert_fails, run_cli
from aekit.errors import DataError
from aekit.tasks.anomaly import LongSeries, SeriesAnomalyDetector
from aekit.tasks.anomaly import long_series as ls_mod

KW = dict(window=24, steps=150, threads=1, verbose=False, smooth=5)


def _series(n=3000, seed=0, fault=2500):
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    v = np.c_[np.sin(2 * np.pi * t / 40) + 0.05 * rng.normal(size=n), np.cos(2 * np.pi * t / 50)]
    v[fault : fault + 20, 0] += 2
    return v.astype(np.float32).astype(np.float64)  # exactly what the float32 file holds


def _csv(path, v):
    path.write_text("timestamp,a,b\n" + "".join(f"{i},{a!r},{b!r}\n" for i, (a, b) in enumerate(v.tolist())))
    return path


@pytest.mark.parametrize("point_score", ["mean", "last"])
def test_long_series_equals_the_in_memory_path(tmp_path, monkeypatch, point_score):
    monkeypatch.setattr(ls_mod, "BLOCK_ROWS", 700)  # many blocks, windows across their edges
    v = _series()
    long = LongSeries.from_csv(_csv(tmp_path / "s.csv", v))
    assert long.n == 3000 and long.columns == ["a", "b"]
    mem = SeriesAnomalyDetector(point_score=point_score, **KW).fit(v)
    disk = SeriesAnomalyDetector(point_score=point_score, **KW).fit(long)
    assert np.array_equal(mem.center_, disk.center_) and np.array_equal(mem.scale_, disk.scale_)
    assert [r["train_loss"] for r in mem.history_] == pytest.approx([r["train_loss"] for r in disk.history_])
    a, b = mem.anomaly_score(v), disk.anomaly_score(long)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-9)
    assert disk.threshold_.value == pytest.approx(mem.threshold_.value, rel=1e-5)
    ra, rb = mem.detect(v), disk.detect(long)
    assert [(e.start, e.end) for e in ra.events] == [(e.start, e.end) for e in rb.events]
    assert any(e.start <= 2520 + 24 and e.end >= 2500 for e in rb.events)  # the fault is found (late for "last")


def test_long_series_cache_and_errors(tmp_path):
    v = _series(600, fault=500)
    path = _csv(tmp_path / "s.csv", v)
    first = LongSeries.from_csv(path)
    stamp = first.path.stat().st_mtime_ns
    assert LongSeries.from_csv(path).path.stat().st_mtime_ns == stamp  # converted once, then reused
    det = SeriesAnomalyDetector(**KW).fit(first)
    np.save(tmp_path / "three.npy", np.zeros((600, 3), np.float32))
    with pytest.raises(DataError, match="3 channels"):
        det.anomaly_score(LongSeries.from_npy(tmp_path / "three.npy"))
    np.save(tmp_path / "f64.npy", np.zeros((600, 2)))
    with pytest.raises(DataError, match="float32"):
        LongSeries.from_npy(tmp_path / "f64.npy")
    with pytest.raises(Exception, match="labels"):
        SeriesAnomalyDetector(**KW).fit(first, np.zeros(600))


def test_cli_detect_fit_and_score_stream(tmp_path, capsys):
    path = _csv(tmp_path / "s.csv", _series(2000, fault=1500))
    code, text = run_cli(capsys, "detect", "fit", "--data", path, "--stream", "--out", tmp_path / "run",
                         "--window", "24", "--steps", "100", "--threads", "1", "--quiet")
    assert code == 0, text
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["kind"] == "series" and m["n_points"] == 2000
    assert (tmp_path / "run" / "scores.png").stat().st_size > 10_000
    code, text = run_cli(capsys, "detect", "score", tmp_path / "run", "--data", path, "--stream",
                         "--out", tmp_path / "scores.csv")
    assert code == 0, text
    lines = (tmp_path / "scores.csv").read_text().splitlines()
    assert lines[0].startswith("row,score,flag") and len(lines) == 2001
    assert_fails(capsys, ["detect", "fit", "--data", path, "--stream", "--label-column", "a",
                          "--out", tmp_path / "r2"], "--stream", "--label-column")
    assert_fails(capsys, ["detect", "fit", "--data", tmp_path / "run" / "metrics.json", "--stream",
                          "--out", tmp_path / "r3"], "--stream", ".csv")
