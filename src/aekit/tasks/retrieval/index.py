"""Nearest-neighbour search over autoencoder codes: float codes (euclidean, cosine) or binary codes (hamming).

`VectorIndex` wraps a faiss index and maps faiss's row numbers to the user's ids (ints or strings such
as file paths). Three kinds of index:

- ``"exact"``: brute force (``IndexFlatL2``; ``IndexFlatIP`` on L2-normalised vectors for cosine;
  ``IndexBinaryFlat`` for hamming). No build cost, exact results, search time grows linearly with the
  collection.
- ``"hnsw"``: a navigable small-world graph (``IndexHNSWFlat`` / ``IndexBinaryHNSW``), ``hnsw_m``
  links per node, ``ef_search`` candidates per query. Keeps the full vectors (plus ~``2 * hnsw_m``
  int32 links each); near-exact recall at a fraction of the search time.
- ``"ivfpq"``: an inverted file with product-quantised residuals (``IndexIVFPQ``; ``IndexBinaryIVF``
  with the full codes for hamming), trained on the first ``add()``; ``nlist`` lists, ``nprobe`` of
  them searched per query, ``pq_m`` bytes per vector. The smallest index, with approximate
  distances and the lowest recall.

``kind="auto"`` chooses by collection size: exact up to `AUTO_EXACT_MAX` vectors, HNSW above, and
for float codes IVF-PQ above `AUTO_IVFPQ_MIN` (binary codes stay on HNSW). The choice is made when
the index is first built (on the first ``add()``) and re-made on every later ``add()``: when the
collection grows past a threshold, the index is rebuilt from its own stored vectors (exact and HNSW
keep them losslessly: ``reconstruct_n``; no raw copy is kept), the IVF-PQ one trained on all of them.
An explicit kind is never changed.

How the thresholds were chosen (``benchmarks/index_scale.py``, benchmarks/results/index_scale.json):
32-dim codes from a Gaussian mixture of 1,000 centres, 10,000 queries in one batch at k=10, 2 faiss
threads on a 2-core Xeon shared with another job (load average ~4, so absolute speeds are low):

- Exact search time grows linearly with the collection: 5,604 queries/s at 25,000 vectors, 2,923 at
  50,000, 1,480 at 100,000, 736 at 200,000, 150 at 1,000,000 (a lightly loaded exploratory run was
  ~3x faster: ~2,500 at 200,000). HNSW (M=32, ef_search=64) answers 15,600-18,500 queries/s at
  25,000-200,000 vectors with recall@10 0.999-0.9998, and builds in 2.2 s (25k), 3.6 s (50k), 6.4 s
  (100k), 12.7 s (200k), 84 s (1M).
- Exact search falls below the 5,000 queries/s target between 25,000 and 50,000 vectors on the loaded
  machine, near 100,000 on an idle one. `AUTO_EXACT_MAX` = 50,000 lies between: up to there exact
  search is fast enough and exact; above it HNSW is 6x faster or more, and switching costs little
  (recall@10 0.9998, 3.6 s to build at that size). The same threshold serves binary codes (64 bits:
  exact 221 queries/s at 1M; binary HNSW 31,500 at recall@10 0.973 with ef_search=16).
- At 1,000,000 vectors HNSW meets the target (recall@10 0.969 at 9,300 queries/s with ef_search=64,
  0.986 at 5,900 with 128; 382 MiB, 400 bytes per vector) and so does IVF-PQ with one byte per
  dimension (nlist=4000, pq_m=32: recall@10 0.979 at 8,100 queries/s with nprobe=16, 14,200 with 8;
  39 MiB, 10x smaller; built in 92 s against HNSW's 84 s). With half the bytes (pq_m=16, 23 MiB)
  IVF-PQ's recall@10 stops at 0.89 whatever ``nprobe``, hence the default ``pq_m = dim``. Below a
  million vectors HNSW's memory is modest and its recall near 1 with exact distances, so
  `AUTO_IVFPQ_MIN` = 1,000,000: past it IVF-PQ gives the same speed and recall at a tenth of the
  memory (its distances are approximate). Binary IVF was not measured, so binary codes stay on HNSW.

HNSW searches with ``max(ef_search, k)`` candidates, so that it fills all ``k`` slots.

Searching for more neighbours than the index holds (``k > ntotal``) raises `DataError` rather
than silently returning fewer columns. Approximate indexes can, rarely, find fewer than ``k``
neighbours (an IVF query whose probed lists hold fewer vectors); such slots hold id ``-1`` (int ids)
or ``None`` (string ids) and distance ``inf``.

The state (`VectorIndex.to_state`) is a JSON-able dict plus numpy arrays, ready for safetensors:
the faiss index is serialised with ``faiss.serialize_index[_binary]`` into a uint8 array; nothing is
pickled.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError, ModelFileError

AUTO_EXACT_MAX = 50_000
"""``kind="auto"`` uses exact search up to this many vectors, HNSW above (see the module docstring)."""

AUTO_IVFPQ_MIN: int | None = 1_000_000
"""``kind="auto"`` switches float codes to IVF-PQ above this many vectors (see the module docstring)."""

IVF_MIN_TRAIN = 1_000
"""The fewest vectors the first ``add()`` of a ``kind="ivfpq"`` index may hold (it trains on them)."""

METRICS = ("euclidean", "cosine", "hamming")
KINDS = ("auto", "exact", "hnsw", "ivfpq")
STATE_FORMAT = "aekit.VectorIndex"
STATE_VERSION = 1

_RANK = {"exact": 0, "hnsw": 1, "ivfpq": 2}  # auto only ever moves up this order
_TRAIN_PER_LIST = 64  # IVF k-means trains on at most this many vectors per list (faiss's own cap is 256)


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("aekit's retrieval index needs faiss: pip install faiss-cpu") from exc
    return faiss


def _few(items: Sequence[Any], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in list(items)[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


class VectorIndex:
    """Nearest-neighbour search over float codes (euclidean | cosine) or binary codes (hamming), with user ids.

    Parameters
    ----------
    dim : int
        Length of a code: the number of floats, or for ``metric="hamming"`` the number of bits (a
        multiple of 8).
    metric : {"euclidean", "cosine", "hamming"}
        Distance reported by `search`: L2 distance (not squared), ``1 - cosine similarity``, or the
        number of differing bits. Hamming codes are given as 0/1 (or bool) arrays of shape
        ``(n, dim)`` and packed internally with ``np.packbits``.
    kind : {"auto", "exact", "hnsw", "ivfpq"}
        Index structure (see the module docstring); ``"auto"`` is exact up to `AUTO_EXACT_MAX`
        vectors, then HNSW, rebuilt automatically as the collection grows.
    hnsw_m : int
        Links per node of the HNSW graph.
    ef_search : int
        HNSW candidate-list length per query (higher: better recall, slower); may be changed later.
    nlist : int or None
        IVF lists; None: ``4 * sqrt(n)`` of the first ``add()`` (at most ``n / 39``).
    pq_m : int or None
        IVF-PQ sub-quantisers (bytes per vector, must divide `dim`); None: ``dim`` (one byte per
        dimension; for ``dim > 64`` its largest divisor up to 64). Half of that lost 0.09 of recall@10
        in the benchmark (see the module docstring).
    nprobe : int
        IVF lists searched per query (higher: better recall, slower); may be changed later.
    seed : int
        Seed of the IVF k-means and of the training subsample.

    Attributes
    ----------
    index_ : faiss.Index or faiss.IndexBinary or None
        The faiss index, built on the first ``add()``.
    """

    def __init__(self, dim: int, *, metric: str = "euclidean", kind: str = "auto", hnsw_m: int = 32,
                 ef_search: int = 64, nlist: int | None = None, pq_m: int | None = None, nprobe: int = 16,
                 seed: int = 0):
        if metric not in METRICS:
            raise ConfigError(f"metric={metric!r} is not one of {', '.join(METRICS)}")
        if kind not in KINDS:
            raise ConfigError(f"kind={kind!r} is not one of {', '.join(KINDS)}")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ConfigError(f"dim must be a positive integer, got {dim!r}")
        if metric == "hamming" and dim % 8:
            raise ConfigError(f"metric='hamming' needs dim (the number of bits) to be a multiple of 8, got {dim}")
        for name, value, low in (("hnsw_m", hnsw_m, 2), ("ef_search", ef_search, 1), ("nprobe", nprobe, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if nlist is not None and (isinstance(nlist, bool) or not isinstance(nlist, (int, np.integer)) or nlist < 1):
            raise ConfigError(f"nlist must be a positive integer or None, got {nlist!r}")
        if pq_m is not None:
            if metric == "hamming":
                raise ConfigError("pq_m does not apply to metric='hamming' (binary IVF keeps the full codes)")
            if isinstance(pq_m, bool) or not isinstance(pq_m, (int, np.integer)) or pq_m < 1 or dim % pq_m:
                raise ConfigError(f"pq_m must be a positive divisor of dim={dim}, got {pq_m!r}")
        self._dim = int(dim)
        self._metric = metric
        self.kind = kind
        self.hnsw_m = int(hnsw_m)
        self.ef_search = int(ef_search)
        self.nlist = None if nlist is None else int(nlist)
        self.pq_m = None if pq_m is None else int(pq_m)
        self.nprobe = int(nprobe)
        self.seed = int(seed)
        self.index_: Any = None
        self._kind: str | None = None  # resolved kind
        self._id_type: str | None = None  # "int" | "str" once ids exist
        self._ids_int = np.empty(0, np.int64)
        self._ids_str = np.empty(0, dtype=object)
        self._str_set: set[str] = set()

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Code length (floats, or bits for hamming)."""
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def kind_(self) -> str | None:
        """The resolved kind ("exact", "hnsw" or "ivfpq"); None before the first ``add()``."""
        return self._kind

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return 0 if self.index_ is None else int(self.index_.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        return (f"VectorIndex(dim={self._dim}, metric={self._metric!r}, kind={self.kind!r}, "
                f"kind_={self._kind!r}, ntotal={self.ntotal})")

    # ------------------------------------------------------------------ validation
    def _prepare(self, vectors: Any, what: str, allow_1d: bool = False) -> np.ndarray:
        """Check `vectors` and return what faiss takes: float32 (n, dim) or packed uint8 (n, dim / 8)."""
        try:
            x = np.asarray(vectors)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what} are not a numeric array: {exc}") from exc
        if allow_1d and x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise DataError(f"{what} must be a 2-D array of shape (n, {self._dim}), got shape {x.shape}")
        if x.shape[0] == 0:
            raise DataError(f"{what} are empty (shape {x.shape})")
        if x.shape[1] != self._dim:
            unit = " bits" if self._metric == "hamming" else ""
            raise DataError(f"{what} have {x.shape[1]} columns but the index has dim={self._dim}{unit}"
                            + (" (give 0/1 bits, not packed bytes)" if self._metric == "hamming"
                               and x.shape[1] * 8 == self._dim else ""))
        if x.dtype.kind not in "biuf":
            raise DataError(f"{what} must be numeric, got dtype {x.dtype}")
        if self._metric == "hamming":
            if x.dtype != bool and not ((x == 0) | (x == 1)).all():
                raise DataError(f"{what} for metric='hamming' must hold only 0/1 (or bool) bits")
            return np.ascontiguousarray(np.packbits(x.astype(bool), axis=1))  # (n, dim) -> (n, dim / 8)
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, caught below
            x = np.ascontiguousarray(x, dtype=np.float32)
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise DataError(f"{what} hold NaN or inf (in float32) in rows {_few(bad.tolist())}")
        if self._metric == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            if (norms == 0).any():
                raise DataError(f"{what} rows {_few(np.flatnonzero(norms[:, 0] == 0).tolist())} are all zero: "
                                "cosine distance is undefined for them")
            x = x / norms
        return x

    def _prepare_ids(self, ids: Any, n: int) -> tuple[str, np.ndarray]:
        """Return ("int", int64 array) or ("str", object array of str) for `n` new vectors; checks duplicates."""
        if ids is None:
            if self._id_type == "str":
                raise DataError("the index holds string ids, so add() needs ids (consecutive ints would mix types)")
            start = int(self._ids_int.max()) + 1 if len(self._ids_int) else 0
            return "int", np.arange(start, start + n, dtype=np.int64)
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
            raise DataError(f"ids must be a sequence or 1-D array with one id per vector, got {type(ids).__name__}")
        if len(ids) != n:
            raise DataError(f"{len(ids)} ids for {n} vectors")
        arr = np.asarray(ids) if isinstance(ids, np.ndarray) else None
        if arr is not None and arr.ndim != 1:
            raise DataError(f"ids must be 1-D, got shape {arr.shape}")
        if arr is not None and arr.dtype.kind in "iu":
            kind, out = "int", arr.astype(np.int64)
            if arr.dtype.kind == "u" and len(arr) and arr.max() > np.iinfo(np.int64).max:
                raise DataError("ids do not fit in int64")
        elif arr is not None and arr.dtype.kind == "U":
            kind, out = "str", np.array([str(s) for s in arr], dtype=object)
        else:
            items = list(ids)
            is_int = [isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items]
            is_str = [isinstance(v, (str, os.PathLike)) for v in items]
            if all(is_int):
                try:
                    kind, out = "int", np.array([int(v) for v in items], dtype=np.int64)
                except OverflowError as exc:
                    raise DataError("ids do not fit in int64") from exc
            elif all(is_str):
                kind, out = "str", np.array([os.fspath(v) for v in items], dtype=object)
            elif all(a or b for a, b in zip(is_int, is_str)):
                raise DataError("ids mix ints and strings; use one type for all ids")
            else:
                bad = [v for v, a, b in zip(items, is_int, is_str) if not (a or b)]
                raise DataError(f"ids must be ints or strings (file paths), got {_few(bad, 3)}")
        if self._id_type is not None and kind != self._id_type:
            names = {"int": "int", "str": "string"}
            raise DataError(f"the index holds {names[self._id_type]} ids but these ids are {names[kind]}s; "
                            "use one type for all ids")
        # duplicates within the batch, then with the ids already held
        if kind == "int":
            uniq, counts = np.unique(out, return_counts=True)
            dup = uniq[counts > 1].tolist()
            if not dup and len(self._ids_int) and out.min() <= self._ids_int.max():
                dup = out[np.isin(out, self._ids_int)].tolist()
        else:
            dup = [s for s, c in Counter(out.tolist()).items() if c > 1]
            if not dup:
                dup = [s for s in out.tolist() if s in self._str_set]
        if dup:
            raise DataError(f"duplicate ids: {_few(dup)}")
        return kind, out

    # ------------------------------------------------------------------ building
    def _resolve(self, n: int) -> str:
        if self.kind != "auto":
            return self.kind
        if n <= AUTO_EXACT_MAX:
            return "exact"
        if AUTO_IVFPQ_MIN is not None and n > AUTO_IVFPQ_MIN and self._metric != "hamming":
            return "ivfpq"
        return "hnsw"

    def _build(self, kind: str, train: np.ndarray) -> Any:
        """A new empty (trained, for IVF) faiss index of `kind`; `train` is the data it will first hold."""
        faiss = _faiss()
        binary = self._metric == "hamming"
        if kind == "exact":
            if binary:
                return faiss.IndexBinaryFlat(self._dim)
            return faiss.IndexFlatIP(self._dim) if self._metric == "cosine" else faiss.IndexFlatL2(self._dim)
        if kind == "hnsw":
            if binary:
                return faiss.IndexBinaryHNSW(self._dim, self.hnsw_m)
            mt = faiss.METRIC_INNER_PRODUCT if self._metric == "cosine" else faiss.METRIC_L2
            return faiss.IndexHNSWFlat(self._dim, self.hnsw_m, mt)
        # ivfpq: k-means needs data; cosine uses L2 on the normalised vectors (|a-b|^2 = 2 - 2 cos)
        n = len(train)
        if n < IVF_MIN_TRAIN:
            raise DataError(f"kind='ivfpq' trains on the first add(), which needs at least {IVF_MIN_TRAIN:,} "
                            f"vectors (got {n:,}); add more at once, or use kind='exact' or 'auto'")
        nlist = self.nlist if self.nlist is not None else max(1, min(int(4 * math.sqrt(n)), n // 39))
        if nlist > n:
            raise DataError(f"nlist={nlist:,} needs at least that many vectors in the first add(), got {n:,}")
        n_train = min(n, max(nlist * _TRAIN_PER_LIST, 256 * 39))
        if n_train < n:
            train = train[np.sort(np.random.default_rng(self.seed).choice(n, n_train, replace=False))]
        if binary:
            index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(self._dim), self._dim, nlist)
        else:
            index = faiss.IndexIVFPQ(faiss.IndexFlatL2(self._dim), self._dim, nlist, self._pq_m(), 8)
            index.pq.cp.seed = self.seed
            index.pq.cp.min_points_per_centroid = 1  # small first batches: no stderr warnings
            # faiss 1.15's 1-dimensional k-means is slow (~1.5 s per sub-quantiser on its default 65,536
            # vectors): 64 per centroid (16,384) is plenty for 256 centroids and 4x faster
            index.pq.cp.max_points_per_centroid = 64
        index.cp.seed = self.seed
        index.cp.min_points_per_centroid = 1
        index.train(train)
        return index

    def _pq_m(self) -> int:
        if self.pq_m is not None:
            return self.pq_m
        return max(m for m in range(1, min(self._dim, 64) + 1) if self._dim % m == 0)

    def _apply_search_params(self, k: int) -> None:
        idx = self.index_
        if self._kind == "hnsw":
            idx.hnsw.efSearch = max(self.ef_search, k)  # fewer candidates than k can leave slots empty
        elif self._kind == "ivfpq":
            idx.nprobe = self.nprobe

    # ------------------------------------------------------------------ public API
    def add(self, vectors: np.ndarray, ids: Sequence | np.ndarray | None = None) -> None:
        """Add vectors with their ids.

        Parameters
        ----------
        vectors : ndarray of shape (n, dim)
            Float codes, or 0/1 bits for ``metric="hamming"``.
        ids : sequence of int or str, ndarray, or None
            One id per vector, unique across the index, all ints or all strings (``os.PathLike`` are
            stored as strings). None: consecutive ints after the largest id held (0, 1, ... at first).

        Raises
        ------
        DataError
            Empty, wrongly shaped or non-finite vectors; duplicate or mixed-type ids; too few
            vectors to train a ``kind="ivfpq"`` index.
        """
        x = self._prepare(vectors, "vectors")
        id_kind, new_ids = self._prepare_ids(ids, len(x))
        total = self.ntotal + len(x)
        if self.index_ is None:
            kind = self._resolve(total)
            self.index_, self._kind = self._build(kind, x), kind
        elif self.kind == "auto" and _RANK[self._resolve(total)] > _RANK[self._kind]:
            self._rebuild(self._resolve(total), x)
        self.index_.add(x)
        self._id_type = id_kind
        if id_kind == "int":
            self._ids_int = np.concatenate([self._ids_int, new_ids])
        else:
            self._ids_str = np.concatenate([self._ids_str, new_ids])
            self._str_set.update(new_ids.tolist())

    def _rebuild(self, kind: str, incoming: np.ndarray) -> None:
        """Move the held vectors into a new index of `kind` (exact and HNSW store them losslessly)."""
        old = self.index_.reconstruct_n(0, self.index_.ntotal)
        new = self._build(kind, np.concatenate([old, incoming]))
        new.add(old)
        self.index_, self._kind = new, kind

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest neighbours of each query, nearest first.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, dim) or (dim,)
            Codes like those given to `add` (one query may be 1-D).
        k : int
            Neighbours per query, at most `ntotal` (more raises `DataError`).

        Returns
        -------
        ids : ndarray of shape (n_queries, k)
            The user's ids: int64 for int ids (-1 where an approximate index found fewer than `k`),
            an object array of str for string ids (None there).
        distances : ndarray of shape (n_queries, k), float32
            Euclidean: L2 distance (not squared); cosine: ``1 - cosine similarity``; hamming: number
            of differing bits. ``inf`` where no neighbour was found. Approximate for IVF-PQ.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        if self.ntotal == 0:
            raise DataError("the index is empty: add() vectors before searching")
        if k > self.ntotal:
            raise DataError(f"k={k} but the index holds {self.ntotal} vectors; ask for k <= {self.ntotal}")
        q = self._prepare(queries, "queries", allow_1d=True)
        self._apply_search_params(int(k))
        dist, rows = self.index_.search(q, int(k))  # (n_queries, k) each
        missing = rows < 0
        dist = dist.astype(np.float32, copy=False)
        if self._metric == "euclidean":
            dist = np.sqrt(np.maximum(dist, 0))  # faiss gives squared L2
        elif self._metric == "cosine":
            dist = dist / 2 if self._kind == "ivfpq" else 1 - dist  # L2^2 on unit vectors = 2 - 2 cos
            dist = np.clip(dist, 0, 2)
        dist[missing] = np.inf
        safe = np.where(missing, 0, rows)
        if self._id_type == "str":
            out = self._ids_str[safe]
            out[missing] = None
        else:
            out = self._ids_int[safe]
            out[missing] = -1
        return out, dist.astype(np.float32, copy=False)

    # ------------------------------------------------------------------ state
    def _params(self) -> dict[str, Any]:
        return {"dim": self._dim, "metric": self._metric, "kind": self.kind, "hnsw_m": self.hnsw_m,
                "ef_search": self.ef_search, "nlist": self.nlist, "pq_m": self.pq_m, "nprobe": self.nprobe,
                "seed": self.seed}

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The index as a JSON-able config and numpy arrays (for safetensors); nothing is pickled.

        Returns
        -------
        config : dict
            Constructor parameters, ``kind_``, ``ntotal``, ``id_type`` and, for string ids,
            ``ids_str`` (a list).
        arrays : dict of str to ndarray
            ``"index"``: the faiss index serialised to uint8 (absent while empty); ``"ids_int"``: int64
            ids (empty for string ids).
        """
        config: dict[str, Any] = {"format": STATE_FORMAT, "version": STATE_VERSION, **self._params(),
                                  "kind_": self._kind, "ntotal": self.ntotal, "id_type": self._id_type}
        arrays: dict[str, np.ndarray] = {"ids_int": self._ids_int.copy()}
        if self._id_type == "str":
            config["ids_str"] = self._ids_str.tolist()
        if self.index_ is not None:
            faiss = _faiss()
            ser = faiss.serialize_index_binary if self._metric == "hamming" else faiss.serialize_index
            arrays["index"] = np.asarray(ser(self.index_), dtype=np.uint8)
        return config, arrays

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> VectorIndex:
        """Rebuild an index saved with `to_state`.

        Raises
        ------
        ModelFileError
            The state is not a VectorIndex state, is from another version, or is damaged
            (unreadable index, wrong kind, sizes that disagree).
        """
        if not isinstance(config, dict) or config.get("format") != STATE_FORMAT:
            raise ModelFileError("not a VectorIndex state (config 'format' is missing or different)")
        if config.get("version") != STATE_VERSION:
            raise ModelFileError(f"VectorIndex state version {config.get('version')!r} is not supported "
                                 f"(this aekit reads version {STATE_VERSION})")
        try:
            params = {k: config[k] for k in ("dim", "metric", "kind", "hnsw_m", "ef_search", "nlist", "pq_m",
                                             "nprobe", "seed")}
            self = cls(**params)
            kind_, ntotal, id_type = config["kind_"], int(config["ntotal"]), config["id_type"]
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelFileError(f"damaged VectorIndex state: bad config ({exc})") from exc
        if kind_ not in (None, *_RANK) or id_type not in (None, "int", "str") or ntotal < 0:
            raise ModelFileError(f"damaged VectorIndex state: kind_={kind_!r}, id_type={id_type!r}, ntotal={ntotal}")
        if (kind_ is None) != (ntotal == 0) or (id_type is None) != (ntotal == 0):
            raise ModelFileError("damaged VectorIndex state: kind_, id_type and ntotal disagree")
        if kind_ is not None:
            self.index_ = self._read_index(arrays.get("index"), kind_, ntotal)
            self._kind = kind_
        ids_int = arrays.get("ids_int")
        if not isinstance(ids_int, np.ndarray) or ids_int.dtype != np.int64 or ids_int.ndim != 1:
            raise ModelFileError("damaged VectorIndex state: 'ids_int' is missing or not a 1-D int64 array")
        self._id_type = id_type
        if id_type == "str":
            ids_str = config.get("ids_str")
            if (not isinstance(ids_str, list) or len(ids_str) != ntotal or len(ids_int)
                    or not all(isinstance(s, str) for s in ids_str) or len(set(ids_str)) != ntotal):
                raise ModelFileError(f"damaged VectorIndex state: 'ids_str' is not {ntotal} unique strings")
            self._ids_str = np.array(ids_str, dtype=object)
            self._str_set = set(ids_str)
        else:
            if len(ids_int) != ntotal or len(np.unique(ids_int)) != ntotal:
                raise ModelFileError(f"damaged VectorIndex state: 'ids_int' is not {ntotal} unique ids")
            self._ids_int = ids_int.copy()
        return self

    def _read_index(self, data: Any, kind_: str, ntotal: int) -> Any:
        faiss = _faiss()
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1 or not len(data):
            raise ModelFileError("damaged VectorIndex state: 'index' is missing or not a 1-D uint8 array")
        binary = self._metric == "hamming"
        try:
            read = faiss.deserialize_index_binary if binary else faiss.deserialize_index
            index = read(np.ascontiguousarray(data))
        except (RuntimeError, MemoryError, ValueError) as exc:
            raise ModelFileError(f"damaged VectorIndex state: the faiss index cannot be read ({exc})") from exc
        expected = {
            ("exact", False): faiss.IndexFlat, ("hnsw", False): faiss.IndexHNSWFlat,
            ("ivfpq", False): faiss.IndexIVFPQ, ("exact", True): faiss.IndexBinaryFlat,
            ("hnsw", True): faiss.IndexBinaryHNSW, ("ivfpq", True): faiss.IndexBinaryIVF,
        }[kind_, binary]
        if not isinstance(index, expected):
            raise ModelFileError(f"damaged VectorIndex state: kind_={kind_!r} but the index is a "
                                 f"{type(index).__name__}")
        if index.d != self._dim or index.ntotal != ntotal:
            raise ModelFileError(f"damaged VectorIndex state: index has d={index.d}, ntotal={index.ntotal}; "
                                 f"config says dim={self._dim}, ntotal={ntotal}")
        if not binary:
            want = (faiss.METRIC_INNER_PRODUCT if self._metric == "cosine" and kind_ != "ivfpq"
                    else faiss.METRIC_L2)
            if index.metric_type != want:
                raise ModelFileError("damaged VectorIndex state: the index's metric is not the config's")
        return index
