"""Training on data several times larger than the memory a process may use.

1. Writes a uint8 ``.npy`` of ``--rows`` 28x28 images (default 4,000,000 = 3.1 GB): MNIST's
   60,000 training digits over and over, each copy shifted by up to 2 pixels, in chunks.
2. Runs ``aekit train --dataset BIG.npy --stream`` (one epoch over every row, the tutorial's
   dense autoencoder, batch 128, one thread) in a child process whose data segment is limited to
   ``--limit-mb`` (default 1,024 MB) with ``RLIMIT_DATA`` (heap and anonymous memory; Linux >= 4.7),
   sampling the child's resident memory (VmRSS) every 0.5 s. The same command without
   ``--stream`` under the same limit must fail (the data does not fit), which shows the limit is real.
3. Throughput: the streamed path against the in-memory path on a ``.npy`` that fits
   (``--fit-rows``, default 60,000), the same command otherwise, in interleaved rounds, no limit.

Reported: peak RSS over the run (it includes the final evaluation, PCA baseline and figures), RSS
at 25 / 50 / 75% of the run's time (mid-training; flat = no growth between them), samples/s of
each path and their ratio (target: the streamed path within 20% of the in-memory one). The RSS
curve is drawn to ``memory.png`` beside the JSON.

    python benchmarks/memory.py                  # ~10 min: 3.1 GB file, one epoch, 3 rounds
    python benchmarks/memory.py --quick          # smoke run: 400,000 rows (the file fits the limit)

Writes benchmarks/results/memory.json (+ memory.png).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("AEKIT_DATA_HOME", "/work/shared/datasets")

import numpy as np  # noqa: E402


def write_big_npy(path: Path, rows: int, seed: int = 0, chunk: int = 60_000) -> float:
    """MNIST digits repeated (randomly shifted copies) into a uint8 (rows, 28, 28) .npy; seconds."""
    from numpy.lib import format as npformat

    from aekit.data import load_dataset

    t0 = time.perf_counter()
    base = (load_dataset("mnist").x_train[:, 0] * 255).round().astype(np.uint8)  # (60000, 28, 28)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as f:
        npformat.write_array_header_2_0(f, {"descr": "|u1", "fortran_order": False, "shape": (rows, 28, 28)})
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            src = base[rng.integers(0, len(base), n)]
            dy, dx = rng.integers(-2, 3, 2)
            f.write(np.ascontiguousarray(np.roll(src, (int(dy), int(dx)), axis=(1, 2))).tobytes())
            done += n
    os.replace(tmp, path)
    return time.perf_counter() - t0


def _limit(mb: int | None):
    def apply() -> None:
        if mb:
            resource.setrlimit(resource.RLIMIT_DATA, (mb << 20, mb << 20))
    return apply


def _rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def train(data: Path, out: Path, *, stream: bool, limit_mb: int | None, epochs: int, threads: int,
          extra: list[str] | None = None) -> dict[str, Any]:
    """One `aekit train` child process; its RSS samples, exit code, metrics and last output lines."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "aekit", "train", "--dataset", str(data), "--model", "dense_ae",
           "--preset", "tutorial", "--binarize", "0.5", "--epochs", str(epochs), "--threads", str(threads),
           "--batch-size", "128", "--out", str(out), "--stream" if stream else "--no-stream", *(extra or [])]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_limit(limit_mb))
    samples: list[tuple[float, int]] = []
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        rss = _rss_kb(proc.pid)
        if rss is not None:
            samples.append((time.perf_counter() - t0, rss))
        time.sleep(0.5)
    reader.join(timeout=5)
    wall = time.perf_counter() - t0
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else None
    return {"returncode": proc.returncode, "wall_s": wall, "rss_kb": samples, "metrics": metrics,
            "tail": "".join(lines[-6:])}


def rss_profile(samples: list[tuple[float, int]]) -> dict[str, Any]:
    if not samples:
        return {}
    t = np.array([s[0] for s in samples])
    r = np.array([s[1] for s in samples]) / 1024
    at = {f"rss_mb_at_{int(q * 100)}pct": float(r[min(len(r) - 1, int(q * (len(r) - 1)))]) for q in (0.25, 0.5, 0.75)}
    return {"peak_rss_mb": float(r.max()), **at, "duration_s": float(t[-1])}


def plot(samples: list[tuple[float, int]], limit_mb: int, file_mb: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] for s in samples]
    r = [s[1] / 1024 for s in samples]
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    ax.plot(t, r, lw=1.5, label="resident memory of `aekit train --stream`")
    ax.axhline(limit_mb, color="C3", ls="--", lw=1, label=f"data-segment limit ({limit_mb:,} MB)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MB")
    ax.set_ylim(0, max(limit_mb, max(r)) * 1.15)
    ax.set_title(f"one epoch over a {file_mb / 1024:.1f} GB .npy, memory limited to {limit_mb:,} MB")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=4_000_000, help="rows of the large file (784 bytes each)")
    p.add_argument("--limit-mb", type=int, default=1024, help="RLIMIT_DATA of the training process")
    p.add_argument("--fit-rows", type=int, default=60_000, help="rows of the file for the throughput comparison")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each throughput run (the first is warm-up)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds; the best is kept")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "aekit-memory-bench",
                   help="where the large file goes (kept for reuse; delete it afterwards)")
    p.add_argument("--quick", action="store_true", help="smoke run: 400,000 rows (0.3 GB), 1 round")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.limit_mb, args.fit_rows, args.epochs, args.rounds = 400_000, 1024, 20_000, 2, 1
    t_start = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    big = args.workdir / f"mnist-x{args.rows}.npy"
    gen_s = 0.0
    if not big.is_file():
        print(f"writing {big} ...", flush=True)
        gen_s = write_big_npy(big, args.rows)
    file_mb = big.stat().st_size / 2**20
    print(f"{big}: {file_mb:,.0f} MB = {file_mb / args.limit_mb:.1f}x the {args.limit_mb:,} MB limit", flush=True)
    res_dir = _common.results_dir(args)
    res_dir.mkdir(parents=True, exist_ok=True)

    # the in-memory path under the limit: must fail to load
    mem_big = train(big, args.workdir / "run-inmemory-big", stream=False, limit_mb=args.limit_mb, epochs=1,
                    threads=args.threads)
    print(f"in memory, limited: exit code {mem_big['returncode']}: {mem_big['tail'].strip()[-300:]}", flush=True)
    # the streamed path under the limit: one epoch over every row
    print("streaming one epoch under the limit ...", flush=True)
    st_big = train(big, args.workdir / "run-stream-big", stream=True, limit_mb=args.limit_mb, epochs=1,
                   threads=args.threads)
    if st_big["returncode"] != 0:
        raise SystemExit(f"the streamed run failed:\n{st_big['tail']}")
    prof = rss_profile(st_big["rss_kb"])
    plot(st_big["rss_kb"], args.limit_mb, file_mb, res_dir / "memory.png")
    print(f"streamed: {st_big['metrics']['train_samples_per_s']:,.0f} samples/s, peak RSS {prof['peak_rss_mb']:.0f} MB,"
          f" {st_big['wall_s']:.0f} s", flush=True)

    # throughput, streamed vs in memory, on a file that fits
    small = args.workdir / f"mnist-x{args.fit_rows}.npy"
    if not small.is_file():
        write_big_npy(small, args.fit_rows, seed=1)
    thr: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for stream in (False, True):
            res = train(small, args.workdir / f"run-fit-{int(stream)}", stream=stream, limit_mb=None,
                        epochs=args.epochs, threads=args.threads)
            if res["returncode"] != 0:
                raise SystemExit(f"throughput run failed:\n{res['tail']}")
            m = res["metrics"]
            thr.append({"path": "streamed" if stream else "in memory", "round": r,
                        "samples_per_s": m["train_samples_per_s"], "final_train_loss": m["final_train_loss"],
                        **rss_profile(res["rss_kb"])})
            print(f"round {r}: {thr[-1]['path']:<9} {m['train_samples_per_s']:>9,.0f} samples/s  "
                  f"peak RSS {thr[-1].get('peak_rss_mb', float('nan')):.0f} MB", flush=True)
    best = {}
    for row in thr:
        if row["path"] not in best or row["samples_per_s"] > best[row["path"]]["samples_per_s"]:
            best[row["path"]] = row
    ratio = best["streamed"]["samples_per_s"] / best["in memory"]["samples_per_s"]
    growth = prof["rss_mb_at_75pct"] - prof["rss_mb_at_25pct"]  # mid-training; the end adds evaluation
    rows = [
        {"run": f"streamed, {args.rows:,} rows ({file_mb:,.0f} MB), limit {args.limit_mb} MB",
         "samples_per_s": st_big["metrics"]["train_samples_per_s"], "peak_rss_mb": prof["peak_rss_mb"],
         "rss_25": prof["rss_mb_at_25pct"], "rss_50": prof["rss_mb_at_50pct"], "rss_75": prof["rss_mb_at_75pct"],
         "ok": True},
        {"run": f"in memory, same file, limit {args.limit_mb} MB", "samples_per_s": None,
         "peak_rss_mb": rss_profile(mem_big["rss_kb"]).get("peak_rss_mb"), "ok": mem_big["returncode"] == 0},
        *({"run": f"{k}, {args.fit_rows:,} rows, no limit", "samples_per_s": v["samples_per_s"],
           "peak_rss_mb": v.get("peak_rss_mb"), "ok": True} for k, v in best.items()),
    ]
    _common.print_table(rows, ["run", "samples_per_s", "peak_rss_mb", "rss_25", "rss_50", "rss_75", "ok"],
                        ["run", "samples/s", "peak RSS MB", "RSS 25%", "RSS 50%", "RSS 75%", "completed"],
                        title="tutorial dense AE, batch 128, one thread")
    fate = "completed" if mem_big["returncode"] == 0 else "failed"
    print(f"\nstreamed / in-memory samples/s: {ratio:.2f} (target >= 0.80); RSS growth over the epoch "
          f"{growth:+.0f} MB; the in-memory path under the limit {fate}")
    payload = {
        "benchmark": "memory", "command": _common.command_line(), "env": _common.env_info(), "quick": args.quick,
        "settings": {"rows": args.rows, "file_mb": file_mb, "limit_mb": args.limit_mb, "fit_rows": args.fit_rows,
                     "epochs": args.epochs, "rounds": args.rounds, "threads": args.threads,
                     "limit_kind": "RLIMIT_DATA"},
        "generate_s": gen_s,
        "streamed_big": {"returncode": st_big["returncode"], "wall_s": st_big["wall_s"], **prof,
                         "samples_per_s": st_big["metrics"]["train_samples_per_s"],
                         "final_train_loss": st_big["metrics"]["final_train_loss"],
                         "rss_samples_mb": [(round(t, 1), round(k / 1024, 1)) for t, k in st_big["rss_kb"]]},
        "in_memory_big_under_limit": {"returncode": mem_big["returncode"], "tail": mem_big["tail"][-600:]},
        "throughput_runs": thr,
        "streamed_over_in_memory": ratio,
        "targets": {"flat_memory": bool(prof["peak_rss_mb"] < args.limit_mb and growth < 0.1 * args.limit_mb),
                    "throughput_within_20pct": bool(ratio >= 0.8),
                    "data_larger_than_limit": bool(file_mb > 2 * args.limit_mb)},
        "load_average_end": os.getloadavg(),
        "wall_s": time.perf_counter() - t_start,
    }
    path = _common.write_json("memory", payload, res_dir)
    print(f"wrote {path} and {res_dir / 'memory.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
