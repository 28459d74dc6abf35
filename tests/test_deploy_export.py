"""ONNX export of every saveable kind: parity with the tasks' own PyTorch methods, dynamic batch,
metadata, refusal of a diverging graph (nothing written), and ``aekit export`` on the command line."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import aekit
from _cli_helpers import assert_fails, run_cli
from aekit.cli.main import console
from aekit.cli.main import main as cli_main
from aekit.cli.runs import RunSpec, train_run
from aekit.deploy import export_onnx, read_metadata, series_point_scores
from aekit.deploy import graphs as deploy_graphs
from aekit.errors import ConfigError, ExportParityError, ModelFileError, NotFittedError, RunExistsError

FAST = dict(exporter="torchscript")  # ~0.05 s per export; the default (dynamo, ~1 s) is tested on four kinds
TS = np.datetime64("2024-03-01T00:00") + np.arange(700) * np.timedelta64(1, "m")


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _series(n: int = 700, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.stack([20 + 3 * np.sin(2 * np.pi * t / 40), 100 + 10 * np.cos(2 * np.pi * t / 40)], 1) + \
        0.1 * rng.normal(size=(n, 2))


def _table(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1).normal(size=(2, 6))
    return (rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, 6))) * 30 + 500


@pytest.fixture(scope="module")
def sources(digits, tmp_path_factory):
    """One small fitted object (or run folder) of every exportable kind, trained for a few steps."""
    root = tmp_path_factory.mktemp("sources")
    x = digits.x_train[:300]
    out: dict[str, object] = {}
    for name, spec in {
        "dense_run": RunSpec(model="dense_ae", preset="tutorial", epochs=1, n_train=200, n_test=80, threads=1),
        "conv_run_binarized": RunSpec(model="conv_ae", preset="tutorial", epochs=1, n_train=200, n_test=80,
                                      binarize=0.5, threads=1),
    }.items():
        spec.dataset = "digits"
        train_run(spec, root / name, progress=False, figures=False)
        out[name] = root / name
    out["embedder"] = _quiet(aekit.Embedder(latent_dim=4, epochs=2, threads=1).fit, x.reshape(len(x), -1))
    out["embedder_binarized_table"] = _quiet(
        aekit.Embedder(latent_dim=3, epochs=2, scale="minmax", binarize=0.5, threads=1).fit, _table())
    out["denoiser"] = _quiet(aekit.Denoiser(model="conv_ae", preset="tutorial", epochs=1, threads=1).fit, x)
    out["detector_table"] = _quiet(aekit.AnomalyDetector(steps=60, threads=1).fit, _table())
    out["detector_table_mse"] = _quiet(aekit.AnomalyDetector(steps=40, error="mse", threads=1).fit, _table())
    out["detector_images"] = _quiet(aekit.AnomalyDetector(steps=30, threads=1).fit, x[:, 0])
    out["detector_gru_vectors"] = _quiet(
        aekit.AnomalyDetector(model="gru", steps=20, error="normalized", threads=1).fit, _table()[:, :5])
    out["series"] = _quiet(aekit.SeriesAnomalyDetector(window=16, steps=60, smooth=8, threads=1).fit,
                           _series(), timestamps=TS)
    out["series_conv1d_last"] = _quiet(
        aekit.SeriesAnomalyDetector(model="conv1d", window=16, steps=40, point_score="last", smooth=1,
                                    threads=1).fit, _series(500, 1))
    aekit.seed_everything(0)
    enc = aekit.create_model("dense_ae", input_shape=(1, 8, 8), hidden=(32,), latent_dim=16,
                             code_activation="sigmoid", code_noise=4.0)
    aekit.Trainer(aekit.TrainConfig(epochs=3, batch_size=64, threads=1, progress=False)).fit(enc, torch.from_numpy(x))
    out["search_euclidean"] = aekit.ImageSearch(out["conv_run_binarized"]).fit(x[:100])
    out["search_hamming"] = aekit.ImageSearch(enc, metric="hamming").fit(x[:100])
    return out


KIND_OF = {
    "dense_run": "model", "conv_run_binarized": "model", "embedder": "embedder",
    "embedder_binarized_table": "embedder", "denoiser": "denoiser", "detector_table": "anomaly_detector",
    "detector_table_mse": "anomaly_detector", "detector_images": "anomaly_detector",
    "detector_gru_vectors": "anomaly_detector", "series": "series_anomaly_detector",
    "series_conv1d_last": "series_anomaly_detector", "search_euclidean": "image_search",
    "search_hamming": "image_search",
}
OUTPUTS = {
    "model": ["reconstruction", "code"], "embedder": ["reconstruction", "code"],
    "denoiser": ["reconstruction", "code"], "anomaly_detector": ["reconstruction", "code", "score", "is_anomaly"],
    "series_anomaly_detector": ["reconstruction", "code", "step_error", "score", "is_anomaly"],
    "image_search": ["reconstruction", "code"],
}


def _assert_parity(report, kind):
    assert report.ok and report.kind == kind
    names = [c.name for c in report.checks]
    hamming = kind == "image_search" and report.to_dict()["checks"][-1]["name"] == "bits"
    want = OUTPUTS[kind] + (["bits"] if hamming else [])
    assert [o["name"] for o in report.outputs] == want
    if kind == "series_anomaly_detector":
        assert names[-2:] == ["timeline_score", "timeline_is_anomaly"]
    for c in report.checks:
        assert c.ok, c
        if c.n_mismatch is None:
            assert c.max_rel_diff <= 5e-5, c  # float32 rounding (at most ~1e-5 here), inside the 1e-4 default
        else:
            assert c.n_mismatch == 0, c
    assert report.batch_sizes == [1, 7, report.n_checked]
    for o in report.outputs:
        assert o["shape"][0] == "batch"


@pytest.mark.parametrize("name", list(KIND_OF))
def test_every_kind_exports_with_parity(name, sources, tmp_path):
    src = sources[name]
    kind = KIND_OF[name]
    report = export_onnx(src, tmp_path / "m.onnx", check_samples=24, **FAST)
    _assert_parity(report, kind)
    assert Path(report.path).is_file() and report.n_checked == 24
    if name == "search_hamming":
        assert report.outputs[-1] == {"name": "bits", "shape": ["batch", 16], "dtype": "uint8"}
    if name in ("dense_run", "conv_run_binarized", "search_euclidean"):
        assert report.sample_source.startswith("data set 'digits'"), report.sample_source
    d = report.to_dict()
    assert set(d["max_abs_diff"]) == {c.name for c in report.checks} and d["path"] == report.path


@pytest.mark.parametrize("name", ["conv_run_binarized", "detector_images", "series", "search_hamming"])
def test_default_exporter_is_dynamo_with_parity(name, sources, tmp_path):
    report = export_onnx(sources[name], tmp_path / "m.onnx", check_samples=16)
    assert report.exporter == "dynamo" and report.opset >= 18
    _assert_parity(report, KIND_OF[name])


def test_dynamic_batch_and_metadata(sources, tmp_path):
    det = sources["detector_table"]
    out = export_onnx(det, tmp_path / "det.onnx", **FAST).path
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].name == "input" and sess.get_inputs()[0].shape == ["batch", 6]
    x = _table(50, seed=5).astype(np.float32)
    x[-5:] += 400  # far from the training rows: anomalies
    for n in (1, 7, 50):
        rec, code, score, flag = sess.run(None, {"input": x[:n]})
        assert rec.shape == (n, 6) and code.shape[0] == n and score.dtype == np.float64 and flag.dtype == bool
        np.testing.assert_allclose(score, det.anomaly_score(x[:n]), rtol=1e-5)
        np.testing.assert_array_equal(flag, det.predict(x[:n]) == -1)
    assert flag[-5:].all()
    meta = read_metadata(out)
    assert meta["aekit_kind"] == "anomaly_detector" and meta["aekit_model_name"] == "dense_ae"
    assert meta["aekit_version"] == aekit.__version__ and meta["aekit_threshold"] == det.threshold_.value
    assert meta["aekit_input"]["shape"] == ["batch", 6] and meta["aekit_input"]["dtype"] == "float32"
    assert any("scale (standard)" in p for p in meta["aekit_input"]["preprocessing_in_graph"])
    assert meta["aekit_model_config"]["input_shape"] == [6] and meta["aekit_params"]["error"] == "mahalanobis"
    assert meta["aekit_threshold_spec"]["spec"] == "fpr:0.01"


def test_series_graph_and_timeline_helper_reproduce_the_detector(sources, tmp_path):
    det = sources["series"]
    out = export_onnx(det, tmp_path / "s.onnx", **FAST).path
    meta = read_metadata(out)
    assert any("trailing mean over 8 steps" in s for s in meta["aekit_not_in_graph"])
    values = _series(200, seed=3)
    values[120:126, 0] += 15  # a fault
    ts = TS[:200]
    windows = np.lib.stride_tricks.sliding_window_view(values, 16, axis=0).transpose(0, 2, 1).copy()
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    rec, _, step_error, score, _ = sess.run(None, {"input": windows})
    assert rec.dtype == np.float64 and np.abs(rec - windows).mean() < np.abs(windows - windows.mean((0, 1))).mean()
    timeline = series_point_scores(step_error, point_score="mean", smooth=det.smooth_steps_)
    np.testing.assert_allclose(timeline, det.anomaly_score(values, timestamps=ts), rtol=1e-5)
    flags = timeline > det.threshold_.value
    np.testing.assert_array_equal(flags, det.detect(values, timestamps=ts).flags)
    assert flags[120:140].any()


def test_in_memory_model_and_overwrite(tmp_path):
    model = aekit.create_model("conv_ae", "tutorial", input_shape=(1, 12, 10))  # padded inside the network
    out = tmp_path / "m.onnx"
    r = export_onnx(model, out, check_samples=9, **FAST)
    _assert_parity(r, "model")
    assert r.sample_source.startswith("synthetic")
    with pytest.raises(RunExistsError, match="already exists"):
        export_onnx(model, out, **FAST)
    before = out.stat().st_mtime_ns
    export_onnx(model, out, overwrite=True, check_samples=4, **FAST)
    assert out.stat().st_mtime_ns >= before and r.n_checked == 9


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_diverging_score_is_refused_and_nothing_is_written(sources, tmp_path, monkeypatch):
    forward = deploy_graphs.EstimatorGraph.forward

    def off_by_a_bit(self, x):
        rec, code, score, flag = forward(self, x)
        return rec, code, score * 1.001, flag  # 0.1% off: what a wrong constant would do

    monkeypatch.setattr(deploy_graphs.EstimatorGraph, "forward", off_by_a_bit)
    out = tmp_path / "det.onnx"
    with pytest.raises(ExportParityError, match="score") as info:
        export_onnx(sources["detector_table"], out, **FAST)
    assert _leftovers(tmp_path) == []
    rep = info.value.report
    assert rep is not None and not rep.ok and rep.path is None
    bad = {c.name: c for c in rep.checks if not c.ok}
    assert set(bad) == {"score"} and 5e-4 < bad["score"].max_rel_diff < 2e-3
    # a looser tolerance accepts it, on purpose
    assert export_onnx(sources["detector_table"], out, tolerance={"score": 1e-2}, **FAST).ok


def test_missing_preprocessing_is_caught(sources, tmp_path, monkeypatch):
    """A graph that forgets the run's binarisation must not pass for the run's scorer."""
    init = deploy_graphs._Scaling.__init__

    def no_binarize(self, *a, **kw):
        kw["binarize"] = None
        init(self, *a, **kw)

    monkeypatch.setattr(deploy_graphs._Scaling, "__init__", no_binarize)
    with pytest.raises(ExportParityError, match="reconstruction"):
        export_onnx(sources["conv_run_binarized"], tmp_path / "m.onnx", **FAST)
    assert _leftovers(tmp_path) == []


def test_flag_disagreements_only_allowed_at_the_threshold(sources, tmp_path, monkeypatch):
    det = sources["detector_table"]
    x = _table(40, seed=9).astype(np.float32)
    x[::2] += 300
    scores = det.anomaly_score(x)
    forward = deploy_graphs.EstimatorGraph.forward

    def flip(self, inp):
        rec, code, score, flag = forward(self, inp)
        return rec, code, score, ~flag

    monkeypatch.setattr(deploy_graphs.EstimatorGraph, "forward", flip)
    with pytest.raises(ExportParityError, match="is_anomaly: .* flags differ"):
        export_onnx(det, tmp_path / "f.onnx", sample_inputs=x, **FAST)
    assert (scores > det.threshold_.value).any() and (scores <= det.threshold_.value).any()


def test_bad_sources_and_options(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        export_onnx(tmp_path / "nope", tmp_path / "m.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="no aekit.json"):
        export_onnx(tmp_path / "empty", tmp_path / "m.onnx")
    with pytest.raises(NotFittedError):
        export_onnx(aekit.AnomalyDetector(), tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="cannot export a dict"):
        export_onnx({}, tmp_path / "m.onnx")
    model = aekit.create_model("dense_ae", input_shape=(4,), hidden=(8,), latent_dim=2)
    with pytest.raises(ConfigError, match="tolerance"):
        export_onnx(model, tmp_path / "m.onnx", tolerance={"bogus": 1.0})
    with pytest.raises(ConfigError, match="exporter"):
        export_onnx(model, tmp_path / "m.onnx", exporter="tflite")
    with pytest.raises(RunExistsError, match="folder"):
        export_onnx(model, tmp_path)
    assert _leftovers(tmp_path) == ["empty"]


# -- command line ----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setattr(console, "width", 200)




@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("table")
    x = _table(300)
    with open(d / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{j}" for j in range(6)])
        w.writerows([[f"{v:.5f}" for v in row] for row in x])
    assert cli_main(["detect", "fit", "--data", str(d / "train.csv"), "--out", str(d / "run"), "--steps", "60",
                     "--threads", "1", "--quiet"]) == 0
    return d / "run"


def test_cli_export_happy_path(table_run, capsys, tmp_path):
    out = tmp_path / "det.onnx"
    code, text = run_cli(capsys, "export", table_run, "--format", "onnx", "--out", out, "--exporter", "torchscript",
                         "--check-samples", "20")
    assert code == 0, text
    assert out.is_file() and f"wrote {out}" in " ".join(text.split())
    for word in ("reconstruction", "score", "is_anomaly", "max abs diff", "tolerance", "0 differ"):
        assert word in text, word
    assert "data file" in text and "train.csv" in text  # the run's own data
    meta = read_metadata(out)
    assert meta["aekit_kind"] == "anomaly_detector" and meta["aekit_source"] == str(table_run)


def test_cli_export_bad_inputs(table_run, sources, capsys, tmp_path, monkeypatch):
    out = tmp_path / "m.onnx"
    assert_fails(capsys, ["export", tmp_path / "missing", "--out", out], "does not exist")
    assert_fails(capsys, ["export", table_run, "--format", "tflite", "--out", out], "unknown export format", "onnx")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "aekit.json").write_text("{not json")
    assert_fails(capsys, ["export", garbage, "--out", out], "not valid json")
    out.write_bytes(b"old")
    assert_fails(capsys, ["export", table_run, "--out", out], "already exists", "--overwrite")
    assert out.read_bytes() == b"old"

    forward = deploy_graphs.EstimatorGraph.forward
    monkeypatch.setattr(deploy_graphs.EstimatorGraph, "forward",
                        lambda self, x: tuple(t + 0.01 if t.dtype == torch.float32 else t for t in forward(self, x)))
    text = assert_fails(capsys, ["export", table_run, "--out", tmp_path / "new.onnx", "--exporter", "torchscript"],
                        "onnx runtime disagrees", "nothing was written")
    assert "NO" in text and not (tmp_path / "new.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage", "m.onnx"]
