"""Inference speed of exported ONNX graphs (ONNX Runtime, CPU) against PyTorch, same work, same threads.

Models: the tutorial's ``dense_ae`` (784-128-32-2, 210,130 parameters) and ``conv_ae`` (3,217
parameters) on 28x28 images, and an ``AnomalyDetector`` (dense, Mahalanobis score) on a
21-feature table (the width of ODDS cardio; synthetic rows, fitted for ``--detector-steps``
steps). The weights do not change the speed, so the image models are untrained.

Each model is exported with :func:`aekit.deploy.export_onnx` (the default exporter and its parity
check), then timed both ways:

* PyTorch: ``encode`` + ``decode`` + output activation under ``torch.inference_mode`` (aekit's own
  CPU path, fast layer rewrites included; for the conv model also in channels-last memory, the
  trainer's faster layout, which aekit's inference does not use) for the models; the public
  ``AnomalyDetector.anomaly_score`` + ``predict`` work (input checks, scaling, network, score,
  threshold) through the exported torch graph's own code for the detector, and ``anomaly_score``
  itself as a third row;
* ONNX Runtime: ``InferenceSession.run`` of the whole graph (all outputs), ``intra_op_num_threads``
  set to the thread count, sequential execution.

Reported: batch-1 latency (median of repeated calls, ms) and batch-256 throughput (samples/s,
median call time), for 1 and 2 threads.

    python benchmarks/onnx_throughput.py             # ~1 min on 2 cores
    python benchmarks/onnx_throughput.py --quick     # shorter timings, JSON to a temp folder

``measure(...)`` returns the rows for other scripts. Writes benchmarks/results/onnx_throughput.json.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("AEKIT_DATA_HOME", "/work/shared/datasets")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import aekit  # noqa: E402
from aekit.deploy import export_onnx  # noqa: E402

MODELS = ("dense_ae:tutorial", "conv_ae:tutorial", "anomaly_detector")


def _time_calls(fn: Callable[[], Any], seconds: float, min_reps: int = 5) -> float:
    """Median seconds per call of ``fn`` over about ``seconds`` of calls (after a warm-up)."""
    for _ in range(3):
        fn()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while len(times) < min_reps or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _build(name: str, detector_steps: int):
    """(object to export, input shape, torch callable factory) for one benchmark model."""
    if name == "anomaly_detector":
        rng = np.random.default_rng(0)
        basis = rng.normal(size=(4, 21))
        x = (rng.normal(size=(3000, 4)) @ basis + 0.1 * rng.normal(size=(3000, 21))).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det = aekit.AnomalyDetector(steps=detector_steps, threads=1).fit(x)
        return det, (21,), x
    model_name, preset = name.split(":")
    aekit.seed_everything(0)
    model = aekit.create_model(model_name, preset, input_shape=(1, 28, 28)).eval()
    return model, (1, 28, 28), None


def _torch_fns(name: str, obj) -> dict[str, Callable[[np.ndarray], Any]]:
    if name == "anomaly_detector":
        from aekit.deploy.graphs import build_graph

        graph = build_graph(obj, "anomaly_detector").module  # the same work as the ONNX graph, in torch

        def graph_fn(x: np.ndarray):
            with torch.inference_mode():
                return graph(torch.from_numpy(x))

        return {"pytorch (graph)": graph_fn, "pytorch (anomaly_score)": obj.anomaly_score}

    def fn(x: np.ndarray):
        with torch.inference_mode():
            z = obj.encode(torch.from_numpy(x))
            return obj.activate(obj.decode(z)), z

    fns = {"pytorch": fn}
    if getattr(obj, "prefers_channels_last", False):
        # aekit's inference (reconstruct_batches) runs NCHW; the trainer's channels-last is faster on CPU
        cl = copy.deepcopy(obj).to(memory_format=torch.channels_last)

        def fn_cl(x: np.ndarray):
            with torch.inference_mode():
                z = cl.encode(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
                return cl.activate(cl.decode(z)), z

        fns["pytorch (channels-last)"] = fn_cl
    return fns


def measure(
    models: Sequence[str] = MODELS,
    threads: Sequence[int] = (1, 2),
    batch: int = 256,
    seconds: float = 1.0,
    detector_steps: int = 200,
    workdir: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Batch-1 latency and batch-``batch`` throughput of PyTorch and ONNX Runtime per model and thread count.

    Returns one dict per (model, runtime, threads): ``model``, ``runtime``, ``threads``,
    ``batch1_ms``, ``batch``, ``batch_ms``, ``samples_per_s``, ``params``, ``max_abs_diff`` (the
    export's parity check, per output).
    """
    import onnxruntime as ort

    rows: list[dict[str, Any]] = []
    tmp = Path(workdir or tempfile.mkdtemp(prefix="aekit-onnx-bench-"))
    old_threads = torch.get_num_threads()
    try:
        for name in models:
            obj, shape, data = _build(name, detector_steps)
            report = export_onnx(obj, tmp / f"{name.replace(':', '_')}.onnx", overwrite=True)
            net = obj.model_ if hasattr(obj, "model_") else obj
            params = int(sum(p.numel() for p in net.parameters()))
            rng = np.random.default_rng(1)
            if data is None:
                x = rng.uniform(0, 1, size=(batch, *shape)).astype(np.float32)
            else:
                x = data[rng.integers(0, len(data), size=batch)]
            x1 = np.ascontiguousarray(x[:1])
            for t in threads:
                torch.set_num_threads(int(t))
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = int(t)
                opts.inter_op_num_threads = 1
                opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                sess = ort.InferenceSession(report.path, opts, providers=["CPUExecutionProvider"])
                fns = {"onnxruntime": lambda a, s=sess: s.run(None, {"input": a}), **_torch_fns(name, obj)}
                for runtime, fn in fns.items():
                    b1 = _time_calls(lambda f=fn, a=x1: f(a), seconds / 2, min_reps=20)
                    bb = _time_calls(lambda f=fn, a=x: f(a), seconds, min_reps=5)
                    rows.append({
                        "model": name, "runtime": runtime, "threads": int(t), "params": params,
                        "batch1_ms": 1e3 * b1, "batch": batch, "batch_ms": 1e3 * bb,
                        "samples_per_s": batch / bb, "exporter": report.exporter,
                        "max_abs_diff": report.max_abs_diff,
                    })
    finally:
        torch.set_num_threads(old_threads)
    return rows


def _wide(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (model, threads, PyTorch variant): PyTorch vs ONNX Runtime side by side."""
    out = []
    for r in rows:
        if r["runtime"] == "onnxruntime":
            continue
        o = next(q for q in rows if q["runtime"] == "onnxruntime" and q["model"] == r["model"]
                 and q["threads"] == r["threads"])
        out.append({
            "model": r["model"], "torch path": r["runtime"].removeprefix("pytorch").strip(" ()") or "forward",
            "threads": r["threads"], "torch b1 ms": r["batch1_ms"], "ORT b1 ms": o["batch1_ms"],
            "b1 speedup": r["batch1_ms"] / o["batch1_ms"], "torch b256 /s": r["samples_per_s"],
            "ORT b256 /s": o["samples_per_s"], "b256 speedup": o["samples_per_s"] / r["samples_per_s"],
        })
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per measurement (batch 1 gets half)")
    ap.add_argument("--detector-steps", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="0.2 s per measurement, JSON to a temp folder")
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args(argv)
    seconds = 0.2 if args.quick else args.seconds
    env = _common.env_info()
    t0 = time.perf_counter()
    rows = measure(args.models, args.threads, args.batch, seconds, args.detector_steps)
    wide = _wide(rows)
    cols = list(wide[0])
    _common.print_table(wide, cols, title=f"ONNX Runtime vs PyTorch inference, CPU ({env['cpu']})")
    payload = {"command": _common.command_line(), "env": env, "seconds": round(time.perf_counter() - t0, 1),
               "rows": rows, "table": wide}
    path = _common.write_json("onnx_throughput", payload, _common.results_dir(args))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
