"""The HTTP service: ``create_app(runs, index=...)`` -> a FastAPI app serving the loaded models.

Endpoints (JSON out; errors are ``{"detail": "message"}``):

- ``GET /health``, ``GET /v1/models``, ``GET /v1/samples?model=&n=``
- ``POST /v1/reconstruct``, ``/v1/embed``, ``/v1/score``, ``/v1/search``: a JSON body
  (``{"model": ..., "inputs": [...]}``) or a multipart form with ``file`` (an image; a CSV for
  series detectors) and ``model``
- ``GET /`` the web page (``static/index.html``), ``/static/...`` its assets, ``/docs`` OpenAPI

Models load once, when the app is created. Model calls run in a thread pool, never on the event
loop; concurrent requests for the same model and endpoint are merged into one forward pass
(:mod:`aekit.serve.batching`). The service reads no file a request names, loads no pickle, and
sends CORS headers only for the origins it is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import AekitError, DatasetNotFoundError
from . import schemas
from .batching import Batchers
from .inputs import (
    BadRequest,
    decode_image,
    finite_list,
    fit_shape,
    fmt_limit,
    image_range,
    optional_str,
    parse_json,
    parse_k,
    png_data_url,
    read_body,
    series_from_csv_bytes,
    to_array,
    unprocessable,
)
from .registry import Served, ServedIndex, ServedSeries, load_served, unique_names

logger = logging.getLogger("aekit.serve")
STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_BATCH_WINDOW_MS = 2.0
PLACEHOLDER = """<!doctype html><html><head><meta charset="utf-8"><title>aekit serve</title></head>
<body><h1>aekit serve</h1><p>The service is running. See <a href="/docs">/docs</a> for the API,
<a href="/v1/models">/v1/models</a> for what is loaded.</p></body></html>"""


class Service:
    """The loaded models, the index and the batchers behind one app."""

    def __init__(self, models: dict[str, Served], index: ServedIndex | None, *, max_body: int,
                 batchers: Batchers) -> None:
        self.models = models
        self.index = index
        self.max_body = max_body
        self.batchers = batchers

    def listed(self) -> list[Served]:
        return [*self.models.values(), *([self.index] if self.index is not None else [])]

    def resolve(self, name: str | None, endpoint: str) -> Served:
        """The model a request names (or the only one serving ``endpoint``); 404/422 otherwise."""
        if endpoint == "search":
            return self._resolve_index(name)
        if name is not None:
            m = self.models.get(name)
            if m is None:
                if self.index is not None and name == self.index.name:
                    raise BadRequest(404, f"{name!r} is the image index; it serves /v1/search only")
                raise BadRequest(404, f"unknown model {name!r}; loaded: {', '.join(self.models) or 'none'}")
            if endpoint not in m.endpoints:
                raise BadRequest(404, f"model {name!r} ({m.kind}) cannot {endpoint}; it serves "
                                      f"{', '.join('/v1/' + e for e in m.endpoints)}")
            return m
        able = [m for m in self.models.values() if endpoint in m.endpoints]
        if len(able) == 1:
            return able[0]
        if not able:
            raise BadRequest(404, f"no loaded model can {endpoint}")
        raise unprocessable(f"several loaded models can {endpoint} ({', '.join(m.name for m in able)}): "
                            "name one with 'model'")

    def _resolve_index(self, name: str | None) -> ServedIndex:
        ix = self.index
        if ix is None:
            raise BadRequest(404, "no image index is loaded: start the service with --index INDEX "
                                  "(built by `aekit index build`)")
        if name is None or name == ix.name:
            return ix
        m = self.models.get(name)
        if m is None:
            raise BadRequest(404, f"unknown model {name!r}; the index is {ix.name!r}")
        if name != ix.built_with:
            raise BadRequest(404, f"model {name!r} cannot search: the index {ix.name!r} was built with "
                                  f"{ix.built_with or 'a model that is not loaded'}")
        return ix


# -- request parsing ----------------------------------------------------------------------------------
class Parsed:
    """One request's model, input batch (or series) and options."""

    def __init__(self, model: Served, x: np.ndarray | None = None, *, resized: bool = False, **extra: Any):
        self.model, self.x, self.resized, self.extra = model, x, resized, extra


FORM_FIELDS = ("file", "model", "k", "images", "timestamps")


async def parse_request(svc: Service, request: Request, endpoint: str, fields: tuple[str, ...]) -> Parsed:
    body = await read_body(request, svc.max_body)
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        return await _parse_upload(svc, request, endpoint)
    if ctype.startswith("application/x-www-form-urlencoded"):
        raise unprocessable("a form without a 'file': send JSON (Content-Type: application/json) or a multipart "
                            "form with a 'file' field")
    doc = parse_json(body, fields)
    m = svc.resolve(optional_str(doc, "model"), endpoint)
    extra: dict[str, Any] = {}
    if endpoint == "search":
        extra["k"] = parse_k(doc.get("k", 10), m.size)
        images = doc.get("images", True)
        if not isinstance(images, bool):
            raise unprocessable("'images' must be true or false")
        extra["images"] = images
    if isinstance(m, ServedSeries):
        key = "series" if "series" in doc else "inputs"
        if doc.get(key) is None:
            raise unprocessable(f"model {m.name!r} scores series: send {{\"series\": [[...], ...]}} (T rows of "
                                f"{len(m.columns or [])} values: {', '.join(m.columns or [])}) or upload a CSV file")
        return Parsed(m, None, series=doc[key], timestamps=doc.get("timestamps"))
    if "series" in doc and doc.get("series") is not None:
        raise unprocessable(f"model {m.name!r} takes {m.input_type} inputs, not a series: send 'inputs'")
    if "timestamps" in doc and doc.get("timestamps") is not None:
        raise unprocessable(f"'timestamps' is for series models; {m.name!r} takes {m.input_type} inputs")
    arr = to_array(doc.get("inputs"))
    x = fit_shape(arr, m.shape, what="inputs", model=m.name, image=m.input_type == "image")
    if m.input_type == "image":
        x = image_range(x)
    return Parsed(m, np.ascontiguousarray(x, dtype=np.float32), **extra)


async def _parse_upload(svc: Service, request: Request, endpoint: str) -> Parsed:
    try:
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS))
    except HTTPException as err:
        raise unprocessable(f"malformed multipart form: {err.detail}") from None
    except Exception as err:  # noqa: BLE001 - python-multipart errors
        raise unprocessable(f"malformed multipart form: {err}") from None
    unknown = [k for k in form.keys() if k not in FORM_FIELDS]
    if unknown:
        raise unprocessable(f"unknown form field(s) {', '.join(map(repr, unknown))}; send 'file' and 'model'")
    name = form.get("model")
    if name is not None and not isinstance(name, str):
        raise unprocessable("'model' must be a text field")
    m = svc.resolve(name or None, endpoint)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise unprocessable("multipart requests need a 'file' field holding the image" +
                            (" (a CSV for series models)" if endpoint == "score" else ""))
    data = await upload.read()
    filename = getattr(upload, "filename", None)
    extra: dict[str, Any] = {}
    if endpoint == "search":
        extra["k"] = parse_k(form.get("k", "10"), m.size)
        extra["images"] = str(form.get("images", "true")).lower() not in ("false", "0", "no")
    if isinstance(m, ServedSeries):
        series = await run_in_threadpool(series_from_csv_bytes, data, m.obj)
        return Parsed(m, None, series=series, timestamps=None)
    if m.input_type != "image":
        raise unprocessable(f"model {m.name!r} takes {m.input_type} rows, not images: send JSON "
                            "{\"inputs\": [[...]]}")
    img, resized = decode_image(data, filename, m.shape)
    return Parsed(m, img[None], resized=resized, **extra)


# -- app -------------------------------------------------------------------------------------------
def create_app(
    runs: list[str | os.PathLike] | tuple = (),
    index: str | os.PathLike | None = None,
    *,
    max_body_mb: float = 10,
    cors_origins: list[str] | None = None,
    batch_window_ms: float | None = DEFAULT_BATCH_WINDOW_MS,
    max_batch: int = 256,
    compute_threads: int | None = None,
    static_dir: str | os.PathLike | None = None,
) -> FastAPI:
    """Load ``runs`` (and the image ``index``) once and return the FastAPI app serving them.

    ``batch_window_ms``: None turns micro-batching off (every request runs on its own); 0 merges
    the requests that queued while the previous pass ran; > 0 also waits that long for more.
    ``max_body_mb``: larger request bodies get 413. ``cors_origins``: CORS only for these origins.
    Raises :class:`aekit.errors.ModelFileError` (a clear message) for a folder that cannot be served.
    """
    paths = [Path(p) for p in runs]
    if not paths and index is None:
        raise AekitError("nothing to serve: pass at least one run folder (or an --index)")
    names = unique_names(paths)
    models: dict[str, Served] = {}
    for p, n in zip(paths, names):
        models[n] = load_served(p, n)
    ix = None
    if index is not None:
        ix_name = unique_names([Path(index)], taken=set(models))[0]
        ix = load_served(index, ix_name, index=True)
        for m in models.values():
            if m.fingerprint == ix.obj.fingerprint_:
                ix.built_with = m.name
                if "search" not in m.endpoints:
                    m.endpoints.append("search")
                break
        if ix.dataset is None and ix.built_with is not None:
            ix.dataset = models[ix.built_with].dataset
    if max_body_mb is None or not max_body_mb > 0:
        raise AekitError(f"max_body_mb must be > 0, got {max_body_mb}")
    max_body = int(max_body_mb * 1_000_000)
    threads = compute_threads or max(1, min(4, os.cpu_count() or 1))
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="aekit-serve")
    batchers = Batchers(enabled=batch_window_ms is not None, executor=executor,
                        window_ms=batch_window_ms or 0.0, max_batch=max_batch)
    svc = Service(models, ix, max_body=max_body, batchers=batchers)
    static = Path(static_dir) if static_dir is not None else STATIC_DIR

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await batchers.aclose()

    app = FastAPI(
        title="aekit serve",
        version=__version__,
        description="Autoencoders as a service: reconstruct, embed, score (anomalies) and search images. "
                    f"Request bodies up to {fmt_limit(max_body)}.",
        lifespan=lifespan,
    )
    app.state.service = svc
    app.add_middleware(BodyLimitMiddleware, limit=max_body, batchers=batchers)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["*"])
    _install_error_handlers(app)

    # -- read-only endpoints ---------------------------------------------------------------------
    @app.get("/health", response_model=schemas.HealthResponse, tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness: "ok" and the names of the loaded models."""
        return {"status": "ok", "models": [m.name for m in svc.listed()]}

    @app.get("/v1/models", response_model=schemas.ModelsResponse, tags=["service"])
    async def list_models() -> JSONResponse:
        """What is loaded: each model's input, endpoints, threshold, data set and config; the index."""
        return JSONResponse({
            "models": [m.info() for m in svc.listed()],
            "index": svc.index.index_info() if svc.index is not None else None,
            "service": {"max_body_bytes": max_body, "batching": batchers.enabled,
                        "batch_window_ms": batch_window_ms, "max_batch": max_batch},
        })

    @app.get("/v1/stats", tags=["service"])
    async def stats() -> dict[str, Any]:
        """Micro-batching counters per model and endpoint (requests, batches, requests per batch)."""
        return {"batching": batchers.enabled, "batchers": batchers.stats()}

    @app.get("/v1/samples", response_model=schemas.SamplesResponse, responses=schemas.ERRORS, tags=["models"])
    async def samples(
        model: str | None = Query(None, description="model or index name; optional with one model"),
        n: int = Query(8, ge=1, le=64, description="how many samples"),
        seed: int | None = Query(None, description="fixes which samples are drawn"),
    ) -> JSONResponse:
        """Random test samples of the data set the model was trained on (PNG and model input)."""
        from .samples import draw_samples

        if model is None:
            able = [m for m in svc.listed() if m.dataset is not None]
            if len(able) != 1:
                raise unprocessable("name a model: ?model=NAME" + (f" (one of {', '.join(m.name for m in able)})"
                                                                  if able else ""))
            m = able[0]
        elif svc.index is not None and model == svc.index.name:
            m = svc.index
        else:
            m = svc.models.get(model)
            if m is None:
                raise BadRequest(404, f"unknown model {model!r}; loaded: {', '.join(x.name for x in svc.listed())}")
        if m.dataset is None or m.input_type == "series":
            raise BadRequest(404, f"model {m.name!r} has no recorded data set to draw samples from (only runs "
                                  "trained on a named data set such as digits or mnist have one)")
        try:
            out = await run_in_threadpool(draw_samples, m.dataset, m.shape, n, seed)
        except DatasetNotFoundError as err:
            raise BadRequest(404, f"the data set {m.dataset!r} of model {m.name!r} is not available here: {err}") \
                from None
        except ValueError as err:
            raise BadRequest(404, str(err)) from None
        return JSONResponse({"samples": out})

    # -- model endpoints ---------------------------------------------------------------------------
    @app.post("/v1/reconstruct", response_model=schemas.ReconstructResponse, responses=schemas.ERRORS,
              tags=["models"], openapi_extra=schemas.body_doc(schemas.ArrayRequest))
    async def reconstruct(request: Request) -> JSONResponse:
        """Reconstructions (denoised output for denoisers) and each sample's squared error."""
        p = await parse_request(svc, request, "reconstruct", ("model", "inputs"))
        m = p.model
        out = await _call(svc, m, "reconstruct", p.x)
        rec = out["reconstructions"]
        image = m.input_type == "image"

        def build() -> dict[str, Any]:
            return {
                "model": m.name,
                "reconstructions": rec.astype(np.float64).tolist(),
                "errors": finite_list(out["errors"]),
                "images_png": [png_data_url(r) for r in rec] if image else None,
                "resized": p.resized,
            }

        return JSONResponse(await _maybe_thread(build, rec.size))

    @app.post("/v1/embed", response_model=schemas.EmbedResponse, responses=schemas.ERRORS, tags=["models"],
              openapi_extra=schemas.body_doc(schemas.ArrayRequest))
    async def embed(request: Request) -> JSONResponse:
        """The code of each sample (the encoder's output, flattened)."""
        p = await parse_request(svc, request, "embed", ("model", "inputs"))
        out = await _call(svc, p.model, "embed", p.x)
        return JSONResponse({"model": p.model.name, "codes": out["codes"].astype(np.float64).tolist(),
                             "resized": p.resized})

    @app.post("/v1/score", response_model=schemas.ScoreResponse, responses=schemas.ERRORS, tags=["models"],
              openapi_extra=schemas.body_doc(schemas.ScoreRequest))
    async def score(request: Request) -> JSONResponse:
        """Anomaly scores (higher = more anomalous) and flags; per time step and events for series."""
        p = await parse_request(svc, request, "score", ("model", "inputs", "series", "timestamps"))
        m = p.model
        if isinstance(m, ServedSeries):
            out = await _series(m, p.extra["series"], p.extra["timestamps"])
            return JSONResponse({"model": m.name, **out})
        res = await _call(svc, m, "score", p.x)
        scores = res["scores"]
        th = m.threshold
        return JSONResponse({
            "model": m.name,
            "scores": finite_list(scores),
            "flags": None if th is None else [bool(s > th) for s in scores],
            "threshold": th,
            "resized": p.resized,
        })

    @app.post("/v1/search", response_model=schemas.SearchResponse, responses=schemas.ERRORS, tags=["models"],
              openapi_extra=schemas.body_doc(schemas.SearchRequest, upload_fields={
                  "k": {"type": "integer", "default": 10}}))
    async def search(request: Request) -> JSONResponse:
        """The k nearest indexed images of each query image (ids, distances, labels, thumbnails)."""
        p = await parse_request(svc, request, "search", ("model", "inputs", "k", "images"))
        ix: ServedIndex = p.model  # type: ignore[assignment]
        k, images = p.extra["k"], p.extra["images"]
        try:
            res = await svc.batchers.run((ix.name, "search", k), ix.search_fn(k), p.x)
        except (AekitError, ValueError) as err:
            raise unprocessable(str(err)) from None
        ids, dist = res["ids"], res["distances"]

        def build() -> dict[str, Any]:
            results = []
            for row_ids, row_d in zip(ids, dist):
                neigh = []
                for ident, d in zip(row_ids, row_d):
                    ident = ident.item() if isinstance(ident, np.generic) else ident
                    label, png = ix.neighbour(ident, images)
                    neigh.append({"id": ident, "distance": float(d), "label": label, "image_png": png})
                results.append({"neighbours": neigh})
            return {"index": ix.name, "results": results, "resized": p.resized}

        return JSONResponse(await _maybe_thread(build, ids.size * (50 if images else 1)))

    # -- web page ------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def page():
        html = static / "index.html"
        if html.is_file():
            return FileResponse(html, media_type="text/html")
        return HTMLResponse(PLACEHOLDER)

    if static.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=static), name="static")
    return app


async def _call(svc: Service, m: Served, endpoint: str, x: np.ndarray) -> dict[str, Any]:
    try:
        return await svc.batchers.run((m.name, endpoint), m.batch_fn(endpoint), x)
    except (AekitError, ValueError) as err:
        raise unprocessable(str(err)) from None


async def _series(m: ServedSeries, series: Any, timestamps: Any) -> dict[str, Any]:
    from ..data.series import Series

    if not isinstance(series, Series):
        arr = to_array(series, what="series", allow_nan=True)
        if arr.ndim not in (1, 2):
            raise unprocessable(f"'series' must be [T, C] (or [T] for one channel), got shape {list(arr.shape)}")
        n_ch = 1 if arr.ndim == 1 else arr.shape[1]
        if n_ch != len(m.columns or []):
            raise unprocessable(f"'series' has {n_ch} channel(s) but model {m.name!r} was trained on "
                                f"{len(m.columns or [])}: {', '.join(m.columns or [])}")
        if np.isinf(arr).any():
            raise unprocessable("'series' contains infinite values (null or NaN marks a missing value)")
        if timestamps is not None:
            if not isinstance(timestamps, list) or len(timestamps) != len(arr):
                raise unprocessable(f"'timestamps' must be a list of {len(arr)} times (one per row)")
        elif m.obj.step_ is not None:
            raise unprocessable(f"model {m.name!r} was trained on a timestamped series: send 'timestamps' "
                                "(ISO times, one per row)")
        series = arr
    try:
        return await run_in_threadpool(m.detect, series, timestamps)
    except (AekitError, ValueError) as err:
        raise unprocessable(str(err)) from None


async def _maybe_thread(fn, work: int):
    """Build big responses in a thread; small ones inline (a thread hop costs more than they do)."""
    if work > 20_000:
        return await run_in_threadpool(fn)
    return fn()


class BodyLimitMiddleware:
    """413 at once for a declared Content-Length over the limit (before the body is read); counts
    the model requests in flight, so the batcher knows whether waiting for more can pay off."""

    def __init__(self, app, limit: int, batchers: Batchers | None = None) -> None:
        self.app, self.limit, self.batchers = app, limit, batchers

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            for k, v in scope.get("headers", ()):
                if k == b"content-length":
                    try:
                        n = int(v)
                    except ValueError:
                        n = -1
                    if n > self.limit:
                        resp = JSONResponse({"detail": f"request body of {n:,} bytes is over the limit of "
                                                       f"{fmt_limit(self.limit)}"}, status_code=413,
                                            headers={"Connection": "close"})
                        await resp(scope, receive, send)
                        return
            if self.batchers is not None and scope.get("method") == "POST":
                self.batchers.in_flight += 1
                try:
                    await self.app(scope, receive, send)
                finally:
                    self.batchers.in_flight -= 1
                return
        await self.app(scope, receive, send)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return JSONResponse({"detail": str(detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ()) if x not in ("query", "body", "path")]
            where = e.get("loc", ("",))[0]
            parts.append(f"{where} parameter {'.'.join(loc)!r}: {e.get('msg', 'invalid')}" if loc
                         else str(e.get("msg", "invalid request")))
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(AekitError)
    async def aekit_error(request: Request, exc: AekitError) -> JSONResponse:
        status = 404 if isinstance(exc, DatasetNotFoundError) else 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the service keeps running"},
                            status_code=500)


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` / several workers: settings from $AEKIT_SERVE_CONFIG (JSON)."""
    import json

    cfg = json.loads(os.environ["AEKIT_SERVE_CONFIG"])
    threads = cfg.pop("torch_threads", None)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return create_app(cfg.pop("runs"), cfg.pop("index", None), **cfg)

