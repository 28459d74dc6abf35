"""What the service loads: run folders and saved tasks, wrapped with one interface per endpoint.

Every loaded folder becomes a :class:`Served` (named by its folder; ``-2``, ``-3`` on a clash)
that knows its input (image, table row or series window), the endpoints it can serve, and
batch functions ``(n, ...) array -> dict of per-sample arrays`` for the micro-batcher.
Folders are read with :func:`aekit.load` (JSON + safetensors, never pickle).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelFileError
from ..training.metrics import reconstruct_batches

LOADABLE = ("model", "embedder", "denoiser", "anomaly_detector", "series_anomaly_detector")
ENDPOINTS = ("reconstruct", "embed", "score", "search")


def _named_dataset(value: Any) -> str | None:
    """A named data set (digits, mnist, fashion-mnist) recorded in aekit.json, never a path."""
    from ..data.datasets import canonical_name

    if isinstance(value, dict):
        value = value.get("name")
    if not isinstance(value, str):
        return None
    return canonical_name(value)


def _public_config(doc: dict[str, Any]) -> dict[str, Any]:
    """aekit.json for /v1/models: without the weights' hash and the (long) training history."""
    out = {k: v for k, v in doc.items() if k != "weights"}
    fitted = out.get("fitted")
    if isinstance(fitted, dict):
        out["fitted"] = {k: v for k, v in fitted.items() if k != "history"}
    return out


class Served:
    """A loaded model or task as the service sees it."""

    kind: str
    input_type: str  # "image" | "table" | "series"
    shape: tuple[int, ...]  # (C, H, W) | (n_features,) | (window, channels)
    columns: list[str] | None = None
    threshold: float | None = None
    dataset: str | None = None
    module: torch.nn.Module

    def __init__(self, name: str, path: Path, doc: dict[str, Any], obj: Any) -> None:
        self.name, self.path, self.doc, self.obj = name, path, doc, obj
        self.endpoints: list[str] = []
        self._lock = threading.Lock()

    @property
    def config(self) -> dict[str, Any]:
        return _public_config(self.doc)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "input": {"type": self.input_type, "shape": list(self.shape), "columns": self.columns},
            "endpoints": [e for e in ENDPOINTS if e in self.endpoints],
            "threshold": self.threshold,
            "dataset": self.dataset,
            "config": self.config,
        }

    @functools.cached_property
    def fingerprint(self) -> str:
        from ..tasks.retrieval.search import model_fingerprint

        return model_fingerprint(self.module)

    # batch functions: (n, *shape) float32 -> dict of per-sample arrays
    def batch_fn(self, endpoint: str):
        return {"reconstruct": self.reconstruct, "embed": self.embed, "score": self.score}[endpoint]

    def reconstruct(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def embed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def score(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError


class ServedModel(Served):
    """A plain run from ``aekit train`` (kind "model"): its own binarize preprocessing applies."""

    kind = "model"

    def __init__(self, name, path, doc, obj) -> None:
        super().__init__(name, path, doc, obj)
        self.module = obj.eval()
        run = doc.get("run") or {}
        self.binarize = (run.get("preprocessing") or {}).get("binarize")
        self.shape = tuple(int(s) for s in obj.input_shape)
        self.input_type = "image" if len(self.shape) == 3 else ("table" if len(self.shape) == 1 else "series")
        self.dataset = _named_dataset(run.get("dataset"))
        self.endpoints = ["reconstruct", "embed", "score"]

    def _prep(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return (x >= self.binarize).astype(np.float32) if self.binarize is not None else x

    def reconstruct(self, x):
        xb = self._prep(x)
        rec = reconstruct_batches(self.module, xb).reshape(xb.shape)
        err = ((rec - xb) ** 2).reshape(len(xb), -1).sum(1)
        return {"reconstructions": rec, "errors": err}

    def embed(self, x):
        z = reconstruct_batches(self.module, self._prep(x), what="encode")
        return {"codes": z.reshape(len(x), -1)}

    def score(self, x):
        xb = self._prep(x)
        rec = reconstruct_batches(self.module, xb).reshape(xb.shape)
        return {"scores": ((rec - xb) ** 2).reshape(len(xb), -1).mean(1).astype(np.float64)}


class ServedEstimator(Served):
    """Embedder, Denoiser or AnomalyDetector: the task's own scaling and binarize apply."""

    def __init__(self, name, path, doc, obj, kind: str) -> None:
        super().__init__(name, path, doc, obj)
        self.kind = kind
        self.module = obj.model_.eval()
        task_shape = tuple(int(s) for s in obj.input_shape_)
        self.task_shape = task_shape
        if len(task_shape) == 3:
            self.input_type, self.shape = "image", task_shape
        elif len(task_shape) == 2:  # (H, W) images of one channel
            self.input_type, self.shape = "image", (1, *task_shape)
        else:
            self.input_type, self.shape = "table", task_shape
            cols = (doc.get("data") or {}).get("columns")
            if isinstance(cols, list) and len(cols) == task_shape[0]:
                self.columns = [str(c) for c in cols]
        self.dataset = _named_dataset(doc.get("dataset")) or _named_dataset((doc.get("data") or {}).get("dataset"))
        self.endpoints = ["reconstruct", "embed", "score"]
        if kind == "anomaly_detector":
            self.threshold = float(obj.threshold_.value)

    def _task(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), *self.task_shape)

    def reconstruct(self, x):
        xt = self._task(x)
        rec = np.asarray(self.obj.reconstruct(xt), dtype=np.float32)
        err = ((rec - xt) ** 2).reshape(len(xt), -1).sum(1)
        return {"reconstructions": rec.reshape(len(x), *self.shape), "errors": err}

    def embed(self, x):
        from ..tasks.embedder import _AutoencoderEstimator

        # the code, also for a Denoiser (whose own transform() returns denoised data)
        codes = _AutoencoderEstimator.transform(self.obj, self._task(x))
        return {"codes": np.asarray(codes).reshape(len(x), -1)}

    def score(self, x):
        xt = self._task(x)
        if self.kind == "anomaly_detector":
            s = self.obj.anomaly_score(xt)
        else:
            s = self.obj.reconstruction_error(xt)
        return {"scores": np.asarray(s, dtype=np.float64)}


class ServedSeries(Served):
    """A SeriesAnomalyDetector: scores whole series (JSON arrays or a CSV upload)."""

    kind = "series_anomaly_detector"
    input_type = "series"

    def __init__(self, name, path, doc, obj) -> None:
        super().__init__(name, path, doc, obj)
        self.module = obj.model_.eval()
        self.shape = (int(obj.window), len(obj.columns_))
        self.columns = list(obj.columns_)
        self.threshold = float(obj.threshold_.value)
        self.endpoints = ["score"]

    def detect(self, series: Any, timestamps: Any = None) -> dict[str, Any]:
        """Per-step scores, flags and events of a Series (from a CSV) or an array (+ timestamps)."""
        from ..data.series import Series
        from .inputs import finite_list

        det = self.obj
        if isinstance(series, Series):
            r = det.detect(series)
        else:
            r = det.detect(series, timestamps=timestamps)
        ts = None
        if r.timestamps is not None:
            if np.issubdtype(r.timestamps.dtype, np.datetime64):
                ts = [str(t) for t in np.datetime_as_string(r.timestamps, unit="s")]
            else:
                ts = np.asarray(r.timestamps).tolist()
        events = []
        for e in r.events:
            d = e.to_dict(r.timestamps)
            events.append({
                "start": int(d["start"]), "end": int(d["end"]), "peak": int(d["peak"]),
                "peak_score": float(d["peak_score"]), "n_points": int(d["n_points"]),
                "start_time": ts[d["start"]] if ts is not None else None,
                "end_time": ts[d["end"]] if ts is not None else None,
            })
        return {
            "scores": finite_list(r.scores),
            "flags": [bool(f) for f in r.flags],
            "threshold": float(r.threshold),
            "events": events,
            "timestamps": ts,
        }


class ServedIndex(Served):
    """An ImageSearch folder (``--index``): its encoder answers /v1/search."""

    kind = "image_search"
    input_type = "image"

    def __init__(self, name, path, doc, obj) -> None:
        super().__init__(name, path, doc, obj)
        self.module = obj.model_.eval()
        self.shape = tuple(int(s) for s in obj.model_.input_shape)
        self.endpoints = ["search"]
        self.built_with: str | None = None
        self.collections = list(getattr(obj, "collections_", []) or [])
        self.dataset = next((_named_dataset(c.get("name")) for c in self.collections
                             if c.get("kind") == "dataset" and _named_dataset(c.get("name"))), None)
        self._thumbs: OrderedDict[Any, tuple[int | None, str | None]] = OrderedDict()
        self._arrays: dict[str, np.ndarray | None] = {}

    @property
    def size(self) -> int:
        return int(self.obj.size)

    def index_info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "metric": self.obj.metric,
            "index": getattr(self.obj.index_, "kind_", self.obj.index),
            "code_dim": int(self.obj.code_dim_),
            "model": self.built_with,
        }

    def search_fn(self, k: int):
        def run(x: np.ndarray) -> dict[str, np.ndarray]:
            ids, dist = self.obj.query(x, k=k)
            return {"ids": np.asarray(ids), "distances": np.asarray(dist, dtype=np.float64)}

        return run

    # -- neighbour thumbnails, from the index's own recorded collections only ------------------------
    def neighbour(self, ident: Any, want_image: bool = True) -> tuple[int | None, str | None]:
        """(label, PNG data URL) of an indexed image; None where the recorded source is unavailable."""
        key = (ident, want_image)
        with self._lock:
            hit = self._thumbs.get(key)
            if hit is not None:
                self._thumbs.move_to_end(key)
                return hit
        out = self._lookup(ident, want_image)
        with self._lock:
            self._thumbs[key] = out
            while len(self._thumbs) > 20_000:
                self._thumbs.popitem(last=False)
        return out

    def _dataset_arrays(self, name: str, split: str) -> tuple[np.ndarray, np.ndarray | None]:
        from .samples import dataset_split

        return dataset_split(name, split)

    def _lookup(self, ident: Any, want_image: bool) -> tuple[int | None, str | None]:
        from .inputs import png_data_url

        try:
            if isinstance(ident, (int, np.integer)):
                i = int(ident)
                for src in self.collections:
                    off, count = src.get("offset"), src.get("count")
                    if off is None or count is None or not off <= i < off + count:
                        continue
                    local = i - off
                    if src.get("kind") == "dataset":
                        name = _named_dataset(src.get("name"))
                        if name is None:
                            return None, None
                        x, y = self._dataset_arrays(name, src.get("split", "train"))
                        label = int(y[local]) if y is not None else None
                        return label, (png_data_url(x[local]) if want_image else None)
                    if src.get("kind") == "array":
                        arr = self._array(src.get("name"))
                        if arr is None or local >= len(arr):
                            return None, None
                        return None, (png_data_url(arr[local]) if want_image else None)
                return None, None
            if isinstance(ident, str) and want_image:
                # a file the index was built from (its id is the recorded path), if still there
                p = Path(ident)
                if not any(c.get("kind") == "files" for c in self.collections) or not p.is_file():
                    return None, None
                from ..data.images import read_image

                img = read_image(p, size=self.shape[1:], channels=self.shape[0])
                return None, png_data_url(img)
        except Exception:  # noqa: BLE001 - a source gone or changed since indexing: no thumbnail
            return None, None
        return None, None

    def _array(self, name: str | None) -> np.ndarray | None:
        if not name:
            return None
        if name not in self._arrays:
            try:
                from ..tasks.retrieval.search import as_image_batch

                self._arrays[name] = as_image_batch(Path(name), self.shape)[0]  # np.load, allow_pickle=False
            except Exception:  # noqa: BLE001
                self._arrays[name] = None
        return self._arrays[name]


def load_served(path: str | Path, name: str, *, index: bool = False) -> Served:
    """Load one folder for the service (ModelFileError with a clear message otherwise)."""
    from ..io import load, read_meta

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path} does not exist: pass a run folder from `aekit train` or `aekit detect fit`")
    doc = read_meta(path)
    kind = doc.get("kind")
    if index:
        if kind != "image_search":
            raise ModelFileError(f"--index {path} holds a {kind!r}, not an image index; build one with "
                                 "`aekit index build`")
        return ServedIndex(name, path, doc, load(path))
    if kind == "image_search":
        raise ModelFileError(f"{path} is an image index: pass it with --index {path}")
    if kind not in LOADABLE:
        raise ModelFileError(f"{path} holds a {kind!r}; the service loads {', '.join(LOADABLE)} "
                             "(and image_search with --index)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        obj = load(path)
    if kind == "model":
        return ServedModel(name, path, doc, obj)
    if kind == "series_anomaly_detector":
        return ServedSeries(name, path, doc, obj)
    return ServedEstimator(name, path, doc, obj, kind)


def unique_names(paths: list[Path], taken: set[str] | None = None) -> list[str]:
    """Folder names, with -2, -3, ... on a clash."""
    used = set(taken or ())
    out = []
    for p in paths:
        base = Path(p).resolve().name or "model"
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}-{i}"
        used.add(name)
        out.append(name)
    return out


def sample_count(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape))
