"""IDX reading/writing: round trips and the errors for damaged files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from aekit.data import read_idx, write_idx
from aekit.data.idx import read_idx_header
from aekit.errors import DataError, DataFileError

SHARED = Path(
    os.environ.get("AEKIT_DATA_HOME") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
)


@pytest.mark.parametrize("suffix", [".idx", ".idx.gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-5, 0, 7], dtype=np.int8),
        np.array([[-300, 2], [3, 40000 - 65536]], dtype=np.int16),
        np.arange(5, dtype=np.int32) * -100_000,
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
        np.array([1e-300, np.pi], dtype=np.float64),
    ],
    ids=["uint8", "int8", "int16", "int32", "float32", "float64"],
)
def test_round_trip(tmp_path, array, suffix):
    path = write_idx(tmp_path / f"a{suffix}", array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    assert read_idx_header(path) == (back.dtype, array.shape)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    gz_named_raw = write_idx(tmp_path / "x.idx", array).rename(tmp_path / "raw.gz")
    raw_named_gz = write_idx(tmp_path / "y.gz", array).rename(tmp_path / "gz.idx")
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)


def test_write_leaves_no_temp_files(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((3, 2), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.gz"]


def test_truncated_raw_file_names_file_and_sizes(tmp_path):
    path = write_idx(tmp_path / "images.idx", np.zeros((10, 4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataFileError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "160 bytes" in message and "153 bytes" in message


def test_truncated_gzip_file(tmp_path):
    path = write_idx(
        tmp_path / "images.gz",
        np.random.default_rng(0).integers(0, 255, (50, 9, 9)).astype(np.uint8),
    )
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataFileError, match="not a valid gzip file or is truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value) and "re-download" in str(info.value)


def test_corrupt_gzip_file(tmp_path):
    path = write_idx(tmp_path / "images.gz", np.arange(4000, dtype=np.int32))
    data = bytearray(path.read_bytes())
    data[20:40] = b"\xff" * 20  # damage the deflate stream
    path.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match="gzip"):
        read_idx(path)


def test_gzip_whose_content_is_truncated_idx(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (100).to_bytes(4, "big") + bytes(60)))
    with pytest.raises(DataFileError, match=r"declares shape \(100,\).*only 60 bytes"):
        read_idx(path)


@pytest.mark.parametrize(
    ("head", "pattern"),
    [
        (b"\x01\x02\x08\x01", "not an IDX file"),
        (b"\x00\x00\x07\x01", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00", "inside its IDX header"),
        (b"", "not an IDX file"),
    ],
)
def test_bad_magic(tmp_path, head, pattern):
    path = tmp_path / "bad.idx"
    path.write_bytes(head)
    with pytest.raises(DataFileError, match=pattern):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "a.idx", np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(DataFileError, match="4 unexpected bytes"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")


@pytest.mark.parametrize("dtype", [np.bool_, np.uint16, np.int64, np.complex64])
def test_write_refuses_unsupported_dtype(tmp_path, dtype):
    with pytest.raises(DataError, match="cannot write dtype"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype))


def test_real_mnist_labels():
    path = SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz"
    if not path.exists():
        pytest.skip(f"{path} not present")
    labels = read_idx(path)
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert read_idx_header(SHARED / "mnist" / "train-images-idx3-ubyte.gz")[1] == (60000, 28, 28)
