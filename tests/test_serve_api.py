"""`aekit serve`: every endpoint for each kind, uploads, bad input and status codes, batching."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import aekit
from aekit.cli.runs import RunSpec, train_run
from aekit.errors import AekitError
from aekit.serve import create_app
from aekit.tasks.retrieval.search import ImageSearch

STEP = np.timedelta64(5, "m")


def _series(n: int, seed: int, spike_at: int | None = None):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.stack([np.sin(2 * np.pi * t / 20), np.cos(2 * np.pi * t / 20)], 1) + 0.05 * rng.normal(size=(n, 2))
    if spike_at is not None:
        x[spike_at : spike_at + 5, 0] += 3.0
    return x, np.datetime64("2024-01-01T00:00") + t * STEP


@pytest.fixture(scope="module")
def folders(tmp_path_factory, digits):
    """One folder of each kind, trained for a few steps on digits / small tables / a sine."""
    root = tmp_path_factory.mktemp("serve")
    spec = RunSpec(model="dense_ae", dataset="digits", epochs=2, batch_size=64, binarize=0.5, latent_dim=8,
                   threads=1, n_train=400, model_options={"hidden": (32,)})
    train_run(spec, root / "digits-run", progress=False, figures=False)
    imgs = digits.x_train[:400]
    table = digits.x_train[:400].reshape(400, -1)[:, :12] * 16.0  # 12 columns, not in [0, 1]
    emb = aekit.Embedder(latent_dim=3, epochs=2, threads=1, model_options={"hidden": (16,)}).fit(table)
    aekit.save(emb, root / "embedder")
    den = aekit.Denoiser(model="dense_ae", latent_dim=8, epochs=2, threads=1, model_options={"hidden": (32,)}).fit(imgs)
    aekit.save(den, root / "denoiser")
    det = aekit.AnomalyDetector(epochs=3, threads=1).fit(table)
    aekit.save(det, root / "table-detector", extra={"data": {"columns": [f"f{i}" for i in range(12)]}})
    idet = aekit.AnomalyDetector(model="dense", epochs=3, threads=1, error="mse").fit(imgs)
    aekit.save(idet, root / "image-detector")
    x, ts = _series(800, 0)
    sdet = aekit.SeriesAnomalyDetector(window=16, steps=60, threads=1, hidden=(16,), latent_dim=3, smooth=1,
                                       min_event_gap=0).fit(x, timestamps=ts)
    aekit.save(sdet, root / "series")
    s = ImageSearch(root / "digits-run").fit(digits.x_train[:500])
    s.collections_ = [{"kind": "dataset", "name": "digits", "split": "train", "offset": 0, "count": 500}]
    s.save(root / "digits-index")
    # a second folder named like the first, to check the -2 suffix
    (root / "other").mkdir()
    aekit.save(emb, root / "other" / "embedder")
    return root


@pytest.fixture(scope="module")
def app(folders):
    r = folders
    runs = [r / "digits-run", r / "embedder", r / "denoiser", r / "table-detector", r / "image-detector",
            r / "series", r / "other" / "embedder"]
    return create_app(runs, index=r / "digits-index", max_body_mb=0.5, batch_window_ms=2.0)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def loaded(folders):
    return {name: aekit.load(folders / name) for name in
            ("digits-run", "embedder", "denoiser", "table-detector", "image-detector", "series")}


def _png(arr: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8), mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def _table(digits, n=5):
    return (digits.x_test[:n].reshape(n, -1)[:, :12] * 16.0).astype(np.float32)


# -- read-only endpoints --------------------------------------------------------------------------
def test_health_models_and_docs(client):
    h = client.get("/health").json()
    assert h["status"] == "ok"
    assert h["models"][:3] == ["digits-run", "embedder", "denoiser"] and "embedder-2" in h["models"]
    doc = client.get("/v1/models").json()
    by = {m["name"]: m for m in doc["models"]}
    assert by["digits-run"]["kind"] == "model" and by["digits-run"]["input"] == {
        "type": "image", "shape": [1, 8, 8], "columns": None}
    assert by["digits-run"]["endpoints"] == ["reconstruct", "embed", "score", "search"]
    assert by["digits-run"]["dataset"] == "digits" and by["digits-run"]["threshold"] is None
    assert by["digits-run"]["config"]["run"]["preprocessing"]["binarize"] == 0.5
    assert by["table-detector"]["input"] == {"type": "table", "shape": [12], "columns": [f"f{i}" for i in range(12)]}
    assert isinstance(by["table-detector"]["threshold"], float)
    assert by["image-detector"]["input"]["shape"] == [1, 8, 8]
    assert by["series"]["input"]["type"] == "series" and by["series"]["input"]["shape"] == [16, 2]
    assert by["series"]["endpoints"] == ["score"]
    assert by["denoiser"]["kind"] == "denoiser" and by["embedder"]["kind"] == "embedder"
    assert "history" not in by["embedder"]["config"]["fitted"]
    assert doc["index"] == {"name": "digits-index", "size": 500, "metric": "euclidean", "index": "exact",
                            "code_dim": 8, "model": "digits-run"}
    assert by["digits-index"]["kind"] == "image_search" and by["digits-index"]["endpoints"] == ["search"]
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/reconstruct", "/v1/embed", "/v1/score", "/v1/search", "/v1/models", "/health"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/score"]["post"]["requestBody"]["content"]
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "http://x.org"}).headers
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_samples(client, digits):
    doc = client.get("/v1/samples", params={"model": "digits-run", "n": 3, "seed": 1}).json()
    assert len(doc["samples"]) == 3
    s = doc["samples"][0]
    name, split, i = s["id"].split(":")
    assert (name, split) == ("digits", "test") and s["label"] == int(digits.y_test[int(i)])
    assert s["image_png"].startswith("data:image/png;base64,")
    np.testing.assert_allclose(np.array(s["input"]), digits.x_test[int(i)], atol=1e-6)
    assert client.get("/v1/samples", params={"model": "digits-index", "n": 2}).status_code == 200
    r = client.get("/v1/samples", params={"model": "embedder"})
    assert r.status_code == 404 and "data set" in r.json()["detail"]
    assert client.get("/v1/samples", params={"model": "nope"}).status_code == 404
    r = client.get("/v1/samples", params={"model": "digits-run", "n": "many"})
    assert r.status_code == 422 and "'n'" in r.json()["detail"]


# -- model endpoints, against the tasks' own methods ----------------------------------------------------
def test_plain_run_endpoints_match_the_model(client, loaded, digits):
    model = loaded["digits-run"]
    x = digits.x_test[:4]
    xb = (x >= 0.5).astype(np.float32)  # the run's binarize preprocessing
    r = client.post("/v1/reconstruct", json={"model": "digits-run", "inputs": x.tolist()}).json()
    rec = np.array(r["reconstructions"], np.float32)
    import torch

    with torch.inference_mode():
        want = model.reconstruct(torch.from_numpy(xb)).numpy()
    np.testing.assert_allclose(rec, want, atol=1e-5)
    np.testing.assert_allclose(r["errors"], ((want - xb) ** 2).reshape(4, -1).sum(1), rtol=1e-4)
    assert len(r["images_png"]) == 4 and r["resized"] is False
    codes = client.post("/v1/embed", json={"model": "digits-run", "inputs": x.tolist()}).json()["codes"]
    assert np.array(codes).shape == (4, 8)
    s = client.post("/v1/score", json={"model": "digits-run", "inputs": x[0].tolist()}).json()
    assert len(s["scores"]) == 1 and s["flags"] is None and s["threshold"] is None
    # one image without batch axis, and (H, W) for a one-channel model
    r1 = client.post("/v1/reconstruct", json={"model": "digits-run", "inputs": x[0, 0].tolist()}).json()
    np.testing.assert_allclose(r1["reconstructions"], rec[:1], atol=1e-5)


def test_tasks_match_their_own_methods(client, loaded, digits):
    tab = _table(digits)
    emb, den, det, idet = (loaded[k] for k in ("embedder", "denoiser", "table-detector", "image-detector"))
    r = client.post("/v1/embed", json={"model": "embedder", "inputs": tab.tolist()}).json()
    np.testing.assert_allclose(r["codes"], emb.transform(tab), rtol=1e-5, atol=1e-5)
    r = client.post("/v1/reconstruct", json={"model": "embedder", "inputs": tab.tolist()}).json()
    np.testing.assert_allclose(r["reconstructions"], emb.reconstruct(tab), rtol=1e-5, atol=1e-4)
    assert r["images_png"] is None
    x = digits.x_test[:3]
    r = client.post("/v1/reconstruct", json={"model": "denoiser", "inputs": x.tolist()}).json()
    np.testing.assert_allclose(r["reconstructions"], den.transform(x), atol=1e-5)
    s = client.post("/v1/score", json={"model": "table-detector", "inputs": tab.tolist()}).json()
    np.testing.assert_allclose(s["scores"], det.anomaly_score(tab), rtol=1e-5)
    assert s["threshold"] == pytest.approx(det.threshold_.value)
    assert s["flags"] == [bool(v > det.threshold_.value) for v in det.anomaly_score(tab)]
    s = client.post("/v1/score", json={"model": "image-detector", "inputs": x.tolist()}).json()
    np.testing.assert_allclose(s["scores"], idet.anomaly_score(x), rtol=1e-5)
    assert s["flags"] == [bool(v) for v in idet.predict(x) == -1]


def test_series_json_and_csv(client, loaded):
    det = loaded["series"]
    x, ts = _series(300, 1, spike_at=150)
    stamps = [str(t) for t in np.datetime_as_string(ts, unit="s")]
    r = client.post("/v1/score", json={"model": "series", "series": x.tolist(), "timestamps": stamps})
    assert r.status_code == 200, r.text
    doc = r.json()
    want = det.detect(x, timestamps=ts)
    np.testing.assert_allclose(doc["scores"], want.scores, rtol=1e-5)
    assert doc["flags"] == want.flags.tolist() and doc["threshold"] == pytest.approx(want.threshold)
    assert len(doc["events"]) == len(want.events) and doc["timestamps"][0] == "2024-01-01T00:00:00"
    if doc["events"]:
        e = doc["events"][0]
        assert set(e) >= {"start", "end", "peak", "peak_score", "start_time", "end_time"}
    csv = "timestamp,x0,x1\n" + "".join(f"{t.replace('T', ' ')},{a},{b}\n" for t, (a, b) in zip(stamps, x))
    up = client.post("/v1/score", data={"model": "series"}, files={"file": ("s.csv", csv, "text/csv")})
    assert up.status_code == 200, up.text
    np.testing.assert_allclose(up.json()["scores"], doc["scores"], rtol=1e-5)
    bad = client.post("/v1/score", json={"model": "series", "series": x.tolist()})
    assert bad.status_code == 422 and "timestamps" in bad.json()["detail"]
    bad = client.post("/v1/score", json={"model": "series", "series": x[:, :1].tolist(), "timestamps": stamps})
    assert bad.status_code == 422 and "channel" in bad.json()["detail"]
    bad = client.post("/v1/score", json={"model": "series", "series": x[:5].tolist(), "timestamps": stamps[:5]})
    assert bad.status_code == 422 and "window" in bad.json()["detail"]
    bad = client.post("/v1/score", data={"model": "series"}, files={"file": ("s.csv", "timestamp,zz\n1,2\n")})
    assert bad.status_code == 422 and "tmp" not in bad.json()["detail"]
    assert client.post("/v1/reconstruct", json={"model": "series", "inputs": x.tolist()}).status_code == 404


def test_search_json_and_upload(client, folders, digits):
    s = aekit.load(folders / "digits-index")
    q = digits.x_test[:3]
    r = client.post("/v1/search", json={"inputs": q.tolist(), "k": 4})
    assert r.status_code == 200, r.text
    doc = r.json()
    ids, dist = s.query(q, k=4)
    assert doc["index"] == "digits-index" and len(doc["results"]) == 3
    n0 = doc["results"][0]["neighbours"]
    assert [n["id"] for n in n0] == ids[0].tolist()
    np.testing.assert_allclose([n["distance"] for n in n0], dist[0], rtol=1e-5)
    assert n0[0]["label"] == int(digits.y_train[ids[0, 0]]) and n0[0]["image_png"].startswith("data:image/png")
    # upload: a 16x16 PNG is resized to 8x8; k as a form field; naming the model it was built with
    big = np.kron((digits.x_test[0, 0] * 255).astype(np.uint8), np.ones((2, 2), np.uint8))
    up = client.post("/v1/search", data={"k": "2", "model": "digits-run"}, files={"file": ("q.png", _png(big))})
    assert up.status_code == 200, up.text
    assert up.json()["resized"] is True and len(up.json()["results"][0]["neighbours"]) == 2
    no_img = client.post("/v1/search", json={"inputs": q[:1].tolist(), "k": 2, "images": False}).json()
    assert no_img["results"][0]["neighbours"][0]["image_png"] is None
    assert client.post("/v1/search", json={"inputs": q.tolist(), "k": 501}).status_code == 422
    assert client.post("/v1/search", json={"model": "embedder", "inputs": q.tolist()}).status_code == 404


def test_image_upload_paths(client, digits, loaded):
    img = (digits.x_test[0, 0] * 255).astype(np.uint8)
    r = client.post("/v1/reconstruct", data={"model": "digits-run"}, files={"file": ("a.png", _png(img), "image/png")})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["resized"] is False and np.array(doc["reconstructions"]).shape == (1, 1, 8, 8)
    js = client.post("/v1/reconstruct", json={"model": "digits-run", "inputs": (img / 255.0).tolist()}).json()
    np.testing.assert_allclose(doc["reconstructions"], js["reconstructions"], atol=1e-6)
    # RGB JPEG of another size: converted to one channel and resized
    rgb = np.stack([np.kron(img, np.ones((3, 3), np.uint8))] * 3, -1)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG")
    r = client.post("/v1/score", data={"model": "image-detector"}, files={"file": ("b.jpg", buf.getvalue())})
    assert r.status_code == 200 and r.json()["resized"] is True and len(r.json()["flags"]) == 1
    r = client.post("/v1/embed", data={"model": "denoiser"}, files={"file": ("a.png", _png(img))})
    assert r.status_code == 200
    den = loaded["denoiser"]  # the code, not the denoised image its transform() returns
    assert len(r.json()["codes"][0]) == den.code_dim_
    from aekit.tasks.embedder import _AutoencoderEstimator

    want = _AutoencoderEstimator.transform(den, (img / 255.0).astype(np.float32)[None, None])
    np.testing.assert_allclose(r.json()["codes"], want, atol=1e-5)


# -- bad input: clear errors, the service keeps serving -----------------------------------------------
def test_bad_inputs_and_status_codes(client, digits):
    x = digits.x_test[:2]
    cases = [
        (dict(json={"model": "nope", "inputs": x.tolist()}), 404, "unknown model"),
        (dict(json={"inputs": x.tolist()}), 422, "several"),  # several models can reconstruct
        (dict(json={"model": "digits-run", "inputs": np.zeros((2, 7)).tolist()}), 422, "[1, 8, 8]"),
        (dict(json={"model": "digits-run", "inputs": [[1, 2], [3]]}), 422, "ragged"),
        (dict(json={"model": "digits-run"}), 422, "missing"),
        (dict(json={"model": "digits-run", "inputs": []}), 422, "empty"),
        (dict(json={"model": "digits-run", "inputs": "abc"}), 422, "nested list"),
        (dict(json={"model": "digits-run", "inputs": x.tolist(), "extra": 1}), 422, "unknown field"),
        (dict(json={"model": "digits-run", "inputs": (x * 3).tolist()}), 422, "[0, 1]"),
        (dict(json=[1, 2]), 422, "object"),
        (dict(content=b'{"model": "digits-run", "inputs": [', headers={"content-type": "application/json"}),
         422, "malformed JSON"),
        (dict(content=b"", headers={"content-type": "application/json"}), 422, "empty request body"),
        (dict(data={"model": "digits-run"}, files={"file": ("a.txt", b"hello, not an image")}), 415, "not an image"),
        (dict(data={"model": "digits-run"}, files={"file": ("a.png", b"")}), 415, "empty"),
        (dict(data={"model": "digits-run"}), 422, "file"),
        (dict(data={"model": "embedder"}, files={"file": ("a.png", _png(np.zeros((8, 8))))}), 422, "not images"),
        (dict(data={"model": "digits-run", "x": "1"}, files={"file": ("a.png", _png(np.zeros((8, 8))))}), 422,
         "unknown form field"),
    ]
    for kw, status, text in cases:
        r = client.post("/v1/reconstruct", **kw)
        assert r.status_code == status, (kw, r.status_code, r.text)
        assert text in r.json()["detail"], (kw, r.json())
    nan = b'{"model": "digits-run", "inputs": [' + b", ".join([b"NaN"] * 64) + b"]}"
    r = client.post("/v1/score", content=nan, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "NaN" in r.json()["detail"]
    r = client.post("/v1/score", json={"model": "table-detector", "inputs": np.zeros((3, 11)).tolist()})
    assert r.status_code == 422 and "[12]" in r.json()["detail"]
    r = client.post("/v1/search", json={"model": "digits-run", "inputs": x.tolist(), "k": "ten"})
    assert r.status_code == 422 and "'k'" in r.json()["detail"]
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/score").status_code == 405
    assert client.get("/health").json()["status"] == "ok"  # still serving


def test_body_limit_413(client):
    big = json.dumps({"model": "digits-run", "inputs": np.zeros((2000, 1, 8, 8)).tolist()}).encode()
    assert len(big) > 500_000
    r = client.post("/v1/score", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while streaming
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = client.post("/v1/score", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/v1/reconstruct", data={"model": "digits-run"}, files={"file": ("a.png", b"\x89PNG" + big)})
    assert r.status_code == 413
    ok = client.post("/v1/score", json={"model": "digits-run", "inputs": np.zeros((1, 8, 8)).tolist()})
    assert ok.status_code == 200


# -- batching --------------------------------------------------------------------------------------
def test_concurrent_requests_are_batched_and_match_sequential(app, client, loaded, digits):
    det = loaded["image-detector"]
    xs = [digits.x_test[i : i + 1 + i % 3] for i in range(24)]
    seq = [client.post("/v1/score", json={"model": "image-detector", "inputs": x.tolist()}).json()["scores"]
           for x in xs]
    before = client.get("/v1/stats").json()["batchers"]["image-detector/score"]

    async def fire():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            rs = await asyncio.gather(*[ac.post("/v1/score", json={"model": "image-detector", "inputs": x.tolist()})
                                        for x in xs])
            qs = await asyncio.gather(*[ac.post("/v1/search", json={"inputs": x.tolist(), "k": 3, "images": False})
                                        for x in xs])
        return [r.json() for r in rs], [q.json() for q in qs]

    conc, searches = asyncio.run(fire())
    for x, a, b in zip(xs, seq, conc):
        np.testing.assert_allclose(b["scores"], a, rtol=1e-5)
        np.testing.assert_allclose(b["scores"], det.anomaly_score(x), rtol=1e-5)
    after = client.get("/v1/stats").json()["batchers"]["image-detector/score"]
    assert after["requests"] - before["requests"] == 24
    assert after["batches"] - before["batches"] < 24  # some requests shared a forward pass
    s = aekit.load(app.state.service.index.path)
    for x, q in zip(xs, searches):
        assert [[n["id"] for n in r["neighbours"]] for r in q["results"]] == s.query(x, k=3)[0].tolist()


def test_batching_off_and_cors_when_asked(folders, digits):
    app = create_app([folders / "digits-run"], batch_window_ms=None, cors_origins=["http://localhost:5173"])
    with TestClient(app) as c:
        r = c.post("/v1/score", json={"inputs": digits.x_test[:2].tolist()}, headers={"Origin": "http://localhost:5173"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert c.get("/v1/stats").json()["batching"] is False
        assert "access-control-allow-origin" not in c.get("/health", headers={"Origin": "http://evil.org"}).headers
        assert c.post("/v1/search", json={"inputs": digits.x_test[:1].tolist()}).status_code == 404


def test_create_app_refuses_what_it_cannot_serve(folders, tmp_path):
    with pytest.raises(AekitError, match="does not exist"):
        create_app([tmp_path / "missing"])
    with pytest.raises(AekitError, match="--index"):
        create_app([folders / "digits-index"])
    with pytest.raises(AekitError, match="not an image index"):
        create_app([folders / "embedder"], index=folders / "embedder")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "aekit.json").write_text("{not json")
    with pytest.raises(AekitError, match="not valid JSON"):
        create_app([tmp_path / "junk"])


# -- command line ------------------------------------------------------------------------------------
def test_cli_fails_in_one_line_and_serves_on_loopback(folders, tmp_path, monkeypatch, capsys):
    import uvicorn

    from aekit.cli.main import main as cli_main
    from aekit.cli.serve import is_loopback

    assert cli_main(["serve", str(tmp_path / "missing")]) == 2
    out = capsys.readouterr().out
    assert "does not exist" in out and "Traceback" not in out and len(out.strip().splitlines()) == 1
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    assert cli_main(["serve", str(folders / "digits-run"), "--index", str(folders / "digits-index"),
                     "--port", "8123"]) == 0
    out = capsys.readouterr().out
    assert calls[0][1]["host"] == "127.0.0.1" and calls[0][1]["port"] == 8123
    assert "digits-run" in out and "http://127.0.0.1:8123" in out and "warning" not in out
    assert cli_main(["serve", str(folders / "embedder"), "--host", "0.0.0.0"]) == 0
    assert "warning" in capsys.readouterr().out
    assert is_loopback("localhost") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_worker_factory_reads_its_settings_from_the_environment(folders, monkeypatch):
    from aekit.serve.app import app_from_env

    cfg = {"runs": [str(folders / "embedder")], "index": None, "max_body_mb": 1, "cors_origins": None,
           "batch_window_ms": 0.0, "torch_threads": None}
    monkeypatch.setenv("AEKIT_SERVE_CONFIG", json.dumps(cfg))
    app = app_from_env()
    assert list(app.state.service.models) == ["embedder"] and app.state.service.max_body == 1_000_000
