"""The whole scorer of each saveable kind as one ``nn.Module``, ready for ONNX export.

Each graph takes the *raw* input a user hands the task (images in [0, 1], table rows in their own
units, sensor windows in their own units) and applies, in torch operations, exactly what the task
applies before and after its network:

* the preprocessing saved with it: an estimator's scaling (``(X - center) / factor``), a run's or
  an estimator's binarisation (``x >= threshold`` -> 1.0), the reshape to the network's input;
* the network (a private copy, in eval mode, with the CPU-only layer rewrites of
  :mod:`aekit.models._fast_ops` switched off: they compute the same function, and the plain
  layers are what ONNX has operators for);
* the outputs: ``reconstruction`` (in the input's space and shape), ``code`` (flattened), and for
  detectors the anomaly ``score`` (float64, the detector's own formula on its fitted statistics)
  and ``is_anomaly`` (``score > threshold``, the detector's comparison); ``step_error`` and a
  per-window ``score`` for the series detector; ``bits`` (uint8 0/1) for a hamming image search.

:func:`build_graph` picks the graph for a loaded object; ``GraphSpec`` describes its input,
outputs and what is *not* in the graph (for the ONNX metadata and the docs).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError, NotFittedError

#: kinds (``aekit.json``'s ``kind``) that export, in the order the docs list them
SUPPORTED_KINDS = ("model", "embedder", "denoiser", "anomaly_detector", "series_anomaly_detector", "image_search")


@dataclass
class GraphSpec:
    """What :func:`build_graph` built: the module and the facts the export records about it."""

    kind: str
    module: nn.Module
    network: nn.Module
    input_shape: tuple[int, ...]  # one sample, raw
    input_dtype: np.dtype
    input_range: str
    preprocessing: list[str]
    outputs: list[str]
    output_doc: dict[str, str]
    threshold: float | None = None
    not_in_graph: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific facts (code threshold, window, ...)


def plain_network(model: nn.Module) -> nn.Module:
    """A private eval-mode float32 CPU copy of ``model`` with the fast CPU rewrites turned off."""
    from ..models._fast_ops import FastSequential

    net = copy.deepcopy(model).cpu().float().eval()
    for m in net.modules():
        if isinstance(m, FastSequential):
            m.fast = False
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _buffer(values, dtype: torch.dtype) -> Tensor:
    return torch.as_tensor(np.asarray(values), dtype=dtype).clone()


class _Scaling(nn.Module):
    """``(x - center) / factor`` (optional), then ``x >= binarize`` (optional), reshaped for the network."""

    def __init__(self, model_shape, *, center=None, factor=None, binarize: float | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model_shape = tuple(int(s) for s in model_shape)
        self.scaled = center is not None
        if self.scaled:
            self.register_buffer("center", _buffer(center, dtype))
            self.register_buffer("factor", _buffer(factor, dtype))
        self.binarize = None if binarize is None else float(binarize)

    def forward(self, x: Tensor) -> Tensor:
        if self.scaled:
            x = (x - self.center) / self.factor
        x = x.float()  # no-op for float32 inputs; float64 series values are scaled first, then cast
        if self.binarize is not None:
            x = (x >= self.binarize).to(torch.float32)
        return x.reshape(-1, *self.model_shape)


class ImageModelGraph(nn.Module):
    """A model run (or an image search's encoder): [binarise] -> network -> reconstruction, code [, bits]."""

    def __init__(self, network: nn.Module, binarize: float | None, *, code_threshold: float | None = None) -> None:
        super().__init__()
        self.pre = _Scaling(network.input_shape, binarize=binarize)
        self.net = network
        self.code_threshold = None if code_threshold is None else float(code_threshold)

    def forward(self, x: Tensor):
        xm = self.pre(x)
        z = self.net.encode(xm)
        rec = self.net.activate(self.net.decode(z))
        code = z.flatten(1)
        if self.code_threshold is None:
            return rec, code
        return rec, code, (code > self.code_threshold).to(torch.uint8)


class EstimatorGraph(nn.Module):
    """Embedder / Denoiser / AnomalyDetector: scale [+ binarise] -> network -> back to input space [+ score].

    ``error``: None (no score), ``"mse"``, ``"normalized"`` or ``"mahalanobis"``, computed as
    :meth:`AnomalyDetector._score_model_space` does: squared errors in model space (float32),
    divided by the per-feature training error (``normalized``, ``mahalanobis``), and for
    ``mahalanobis`` the code's squared Mahalanobis distance in float64 added before dividing by the
    number of terms (features + code values).
    """

    def __init__(self, network: nn.Module, input_shape, center, factor, binarize: float | None = None, *,
                 error: str | None = None, feature_scale=None, code_center=None, code_precision=None,
                 threshold: float | None = None) -> None:
        super().__init__()
        self.net = network
        self.input_shape = tuple(int(s) for s in input_shape)
        self.pre = _Scaling(network.input_shape, center=center, factor=factor, binarize=binarize)
        self.register_buffer("center", _buffer(center, torch.float32))
        self.register_buffer("factor", _buffer(factor, torch.float32))
        self.error = error
        self.n_elements = math.prod(network.input_shape)
        if error in ("normalized", "mahalanobis"):
            self.register_buffer("feature_scale", _buffer(feature_scale, torch.float32).reshape(1, -1))
        if error == "mahalanobis":
            self.register_buffer("code_center", _buffer(code_center, torch.float32).double())
            self.register_buffer("code_precision", _buffer(code_precision, torch.float32).double())
        if error is not None:
            self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float64))

    def forward(self, x: Tensor):
        xm = self.pre(x)
        z = self.net.encode(xm)
        r = self.net.activate(self.net.decode(z))
        rec = r.reshape(-1, *self.input_shape) * self.factor + self.center
        code = z.flatten(1)
        if self.error is None:
            return rec, code
        err = (r - xm).pow(2).reshape(-1, self.n_elements)
        if self.error == "mse":
            score = err.mean(1).double()
        elif self.error == "normalized":
            score = (err / self.feature_scale).mean(1).double()
        else:
            d = code.double() - self.code_center
            along = ((d @ self.code_precision) * d).sum(1)
            total = (err / self.feature_scale).sum(1).double() + along
            score = total / float(self.n_elements + code.shape[1])
        return rec, code, score, score > self.threshold


class SeriesWindowGraph(nn.Module):
    """SeriesAnomalyDetector on raw windows (N, window, channels), float64 as the detector reads them.

    Standardised per channel in float64 and cast to float32 (the detector's ``_scale``), reconstructed;
    ``step_error`` (N, window) is the squared error averaged over channels (``_window_errors``),
    ``score`` (N,) its mean over the window: the ``point_score="last"`` score of the window's last
    step before smoothing; ``reconstruction`` is in the series' own units (float64).
    """

    def __init__(self, network: nn.Module, center, scale, threshold: float) -> None:
        super().__init__()
        self.net = network
        self.pre = _Scaling(network.input_shape, center=center, factor=scale, dtype=torch.float64)
        self.register_buffer("center", _buffer(center, torch.float64))
        self.register_buffer("scale", _buffer(scale, torch.float64))
        self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float64))

    def forward(self, x: Tensor):
        xs = self.pre(x)
        z = self.net.encode(xs)
        r = self.net.activate(self.net.decode(z))
        step_error = (r - xs).pow(2).mean(2)
        score = step_error.mean(1).double()
        rec = r.double() * self.scale + self.center
        return rec, z.flatten(1), step_error, score, score > self.threshold


def series_point_scores(step_error: np.ndarray, *, point_score: str = "mean", smooth: int = 1) -> np.ndarray:
    """A series' per-time-step scores from the ``step_error`` of all its stride-1 windows, in order.

    ``step_error`` (m, window) comes from the exported series graph run on the m = n - window + 1
    windows of an n-step series (standardisation is in the graph). This is the part of
    :meth:`SeriesAnomalyDetector.anomaly_score` that is not in the graph: ``"mean"`` averages each
    step's error over the windows covering it, ``"last"`` takes the window ending at it (the first
    ``window - 1`` steps get the first window's score); then a trailing mean over ``smooth`` steps
    (the detector's ``smooth_steps_``). Flags are ``scores > threshold``, and the detector never
    flags steps inside long gaps (its series regularisation, also outside the graph).
    """
    from ..tasks.anomaly.series import _coverage, trailing_mean

    e = np.asarray(step_error, dtype=np.float32)
    if e.ndim != 2 or len(e) == 0:
        raise ConfigError(f"step_error must be (windows, window) with at least one window, got shape {e.shape}")
    m, w = e.shape
    n = m + w - 1
    if point_score == "mean":
        sums = np.zeros(n, np.float64)
        for j in range(w):
            sums[j : j + m] += e[:, j]
        scores = sums / _coverage(n, w)
    elif point_score == "last":
        last = e.mean(1).astype(np.float64)
        scores = np.empty(n, np.float64)
        scores[w - 1 :] = last
        scores[: w - 1] = last[0]
    else:
        raise ConfigError(f"point_score must be 'mean' or 'last', got {point_score!r}")
    return trailing_mean(scores, int(smooth))


def _check_fitted(obj: Any) -> None:
    if not hasattr(obj, "model_"):
        raise NotFittedError(f"this {type(obj).__name__} is not fitted yet; fit (or load) it before exporting")


def build_graph(obj: Any, kind: str, *, binarize: float | None = None) -> GraphSpec:
    """The export graph of a loaded model or task ``obj`` of ``kind`` (see :data:`SUPPORTED_KINDS`).

    ``binarize`` is a model run's pixel threshold (``run.preprocessing.binarize`` in its aekit.json).
    """
    if kind == "model":
        net = plain_network(obj)
        shape = tuple(net.input_shape)
        pre = [f"binarise: x >= {binarize:g} -> 1.0 else 0.0 (the run's preprocessing)"] if binarize is not None else []
        return GraphSpec(
            kind, ImageModelGraph(net, binarize).eval(), net, shape, np.dtype(np.float32),
            "[0, 1] (images as the run was trained on)" if len(shape) == 3 else "as the model was trained on",
            pre, ["reconstruction", "code"],
            {"reconstruction": "the model's reconstruction (after its output activation)",
             "code": "the code, flattened"},
            extra={"binarize": binarize},
        )
    _check_fitted(obj)
    if kind in ("embedder", "denoiser", "anomaly_detector"):
        net = plain_network(obj.model_)
        shape = tuple(int(s) for s in obj.input_shape_)
        mode = obj.scale_mode_
        pre = []
        if mode != "none":
            pre.append(f"scale ({mode}): (x - center) / factor per feature, fitted on the training data")
        if getattr(obj, "binarize", None) is not None:
            pre.append(f"binarise after scaling: >= {obj.binarize:g} -> 1.0 else 0.0")
        rng = "[0, 1]" if mode == "none" else "any finite values (the training data's units)"
        doc = {"reconstruction": "reconstruction in the input's space and shape (scaling undone)",
               "code": "the code, flattened (Embedder.transform)"}
        if kind != "anomaly_detector":
            g = EstimatorGraph(net, shape, obj.scale_center_, obj.scale_factor_, obj.binarize)
            return GraphSpec(kind, g.eval(), net, shape, np.dtype(np.float32), rng, pre,
                             ["reconstruction", "code"], doc)
        error = obj.error
        g = EstimatorGraph(
            net, shape, obj.scale_center_, obj.scale_factor_, None, error=error,
            feature_scale=getattr(obj, "feature_error_scale_", None), code_center=getattr(obj, "code_center_", None),
            code_precision=getattr(obj, "code_precision_", None), threshold=obj.threshold_.value,
        )
        doc["score"] = (f"anomaly score (float64, higher = more anomalous; error={error!r}): "
                        "AnomalyDetector.anomaly_score")
        doc["is_anomaly"] = "score > threshold: AnomalyDetector.predict == -1"
        return GraphSpec(kind, g.eval(), net, shape, np.dtype(np.float32), rng, pre,
                         ["reconstruction", "code", "score", "is_anomaly"], doc, threshold=float(obj.threshold_.value),
                         not_in_graph=["input validation (NaN/inf, shapes) and explain()"],
                         extra={"error": error})
    if kind == "series_anomaly_detector":
        net = plain_network(obj.model_)
        w, c = int(obj.window), len(obj.columns_)
        g = SeriesWindowGraph(net, obj.center_, obj.scale_, obj.threshold_.value)
        doc = {
            "reconstruction": "each window reconstructed, in the series' units (float64)",
            "code": "the window's code, flattened",
            "step_error": "(N, window) squared error per step, averaged over channels (standardised units)",
            "score": "(N,) the window's mean step error: the 'last' point score of its last step, before smoothing",
            "is_anomaly": "score > threshold (equals the detector's flag only with point_score='last', smooth=1)",
        }
        return GraphSpec(
            kind, g.eval(), net, (w, c), np.dtype(np.float64),
            f"any finite values in the series' units; channels {obj.columns_} in that order",
            ["standardise each channel: (x - center) / scale in float64, then float32 (fitted on the training part)"],
            ["reconstruction", "code", "step_error", "score", "is_anomaly"], doc,
            threshold=float(obj.threshold_.value),
            not_in_graph=[
                "timeline assembly: a time step's score averages the step_error of every window covering it "
                "(point_score='mean') or takes the window ending at it ('last'), then a trailing mean over "
                f"{obj.smooth_steps_} steps; aekit.deploy.series_point_scores does it from step_error",
                "series regularisation (sorting, duplicate timestamps, gap filling; long gaps are never flagged)",
                "events (flagged steps merged across short gaps) and streaming",
            ],
            extra={"window": w, "channels": list(obj.columns_), "point_score": obj.point_score,
                   "smooth_steps": obj.smooth_steps_},
        )
    if kind == "image_search":
        net = plain_network(obj.model_)
        hamming = obj.metric == "hamming"
        bz = obj.binarize_
        g = ImageModelGraph(net, bz, code_threshold=obj.code_threshold_ if hamming else None)
        outputs = ["reconstruction", "code"] + (["bits"] if hamming else [])
        doc = {"reconstruction": "the encoder's reconstruction",
               "code": "float code (ImageSearch.encode, float metrics)"}
        if hamming:
            doc["bits"] = f"uint8 0/1 bits: code > {obj.code_threshold_:g} (ImageSearch.encode, hamming)"
        pre = [f"binarise: x >= {bz:g} -> 1.0 else 0.0 (the encoder run's preprocessing)"] if bz is not None else []
        return GraphSpec(
            kind, g.eval(), net, tuple(net.input_shape), np.dtype(np.float32),
            "[0, 1] (images resized to the model's size)", pre, outputs, doc,
            not_in_graph=[f"the faiss index ({obj.size} codes, {obj.metric}) and the search itself; image file "
                          "decoding and resizing"],
            extra={"metric": obj.metric, "code_threshold": obj.code_threshold_ if hamming else None,
                   "binarize": bz},
        )
    raise ConfigError(f"cannot export a {kind!r}; exportable kinds: {', '.join(SUPPORTED_KINDS)}")
