"""``export_onnx``: a run or task as one ONNX graph, checked against PyTorch before it is kept.

What is exported is the *whole scorer* (:mod:`aekit.deploy.graphs`): the preprocessing saved with
the model, the network and, for detectors, the score and the threshold comparison, with a dynamic
batch axis. In the same call ONNX Runtime runs the file on sample inputs — the run's own data when
its aekit.json names data that loads offline, else synthetic inputs of the right shape and range —
at batch 1, 7 and the full sample, and each output is compared with what the task's own public
PyTorch methods return (``Embedder.transform``/``reconstruct``, ``AnomalyDetector.anomaly_score``
and ``predict``, ``ImageSearch.encode``, the model's ``reconstruct``/``encode`` on the run's
preprocessing, ``SeriesAnomalyDetector.anomaly_score``), not with the export wrapper, so a wrapper
that diverges from the real scorer is caught. Above the tolerance the export is refused with
:class:`aekit.errors.ExportParityError` and nothing is left at ``out`` (the file is written under a
temporary name beside it and renamed only after the check passes).

Tolerances (``tolerance``: one number for every output, a mapping per output, or None for
:data:`DEFAULT_TOLERANCES`) bound a *normalised* difference, so one number fits data of any units:

* ``reconstruction``: ``|onnx - torch| / factor`` per feature, i.e. in the model's standardised input
  space (factor 1 for [0, 1] images; the per-feature scale of an estimator; the per-channel scale of
  a series detector);
* ``code``: ``|onnx - torch| / max(1, max |code|)``;
* ``score``, ``step_error``, ``timeline_score``: ``|onnx - torch| / max(|torch|, threshold)`` per value
  (relative, floored at the threshold: tiny scores far below it need no relative precision);
* ``is_anomaly``, ``bits``, ``timeline_is_anomaly``: must agree exactly, except for samples whose
  score (code value) lies within the score (code) tolerance of the threshold; those are counted
  (``n_near_threshold``) and allowed.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from .._utils import atomic_path
from ..errors import AekitError, ConfigError, DataError, ExportParityError, ModelFileError, RunExistsError
from .graphs import SUPPORTED_KINDS, GraphSpec, build_graph, series_point_scores

FORMATS = ("onnx",)
EXPORTERS = ("auto", "dynamo", "torchscript")
#: normalised tolerance per output (see the module docstring for what each is relative to)
DEFAULT_TOLERANCES: dict[str, float] = {
    "reconstruction": 1e-4,
    "code": 1e-4,
    "score": 1e-4,
    "step_error": 1e-4,
    "timeline_score": 1e-4,
}
INPUT_NAME = "input"
BATCH = "batch"


# -- report --------------------------------------------------------------------------------------
@dataclass
class OutputCheck:
    """How one output of the ONNX graph compared with PyTorch."""

    name: str
    shape: list[Any]
    dtype: str
    max_abs_diff: float
    max_rel_diff: float | None = None  # the normalised difference the tolerance bounds
    tolerance: float | None = None
    n_mismatch: int | None = None  # flags / bits that differ
    n_near_threshold: int | None = None  # ... of which within tolerance of the threshold (allowed)
    ok: bool = True
    in_graph: bool = True  # False for the series timeline, assembled outside the graph
    note: str = ""


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how its outputs compared with PyTorch."""

    path: str | None
    format: str
    kind: str
    model_name: str
    exporter: str
    opset: int | None
    input: dict[str, Any]
    outputs: list[dict[str, Any]]
    checks: list[OutputCheck]
    n_checked: int
    batch_sizes: list[int]
    sample_source: str
    threshold: float | None
    seconds: float
    ok: bool
    not_in_graph: list[str] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> dict[str, float]:
        return {c.name: c.max_abs_diff for c in self.checks}

    @property
    def tolerance(self) -> dict[str, float | None]:
        return {c.name: c.tolerance for c in self.checks}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_abs_diff"] = self.max_abs_diff
        d["tolerance"] = self.tolerance
        return d


# -- sources -------------------------------------------------------------------------------------
@dataclass
class _Source:
    obj: Any
    kind: str
    doc: dict[str, Any]
    where: str
    binarize: float | None = None


def _resolve(source: Any) -> _Source:
    from ..io import load, read_meta

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ModelFileError(
                f"{path} does not exist: give a run folder (aekit train / detect fit) or a saved model"
            )
        doc = read_meta(path)
        kind = doc.get("kind")
        if kind not in SUPPORTED_KINDS:
            raise ConfigError(f"{path} holds a {kind!r}, which has no network to export; exportable kinds: "
                              f"{', '.join(SUPPORTED_KINDS)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an unfinished run loads from its checkpoint
            obj = load(path)
        binarize = (doc.get("run") or {}).get("preprocessing", {}).get("binarize") if kind == "model" else None
        return _Source(obj, kind, doc, str(path), binarize)
    if isinstance(source, nn.Module):
        if not all(hasattr(source, a) for a in ("encode", "decode", "activate", "input_shape")):
            raise ConfigError(f"{type(source).__name__} is not an aekit autoencoder (encode, decode, input_shape)")
        return _Source(source, "model", {}, f"in-memory {type(source).__name__}")
    kind = getattr(type(source), "_aekit_kind", None)
    if kind not in SUPPORTED_KINDS:
        raise ConfigError(
            f"cannot export a {type(source).__name__}: give a run folder, a saved model or task, an aekit model, "
            f"or one of the kinds {', '.join(SUPPORTED_KINDS)}"
        )
    return _Source(source, kind, {}, f"in-memory {type(source).__name__}")


# -- sample inputs -------------------------------------------------------------------------------
def _spread(n_have: int, n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_have - 1, num=min(n, n_have)).round().astype(np.int64))


def _dataset_rows(name: str, shape: tuple[int, ...], n: int) -> np.ndarray | None:
    from ..data import load_dataset

    ds = load_dataset(name, download=False)
    x = ds.x_test if len(ds.x_test) else ds.x_train
    if x[0].size != math.prod(shape):
        return None
    return np.ascontiguousarray(x[_spread(len(x), n)].reshape(-1, *shape), dtype=np.float32)


def _samples(src: _Source, spec: GraphSpec, n: int, sample_inputs: Any):
    """(inputs (n, *shape), description, series or None) for the parity check."""
    shape = spec.input_shape
    if sample_inputs is not None:
        if spec.kind == "series_anomaly_detector":
            return _series_samples(src, spec, n, sample_inputs)
        x = np.asarray(sample_inputs, dtype=spec.input_dtype)
        if x.ndim < 1 or len(x) == 0 or x[0].size != math.prod(shape):
            raise DataError(f"sample_inputs must be a batch of samples of shape {shape}, got {x.shape}")
        return x.reshape(-1, *shape), "given sample_inputs", None
    if spec.kind == "series_anomaly_detector":
        return _series_samples(src, spec, n, None)
    tried = ""
    try:
        x = None
        doc = src.doc
        if spec.kind == "model" and doc.get("run"):
            name = doc["run"].get("spec", {}).get("dataset") or doc["run"].get("dataset", {}).get("name")
            if name:
                tried = f"data set {name!r}"
                x = _dataset_rows(name, shape, n)
        elif spec.kind == "image_search":
            names = [c["name"] for c in getattr(src.obj, "collections_", []) if c.get("kind") == "dataset"]
            encoder = getattr(src.obj, "source_", None)  # the encoder's run folder, when it came from one
            if not names and encoder and Path(encoder).is_dir():
                from ..io import read_meta

                run = read_meta(encoder).get("run") or {}
                names = [n for n in [run.get("spec", {}).get("dataset")] if n]
            if names:
                tried = f"data set {names[0]!r}"
                x = _dataset_rows(names[0], shape, n)
        elif spec.kind == "anomaly_detector" and doc.get("data", {}).get("kind") == "table":
            from ..cli.detect import load_detect_data

            data = doc["data"]
            tried = f"data file {data['source']}"
            d = load_detect_data(Path(data["source"]), kind="table", columns=data.get("columns"))
            if d.X is not None and d.X[0].size == math.prod(shape):
                x = d.X[_spread(len(d.X), n)].reshape(-1, *shape).astype(np.float32)
        if x is not None and len(x):
            return x, f"{tried}: {len(x)} samples", None
    except (AekitError, OSError, ValueError, KeyError):
        pass
    x = _synthetic(src, spec, n)
    why = f" ({tried} not available offline)" if tried else ""
    return x, f"synthetic: {len(x)} samples{why}", None


def _synthetic(src: _Source, spec: GraphSpec, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = spec.input_shape
    obj = src.obj
    mode = getattr(obj, "scale_mode_", None)
    if mode == "standard":
        # typical rows and (second half) rows three times as spread: both sides of a threshold
        z = rng.normal(size=(n, *shape))
        z[n // 2 :] *= 3.0
        x = obj.scale_center_ + obj.scale_factor_ * z
    elif mode == "minmax":
        x = obj.scale_center_ + obj.scale_factor_ * rng.uniform(-0.1, 1.1, size=(n, *shape))
    elif spec.kind == "model" and getattr(getattr(spec.network, "config", None), "output", "sigmoid") == "linear":
        x = rng.normal(size=(n, *shape))
    else:
        x = rng.uniform(0, 1, size=(n, *shape))
    return np.ascontiguousarray(x, dtype=np.float32)


def _series_samples(src: _Source, spec: GraphSpec, n: int, given: Any):
    """Windows (n, W, C) of a series, and that series (for the timeline check)."""
    from ..data.series import as_series

    det = src.obj
    w = int(det.window)
    steps = n + w - 1
    series, desc = None, ""
    if given is not None:
        series = det._series(given)  # the detector's own regularisation
        desc = "given sample_inputs"
    else:
        data = src.doc.get("data", {})
        if data.get("kind") == "series" and data.get("source"):
            try:
                from ..cli.detect import load_detect_data

                d = load_detect_data(Path(data["source"]), kind="series", columns=data.get("columns"),
                                     max_gap=det.max_gap, freq=det.freq_)
                if d.series is not None and d.series.n >= w:
                    series = d.series[: max(steps, w)]
                    desc = f"data file {data['source']}"
            except (AekitError, OSError, ValueError, KeyError):
                series = None
        if series is None:
            rng = np.random.default_rng(0)
            t = np.arange(steps)
            period = max(8.0, w / 2)
            z = np.stack([np.sin(2 * np.pi * t / period + k) for k in range(len(det.columns_))], 1)
            z += 0.1 * rng.normal(size=z.shape)
            z[steps // 2 : steps // 2 + max(2, w // 4)] += 3.0  # a fault, so some windows score high
            values = det.center_.astype(np.float64) + det.scale_.astype(np.float64) * z
            ts = None
            if det.step_ is not None:
                ts = np.datetime64("2024-01-01T00:00:00", "ns") + t * det.step_
            series = as_series(values, ts, columns=list(det.columns_), max_gap=det.max_gap, freq=det.freq_)
            desc = "synthetic series"
    if series.n < w:
        raise DataError(f"the sample series has {series.n} steps, fewer than the detector's window ({w})")
    vals = np.asarray(series.values, dtype=np.float64)
    windows = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(vals, w, axis=0).transpose(0, 2, 1))
    return windows, f"{desc}: {series.n} steps, {len(windows)} windows", series


# -- references: the tasks' own public methods --------------------------------------------------
def _reference(src: _Source, spec: GraphSpec, x: np.ndarray, series) -> dict[str, np.ndarray]:
    from ..training.metrics import reconstruct_batches

    kind, obj = spec.kind, src.obj
    if kind == "model":
        xm = x
        if src.binarize is not None:
            from ..data import binarize

            xm = binarize(x, src.binarize)  # as `aekit reconstruct` applies the run's preprocessing
        return {"reconstruction": reconstruct_batches(obj, xm),
                "code": reconstruct_batches(obj, xm, what="encode").reshape(len(x), -1)}
    if kind in ("embedder", "denoiser", "anomaly_detector"):
        from ..tasks.embedder import _AutoencoderEstimator

        out = {"reconstruction": obj.reconstruct(x), "code": _AutoencoderEstimator.transform(obj, x)}
        if kind == "anomaly_detector":
            out["score"] = obj.anomaly_score(x)
            out["is_anomaly"] = obj.predict(x) == -1
        return out
    if kind == "image_search":
        floaty = copy.copy(obj)
        floaty.metric = "euclidean"
        out = {"code": floaty.encode(x)}
        xm = x if obj.binarize_ is None else (x >= obj.binarize_).astype(np.float32)
        out["reconstruction"] = reconstruct_batches(obj.model_, xm)
        if obj.metric == "hamming":
            out["bits"] = obj.encode(x)
        return out
    if kind == "series_anomaly_detector":
        det = obj
        w = int(det.window)
        last = copy.copy(det)  # the per-window score is the unsmoothed 'last' point score
        last.smooth, last.point_score = 1, "last"
        scaled = det._scale(x.reshape(-1, det.scale_.shape[0])).reshape(x.shape)
        with torch.inference_mode():
            r = det.model_.reconstruct(torch.from_numpy(scaled)).float().numpy()
            z = det.model_.encode(torch.from_numpy(scaled)).reshape(len(x), -1).numpy()
        out = {
            "reconstruction": r.astype(np.float64) * det.scale_ + det.center_,
            "code": z,
            "step_error": ((r - scaled) ** 2).mean(2),
            "score": last.anomaly_score(series)[w - 1 :],
        }
        out["is_anomaly"] = out["score"] > det.threshold_.value
        result = det.detect(series)
        out["timeline_score"] = result.scores
        out["timeline_is_anomaly"] = result.flags
        out["_gap"] = result.gap
        return out
    raise ConfigError(f"no reference for kind {kind!r}")


# -- ONNX ----------------------------------------------------------------------------------------
def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ConfigError(
            f"ONNX export needs onnx, onnxruntime and onnxscript ({err.name} is missing): "
            "pip install 'aekit[export]'"
        ) from err
    return onnx, onnxruntime


@contextlib.contextmanager
def _quiet():
    """The exporters print progress, deprecation notes and torchvision absences: keep them off the console."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch._export",
                                              "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _example(spec: GraphSpec) -> torch.Tensor:
    # batch 2: the dynamo exporter specialises sizes 0 and 1, so an example of 2 keeps the axis symbolic
    g = torch.Generator().manual_seed(0)
    dtype = torch.float64 if spec.input_dtype == np.float64 else torch.float32
    return torch.rand((2, *spec.input_shape), generator=g, dtype=dtype)


def _export_dynamo(spec: GraphSpec, opset: int | None):
    ex = _example(spec)
    batch = torch.export.Dim(BATCH, min=1)
    with _quiet(), torch.no_grad():
        prog = torch.onnx.export(
            spec.module, (ex,), None, dynamo=True, input_names=[INPUT_NAME], output_names=spec.outputs,
            dynamic_shapes={"x": {0: batch}}, opset_version=opset, optimize=True, verbose=False, report=False,
        )
    if prog is None:
        raise RuntimeError("the dynamo exporter returned no program")
    return prog.model_proto


def _export_torchscript(spec: GraphSpec, opset: int | None):
    import onnx

    ex = _example(spec)
    axes = {name: {0: BATCH} for name in [INPUT_NAME, *spec.outputs]}
    buf = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            spec.module, (ex,), buf, dynamo=False, input_names=[INPUT_NAME], output_names=spec.outputs,
            dynamic_axes=axes, opset_version=opset or 17, do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


def _to_onnx(spec: GraphSpec, opset: int | None, exporter: str):
    """(ModelProto, exporter used). ``auto``: torch's dynamo exporter, the TorchScript one if that fails."""
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if exporter in ("auto", "dynamo"):
        try:
            return _export_dynamo(spec, opset), "dynamo"
        except Exception as err:  # noqa: BLE001 - any exporter failure: fall back or report
            if exporter == "dynamo":
                raise ConfigError(f"the dynamo ONNX exporter failed on this {spec.kind}: {_short(err)}") from err
            first = err
    try:
        return _export_torchscript(spec, opset), "torchscript"
    except Exception as err:  # noqa: BLE001
        extra = f" (the dynamo exporter failed first: {_short(first)})" if exporter == "auto" else ""
        raise ConfigError(f"ONNX export of this {spec.kind} failed: {_short(err)}{extra}") from err


def _short(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


def _name_batch_axes(proto) -> None:
    """Call the first axis of the input and every output ``batch`` (the exporters name it s0, ...)."""
    for v in [*proto.graph.input, *proto.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH


def _shape_of(v) -> list[Any]:
    return [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else "?")
            for d in v.type.tensor_type.shape.dim]


def _dtype_of(v) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name


def _metadata(src: _Source, spec: GraphSpec, exporter: str) -> dict[str, str]:
    from ..models import model_meta

    meta = model_meta(spec.network)
    params = getattr(src.obj, "get_params", None)
    est_params = {k: v for k, v in params().items() if k != "encoder"} if callable(params) else None
    if spec.kind == "image_search":
        est_params = {"metric": src.obj.metric, "index": src.obj.index}
    inp = {
        "name": INPUT_NAME,
        "shape": [BATCH, *spec.input_shape],
        "dtype": spec.input_dtype.name,
        "range": spec.input_range,
        "preprocessing_in_graph": spec.preprocessing,
    }
    out = {
        "aekit_version": __version__,
        "aekit_kind": spec.kind,
        "aekit_model_name": meta["model_name"],
        "aekit_model_config": json.dumps(meta["model_config"]),
        "aekit_input": json.dumps(inp, default=str),
        "aekit_outputs": json.dumps(spec.output_doc),
        "aekit_not_in_graph": json.dumps(spec.not_in_graph),
        "aekit_source": src.where,
        "aekit_exporter": f"torch {torch.__version__} ({exporter})",
    }
    if spec.threshold is not None:
        out["aekit_threshold"] = repr(float(spec.threshold))
        th = getattr(src.obj, "threshold_", None)
        if th is not None:
            out["aekit_threshold_spec"] = json.dumps(th.to_dict(), default=str)
    if est_params is not None:
        out["aekit_params"] = json.dumps(est_params, default=str)
    if spec.extra:
        out["aekit_extra"] = json.dumps(spec.extra, default=str)
    return out


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``aekit_*`` metadata of an exported file, JSON values decoded."""
    onnx, _ = _require_onnx()
    proto = onnx.load(str(path), load_external_data=False)
    out: dict[str, Any] = {}
    for p in proto.metadata_props:
        try:
            out[p.key] = json.loads(p.value)
        except json.JSONDecodeError:
            out[p.key] = p.value
    return out


# -- the check -----------------------------------------------------------------------------------
def _tolerances(tolerance: float | Mapping[str, float] | None) -> dict[str, float]:
    tol = dict(DEFAULT_TOLERANCES)
    if tolerance is None:
        return tol
    if isinstance(tolerance, Mapping):
        unknown = sorted(set(tolerance) - set(tol))
        if unknown:
            raise ConfigError(f"tolerance for unknown output(s) {unknown}; outputs: {sorted(tol)}")
        items = dict(tolerance)
    else:
        items = dict.fromkeys(tol, tolerance)
    for k, v in items.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ConfigError(f"tolerance must be a finite number >= 0, got {v!r} for {k}")
        tol[k] = float(v)
    return tol


def _batches(n: int) -> list[tuple[int, int]]:
    """Row ranges to run: batch 1 (first sample), batch 7 (the next ones), then everything at once."""
    out = [(0, 1)]
    if n >= 8:
        out.append((1, 8))
    if n > 1:
        out.append((0, n))
    return out


def _run_ort(session, x: np.ndarray, names: list[str], ranges) -> list[dict[str, np.ndarray]]:
    runs = []
    for a, b in ranges:
        res = session.run(names, {INPUT_NAME: np.ascontiguousarray(x[a:b])})
        runs.append(dict(zip(names, res)))
    return runs


def _divisor(name: str, spec: GraphSpec, src: _Source, want: np.ndarray, ref_all: np.ndarray):
    """What an output's differences are divided by before they meet the tolerance (module docstring)."""
    if name == "reconstruction":
        if spec.kind in ("embedder", "denoiser", "anomaly_detector"):
            return np.asarray(src.obj.scale_factor_, np.float64)  # broadcasts over the rows
        if spec.kind == "series_anomaly_detector":
            return np.asarray(src.obj.scale_, np.float64)  # per channel, the last axis
        return 1.0
    if name == "code":
        return max(1.0, float(np.abs(ref_all).max(initial=0.0)))
    th = abs(spec.threshold) if spec.threshold is not None else 0.0
    return np.maximum(np.abs(want.astype(np.float64)), max(th, 1e-30))


def _compare(name: str, got_parts, want_parts, divisors, tol: float, shape, dtype) -> OutputCheck:
    abs_max, rel_max = 0.0, 0.0
    for got, want, div in zip(got_parts, want_parts, divisors):
        d = np.abs(got.astype(np.float64) - want.astype(np.float64))
        if d.size:
            abs_max = max(abs_max, float(d.max()))
            rel_max = max(rel_max, float((d / div).max()))
    finite = math.isfinite(abs_max) and math.isfinite(rel_max)
    return OutputCheck(name, shape, dtype, abs_max, rel_max, tol, ok=finite and rel_max <= tol)


def _compare_flags(name: str, got_parts, ref_parts, near_parts, shape, dtype, note: str) -> OutputCheck:
    mismatch = near = 0
    far = 0
    for got, ref, nr in zip(got_parts, ref_parts, near_parts):
        bad = np.asarray(got).astype(bool) != np.asarray(ref).astype(bool)
        mismatch += int(bad.sum())
        near += int((bad & nr).sum())
        far += int((bad & ~nr).sum())
    return OutputCheck(name, shape, dtype, float(mismatch > 0), None, None, mismatch, near, ok=far == 0, note=note)


def _check(session, spec: GraphSpec, src: _Source, x: np.ndarray, series, proto, tol: dict[str, float]):
    names = [o.name for o in session.get_outputs()]
    ref = _reference(src, spec, x, series)
    ranges = _batches(len(x))
    runs = _run_ort(session, x, names, ranges)
    shapes = {v.name: _shape_of(v) for v in proto.graph.output}
    dtypes = {v.name: _dtype_of(v) for v in proto.graph.output}
    checks: list[OutputCheck] = []
    for name in names:
        got = [r[name] for r in runs]
        want = [ref[name][a:b] for a, b in ranges]
        if got[0].shape[1:] != ref[name].shape[1:]:
            raise ExportParityError(f"output {name!r} has per-sample shape {got[0].shape[1:]} in ONNX but "
                                    f"{ref[name].shape[1:]} in PyTorch")
        if name == "is_anomaly":
            s_tol = tol["score"] * np.maximum(np.abs(ref["score"]), abs(spec.threshold))
            near = np.abs(ref["score"] - spec.threshold) <= s_tol
            checks.append(_compare_flags(name, got, want, [near[a:b] for a, b in ranges], shapes[name],
                                         dtypes[name], "exact except within the score tolerance of the threshold"))
        elif name == "bits":
            cth = float(spec.extra["code_threshold"])
            c_scale = _divisor("code", spec, src, ref["code"], ref["code"])
            near = np.abs(ref["code"] - cth) <= tol["code"] * c_scale
            checks.append(_compare_flags(name, got, want, [near[a:b] for a, b in ranges], shapes[name],
                                         dtypes[name], "exact except within the code tolerance of the threshold"))
        else:
            divs = [_divisor(name, spec, src, w, ref[name]) for w in want]
            checks.append(_compare(name, got, want, divs, tol[name], shapes[name], dtypes[name]))
    if spec.kind == "series_anomaly_detector":
        full = runs[-1]
        timeline = series_point_scores(full["step_error"], point_score=spec.extra["point_score"],
                                       smooth=spec.extra["smooth_steps"])
        ts_ref = ref["timeline_score"]
        scale = _divisor("timeline_score", spec, src, ts_ref, ts_ref)
        c = _compare("timeline_score", [timeline], [ts_ref], [scale], tol["timeline_score"], ["steps"], "float64")
        c.in_graph, c.note = False, "series_point_scores(step_error) against SeriesAnomalyDetector.anomaly_score"
        checks.append(c)
        flags = (timeline > spec.threshold) & ~ref["_gap"]
        near = np.abs(ts_ref - spec.threshold) <= tol["timeline_score"] * scale
        c = _compare_flags("timeline_is_anomaly", [flags], [ref["timeline_is_anomaly"]], [near], ["steps"], "bool",
                           "against SeriesAnomalyDetector.detect(...).flags")
        c.in_graph = False
        checks.append(c)
    return checks, sorted({b - a for a, b in ranges})


# -- the entry point -----------------------------------------------------------------------------
def export_onnx(
    source: Any,
    out: str | os.PathLike,
    *,
    tolerance: float | Mapping[str, float] | None = None,
    check_samples: int = 64,
    opset: int | None = None,
    sample_inputs: Any = None,
    overwrite: bool = False,
    exporter: str = "auto",
) -> ExportReport:
    """Export ``source``'s whole scorer to ONNX file ``out``, after checking it against PyTorch.

    Parameters
    ----------
    source : path or object
        A run folder (``aekit train``, ``aekit detect fit``), a folder ``aekit.save`` wrote, an aekit
        model, or a fitted Embedder, Denoiser, AnomalyDetector, SeriesAnomalyDetector or ImageSearch.
    out : path
        The ``.onnx`` file to write. An existing file is refused unless ``overwrite``.
    tolerance : float, mapping or None
        The normalised difference each output may show (see the module docstring);
        None: :data:`DEFAULT_TOLERANCES`; a float: that for every output; a mapping: per output.
    check_samples : int
        Sample inputs (windows, for a series detector) to compare on; run at batch 1, 7 and all.
    opset : int, optional
        ONNX opset (default: the exporter's, 18+ for dynamo, 17 for TorchScript).
    sample_inputs : array-like, optional
        Inputs to check on instead of the run's data / synthetic ones: raw samples (n, *input shape);
        for a series detector a series (a ``Series``, a CSV path, or an (n, channels) array when it was
        trained without timestamps), cut into its stride-1 windows.
    exporter : {"auto", "dynamo", "torchscript"}
        ``auto``: torch's dynamo exporter, falling back to the TorchScript one if it fails.

    Returns
    -------
    ExportReport

    Raises
    ------
    ExportParityError
        An output differs from PyTorch beyond its tolerance (nothing is written).
    RunExistsError, ModelFileError, ConfigError, NotFittedError
        ``out`` exists; ``source`` is missing or unreadable; bad options or a kind without a network.
    """
    t0 = time.perf_counter()
    onnx, ort = _require_onnx()
    out = Path(out)
    if out.is_dir():
        raise RunExistsError(f"{out} is a folder; give the path of the .onnx file to write")
    if out.exists() and not overwrite:
        raise RunExistsError(f"{out} already exists; choose another path or pass overwrite=True (--overwrite)")
    if not (isinstance(check_samples, (int, np.integer)) and check_samples >= 1):
        raise ConfigError(f"check_samples must be a positive integer, got {check_samples!r}")
    if opset is not None and not (isinstance(opset, (int, np.integer)) and 7 <= opset <= 30):
        raise ConfigError(f"opset must be an ONNX opset number such as 17 or 18, got {opset!r}")
    tol = _tolerances(tolerance)
    src = _resolve(source)
    spec = build_graph(src.obj, src.kind, binarize=src.binarize)
    x, sample_source, series = _samples(src, spec, int(check_samples), sample_inputs)

    proto, used = _to_onnx(spec, opset, exporter)
    _name_batch_axes(proto)
    for k, v in _metadata(src, spec, used).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.doc_string = f"aekit {spec.kind} ({spec.network.model_name}): the whole scorer from raw input"
    proto.producer_name, proto.producer_version = "aekit", __version__
    onnx.checker.check_model(proto)
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)

    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(tmp), opts, providers=["CPUExecutionProvider"])
        checks, batch_sizes = _check(session, spec, src, x, series, proto, tol)
        ok = all(c.ok for c in checks)
        report = ExportReport(
            path=str(out) if ok else None, format="onnx", kind=spec.kind, model_name=spec.network.model_name,
            exporter=used, opset=opset_used,
            input={"name": INPUT_NAME, "shape": [BATCH, *spec.input_shape], "dtype": spec.input_dtype.name},
            outputs=[{"name": v.name, "shape": _shape_of(v), "dtype": _dtype_of(v)} for v in proto.graph.output],
            checks=checks, n_checked=len(x), batch_sizes=batch_sizes, sample_source=sample_source,
            threshold=spec.threshold, seconds=0.0, ok=ok, not_in_graph=spec.not_in_graph,
        )
        report.seconds = round(time.perf_counter() - t0, 3)
        if not ok:
            bad = [c for c in checks if not c.ok]
            parts = [
                f"{c.name}: {c.n_mismatch - (c.n_near_threshold or 0)} flags differ away from the threshold"
                if c.n_mismatch is not None else
                f"{c.name}: max difference {c.max_abs_diff:.3g} (normalised {c.max_rel_diff:.3g} > tolerance "
                f"{c.tolerance:g})"
                for c in bad
            ]
            raise ExportParityError(
                f"ONNX Runtime disagrees with PyTorch on {len(x)} samples ({'; '.join(parts)}); nothing was "
                f"written to {out}", report=report,
            )
    return report
