"""Nearest-neighbour search at scale: exact, HNSW and IVF-PQ over one million codes, with aekit's VectorIndex.

The codes are synthetic unless ``--codes`` gives an encoder's codes (an ``.npy`` of shape (N, dim)):
a Gaussian mixture of ``--centres`` (1,000) centres drawn from N(0, 0.25 I) in ``--dim`` (32)
dimensions, each cluster a randomly rotated Gaussian with standard deviations 1/sqrt(1 + i),
i = 0..dim-1 (a decaying spectrum, as autoencoder codes have). The queries are ``--nq`` (10,000)
fresh draws from the same mixture (with ``--codes``: rows held out of the collection).

For each index: build seconds, memory (the size of the serialised faiss index, and the growth of
the process's resident memory while building), queries/s at k=10 for all queries in one batch with
``--threads`` (2) OpenMP threads, and recall@10 against exact search (the share of the true 10
nearest neighbours found). HNSW is measured at several ``ef_search``, IVF-PQ at several ``nprobe``
and ``pq_m``. The target is recall@10 >= 0.95 at >= 5,000 queries/s; the table says which settings
meet it. A binary part does the same for ``--bits`` (64)-bit codes (signs of random projections of
the float codes) under the hamming distance: exact (IndexBinaryFlat) against HNSW (IndexBinaryHNSW);
recall there counts ties: a returned code is right when it is no farther than the true 10th.

A size sweep (``--sweep-sizes``) times exact search and HNSW (build and search) on the first n codes;
it is what `aekit.tasks.retrieval.index.AUTO_EXACT_MAX` is set from: the largest collection that exact
search still answers at the target speed.

    python benchmarks/index_scale.py             # 1M codes, ~6-8 minutes on 2 cores
    python benchmarks/index_scale.py --pq-m 16,32 --sweep-sizes 25000,50000,100000,200000  # the saved results
    python benchmarks/index_scale.py --quick     # 50k codes, smoke run
    python benchmarks/index_scale.py --codes codes.npy

Writes benchmarks/results/index_scale.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faiss  # noqa: E402
import numpy as np  # noqa: E402

import _common  # noqa: E402
from aekit.tasks.retrieval import index as index_mod  # noqa: E402
from aekit.tasks.retrieval.index import VectorIndex  # noqa: E402

TARGET_RECALL = 0.95
TARGET_QPS = 5_000


def rss_bytes() -> int:
    """The process's resident memory now (VmRSS), in bytes."""
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def mixture(n: int, nq: int, dim: int, centres: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` collection codes and `nq` queries from the Gaussian mixture described in the module docstring."""
    rng = np.random.default_rng(seed)
    mu = 0.5 * rng.normal(size=(centres, dim))
    std = 1 / np.sqrt(1 + np.arange(dim))
    rot = np.stack([np.linalg.qr(rng.normal(size=(dim, dim)))[0] for _ in range(centres)])

    def draw(m: int) -> np.ndarray:
        lab = rng.integers(0, centres, m)
        z = rng.normal(size=(m, dim)) * std  # (m, dim), decaying spectrum
        x = np.empty((m, dim), np.float32)
        order = np.argsort(lab, kind="stable")
        bounds = np.searchsorted(lab[order], np.arange(centres + 1))
        for c in range(centres):
            rows = order[bounds[c]:bounds[c + 1]]
            x[rows] = mu[c] + z[rows] @ rot[c]
        return x

    return draw(n), draw(nq)


def from_file(path: str, n: int, nq: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    codes = np.load(path).astype(np.float32, copy=False)
    if codes.ndim != 2 or len(codes) <= nq:
        raise SystemExit(f"{path}: need a 2-D array with more than --nq={nq} rows, got shape {codes.shape}")
    perm = np.random.default_rng(seed).permutation(len(codes))
    return codes[perm[nq:nq + n]], codes[perm[:nq]]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of `truth` found in the same row of `found` (row order ignored)."""
    k = truth.shape[1]
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2).sum(axis=1)
    return float(hits.mean() / k)


def timed_search(idx: VectorIndex, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    idx.search(q[:200], k)  # warm-up (threads, caches)
    t = time.perf_counter()
    ids, dist = idx.search(q, k)
    return ids, dist, len(q) / (time.perf_counter() - t)


def build(x: np.ndarray, dim: int, **kw: Any) -> tuple[VectorIndex, dict[str, Any]]:
    """A VectorIndex holding `x`, with build seconds, serialised size and RSS growth."""
    gc.collect()
    rss0 = rss_bytes()
    t = time.perf_counter()
    idx = VectorIndex(dim, **kw)
    idx.add(x)
    build_s = time.perf_counter() - t
    rss1 = rss_bytes()
    _, arrays = idx.to_state()
    info = {"build_s": build_s, "index_mb": arrays["index"].nbytes / 2**20, "rss_delta_mb": (rss1 - rss0) / 2**20,
            "bytes_per_vector": arrays["index"].nbytes / len(x)}
    del arrays
    return idx, info


def row(label: str, setting: str, info: dict[str, Any], qps: float, rec: float, first: bool) -> dict[str, Any]:
    r = {"index": label, "setting": setting, "qps": qps, "recall10": rec,
         "meets_target": bool(rec >= TARGET_RECALL and qps >= TARGET_QPS)}
    r.update(info if first else {k: None for k in info})
    r["build"] = info  # the JSON keeps the build facts on every row
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="codes in the collection")
    ap.add_argument("--nq", type=int, default=10_000, help="queries")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--centres", type=int, default=1000, help="mixture components of the synthetic codes")
    ap.add_argument("--codes", default=None, help=".npy of real codes (N, dim) instead of the synthetic ones")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef", default="16,32,64,128", help="HNSW ef_search values")
    ap.add_argument("--nlist", type=int, default=None, help="IVF lists (default VectorIndex's: 4 sqrt(n))")
    ap.add_argument("--nprobe", default="8,16,32,64", help="IVF-PQ nprobe values")
    ap.add_argument("--pq-m", default=None, help="IVF-PQ bytes per vector, comma-separated (default VectorIndex's: "
                    "dim, up to 64)")
    ap.add_argument("--bits", type=int, default=64, help="bits of the binary codes (0: skip the binary part)")
    ap.add_argument("--binary-ef", default="16,32,64", help="binary HNSW ef_search values")
    ap.add_argument("--sweep-sizes", default="50000,100000,200000",
                    help="collection sizes timed for the auto threshold (exact vs HNSW); '' to skip")
    ap.add_argument("--parts", default="hnsw,ivfpq,binary,sweep",
                    help="what to measure (exact search, the ground truth, runs with hnsw or ivfpq)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 50,000 codes, 2,000 queries")
    ap.add_argument("--results-dir", default=None, help="folder for the JSON (default benchmarks/results; "
                    "with --quick a temporary folder)")
    ap.add_argument("--out", default="index_scale", help="results/<OUT>.json (default index_scale)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.nq = min(args.n, 50_000), min(args.nq, 2_000)
        args.sweep_sizes = "10000,20000"
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if parts - {"hnsw", "ivfpq", "binary", "sweep"}:
        ap.error(f"--parts: unknown {', '.join(sorted(parts - {'hnsw', 'ivfpq', 'binary', 'sweep'}))}")
    efs = [int(v) for v in args.ef.split(",") if v] if "hnsw" in parts else []
    nprobes = [int(v) for v in args.nprobe.split(",") if v]
    sweep_sizes = [int(v) for v in args.sweep_sizes.split(",") if v and int(v) <= args.n] if "sweep" in parts else []
    faiss.omp_set_num_threads(args.threads)
    t_start = time.perf_counter()
    env = _common.env_info(torch_threads=False)
    env["faiss"] = faiss.__version__

    t = time.perf_counter()
    if args.codes:
        xb, xq = from_file(args.codes, args.n, args.nq, args.seed)
        source = f"codes from {args.codes}; queries are {len(xq):,} held-out rows"
    else:
        xb, xq = mixture(args.n, args.nq, args.dim, args.centres, args.seed)
        source = (f"synthetic: Gaussian mixture, {args.centres:,} centres ~ N(0, 0.25 I), randomly rotated "
                  f"clusters with std 1/sqrt(1+i); {len(xq):,} fresh queries from the same mixture")
    dim = xb.shape[1]
    pq_ms = [int(v) for v in args.pq_m.split(",")] if args.pq_m else [None]
    print(f"{len(xb):,} codes of dim {dim} ({source}); generated in {time.perf_counter() - t:.1f} s; "
          f"k={args.k}, {args.threads} threads; faiss {faiss.__version__}", flush=True)

    rows: list[dict[str, Any]] = []
    if parts & {"hnsw", "ivfpq"}:  # exact: the ground truth
        ex, info = build(xb, dim, kind="exact")
        truth, _, qps = timed_search(ex, xq, args.k)
        rows.append(row("exact (IndexFlatL2)", "-", info, qps, 1.0, True))
        print(f"exact: {qps:,.0f} queries/s", flush=True)
        del ex
    if "hnsw" in parts:
        idx, info = build(xb, dim, kind="hnsw", hnsw_m=args.hnsw_m)
        print(f"HNSW M={args.hnsw_m}: built in {info['build_s']:.1f} s", flush=True)
    for i, ef in enumerate(efs):
        idx.ef_search = ef
        found, _, qps = timed_search(idx, xq, args.k)
        rows.append(row(f"HNSW (M={args.hnsw_m})", f"ef_search={ef}", info, qps, recall(found, truth), i == 0))
        print(f"  ef_search={ef}: {qps:,.0f} queries/s, recall@10 {rows[-1]['recall10']:.4f}", flush=True)
    if "hnsw" in parts:
        del idx
    for pq_m in pq_ms if "ivfpq" in parts else []:
        idx, info = build(xb, dim, kind="ivfpq", pq_m=pq_m, nlist=args.nlist, seed=args.seed)
        nlist, pq_m = idx.index_.nlist, idx.index_.pq.M
        print(f"IVF-PQ nlist={nlist}, pq_m={pq_m}: built in {info['build_s']:.1f} s", flush=True)
        for i, nprobe in enumerate(nprobes):
            idx.nprobe = nprobe
            found, _, qps = timed_search(idx, xq, args.k)
            rows.append(row(f"IVF-PQ (nlist={nlist}, pq_m={pq_m})", f"nprobe={nprobe}", info, qps,
                            recall(found, truth), i == 0))
            print(f"  nprobe={nprobe}: {qps:,.0f} queries/s, recall@10 {rows[-1]['recall10']:.4f}", flush=True)
        del idx
    cols = ["index", "setting", "build_s", "index_mb", "rss_delta_mb", "qps", "recall10", "meets_target"]
    heads = ["index", "setting", "build s", "index MiB", "RSS +MiB", "queries/s", "recall@10", "target met"]
    if rows:
        _common.print_table(rows, cols, heads, title=f"{len(xb):,} float codes, dim {dim}, {len(xq):,} queries, "
                            f"k={args.k}, {args.threads} threads (target: recall@10 >= {TARGET_RECALL} at >= "
                            f"{TARGET_QPS:,} queries/s)")

    # binary codes under hamming
    brows: list[dict[str, Any]] = []
    if args.bits and "binary" in parts:
        w = np.random.default_rng(args.seed + 1).normal(size=(dim, args.bits)).astype(np.float32)
        bb, bq = (xb @ w > 0), (xq @ w > 0)  # (n, bits) bool
        ex, info = build(bb, args.bits, metric="hamming", kind="exact")
        _, bdist, qps = timed_search(ex, bq, args.k)
        kth = bdist[:, -1:]
        brows.append(row("exact (IndexBinaryFlat)", "-", info, qps, 1.0, True))
        print(f"binary exact: {qps:,.0f} queries/s", flush=True)
        del ex
        idx, info = build(bb, args.bits, metric="hamming", kind="hnsw", hnsw_m=args.hnsw_m)
        print(f"binary HNSW: built in {info['build_s']:.1f} s", flush=True)
        for i, ef in enumerate(int(v) for v in args.binary_ef.split(",") if v):
            idx.ef_search = ef
            _, dist, qps = timed_search(idx, bq, args.k)
            rec = float((dist <= kth).mean())  # tie-aware
            brows.append(row(f"HNSW (IndexBinaryHNSW, M={args.hnsw_m})", f"ef_search={ef}", info, qps, rec, i == 0))
            print(f"  ef_search={ef}: {qps:,.0f} queries/s, recall@10 {rec:.4f}", flush=True)
        del idx, bb, bq
        _common.print_table(brows, cols, heads, title=f"{len(xb):,} binary codes of {args.bits} bits (signs of "
                            "random projections of the float codes), hamming; recall counts ties")

    # size sweep: where exact search stops meeting the speed target
    srows: list[dict[str, Any]] = []
    for n in sweep_sizes:
        ex, einfo = build(xb[:n], dim, kind="exact")
        t_ids, _, eqps = timed_search(ex, xq, args.k)
        del ex
        idx, hinfo = build(xb[:n], dim, kind="hnsw", hnsw_m=args.hnsw_m)
        found, _, hqps = timed_search(idx, xq, args.k)
        del idx
        srows.append({"n": n, "exact_qps": eqps, "hnsw_build_s": hinfo["build_s"], "hnsw_qps": hqps,
                      "hnsw_recall10": recall(found, t_ids), "exact_meets_qps": bool(eqps >= TARGET_QPS)})
        print(f"size {n:,}: exact {eqps:,.0f} q/s; HNSW build {hinfo['build_s']:.1f} s, {hqps:,.0f} q/s", flush=True)
    if srows:
        _common.print_table(srows, ["n", "exact_qps", "exact_meets_qps", "hnsw_build_s", "hnsw_qps", "hnsw_recall10"],
                            ["collection", "exact q/s", f"exact >= {TARGET_QPS:,} q/s", "HNSW build s",
                             "HNSW q/s (ef 64)", "HNSW recall@10"], title="size sweep (first n codes)")

    meeting = [f"{r['index']} {r['setting']}" for r in rows + brows if r["meets_target"]]
    print(f"\nsettings meeting recall@10 >= {TARGET_RECALL} at >= {TARGET_QPS:,} queries/s: "
          f"{', '.join(meeting) if meeting else 'none'}")
    print(f"VectorIndex auto: exact up to AUTO_EXACT_MAX={index_mod.AUTO_EXACT_MAX:,} vectors, then HNSW"
          + (f", IVF-PQ above {index_mod.AUTO_IVFPQ_MIN:,}" if index_mod.AUTO_IVFPQ_MIN else ""))

    wall = time.perf_counter() - t_start
    payload = {
        "benchmark": "index_scale",
        "command": _common.command_line(),
        "env": env,
        "quick": args.quick,
        "data": source,
        "measured": ("build seconds, serialised index size, RSS growth while building, queries/s over all "
                     f"queries in one batch at k={args.k} with {args.threads} faiss threads, recall@10 against "
                     "exact search; binary codes: tie-aware recall; size sweep for the auto threshold"),
        "settings": dict(vars(args)),
        "target": {"recall10": TARGET_RECALL, "qps": TARGET_QPS},
        "float": rows,
        "binary": brows,
        "size_sweep": srows,
        "meets_target": meeting,
        "auto": {"AUTO_EXACT_MAX": index_mod.AUTO_EXACT_MAX, "AUTO_IVFPQ_MIN": index_mod.AUTO_IVFPQ_MIN},
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "wall_s": wall,
    }
    path = _common.write_json(args.out, payload, _common.results_dir(args))
    print(f"wall time {wall:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
