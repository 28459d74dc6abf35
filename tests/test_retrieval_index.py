"""VectorIndex: exact search equals brute force, approximate kinds keep recall, auto rebuilds, state round trip
through a safetensors file, and every bad input raises a typed error."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("faiss")

from aekit.errors import ConfigError, DataError, ModelFileError  # noqa: E402
from aekit.tasks.retrieval import index as index_mod  # noqa: E402
from aekit.tasks.retrieval.index import VectorIndex  # noqa: E402

DIM, BITS, K = 16, 64, 10


def clustered(n: int, dim: int = DIM, seed: int = 0, centres: int = 20) -> np.ndarray:
    """`n` float32 vectors from a Gaussian mixture (fixed seed: the same data every run)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)) * 2
    return (c[rng.integers(0, centres, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def bits_of(x: np.ndarray, bits: int = BITS, seed: int = 1) -> np.ndarray:
    """0/1 codes of shape (n, bits): signs of random projections (like a binarised code layer)."""
    w = np.random.default_rng(seed).normal(size=(x.shape[1], bits))
    return (x @ w > 0).astype(np.uint8)


@pytest.fixture(scope="module", autouse=True)
def _one_faiss_thread():
    """One OpenMP thread: small k-means runs ~10x slower with two on a busy 2-core machine."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    x = clustered(3000)
    return {"x": x, "q": clustered(50, seed=7), "b": bits_of(x), "bq": bits_of(clustered(50, seed=7))}


def brute(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """(n_queries, n) distances by numpy, as VectorIndex reports them."""
    if metric == "euclidean":
        return np.sqrt(((q[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        return 1 - qn.astype(np.float64) @ xn.T
    return (q[:, None, :] != x[None]).sum(-1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / truth.shape[1] for a, b in zip(found, truth)]))


# ---------------------------------------------------------------- exact search = brute force
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_exact_float_equals_brute_force(data, metric, id_kind):
    x, q = data["x"], data["q"]
    ids = [f"img/{i:05d}.png" for i in range(len(x))] if id_kind == "str" else np.arange(len(x)) * 3 + 5
    idx = VectorIndex(DIM, metric=metric, kind="exact")
    idx.add(x, ids)
    got_ids, got_d = idx.search(q, K)
    d = brute(x, q, metric)
    order = np.argsort(d, axis=1)[:, :K]
    want_ids = np.asarray(ids, dtype=object if id_kind == "str" else np.int64)[order]
    assert got_ids.shape == got_d.shape == (len(q), K)
    assert got_d.dtype == np.float32
    assert got_ids.dtype == (object if id_kind == "str" else np.int64)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_d, np.take_along_axis(d, order, 1), atol=2e-4, rtol=1e-4)
    assert idx.kind_ == "exact" and idx.ntotal == len(x) and idx.metric == metric and idx.dim == DIM


@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_exact_hamming_equals_brute_force(data, id_kind):
    b, bq = data["b"], data["bq"]
    ids = [f"code{i}" for i in range(len(b))] if id_kind == "str" else list(range(len(b)))
    idx = VectorIndex(BITS, metric="hamming", kind="exact")
    idx.add(b.astype(bool), ids)  # bool bits are accepted as well as 0/1
    got_ids, got_d = idx.search(bq, K)
    d = brute(b, bq, "hamming")
    # ties make the order of equal distances arbitrary: compare the distances, and each id's true distance
    np.testing.assert_array_equal(got_d, np.sort(d, axis=1)[:, :K])
    pos = {v: i for i, v in enumerate(ids)}
    rows = np.vectorize(pos.__getitem__)(got_ids)
    np.testing.assert_array_equal(np.take_along_axis(d, rows, 1), got_d)


# ---------------------------------------------------------------- approximate kinds: recall floors
@pytest.mark.parametrize("metric,kind,floor", [
    ("euclidean", "hnsw", 0.95), ("cosine", "hnsw", 0.95),  # measured 0.98, 0.97 (ef_search=128)
    ("euclidean", "ivfpq", 0.75), ("cosine", "ivfpq", 0.75),  # measured 0.89, 0.90: 8 bytes per vector
])
def test_float_recall(data, metric, kind, floor):
    x, q = data["x"], data["q"]
    truth = np.argsort(brute(x, q, metric), axis=1)[:, :K]
    idx = VectorIndex(DIM, metric=metric, kind=kind, ef_search=128, nlist=32, nprobe=8,
                      pq_m=8 if kind == "ivfpq" else None)
    idx.add(x)
    found, dist = idx.search(q, K)
    assert idx.kind_ == kind
    assert recall_at_k(found, truth) >= floor
    assert np.all(np.diff(dist, axis=1) >= -1e-6)  # nearest first


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_hamming_recall(data, kind):
    b, bq = data["b"], data["bq"]
    kth = np.sort(brute(b, bq, "hamming"), axis=1)[:, K - 1 : K]
    idx = VectorIndex(BITS, metric="hamming", kind=kind, nlist=32, nprobe=8)
    idx.add(b)
    found, dist = idx.search(bq, K)
    true_d = np.take_along_axis(brute(b, bq, "hamming"), found, 1)
    np.testing.assert_array_equal(true_d, dist)  # binary IVF / HNSW distances are exact
    assert np.mean(dist <= kth) >= 0.95  # tie-aware recall@10


def test_search_parameters_apply_after_build(data):
    x, q = data["x"], data["q"]
    idx = VectorIndex(DIM, kind="hnsw", ef_search=10)
    idx.add(x)
    idx.ef_search = 200
    idx.search(q, K)
    assert idx.index_.hnsw.efSearch == 200


# ---------------------------------------------------------------- auto kind
def test_auto_rebuilds_past_threshold(data, monkeypatch):
    monkeypatch.setattr(index_mod, "AUTO_EXACT_MAX", 1000)
    x, q = data["x"], data["q"]
    ids = [f"p{i}" for i in range(len(x))]
    idx = VectorIndex(DIM, kind="auto")
    idx.add(x[:800], ids[:800])
    assert idx.kind_ == "exact"
    before_ids, before_d = idx.search(q, K)
    idx.add(x[800:1500], ids[800:1500])  # 1,500 > 1,000: rebuilt into HNSW
    assert idx.kind_ == "hnsw" and idx.ntotal == 1500
    truth = np.asarray(ids[:1500], dtype=object)[np.argsort(brute(x[:1500], q, "euclidean"), axis=1)[:, :K]]
    found, _ = idx.search(q, K)
    assert recall_at_k(found, truth) >= 0.98
    # the rebuilt index still knows the first batch: each one's own vector finds it
    self_ids, self_d = idx.search(x[:800:40], 1)
    np.testing.assert_array_equal(self_ids[:, 0], np.asarray(ids[:800:40], dtype=object))
    np.testing.assert_allclose(self_d, 0, atol=1e-3)
    assert before_ids.shape == (len(q), K) and np.isfinite(before_d).all()


def test_auto_large_first_add_builds_hnsw(data, monkeypatch):
    monkeypatch.setattr(index_mod, "AUTO_EXACT_MAX", 100)
    idx = VectorIndex(BITS, metric="hamming")
    idx.add(data["b"][:500])
    assert idx.kind_ == "hnsw"


def test_explicit_kind_is_never_changed(data, monkeypatch):
    monkeypatch.setattr(index_mod, "AUTO_EXACT_MAX", 100)
    idx = VectorIndex(DIM, kind="exact")
    idx.add(data["x"][:500])
    assert idx.kind_ == "exact"


# ---------------------------------------------------------------- ids
def test_default_ids_continue_and_one_query(data):
    x = data["x"]
    idx = VectorIndex(DIM, kind="exact")
    idx.add(x[:10])
    idx.add(x[10:15])
    ids, dist = idx.search(x[12], 1)  # a 1-D query is one query
    assert ids.shape == (1, 1) and ids[0, 0] == 12 and dist[0, 0] < 1e-3
    assert idx.ntotal == len(idx) == 15


def test_path_ids_are_stored_as_strings(data, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(5)]
    idx = VectorIndex(DIM, kind="exact")
    idx.add(data["x"][:5], paths)
    ids, _ = idx.search(data["x"][3], 1)
    assert ids[0, 0] == str(paths[3])


# ---------------------------------------------------------------- state round trip
@pytest.mark.parametrize("metric,kind,id_kind", [
    ("euclidean", "exact", "int"), ("cosine", "hnsw", "str"), ("euclidean", "ivfpq", "int"),
    ("cosine", "ivfpq", "str"), ("hamming", "exact", "str"), ("hamming", "hnsw", "int"),
    ("hamming", "ivfpq", "int"),
])
def test_state_round_trip_through_safetensors(data, tmp_path, metric, kind, id_kind):
    from safetensors.numpy import load_file, save_file

    binary = metric == "hamming"
    x, q = (data["b"], data["bq"]) if binary else (data["x"], data["q"])
    ids = [f"f{i}" for i in range(len(x))] if id_kind == "str" else np.arange(len(x)) + 100
    idx = VectorIndex(BITS if binary else DIM, metric=metric, kind=kind, nlist=32, nprobe=4, ef_search=20,
                      pq_m=4 if kind == "ivfpq" and not binary else None)
    idx.add(x, ids)
    want = idx.search(q, K)
    config, arrays = idx.to_state()
    save_file(arrays, str(tmp_path / "index.safetensors"))
    config = json.loads(json.dumps(config))
    back = VectorIndex.from_state(config, load_file(str(tmp_path / "index.safetensors")))
    assert (back.kind_, back.metric, back.ntotal, back.nprobe, back.ef_search) == (kind, metric, len(x), 4, 20)
    got = back.search(q, K)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    back.add(x[:2] if binary else x[:2] + 1, [f"new{i}" for i in range(2)] if id_kind == "str" else [0, 1])
    assert back.ntotal == len(x) + 2


def test_empty_state_round_trip():
    config, arrays = VectorIndex(8, metric="cosine", kind="hnsw").to_state()
    back = VectorIndex.from_state(json.loads(json.dumps(config)), arrays)
    assert back.ntotal == 0 and back.kind_ is None and back.metric == "cosine"


@pytest.fixture(scope="module")
def saved(data):
    idx = VectorIndex(DIM, kind="hnsw")
    idx.add(data["x"][:300], [f"s{i}" for i in range(300)])
    return idx.to_state()


def _damage(saved, what):
    config, arrays = json.loads(json.dumps(saved[0])), dict(saved[1])
    if what == "format":
        config["format"] = "something.else"
    elif what == "version":
        config["version"] = 99
    elif what == "truncated":
        arrays["index"] = arrays["index"][: len(arrays["index"]) // 2].copy()
    elif what == "garbage":
        arrays["index"] = np.frombuffer(b"not a faiss index at all", np.uint8).copy()
    elif what == "missing_index":
        del arrays["index"]
    elif what == "ntotal":
        config["ntotal"] = 301
    elif what == "ids":
        config["ids_str"] = config["ids_str"][:-1]
    elif what == "kind":
        config["kind_"] = "exact"
    elif what == "dim":
        config["dim"] = DIM * 2
    elif what == "metric":
        config["metric"] = "hamming"
    elif what == "param":
        config["hnsw_m"] = -1
    return config, arrays


@pytest.mark.parametrize("what", ["format", "version", "truncated", "garbage", "missing_index", "ntotal", "ids",
                                  "kind", "dim", "metric", "param"])
def test_damaged_state_raises_model_file_error(saved, what):
    with pytest.raises(ModelFileError):
        VectorIndex.from_state(*_damage(saved, what))


# ---------------------------------------------------------------- bad inputs
@pytest.fixture
def small(data):
    idx = VectorIndex(DIM, kind="exact")
    idx.add(data["x"][:12], [f"a{i}" for i in range(12)])
    return idx


@pytest.mark.parametrize("kwargs", [
    dict(dim=0), dict(dim=8.5), dict(metric="manhattan"), dict(kind="lsh"), dict(dim=12, metric="hamming"),
    dict(hnsw_m=1), dict(ef_search=0), dict(nprobe=0), dict(nlist=0), dict(pq_m=5), dict(pq_m=4, metric="hamming"),
])
def test_bad_settings_raise_config_error(kwargs):
    kwargs = {"dim": DIM if kwargs.get("metric") != "hamming" else BITS, **kwargs}
    with pytest.raises(ConfigError):
        VectorIndex(**kwargs)


def test_duplicate_ids_within_batch(data):
    with pytest.raises(DataError, match="duplicate ids: 'a'"):
        VectorIndex(DIM).add(data["x"][:3], ["a", "b", "a"])
    with pytest.raises(DataError, match="duplicate ids: 4"):
        VectorIndex(DIM).add(data["x"][:3], [4, 4, 5])


def test_duplicate_ids_with_existing(small, data):
    with pytest.raises(DataError, match="duplicate ids: 'a3', 'a5'"):
        small.add(data["x"][:3], ["a3", "new", "a5"])
    idx = VectorIndex(DIM)
    idx.add(data["x"][:5])  # ids 0..4
    with pytest.raises(DataError, match="duplicate ids: 2"):
        idx.add(data["x"][:2], [2, 10])
    assert small.ntotal == 12 and idx.ntotal == 5  # a failed add changes nothing


def test_mixed_id_types(small, data):
    with pytest.raises(DataError, match="mix ints and strings"):
        VectorIndex(DIM).add(data["x"][:2], [1, "b"])
    with pytest.raises(DataError, match="string ids"):
        small.add(data["x"][:2], [100, 101])
    with pytest.raises(DataError, match="string ids"):
        small.add(data["x"][:2])  # default int ids would mix types
    with pytest.raises(DataError, match="ints or strings"):
        VectorIndex(DIM).add(data["x"][:2], [1.5, 2.5])
    with pytest.raises(DataError, match="2 ids for 3 vectors"):
        VectorIndex(DIM).add(data["x"][:3], [1, 2])


@pytest.mark.parametrize("bad,match", [
    (np.zeros((3, DIM + 1), np.float32), "columns"),
    (np.zeros((0, DIM), np.float32), "empty"),
    (np.zeros(DIM, np.float32), "2-D"),
    (np.full((2, DIM), np.nan, np.float32), "NaN or inf"),
    (np.full((2, DIM), 1e300), "NaN or inf"),  # finite in float64, inf in float32
    (np.array([["a"] * DIM]), "numeric"),
])
def test_bad_vectors(bad, match):
    with pytest.raises(DataError, match=match):
        VectorIndex(DIM, kind="exact").add(bad)


def test_bad_queries_and_k(small, data):
    with pytest.raises(DataError, match="k=20 but the index holds 12 vectors"):
        small.search(data["q"], 20)
    with pytest.raises(ConfigError):
        small.search(data["q"], 0)
    with pytest.raises(DataError, match="columns"):
        small.search(np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match="NaN"):
        small.search(np.full((1, DIM), np.inf, np.float32))
    with pytest.raises(DataError, match="empty"):
        VectorIndex(DIM).search(data["q"])


def test_bad_cosine_and_hamming_vectors(data):
    with pytest.raises(DataError, match="all zero"):
        VectorIndex(DIM, metric="cosine").add(np.zeros((2, DIM), np.float32))
    with pytest.raises(DataError, match="0/1"):
        VectorIndex(BITS, metric="hamming").add(np.full((2, BITS), 2))
    with pytest.raises(DataError, match="packed"):
        VectorIndex(BITS, metric="hamming").add(np.packbits(data["b"][:2], axis=1))


def test_ivfpq_needs_enough_training_vectors(data):
    with pytest.raises(DataError, match="at least 1,000"):
        VectorIndex(DIM, kind="ivfpq").add(data["x"][:100])


def test_hnsw_fills_k_up_to_ntotal(data):
    idx = VectorIndex(DIM, kind="hnsw", ef_search=4)  # k above ef_search: the search widens to k
    idx.add(data["x"][:300])
    ids, dist = idx.search(data["q"][:3], 300)
    assert all(set(row.tolist()) == set(range(300)) for row in ids) and np.isfinite(dist).all()


@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_ivf_empty_slots_are_marked(data, id_kind):
    x = data["x"][:2000]
    ids = [f"s{i}" for i in range(len(x))] if id_kind == "str" else None
    idx = VectorIndex(DIM, kind="ivfpq", nlist=32, nprobe=1, pq_m=4)
    idx.add(x, ids)
    found, dist = idx.search(data["q"][:2], 1000)  # one list of ~60 vectors cannot fill 1,000 slots
    empty = np.isinf(dist)
    assert empty.any() and (~empty[:, :10]).all()
    assert all(v is None for v in found[empty]) if id_kind == "str" else (found[empty] == -1).all()


def test_auto_moves_float_codes_to_ivfpq_past_the_second_threshold(data, monkeypatch):
    monkeypatch.setattr(index_mod, "AUTO_EXACT_MAX", 500)
    monkeypatch.setattr(index_mod, "AUTO_IVFPQ_MIN", 1500)
    x, q = data["x"], data["q"]
    idx = VectorIndex(DIM, kind="auto", nlist=16, pq_m=8)
    idx.add(x[:400])
    assert idx.kind_ == "exact"
    idx.add(x[400:2000])  # 2,000 > 1,500: straight from exact to IVF-PQ, trained on all 2,000
    assert idx.kind_ == "ivfpq" and idx.ntotal == 2000
    truth = np.argsort(brute(x[:2000], q, "euclidean"), axis=1)[:, :K]
    assert recall_at_k(idx.search(q, K)[0], truth) >= 0.75
    binary = VectorIndex(BITS, metric="hamming", kind="auto")
    binary.add(data["b"][:2000])
    assert binary.kind_ == "hnsw"  # binary codes stay on HNSW (binary IVF was not measured)
