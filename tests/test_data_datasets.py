"""Named data sets: digits, MNIST and Fashion-MNIST from disk, and the verified download path
(served from a local HTTP server on 127.0.0.1; tests never reach the network)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from aekit.data import DATASET_NAMES, Dataset, list_datasets, load_dataset, named, write_idx
from aekit.data.datasets import canonical_name
from aekit.errors import ChecksumError, ConfigError, DataError, DatasetNotFoundError

SHARED = Path(
    os.environ.get("AEKIT_DATA_HOME") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
)
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test sees the real user cache, data home or offline switch."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("AEKIT_DATA_HOME", "AEKIT_OFFLINE", "AEKIT_MNIST_URL", "AEKIT_FASHION_MNIST_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    if not (SHARED / "mnist").is_dir():
        pytest.skip(f"{SHARED / 'mnist'} not present")
    return load_dataset("mnist", data_home=SHARED, download=False)


def test_mnist_shapes_ranges_labels(mnist):
    assert mnist.x_train.shape == (60000, 1, 28, 28) and mnist.x_test.shape == (10000, 1, 28, 28)
    assert mnist.x_train.dtype == np.float32 and mnist.x_train.flags.c_contiguous
    assert mnist.x_train.min() == 0.0 and mnist.x_train.max() == 1.0
    assert mnist.y_train.dtype == np.int64 and mnist.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(mnist.y_train).tolist()[:3] == [5923, 6742, 5958]
    assert mnist.image_shape == (1, 28, 28) and mnist.n_classes == 10
    assert "mnist" in mnist.source


def test_subset_takes_first_rows(mnist):
    small = mnist.subset(100, 20)
    assert small.x_train.shape == (100, 1, 28, 28) and small.y_test.shape == (20,)
    np.testing.assert_array_equal(small.y_train, mnist.y_train[:100])
    assert small.subset(n_test=5).x_train.shape[0] == 100
    with pytest.raises(ConfigError):
        mnist.subset(-1)
    assert "x_train=(100, 1, 28, 28)" in repr(small)


def test_data_home_from_environment(monkeypatch):
    if not (SHARED / "mnist").is_dir():
        pytest.skip(f"{SHARED / 'mnist'} not present")
    monkeypatch.setenv("AEKIT_DATA_HOME", str(SHARED))
    info = {i.name: i for i in list_datasets()}
    assert info["mnist"].found_at == str(SHARED / "mnist")
    assert info["digits"].found_at is not None and info["digits"].n_test == 360


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_debian_package():
    ds = load_dataset("fashion_mnist", download=False)
    assert ds.name == "fashion-mnist" and ds.source == str(FASHION_DIR)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train[0] == 9 and ds.class_names[9] == "Ankle boot"
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert 0.0 <= ds.x_test.min() and ds.x_test.max() <= 1.0


def test_names_and_aliases():
    assert DATASET_NAMES == ("digits", "mnist", "fashion-mnist")
    assert canonical_name("Fashion_MNIST") == "fashion-mnist" and canonical_name("x") is None


def test_digits_split_is_fixed_and_stratified():
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1437, 1, 8, 8) and ds.x_test.shape == (360, 1, 8, 8)
    assert ds.x_train.dtype == np.float32 and ds.x_train.max() == 1.0 and ds.x_train.min() == 0.0
    counts = np.bincount(ds.y_test)
    assert counts.min() >= 35 and counts.max() <= 37  # ~36 per class
    again = load_dataset("digits")
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    np.testing.assert_array_equal(ds.y_train, again.y_train)


def test_dataset_checks_lengths():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(DataError, match="3 train samples but 2 train labels"):
        Dataset("t", x, np.zeros(2, np.int64), x, None, "here")


# ---------------------------------------------------------------- download path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def idx_server(tmp_path):
    """Serve four small MNIST-shaped IDX gz files; yield (base_url, sha table, arrays)."""
    served = tmp_path / "served"
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (12, 5, 5), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 12, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (4, 5, 5), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 4, dtype=np.uint8),
    }
    sha = {}
    for part, file_name in named.IDX_FILES.items():
        path = write_idx(served / file_name, arrays[part])
        sha[file_name] = hashlib.sha256(path.read_bytes()).hexdigest()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", sha, arrays
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_verifies_and_caches(idx_server, monkeypatch, tmp_path):
    url, sha, arrays = idx_server
    monkeypatch.setitem(named.SHA256, "mnist", sha)
    monkeypatch.setenv("AEKIT_MNIST_URL", url)
    ds = load_dataset("mnist")
    cache = tmp_path / "cache" / "aekit" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(named.IDX_FILES.values())
    assert ds.source == str(cache) and ds.x_train.shape == (12, 1, 5, 5)
    np.testing.assert_allclose(ds.x_test[:, 0], arrays["x_test"] / 255, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])
    cached = load_dataset("mnist", download=False)  # now found in the cache
    np.testing.assert_array_equal(cached.y_test, ds.y_test)


def test_download_with_mirrors_argument(idx_server, monkeypatch):
    url, sha, _ = idx_server
    monkeypatch.setitem(named.SHA256, "mnist", sha)
    ds = load_dataset("mnist", mirrors=["http://127.0.0.1:1/", url])  # first one is dead
    assert ds.x_train.shape == (12, 1, 5, 5)


def test_checksum_mismatch_keeps_nothing(idx_server, monkeypatch, tmp_path):
    url, sha, _ = idx_server
    bad = dict(sha)
    bad["t10k-images-idx3-ubyte.gz"] = "0" * 64
    monkeypatch.setitem(named.SHA256, "mnist", bad)
    monkeypatch.setenv("AEKIT_MNIST_URL", url)
    with pytest.raises(ChecksumError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert "0" * 64 in message and sha["t10k-images-idx3-ubyte.gz"] in message
    assert url + "t10k-images-idx3-ubyte.gz" in message
    cache = tmp_path / "cache" / "aekit" / "mnist"
    left = [p.name for p in cache.iterdir()]
    assert "t10k-images-idx3-ubyte.gz" not in left
    assert not [n for n in left if n.endswith(".part")]


def test_offline_raises_not_found(idx_server, monkeypatch, tmp_path):
    url, sha, _ = idx_server
    monkeypatch.setitem(named.SHA256, "mnist", sha)
    monkeypatch.setenv("AEKIT_MNIST_URL", url)
    monkeypatch.setenv("AEKIT_OFFLINE", "1")
    monkeypatch.setenv("AEKIT_DATA_HOME", str(tmp_path / "nothing"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert "AEKIT_OFFLINE" in message and str(tmp_path / "nothing" / "mnist") in message
    assert str(tmp_path / "cache" / "aekit" / "mnist") in message and "AEKIT_DATA_HOME" in message
    assert not (tmp_path / "cache" / "aekit" / "mnist").exists()
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        load_dataset("mnist", download=False)
    assert not {i.name: i for i in list_datasets()}["mnist"].downloadable


def test_unreachable_mirror(monkeypatch):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)Download failed.*127\.0\.0\.1:1"):
        load_dataset("mnist", mirrors=["http://127.0.0.1:1/"])
