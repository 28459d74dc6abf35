"""Retrieval metrics: hand-checked AP, agreement with scikit-learn, ties, Hamming search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from aekit.errors import ConfigError, DataError
from aekit.tasks.retrieval.metrics import (
    _stable_order,
    average_precision_at,
    hamming_distances,
    knn_search,
    mean_average_precision,
    pack_bits,
    pairwise_distances,
    precision_at_k,
    retrieval_report,
)


def _random_set(seed=0, n_q=37, n_db=211, dims=8, n_classes=4):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_q, dims)).astype(np.float32), rng.integers(0, n_classes, n_q),
            rng.standard_normal((n_db, dims)).astype(np.float32), rng.integers(0, n_classes, n_db))


# ----------------------------------------------------------------------------- hand-checked


def test_precision_at_k_by_hand():
    q = np.array([1, 2])
    r = np.array([[1, 0, 1, 1], [0, 0, 2, 2]])
    assert precision_at_k(q, r, 1) == pytest.approx((1 + 0) / 2)
    assert precision_at_k(q, r, 2) == pytest.approx((0.5 + 0) / 2)
    assert precision_at_k(q, r, 4) == pytest.approx((0.75 + 0.5) / 2)
    with pytest.raises(DataError):
        precision_at_k(q, r, 5)
    with pytest.raises(ConfigError):
        precision_at_k(q, r, 0)


def test_average_precision_at_known_rankings():
    q = np.array([1, 1, 1, 1])
    r = np.array([[1, 0, 1, 0],   # hits at ranks 1, 3: (1/1 + 2/3) / 2
                  [0, 1, 1, 0],   # hits at ranks 2, 3: (1/2 + 2/3) / 2
                  [0, 0, 0, 0],   # nothing relevant: 0
                  [1, 1, 1, 1]])  # perfect: 1
    ap = average_precision_at(q, r)
    np.testing.assert_allclose(ap, [(1 + 2 / 3) / 2, (1 / 2 + 2 / 3) / 2, 0.0, 1.0])


def test_full_ranking_map_by_hand_counts_relevant_items_beyond_the_list():
    db_labels = np.array([0, 1, 0, 1, 0])
    # query label 0; distances rank the database as 1, 0, 3, 2, 4 -> relevance 0,1,0,1,1
    dist = np.array([[0.2, 0.1, 0.4, 0.3, 0.5]], dtype=np.float32)
    full = (1 / 2 + 2 / 4 + 3 / 5) / 3
    assert mean_average_precision([0], db_labels, dist) == pytest.approx(full)
    # top 2: one hit at rank 2 -> AP@2 = (1/2) / 1
    assert mean_average_precision([0], db_labels, dist, k=2) == pytest.approx(0.5)
    # the same as a ranking; a truncated ranking counts the relevant items it misses as never found
    ranking = np.array([[1, 0, 3, 2, 4]])
    assert mean_average_precision([0], db_labels, ranking) == pytest.approx(full)
    assert mean_average_precision([0], db_labels, ranking[:, :2]) == pytest.approx((1 / 2) / 3)
    assert mean_average_precision([0], db_labels, ranking[:, :2], k=2) == pytest.approx(0.5)


def test_ties_are_broken_by_database_index():
    db_labels = np.array([1, 0, 0, 1])
    # all at Hamming distance 3 but item 3 at 1: ranking 3, 0, 1, 2 -> relevance 1, 1, 0, 0
    dist = np.array([[3, 3, 3, 1]], dtype=np.int32)
    assert mean_average_precision([1], db_labels, dist, kind="distances") == pytest.approx(1.0)
    # reversing the index order of the tied items changes the answer: ties are not averaged
    dist2 = np.array([[3, 3, 3, 1]], dtype=np.int32)[:, ::-1]  # item 0 at 1, items 1-3 at 3
    # ranking 0, 1, 2, 3 -> relevance 1, 0, 0, 1: (1 + 2/4) / 2
    assert mean_average_precision([1], db_labels, dist2, kind="distances") == pytest.approx(0.75)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
def test_stable_order_matches_stable_argsort(dtype):
    rng = np.random.default_rng(1)
    if np.issubdtype(dtype, np.floating):
        d = rng.integers(-3, 4, (20, 50)).astype(dtype) / 2  # many ties, negatives, -0.0 and 0.0
        d[0, :5] = [-0.0, 0.0, -0.0, 0.0, -1.5]
    else:
        d = rng.integers(0, 5, (20, 50)).astype(dtype)
    np.testing.assert_array_equal(_stable_order(d), np.argsort(np.where(d == 0, 0, d), axis=1, kind="stable"))


# ----------------------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_ranking_ap_matches_sklearn_per_query(seed):
    q, ql, d, dl = _random_set(seed)
    dist = pairwise_distances(q, d, metric="euclidean")
    expected = [average_precision_score(dl == ql[i], -dist[i]) for i in range(len(q))]
    assert mean_average_precision(ql, dl, dist) == pytest.approx(np.mean(expected), rel=1e-9)
    # the ranking form gives the same, as does chunking over 5 queries at a time
    ranking = np.argsort(dist, axis=1, kind="stable")
    assert mean_average_precision(ql, dl, ranking) == pytest.approx(np.mean(expected), rel=1e-9)
    assert mean_average_precision(ql, dl, dist, chunk_size=5) == pytest.approx(np.mean(expected), rel=1e-9)
    # float64 distances take the other sorting path
    assert mean_average_precision(ql, dl, dist.astype(np.float64)) == pytest.approx(np.mean(expected), rel=1e-9)


def test_map_at_k_is_average_precision_of_the_top_k():
    q, ql, d, dl = _random_set(3)
    dist = pairwise_distances(q, d)
    order = np.argsort(dist, axis=1, kind="stable")
    for k in (1, 10, 50):
        expected = average_precision_at(ql, dl[order[:, :k]]).mean()
        assert mean_average_precision(ql, dl, dist, k=k) == pytest.approx(expected)
    assert mean_average_precision(ql, dl, dist, k=len(d)) == pytest.approx(mean_average_precision(ql, dl, dist))


def test_string_labels_work():
    q, ql, d, dl = _random_set(4)
    names = np.array(["cat", "dog", "eel", "fox"])
    dist = pairwise_distances(q, d)
    assert mean_average_precision(names[ql], names[dl], dist) == pytest.approx(mean_average_precision(ql, dl, dist))


# ----------------------------------------------------------------------------- distances and search


def test_hamming_distances_packed_and_unpacked_agree():
    rng = np.random.default_rng(5)
    for bits in (8, 32, 64, 13):
        a = rng.integers(0, 2, (17, bits), dtype=np.uint8)
        b = rng.integers(0, 2, (29, bits), dtype=np.uint8)
        expected = (a[:, None, :] != b[None, :, :]).sum(-1)
        np.testing.assert_array_equal(hamming_distances(a, b), expected)
        np.testing.assert_array_equal(hamming_distances(a.astype(bool), b.astype(bool)), expected)
        pa, pb = pack_bits(a), pack_bits(b)
        assert pa.shape == (17, (bits + 7) // 8)
        popcount = np.unpackbits(pa[:, None, :] ^ pb[None, :, :], axis=-1).sum(-1)
        np.testing.assert_array_equal(popcount, expected)


def test_hamming_matches_faiss_binary_index():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(6)
    a = rng.integers(0, 2, (11, 32), dtype=np.uint8)
    b = rng.integers(0, 2, (40, 32), dtype=np.uint8)
    index = faiss.IndexBinaryFlat(32)
    index.add(pack_bits(b))
    dist, idx = index.search(pack_bits(a), 40)
    ours = hamming_distances(a, b)
    np.testing.assert_array_equal(np.take_along_axis(ours, idx, axis=1), dist)


def test_bits_must_be_zero_one():
    with pytest.raises(DataError, match="0/1"):
        hamming_distances(np.array([[0, 2]]), np.array([[0, 1]]))
    with pytest.raises(DataError, match="bits"):
        hamming_distances(np.zeros((2, 8), np.uint8), np.zeros((2, 16), np.uint8))


def test_pairwise_distances_metrics():
    q, _, d, _ = _random_set(7, n_q=5, n_db=9)
    sq = ((q[:, None, :] - d[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(pairwise_distances(q, d, metric="euclidean"), sq, rtol=1e-4, atol=1e-4)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(pairwise_distances(q, d, metric="cosine"), 1 - qn @ dn.T, atol=1e-5)
    with pytest.raises(ConfigError):
        pairwise_distances(q, d, metric="manhattan")


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "hamming"])
def test_knn_search_is_the_stable_ranking(metric):
    q, _, d, _ = _random_set(8)
    if metric == "hamming":
        q, d = (q[:, :6] > 0).astype(np.uint8), (d[:, :6] > 0).astype(np.uint8)  # 6 bits: many ties
    dist, idx = knn_search(q, d, 15, metric=metric, chunk_size=4)
    full = pairwise_distances(q, d, metric=metric)
    order = np.argsort(full, axis=1, kind="stable")[:, :15]
    if metric == "hamming":
        np.testing.assert_array_equal(idx, order)
        np.testing.assert_array_equal(dist, np.take_along_axis(full, order, axis=1))
    else:
        np.testing.assert_array_equal(idx, order)
        expect = np.take_along_axis(full, order, axis=1)
        np.testing.assert_allclose(dist, np.sqrt(expect) if metric == "euclidean" else expect, rtol=1e-5)


# ----------------------------------------------------------------------------- the report


@pytest.mark.parametrize("search", ["torch", "auto"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine", "hamming"])
def test_retrieval_report_matches_brute_force(metric, search):
    q, ql, d, dl = _random_set(9, n_q=50, n_db=300)
    if metric == "hamming":
        q, d = (q > 0).astype(np.uint8), (d > 0).astype(np.uint8)  # 8 bits: many ties
    rep = retrieval_report(q, ql, d, dl, metric=metric, ks=(10, 100), search=search, chunk_size=7)
    full = pairwise_distances(q, d, metric=metric)
    order = np.argsort(full, axis=1, kind="stable")
    assert rep["precision@10"] == pytest.approx(precision_at_k(ql, dl[order], 10))
    assert rep["precision@100"] == pytest.approx(precision_at_k(ql, dl[order], 100))
    assert rep["map"] == pytest.approx(mean_average_precision(ql, dl, order))
    if metric != "hamming":  # scikit-learn agrees (up to the odd float32 tie, which it averages)
        expected = np.mean([average_precision_score(dl == ql[i], -full[i]) for i in range(len(q))])
        assert rep["map"] == pytest.approx(expected, rel=1e-4)
    assert rep["query_seconds"] > 0 and rep["queries_per_s"] > 0
    assert rep["n_queries"] == 50 and rep["n_database"] == 300 and rep["metric"] == metric
    if search == "torch":
        assert rep["search"].startswith("torch")


def test_retrieval_report_perfect_codes():
    labels = np.repeat(np.arange(3), 20)
    codes = np.eye(3, dtype=np.float32)[labels] * 5
    rep = retrieval_report(codes[::2], labels[::2], codes, labels, ks=(10,))
    assert rep["precision@10"] == 1.0 and rep["map"] == pytest.approx(1.0)
    bits = np.eye(8, dtype=np.uint8)[labels]
    rep = retrieval_report(bits, labels, bits, labels, metric="hamming", ks=(20,))
    assert rep["precision@20"] == 1.0 and rep["map"] == pytest.approx(1.0)


def test_retrieval_report_errors():
    q, ql, d, dl = _random_set(10)
    with pytest.raises(ConfigError):
        retrieval_report(q, ql, d, dl, metric="l1")
    with pytest.raises(ConfigError):
        retrieval_report(q, ql, d, dl, search="annoy")
    with pytest.raises(DataError):
        retrieval_report(q, ql[:-1], d, dl)
    with pytest.raises(DataError):
        retrieval_report(q, ql, d, dl, ks=(1000,))
    with pytest.raises(DataError, match="0/1"):
        retrieval_report(q, ql, d, dl, metric="hamming")
