"""Retrieval quality: precision@k and mean average precision with label agreement as relevance.

A database item is *relevant* to a query when the two carry the same label (the single-label
protocol of the image-hashing literature, e.g. MNIST test images as queries against the training
images). Everything here is vectorised over queries and processed in chunks of queries, so that
10,000 queries against a 60,000-item database rank the whole database in seconds and in a few
hundred MB of memory (never the full 10,000 x 60,000 distance matrix at once).

Ties
----
Rankings are *stable*: database items at equal distance are ordered by their database index
(lowest first). This matters for Hamming distances, which are small integers and tie a lot; it
makes every number here deterministic and independent of the search backend. (Float distances
from the same data hardly ever tie.) Squared euclidean distances are computed as
``|q|^2 - 2 q.x + |x|^2`` in float32, so two items whose distances differ by float rounding only
may come in either order.

Average precision
-----------------
For one query with the ranked list ``r_1, r_2, ...`` and ``rel_i = 1`` when ``r_i`` is relevant::

    AP = (1 / R) * sum_i rel_i * precision@i,   precision@i = (rel_1 + ... + rel_i) / i

* full ranking (``k=None``, "mAP" in the hashing literature): the list is the whole database and
  ``R`` is the number of relevant database items; this equals
  ``sklearn.metrics.average_precision_score(rel, -distance)`` when there are no ties.
* top ``k`` (``k=K``, "mAP@K"): the list is the first ``K`` items and ``R`` is the number of
  relevant items among them (as in the evaluation code of DPSH/HashNet), so AP@K rewards putting
  the relevant items of the top K first, not finding all of them.

A query without any relevant item in its list (or database) has AP 0 and still counts in the
mean (HashNet's code skips such queries instead; with MNIST-style labels there are none).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError, DataError

__all__ = [
    "average_precision_at",
    "hamming_distances",
    "knn_search",
    "mean_average_precision",
    "pack_bits",
    "pairwise_distances",
    "precision_at_k",
    "retrieval_report",
]

METRICS = ("euclidean", "cosine", "hamming")
#: memory allowed for one chunk of queries x database (bytes), about 40 bytes per pair
_CHUNK_BYTES = 256 * 2**20
_BYTES_PER_PAIR = 40


# ----------------------------------------------------------------------------- inputs


def _labels_1d(x, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise DataError(f"{what} must be a 1-d array of labels, got shape {arr.shape}")
    return arr


def _encode_labels(query_labels, db_labels) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays as small int32 codes over their joint set of values (any label type)."""
    q = _labels_1d(query_labels, "query_labels")
    d = _labels_1d(db_labels, "db_labels")
    _, inv = np.unique(np.concatenate([q, d]), return_inverse=True)
    inv = inv.astype(np.int32).reshape(-1)
    return inv[: len(q)], inv[len(q):]


def _chunk_rows(n_db: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        return int(chunk_size)
    return max(1, _CHUNK_BYTES // (_BYTES_PER_PAIR * max(n_db, 1)))


def _check_k(k: int, n: int, what: str) -> int:
    if isinstance(k, bool) or int(k) != k or int(k) < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    if int(k) > n:
        raise DataError(f"k={k} is larger than the {n} {what}")
    return int(k)


# ----------------------------------------------------------------------------- ranked lists


def precision_at_k(query_labels, retrieved_labels, k: int) -> float:
    """Mean over queries of the share of the first ``k`` retrieved items that carry the query's label.

    Parameters
    ----------
    query_labels : array of shape (n_queries,)
    retrieved_labels : array of shape (n_queries, m), m >= k
        The labels of each query's retrieved items, nearest first.
    k : int
    """
    q = _labels_1d(query_labels, "query_labels")
    r = np.asarray(retrieved_labels)
    if r.ndim != 2 or r.shape[0] != len(q):
        raise DataError(f"retrieved_labels must have shape ({len(q)}, >= k), got {r.shape}")
    k = _check_k(k, r.shape[1], "retrieved items per query")
    if len(q) == 0:
        return float("nan")
    return float((r[:, :k] == q[:, None]).mean())


def _ap_from_relevance(rel: np.ndarray, n_relevant: np.ndarray | None = None) -> np.ndarray:
    """AP per row of a boolean relevance matrix (ranked lists), divided by ``n_relevant``.

    ``n_relevant`` defaults to the relevant items in the row; rows with none get AP 0.
    """
    rows, cols = np.nonzero(rel)  # row-major: the hits of each row in rank order
    hits_before = np.cumsum(rel, axis=1, dtype=np.int32)[rows, cols]  # 1, 2, ... within a row
    prec = hits_before / (cols + 1.0)  # precision at each hit's rank
    total = np.bincount(rows, weights=prec, minlength=rel.shape[0])
    if n_relevant is None:
        n_relevant = np.bincount(rows, minlength=rel.shape[0])
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    return np.divide(total, n_relevant, out=np.zeros(rel.shape[0]), where=n_relevant > 0)


def average_precision_at(query_labels, retrieved_labels) -> np.ndarray:
    """Average precision of each query over its retrieved list (the cut-off is the list's length).

    The denominator is the number of relevant items in the list (AP@K as in DPSH/HashNet); a query
    with no relevant item retrieved gets 0. Returns ``ndarray of shape (n_queries,)``.
    """
    q = _labels_1d(query_labels, "query_labels")
    r = np.asarray(retrieved_labels)
    if r.ndim != 2 or r.shape[0] != len(q):
        raise DataError(f"retrieved_labels must have shape ({len(q)}, m), got {r.shape}")
    return _ap_from_relevance(r == q[:, None])


# ----------------------------------------------------------------------------- stable ranking


def _stable_order(dist: np.ndarray) -> np.ndarray:
    """Database indices of each row sorted by distance, ties by index (as uint32 or int64).

    float32 distances are sorted as one uint64 key per pair (order-preserving float bits in the
    high word, the index in the low word): a plain (SIMD) sort of those keys is 10x faster than a
    stable argsort. Small non-negative integers (Hamming distances) use numpy's radix argsort.
    """
    n = dist.shape[1]
    if dist.dtype == np.float32 and n < 2**32:
        if np.isnan(dist).any():
            raise DataError("distances contain NaN")
        bits = (dist + np.float32(0.0)).view(np.uint32)  # -0.0 -> +0.0, so that the two tie
        # IEEE-754 -> unsigned keys in the same order: flip all bits of negatives, the sign bit of others
        key = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
        key <<= np.uint64(32)
        key |= np.arange(n, dtype=np.uint64)
        key.sort(axis=1)
        return key.view(np.uint32)[:, 0::2] if np.little_endian else key.view(np.uint32)[:, 1::2]
    if np.issubdtype(dist.dtype, np.integer) and dist.size and dist.min() >= 0 and dist.max() < 2**16:
        small = dist.astype(np.uint8 if dist.max() < 2**8 else np.uint16, copy=False)
        return np.argsort(small, axis=1, kind="stable")
    if np.issubdtype(dist.dtype, np.floating) and np.isnan(dist).any():
        raise DataError("distances contain NaN")
    return np.argsort(dist, axis=1, kind="stable")


def _ap_of_distance_chunk(dist: np.ndarray, q_lab: np.ndarray, db_lab: np.ndarray, n_rel_total: np.ndarray,
                          k: int | None, ks: Sequence[int] = ()) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Per-query AP (full or top-k) and the hit counts in the top ``ks`` for one chunk of distances."""
    order = _stable_order(dist)
    if k is not None:
        order = order[:, :k]
    rel = db_lab[order] == q_lab[:, None]
    ap = _ap_from_relevance(rel, None if k is not None else n_rel_total)
    hits = {kk: rel[:, :kk].sum(1) for kk in ks}
    return ap, hits


def _looks_like_ranking(arr: np.ndarray, n_db: int) -> bool:
    if not np.issubdtype(arr.dtype, np.integer):
        return False
    if arr.shape[1] != n_db:
        return True  # distances have one column per database item
    return arr.shape[0] == 0 or bool(np.array_equal(np.sort(arr[0]), np.arange(n_db)))


def mean_average_precision(query_labels, db_labels, distances_or_ranking, *, k: int | None = None,
                           kind: str = "auto", chunk_size: int | None = None) -> float:
    """Mean average precision of a retrieval, with "same label" as relevance.

    Parameters
    ----------
    query_labels : array of shape (n_queries,)
    db_labels : array of shape (n_db,)
    distances_or_ranking : array
        Either distances ``(n_queries, n_db)`` (smaller is nearer; any real or integer dtype; ties
        are broken by database index) or a ranking ``(n_queries, m)`` of database indices, nearest
        first. Memory-mapped arrays are fine: rows are read a chunk of queries at a time.
    k : int, optional
        None (default): rank the whole database, AP over all relevant items (the hashing
        literature's mAP; a ranking shorter than the database counts the missing relevant items
        as never found). An int: AP over the top ``k`` only (mAP@k, see the module notes).
    kind : {"auto", "distances", "ranking"}
        How to read ``distances_or_ranking``. "auto": floats are distances; integers are a ranking
        when there are not ``n_db`` columns or the first row is a permutation of ``range(n_db)``,
        else distances (integer Hamming distances over more than ``bits + 1`` items never are).
    chunk_size : int, optional
        Queries per chunk (default: as many as fit in about 256 MB).
    """
    q_lab, db_lab = _encode_labels(query_labels, db_labels)
    arr = distances_or_ranking
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        arr = np.asarray(arr)
    if len(arr.shape) != 2 or arr.shape[0] != len(q_lab):
        raise DataError(f"distances_or_ranking must have shape ({len(q_lab)}, n), got {tuple(arr.shape)}")
    if kind not in ("auto", "distances", "ranking"):
        raise ConfigError(f"kind must be 'auto', 'distances' or 'ranking', got {kind!r}")
    n_db = len(db_lab)
    if kind == "auto":
        kind = "ranking" if _looks_like_ranking(np.asarray(arr[:1]) if len(arr) else np.asarray(arr), n_db) \
            else "distances"
    if len(q_lab) == 0:
        return float("nan")
    if kind == "distances" and arr.shape[1] != n_db:
        raise DataError(f"distances must have one column per database item ({n_db}), got {arr.shape[1]}")
    if k is not None:
        k = _check_k(k, arr.shape[1], "ranked items per query")
    n_rel_total = np.bincount(db_lab, minlength=int(max(q_lab.max(), db_lab.max())) + 1)[q_lab]
    step = _chunk_rows(arr.shape[1], chunk_size)
    aps = np.empty(len(q_lab))
    for s in range(0, len(q_lab), step):
        block = np.asarray(arr[s:s + step])
        ql = q_lab[s:s + step]
        if kind == "distances":
            aps[s:s + step] = _ap_of_distance_chunk(block, ql, db_lab, n_rel_total[s:s + step], k)[0]
        else:
            if block.size and (block.min() < 0 or block.max() >= n_db):
                raise DataError(f"a ranking holds database indices in [0, {n_db}), got {block.min()}..{block.max()}")
            block = block[:, :k] if k is not None else block
            rel = db_lab[block] == ql[:, None]
            aps[s:s + step] = _ap_from_relevance(rel, None if k is not None else n_rel_total[s:s + step])
    return float(aps.mean())


# ----------------------------------------------------------------------------- distances and search


def _as_float_codes(x, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        arr = arr.reshape(len(arr), -1) if arr.ndim > 2 else arr
    if arr.ndim != 2:
        raise DataError(f"{what} must be a 2-d array (n, dims), got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{what} contains NaN or inf")
    return arr


def _as_bits(x, what: str) -> np.ndarray:
    """0/1 (or bool) codes ``(n, bits)`` as uint8; anything else is an error."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{what} must be 0/1 bits of shape (n, bits), got shape {arr.shape}")
    if arr.dtype != np.bool_ and not (arr.size == 0 or np.isin(arr, (0, 1)).all()):
        raise DataError(f"{what} must hold 0/1 bits (threshold real codes first, e.g. codes > 0.5)")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def pack_bits(bits) -> np.ndarray:
    """0/1 codes ``(n, bits)`` -> packed bytes ``(n, ceil(bits / 8))`` (``np.packbits`` along rows)."""
    return np.packbits(_as_bits(bits, "bits"), axis=1)


def hamming_distances(query_bits, db_bits) -> np.ndarray:
    """Hamming distances ``(n_q, n_db)`` between 0/1 codes ``(n, bits)``, as int32.

    Computed as ``(bits - s_q . s_db) / 2`` with ``s = 2 b - 1`` in ±1 form: one float32 matrix
    product, exact for up to 2^24 bits.
    """
    a = _as_bits(query_bits, "query_bits")
    b = _as_bits(db_bits, "db_bits")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"query and database codes have {a.shape[1]} and {b.shape[1]} bits")
    return _hamming_pm(_pm1(a), _pm1(b))


def _pm1(bits: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(bits.astype(np.float32) * 2 - 1)


def _hamming_pm(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    dot = a @ b.T
    return ((a.shape[1] - dot) * 0.5).round().to(torch.int32).numpy()


class _Space:
    """Codes prepared once for chunked exact distances under one metric."""

    def __init__(self, query_codes, db_codes, metric: str) -> None:
        if metric not in METRICS:
            raise ConfigError(f"metric must be one of {METRICS}, got {metric!r}")
        self.metric = metric
        if metric == "hamming":
            self.q_bits = _as_bits(query_codes, "query_codes")
            self.db_bits = _as_bits(db_codes, "db_codes")
            q = _pm1(self.q_bits)
            d = _pm1(self.db_bits)
        else:
            q = torch.from_numpy(_as_float_codes(query_codes, "query_codes"))
            d = torch.from_numpy(_as_float_codes(db_codes, "db_codes"))
            if metric == "cosine":
                q = torch.nn.functional.normalize(q, dim=1)
                d = torch.nn.functional.normalize(d, dim=1)
        if q.shape[1] != d.shape[1]:
            raise DataError(f"query and database codes have {q.shape[1]} and {d.shape[1]} dimensions")
        self.q, self.d = q, d
        self.d_sq = (d * d).sum(1) if metric == "euclidean" else None

    def __len__(self) -> int:
        return self.q.shape[0]

    def distances(self, s: int, e: int) -> np.ndarray:
        """Distances of queries s:e to the whole database: float32 (squared euclidean,
        1 - cosine similarity) or int32 (Hamming)."""
        q = self.q[s:e]
        if self.metric == "hamming":
            return _hamming_pm(q, self.d)
        if self.metric == "cosine":
            return (1.0 - q @ self.d.T).numpy()
        dist = torch.addmm(self.d_sq[None, :], q, self.d.T, alpha=-2.0)
        dist += (q * q).sum(1, keepdim=True)
        return dist.clamp_(min=0).numpy()

    def chunks(self, step: int) -> Iterator[tuple[int, int, np.ndarray]]:
        for s in range(0, len(self), step):
            e = min(s + step, len(self))
            yield s, e, self.distances(s, e)


def pairwise_distances(query_codes, db_codes, *, metric: str = "euclidean") -> np.ndarray:
    """All distances ``(n_q, n_db)``: squared euclidean, cosine (1 - cos) or Hamming (0/1 codes).

    Builds the whole matrix: for large sets use :func:`knn_search` or :func:`retrieval_report`.
    """
    space = _Space(query_codes, db_codes, metric)
    return space.distances(0, len(space))


def knn_search(query_codes, db_codes, k: int, *, metric: str = "euclidean",
               chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest database items of each query, ties broken by database index.

    Returns ``(distances, indices)``, both ``(n_q, k)``, nearest first. Distances are euclidean
    (not squared), 1 - cosine similarity, or Hamming (int32).
    """
    space = _Space(query_codes, db_codes, metric)
    n_db = space.d.shape[0]
    k = _check_k(k, n_db, "database items")
    step = _chunk_rows(n_db, chunk_size)
    dists = np.empty((len(space), k), np.int32 if metric == "hamming" else np.float32)
    idx = np.empty((len(space), k), np.int64)
    for s, e, dist in space.chunks(step):
        order = _stable_order(dist)[:, :k].astype(np.int64)
        idx[s:e] = order
        dists[s:e] = np.take_along_axis(dist, order, axis=1)
    if metric == "euclidean":
        np.sqrt(dists, out=dists)
    return dists, idx


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _timed_search(space: _Space, k: int, backend: str, step: int) -> tuple[float, str]:
    """Wall seconds of an exact top-k search of every query, and the engine used."""
    faiss = _faiss() if backend in ("auto", "faiss") else None
    if backend == "faiss" and faiss is None:
        raise ConfigError("search='faiss' needs the faiss package (pip install faiss-cpu)")
    if faiss is not None:
        faiss.omp_set_num_threads(torch.get_num_threads())
        if space.metric == "hamming" and space.q_bits.shape[1] % 8 == 0:
            index = faiss.IndexBinaryFlat(space.q_bits.shape[1])
            index.add(np.packbits(space.db_bits, axis=1))
            queries = np.packbits(space.q_bits, axis=1)
            name = "faiss IndexBinaryFlat"
        elif space.metric != "hamming":
            dim = space.d.shape[1]
            index = faiss.IndexFlatL2(dim) if space.metric == "euclidean" else faiss.IndexFlatIP(dim)
            index.add(space.d.numpy())
            queries = space.q.numpy()
            name = f"faiss {type(index).__name__}"
        else:
            index = None
        if index is not None:
            t0 = time.perf_counter()
            index.search(queries, k)
            return time.perf_counter() - t0, name
    t0 = time.perf_counter()
    for _, _, dist in space.chunks(step):
        torch.topk(torch.from_numpy(dist), k, dim=1, largest=False, sorted=True)
    return time.perf_counter() - t0, "torch matmul + topk"


def retrieval_report(query_codes, query_labels, db_codes, db_labels, *, metric: str = "euclidean",
                     ks: Sequence[int] = (10, 100), search: str = "auto",
                     chunk_size: int | None = None) -> dict[str, Any]:
    """Exact retrieval of every query against the whole database: precision@k, mAP and query speed.

    Parameters
    ----------
    query_codes, db_codes : array of shape (n, dims)
        Float codes (``metric`` "euclidean" or "cosine"), or 0/1 uint8 / bool bits (``(n, bits)``,
        not packed) for ``metric="hamming"``.
    query_labels, db_labels : array of shape (n,)
        Relevance is label agreement.
    ks : sequence of int
        Cut-offs for ``precision@k``.
    search : {"auto", "faiss", "torch"}
        Engine for the timed top-``max(ks)`` search: faiss flat indexes (``IndexFlatL2``,
        ``IndexFlatIP`` on normalised codes, ``IndexBinaryFlat`` on packed bits) when faiss is
        installed, else chunked torch matrix products and ``topk``. Both use torch's thread count.
    chunk_size : int, optional
        Queries per chunk for the ranking (default: about 256 MB per chunk).

    Returns
    -------
    dict
        ``precision@K`` for each K in ``ks``, ``map`` (full-ranking mAP), ``query_seconds`` and
        ``queries_per_s`` (the timed exact top-``max(ks)`` search over all queries, excluding index
        building), and ``eval_seconds`` (the full stable ranking behind the metrics), ``search``,
        ``metric``, ``n_queries``, ``n_database``, ``dims``, ``threads``.

    The precision and mAP come from a full stable ranking (ties by database index, see the module
    notes), computed separately from the timed search, so they never depend on the search engine's
    tie order.
    """
    if search not in ("auto", "faiss", "torch"):
        raise ConfigError(f"search must be 'auto', 'faiss' or 'torch', got {search!r}")
    space = _Space(query_codes, db_codes, metric)
    q_lab, db_lab = _encode_labels(query_labels, db_labels)
    n_q, n_db = len(space), space.d.shape[0]
    if len(q_lab) != n_q or len(db_lab) != n_db:
        raise DataError(f"{n_q} query codes but {len(q_lab)} labels, or {n_db} database codes but "
                        f"{len(db_lab)} labels")
    ks = sorted({_check_k(k, n_db, "database items") for k in ks})
    if n_q == 0:
        raise DataError("no queries")
    step = _chunk_rows(n_db, chunk_size)
    kmax = max(ks) if ks else 1
    query_seconds, engine = _timed_search(space, kmax, search, step)

    t0 = time.perf_counter()
    n_rel_total = np.bincount(db_lab, minlength=int(max(q_lab.max(), db_lab.max())) + 1)[q_lab]
    aps = np.empty(n_q)
    hits = {k: np.empty(n_q) for k in ks}
    for s, e, dist in space.chunks(step):
        ap, h = _ap_of_distance_chunk(dist, q_lab[s:e], db_lab, n_rel_total[s:e], None, ks)
        aps[s:e] = ap
        for k in ks:
            hits[k][s:e] = h[k]
    eval_seconds = time.perf_counter() - t0

    out: dict[str, Any] = {f"precision@{k}": float(hits[k].mean() / k) for k in ks}
    out.update({
        "map": float(aps.mean()),
        "query_seconds": query_seconds,
        "queries_per_s": n_q / query_seconds if query_seconds > 0 else math.inf,
        "eval_seconds": eval_seconds,
        "search": engine,
        "metric": metric,
        "n_queries": n_q,
        "n_database": n_db,
        "dims": int(space.q.shape[1]),
        "threads": torch.get_num_threads(),
    })
    return out
