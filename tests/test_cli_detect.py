"""``aekit detect fit|score`` on CSV series and tables: run folders, scores CSV, figures, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import aekit
from _cli_helpers import assert_fails, run_cli
from aekit.cli.main import console
from aekit.cli.main import main as cli_main

SMALL = ["--steps", "120", "--threads", "1", "--quiet", "--window", "24", "--smooth", "1", "--min-event-gap", "0"]




def write_series(path: Path, n: int, seed: int, *, fault_at: int | None = None, label: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    a = np.sin(2 * np.pi * t / 40) + 0.05 * rng.normal(size=n)
    b = np.cos(2 * np.pi * t / 40) + 0.05 * rng.normal(size=n)
    y = np.zeros(n, int)
    if fault_at is not None:
        a[fault_at : fault_at + 8] += 3.0
        y[fault_at : fault_at + 8] = 1
    ts = np.datetime64("2024-03-01T00:00") + t * np.timedelta64(1, "m")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "temp", "vibration"] + (["label"] if label else []))
        for i in range(n):
            w.writerow([str(ts[i]).replace("T", " "), f"{a[i]:.5f}", f"{b[i]:.5f}"] + ([y[i]] if label else []))
    return path


def write_table(path: Path, n: int, seed: int, n_anom: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1).normal(size=(2, 6))
    x = rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, 6))
    y = np.zeros(n, int)
    y[:n_anom] = 1
    x[:n_anom] = rng.normal(size=(n_anom, 6)) * 2
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{j}" for j in range(6)] + ["is_anomaly"])
        for row, lab in zip(x, y):
            w.writerow([f"{v:.5f}" for v in row] + [lab])
    return path


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setattr(console, "width", 300)


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("series")
    train = write_series(d / "train.csv", 1500, 0)
    code = cli_main(["detect", "fit", "--data", str(train), "--out", str(d / "run"), *SMALL])
    assert code == 0
    return d


def test_fit_writes_a_complete_run_folder(series_run):
    run = series_run / "run"
    names = {p.name for p in run.iterdir()}
    assert names == {"aekit.json", "model.safetensors", "metrics.json", "history.csv", "loss.png", "scores.png"}
    m = json.loads((run / "metrics.json").read_text())
    assert m["kind"] == "series" and m["threshold"]["method"] == "fpr" and m["threshold"]["spec"] == "fpr:0.001"
    assert m["n_points"] == 1500 and m["fit_seconds"] > 0
    det = aekit.load(run)
    assert isinstance(det, aekit.SeriesAnomalyDetector) and det.columns_ == ["temp", "vibration"]


def test_fit_records_the_data_path_absolute(tmp_path, monkeypatch):
    """A run fitted on a relative path still finds its data from elsewhere (export, serve)."""
    monkeypatch.chdir(tmp_path)
    write_series(tmp_path / "train.csv", 400, 0)
    assert cli_main(["detect", "fit", "--data", "train.csv", "--out", "run", *SMALL]) == 0
    doc = json.loads((tmp_path / "run" / "aekit.json").read_text())
    assert doc["data"]["source"] == str(tmp_path.resolve() / "train.csv")


def test_score_finds_the_fault_and_writes_csv_figure_summary(series_run, capsys, tmp_path):
    data = write_series(tmp_path / "new.csv", 600, 1, fault_at=400)
    out = tmp_path / "scores.csv"
    code, text = run_cli(capsys, "detect", "score", series_run / "run", "--data", data, "--out", out)
    assert code == 0, text
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["timestamp", "score", "flag", "event", "gap"]
    assert len(rows) == 600 and rows[0]["timestamp"] == "2024-03-01 00:00:00"
    flagged = [i for i, r in enumerate(rows) if r["flag"] == "1"]
    assert flagged and all(380 <= i <= 440 for i in flagged), flagged
    assert {r["event"] for r in rows if r["flag"] == "1"} - {"0"}
    assert (tmp_path / "scores.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / "scores.json").read_text())
    assert summary["n_events"] >= 1 and summary["events"][0]["start_time"].startswith("2024-03-01")
    assert "events" in text and "flagged" in text


def test_score_with_labelled_windows_reports_hits(series_run, capsys, tmp_path):
    data = write_series(tmp_path / "new.csv", 600, 2, fault_at=300)
    windows = tmp_path / "windows.json"
    windows.write_text(json.dumps({"dir/new.csv": [["2024-03-01 04:50:00", "2024-03-01 05:20:00"]]}))
    out = tmp_path / "s.csv"
    code, text = run_cli(capsys, "detect", "score", series_run / "run", "--data", data, "--out", out,
                         "--windows", windows)
    assert code == 0, text
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["windows"]["windows_hit"] == 1 and "nab" in summary
    assert "1 hit, 0 missed" in text


def test_score_refuses_to_overwrite_and_other_columns(series_run, capsys, tmp_path):
    data = write_series(tmp_path / "new.csv", 300, 3)
    out = tmp_path / "s.csv"
    assert run_cli(capsys, "detect", "score", series_run / "run", "--data", data, "--out", out)[0] == 0
    before = out.read_bytes()
    assert_fails(capsys, ["detect", "score", series_run / "run", "--data", data, "--out", out], "already exists")
    assert out.read_bytes() == before
    other = tmp_path / "other.csv"
    other.write_text("timestamp,pressure\n2024-03-01 00:00:00,1\n2024-03-01 00:01:00,2\n")
    assert_fails(capsys, ["detect", "score", series_run / "run", "--data", other, "--out", tmp_path / "o.csv"],
                 "pressure")
    short = tmp_path / "short.csv"
    write_series(short, 10, 4)
    assert_fails(capsys, ["detect", "score", series_run / "run", "--data", short, "--out", tmp_path / "x.csv"],
                 "window")


def test_fit_refuses_existing_run_and_bad_input(series_run, capsys, tmp_path):
    train = series_run / "train.csv"
    assert_fails(capsys, ["detect", "fit", "--data", train, "--out", series_run / "run", *SMALL], "already exists")
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2024-01-01 00:00:00,1.0\n2024-01-01 00:01:00,abc\n")
    assert_fails(capsys, ["detect", "fit", "--data", bad, "--out", tmp_path / "r", *SMALL], "abc", "line 3")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert_fails(capsys, ["detect", "fit", "--data", empty, "--out", tmp_path / "r", *SMALL], "empty")
    assert_fails(capsys, ["detect", "fit", "--data", train, "--out", tmp_path / "r", *SMALL, "--threshold", "fpr:7"],
                 "fpr")
    assert_fails(capsys, ["detect", "fit", "--data", tmp_path / "nope.csv", "--out", tmp_path / "r"], "does not exist")
    assert not (tmp_path / "r").exists()


def test_f1_threshold_without_labels_is_a_clear_error(series_run, capsys, tmp_path):
    assert_fails(
        capsys,
        ["detect", "fit", "--data", series_run / "train.csv", "--out", tmp_path / "r", *SMALL, "--threshold", "f1"],
        "labelled anomalies",
    )
    assert not (tmp_path / "r").exists()


def test_train_until_uses_the_start_only(series_run, capsys, tmp_path):
    data = write_series(tmp_path / "all.csv", 1400, 5, fault_at=1200)
    code, text = run_cli(capsys, "detect", "fit", "--data", data, "--out", tmp_path / "r", *SMALL,
                         "--train-until", "2024-03-01 16:00")
    assert code == 0, text
    det = aekit.load(tmp_path / "r")
    assert det.n_train_points_ + det.n_calibration_points_ == 960
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["n_points"] == 1400 and any(1180 <= e["peak"] <= 1230 for e in m["events"])


def test_table_with_label_column(capsys, tmp_path):
    train = write_table(tmp_path / "train.csv", 600, 0, n_anom=30)
    code, text = run_cli(capsys, "detect", "fit", "--data", train, "--label-column", "is_anomaly", "--out",
                         tmp_path / "run", "--steps", "200", "--threads", "1", "--quiet", "--threshold", "f1")
    assert code == 0, text
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["kind"] == "table" and m["threshold"]["method"] == "f1" and m["roc_auc"] > 0.9
    test = write_table(tmp_path / "test.csv", 300, 1, n_anom=15)
    out = tmp_path / "scores.csv"
    code, text = run_cli(capsys, "detect", "score", tmp_path / "run", "--data", test, "--out", out,
                         "--label-column", "is_anomaly")
    assert code == 0, text
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["row", "score", "flag", "event"] and len(rows) == 300
    flags = np.array([int(r["flag"]) for r in rows])
    assert flags[:15].mean() > 0.8 and flags[15:].mean() < 0.1
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["roc_auc"] > 0.9
    assert (tmp_path / "scores.png").exists()


def test_score_rejects_a_non_detector_run(capsys, tmp_path):
    x = np.random.default_rng(0).random((50, 4)).astype(np.float32)
    aekit.save(aekit.Embedder(epochs=1, latent_dim=2).fit(x), tmp_path / "emb")
    np.save(tmp_path / "x.npy", x)
    assert_fails(capsys, ["detect", "score", tmp_path / "emb", "--data", tmp_path / "x.npy", "--out",
                          tmp_path / "s.csv"], "not an anomaly detector")


def test_series_label_column_becomes_labelled_windows(series_run, capsys, tmp_path):
    data = write_series(tmp_path / "lab.csv", 600, 6, fault_at=350, label=True)
    out = tmp_path / "s.csv"
    code, text = run_cli(capsys, "detect", "score", series_run / "run", "--data", data, "--out", out,
                         "--label-column", "label")
    assert code == 0, text
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["windows"]["windows_hit"] == 1 and summary["roc_auc"] > 0.9
