"""`aekit serve` under load: requests/s, p50/p99 latency and errors for /v1/score and /v1/search.

A bounded load test on 127.0.0.1 only. It trains a tutorial-size model on MNIST (the tutorial's
convolutional autoencoder, 3,217 parameters, as an ``AnomalyDetector``: one epoch on 10,000
training images) and indexes 5,000 MNIST training images with its code, starts ``aekit serve`` in
a subprocess on a free loopback port, and fires a fixed number of requests (``--requests``,
5,000) per endpoint at each concurrency (``--concurrency``, 1, 8, 32) over keep-alive
connections (a minimal asyncio HTTP/1.1 client): one MNIST test image per request (JSON),
``k=10`` neighbours with thumbnails for search.
It does this for each batching mode (``--modes``): ``off`` (every request its own forward pass),
``0`` (merge the requests that queued while the previous pass ran) and ``2`` (also wait 2 ms for
more), restarting the server for each. It then stops the server and exits.

The client runs on the same machine as the server (2 cores here), so the numbers include the
client's own CPU time; the server gets ``--server-threads`` (1) torch threads.

    python benchmarks/serve.py              # 5,000 requests per cell, ~6 minutes
    python benchmarks/serve.py --quick      # 500 requests per cell

Target: zero errors and p99 under 50 ms at concurrency 8. Writes benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

import _common  # noqa: E402

TARGET_P99_MS = 50.0
TARGET_CONCURRENCY = 8


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_models(work: Path, n_train: int, n_index: int, seed: int) -> dict[str, Any]:
    """The detector and the index the server loads (trained once, reused across modes)."""
    import aekit
    from aekit.data import load_dataset
    from aekit.tasks.retrieval.search import ImageSearch

    det_dir, idx_dir = work / "mnist-detector", work / "mnist-index"
    ds = load_dataset("mnist")
    if not (det_dir / "aekit.json").is_file():
        t0 = time.perf_counter()
        det = aekit.AnomalyDetector(model="conv", preset="tutorial", epochs=1, batch_size=128, seed=seed,
                                    error="mse", noise=None, threshold="fpr:0.01")
        det.fit(ds.x_train[:n_train])
        aekit.save(det, det_dir, overwrite=True, extra={"dataset": "mnist"})
        print(f"trained the detector in {time.perf_counter() - t0:.1f} s -> {det_dir}")
    if not (idx_dir / "aekit.json").is_file():
        s = ImageSearch(aekit.load(det_dir)).fit(ds.x_train[:n_index])
        s.collections_ = [{"kind": "dataset", "name": "mnist", "split": "train", "offset": 0, "count": n_index}]
        s.save(idx_dir, overwrite=True)
        print(f"indexed {n_index:,} images -> {idx_dir}")
    det = aekit.load(det_dir)
    return {"detector": det_dir, "index": idx_dir,
            "n_params": int(sum(p.numel() for p in det.model_.parameters())),
            "queries": ds.x_test[:256]}


class Server:
    """``aekit serve`` in a subprocess on 127.0.0.1; stopped on exit."""

    def __init__(self, det: Path, idx: Path, mode: str, threads: int) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "aekit", "serve", str(det), "--index", str(idx), "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "warning", "--threads", str(threads)]
        cmd += ["--no-batching"] if mode == "off" else ["--batch-window-ms", mode]
        env = {**os.environ, "AEKIT_OFFLINE": "1"}
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float = 90.0) -> None:
        import httpx

        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"the server exited: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not answer /health in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def __enter__(self) -> Server:
        self.wait()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


async def _post(reader, writer, head: bytes, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 keep-alive POST on an open connection: (status, body)."""
    writer.write(head + body)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    data = await reader.readexactly(length) if length else b""
    if close:
        raise ConnectionResetError("connection: close")
    return status, data


async def load(port: int, path: str, bodies: list[bytes], n: int, concurrency: int) -> dict[str, Any]:
    """``n`` POSTs to ``path`` (bodies in turn) from ``concurrency`` keep-alive connections.

    A minimal HTTP/1.1 client on asyncio streams: it costs far less CPU per request than httpx,
    so on this 2-core machine the numbers measure the server rather than the client.
    """
    lat = np.zeros(n)
    errors = 0
    first_error = None
    nxt = 0
    heads = [f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(b)}\r\n\r\n".encode() for b in bodies]

    async def worker() -> None:
        nonlocal nxt, errors, first_error
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while nxt < n:
                i = nxt
                nxt += 1
                j = i % len(bodies)
                t0 = time.perf_counter()
                try:
                    status, data = await _post(reader, writer, heads[j], bodies[j])
                    ok = status == 200
                    if not ok and first_error is None:
                        first_error = f"{status}: {data[:200]!r}"
                except (OSError, ValueError, asyncio.IncompleteReadError) as err:
                    ok = False
                    first_error = first_error or repr(err)
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                lat[i] = time.perf_counter() - t0
                errors += not ok
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    wall = time.perf_counter() - t0
    ms = lat * 1000
    return {"requests": n, "errors": errors, "seconds": round(wall, 3), "req_per_s": n / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "first_error": first_error}


def onnx_vs_torch(det_dir: Path, queries: np.ndarray, threads: int, seconds: float) -> list[dict[str, Any]]:
    """The served detector's scoring in PyTorch (``anomaly_score``, what the service runs) and in ONNX
    Runtime (the graph ``aekit export`` writes, parity-checked), batch 1 and 256, same inputs."""
    import onnxruntime as ort
    import torch

    import aekit
    from aekit.deploy import export_onnx
    from onnx_throughput import _time_calls

    det = aekit.load(det_dir)
    report = export_onnx(det, det_dir.parent / "detector.onnx", overwrite=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(report.path, opts, providers=["CPUExecutionProvider"])
    torch.set_num_threads(threads)
    x = np.ascontiguousarray(np.resize(queries, (256, *queries.shape[1:])), dtype=np.float32)
    rows = []
    for batch in (1, 256):
        xb = x[:batch]
        fns = {"pytorch (anomaly_score)": lambda a=xb: det.anomaly_score(a),
               "onnxruntime": lambda a=xb: sess.run(["score"], {"input": a})}
        for runtime, fn in fns.items():
            sec = _time_calls(fn, seconds, min_reps=20)
            rows.append({"runtime": runtime, "threads": threads, "batch": batch, "ms_per_call": 1e3 * sec,
                         "samples_per_s": batch / sec, "max_abs_diff_score": report.max_abs_diff.get("score")})
    for batch in (1, 256):
        pt, ox = (next(r for r in rows if r["batch"] == batch and r["runtime"] == k)
                  for k in ("pytorch (anomaly_score)", "onnxruntime"))
        ox["speedup"] = pt["ms_per_call"] / ox["ms_per_call"]
    return rows


def stats(url: str) -> dict[str, Any]:
    import httpx

    return httpx.get(url + "/v1/stats", timeout=5).json()["batchers"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5000, help="requests per endpoint and concurrency")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--modes", default="off,0,2", help="batching: off, or a batch window in ms (0 = natural)")
    ap.add_argument("--endpoints", default="score,search")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--server-threads", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--n-index", type=int, default=5_000)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the trained models here (default: temp)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="500 requests per cell")
    ap.add_argument("--results-dir", default=None)
    ap.add_argument("--out", default="serve")
    ap.add_argument("--no-onnx", dest="onnx", action="store_false",
                    help="skip timing the same detector in ONNX Runtime against PyTorch")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.warmup = min(args.requests, 500), min(args.warmup, 50)
    os.environ.setdefault("AEKIT_DATA_HOME", str(_common.REPO_ROOT.parent / "shared" / "datasets"))
    import torch

    torch.set_num_threads(2)
    conc = [int(c) for c in args.concurrency.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    endpoints = [e.strip() for e in args.endpoints.split(",")]
    tmp = tempfile.TemporaryDirectory(prefix="aekit-bench-serve-")
    work = args.workdir or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    built = build_models(work, args.n_train, args.n_index, args.seed)
    q = built["queries"]
    bodies = {
        "score": [json.dumps({"inputs": np.round(x, 4).tolist()}).encode() for x in q],
        "search": [json.dumps({"inputs": np.round(x, 4).tolist(), "k": 10}).encode() for x in q],
    }
    rows = []
    for mode in modes:
        with Server(built["detector"], built["index"], mode, args.server_threads) as srv:
            for ep in endpoints:
                path = f"/v1/{ep}"
                asyncio.run(load(srv.port, path, bodies[ep], args.warmup, 8))  # warm caches and thumbnails
                for c in conc:
                    before = stats(srv.url)
                    r = asyncio.run(load(srv.port, path, bodies[ep], args.requests, c))
                    after = stats(srv.url)
                    key = next((k for k in after if k.split("/")[1] == ep), None)
                    per_batch = None
                    if key is not None:
                        b0 = before.get(key, {"requests": 0, "batches": 0})
                        db = after[key]["batches"] - b0["batches"]
                        per_batch = (after[key]["requests"] - b0["requests"]) / db if db else None
                    row = {"mode": "off" if mode == "off" else f"window {mode} ms", "endpoint": ep,
                           "concurrency": c, **r, "requests_per_batch": per_batch}
                    rows.append(row)
                    print(f"{row['mode']:>12} {ep:>6} c={c:<3} {r['req_per_s']:8.1f} req/s  p50 {r['p50_ms']:6.2f} ms"
                          f"  p99 {r['p99_ms']:6.2f} ms  errors {r['errors']}"
                          + (f"  {per_batch:.2f} req/batch" if per_batch else ""), flush=True)
    cols = ["mode", "endpoint", "concurrency", "requests", "errors", "req_per_s", "p50_ms", "p99_ms",
            "requests_per_batch"]
    heads = ["batching", "endpoint", "concurrency", "requests", "errors", "req/s", "p50 ms", "p99 ms",
             "requests/batch"]
    _common.print_table(rows, cols, heads, title=f"aekit serve on 127.0.0.1: conv_ae tutorial detector "
                        f"({built['n_params']:,} parameters, MNIST 28x28), index of {args.n_index:,} images")
    target: dict[str, Any] = {"p99_ms_at_c8": TARGET_P99_MS, "errors": 0, "met_by_mode": {}}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        cells = [r for r in rows if r["mode"] == mode and r["concurrency"] == TARGET_CONCURRENCY]
        ok = bool(cells) and all(r["errors"] == 0 and r["p99_ms"] < TARGET_P99_MS for r in cells)
        target["met_by_mode"][mode] = ok
        print(f"target (zero errors, p99 < {TARGET_P99_MS:g} ms at concurrency {TARGET_CONCURRENCY}), batching "
              f"{mode}: {'met' if ok else 'NOT met'}")
    total_errors = sum(r["errors"] for r in rows)
    print(f"errors over all {sum(r['requests'] for r in rows):,} requests: {total_errors}; load average at the "
          f"end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other jobs share this machine)")
    onnx_rows: list[dict[str, Any]] = []
    if args.onnx:
        onnx_rows = onnx_vs_torch(Path(built["detector"]), q, args.server_threads, 0.3 if args.quick else 1.5)
        _common.print_table(onnx_rows, ["runtime", "threads", "batch", "ms_per_call", "samples_per_s", "speedup"],
                            ["runtime", "threads", "batch", "ms/call", "samples/s", "ONNX speed-up"],
                            title="the served detector's score: PyTorch vs ONNX Runtime (aekit export), same inputs")
    payload = {"benchmark": "serve", "command": _common.command_line(), "env": _common.env_info(),
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "model": {"kind": "anomaly_detector", "model": "conv_ae tutorial", "n_params": built["n_params"],
                         "dataset": "mnist", "n_train": args.n_train, "index_size": args.n_index},
               "target": target, "rows": rows, "onnx_vs_pytorch": onnx_rows}
    path = _common.write_json(args.out, payload, _common.results_dir(args))
    print(f"JSON: {path}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
