"""User data: image folders, image files, .npy/.npz arrays, and their errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aekit.data import load_dataset, load_images
from aekit.errors import ConfigError, DataError, DataFileError, DatasetNotFoundError

SHARED = Path(
    os.environ.get("AEKIT_DATA_HOME") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
)


def _png(path: Path, h: int, w: int, *, mode: str = "L", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    shape = (h, w) if mode == "L" else (h, w, 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def gray_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(10):
        _png(folder / f"img{i:02d}.png", 6, 5, seed=i)
    return folder


def test_folder_of_images(gray_folder):
    x, names = load_images(gray_folder)
    assert x.shape == (10, 1, 6, 5) and x.dtype == np.float32
    assert names == [f"img{i:02d}.png" for i in range(10)]
    assert 0.0 <= x.min() and x.max() <= 1.0
    expected = np.asarray(Image.open(gray_folder / "img03.png"), dtype=np.float32) / 255
    np.testing.assert_allclose(x[3, 0], expected, rtol=1e-6)

    ds = load_dataset(gray_folder)
    assert (len(ds.x_train), len(ds.x_test)) == (8, 2)
    assert ds.y_train is None and ds.image_shape == (1, 6, 5)
    again = load_dataset(str(gray_folder))
    np.testing.assert_array_equal(ds.x_test, again.x_test)  # fixed split


def test_class_subfolders(tmp_path):
    for k, cls in enumerate(["cat", "dog"]):
        (tmp_path / cls).mkdir()
        for i in range(5):
            _png(tmp_path / cls / f"{i}.png", 4, 4, seed=10 * k + i)
    ds = load_dataset(tmp_path)
    assert ds.class_names == ("cat", "dog") and ds.n_classes == 2
    assert sorted(np.concatenate([ds.y_train, ds.y_test]).tolist()) == [0] * 5 + [1] * 5
    assert sorted(ds.y_test.tolist()) == [0, 1]  # stratified
    _, names = load_images(tmp_path)
    assert names[:2] == ["cat/0.png", "cat/1.png"] and names[-1] == "dog/4.png"


def test_rgb_and_channel_conversion(tmp_path):
    path = _png(tmp_path / "rgb.png", 7, 9, mode="RGB")
    x, names = load_images(path)
    assert x.shape == (1, 3, 7, 9) and names == ["rgb.png"]
    gray, _ = load_images(path, channels=1)
    expected = np.tensordot([0.299, 0.587, 0.114], x[0], axes=1)
    np.testing.assert_allclose(gray[0, 0], expected, atol=1e-5)
    _png(tmp_path / "gray.png", 7, 9)
    with pytest.raises(DataError, match="channels=1 or channels=3"):
        load_images(tmp_path)
    assert load_images(tmp_path, channels=3)[0].shape == (2, 3, 7, 9)


def test_mixed_sizes_need_size(tmp_path):
    _png(tmp_path / "a.png", 8, 8)
    _png(tmp_path / "b.png", 10, 12)
    with pytest.raises(DataError, match=r"a\.png is 8x8.*b\.png is 10x12.*size="):
        load_images(tmp_path)
    x, _ = load_images(tmp_path, size=(5, 4))
    assert x.shape == (2, 1, 5, 4)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_resize_keeps_constant_images_constant(tmp_path):
    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(tmp_path / "flat.png")
    x, _ = load_images(tmp_path / "flat.png", size=(7, 3))
    np.testing.assert_allclose(x, 128 / 255, atol=1e-5)


def test_non_image_file_is_named(gray_folder):
    (gray_folder / "notes.txt").write_text("not an image")
    with pytest.raises(DataFileError, match=r"notes\.txt is not an image"):
        load_images(gray_folder)


def test_hidden_files_are_ignored(gray_folder):
    (gray_folder / ".DS_Store").write_bytes(b"\x00\x01")
    assert load_images(gray_folder)[0].shape[0] == 10


def test_truncated_png(tmp_path):
    path = _png(tmp_path / "a.png", 30, 30)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataFileError, match=r"a\.png"):
        load_images(path)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no images found"):
        load_images(tmp_path)
    with pytest.raises(DataError, match="no images found"):
        load_dataset(tmp_path)


def test_bad_options(gray_folder):
    with pytest.raises(ConfigError, match="channels"):
        load_images(gray_folder, channels=2)
    with pytest.raises(ConfigError, match="size"):
        load_images(gray_folder, size=(0, 3))


def test_npy_images(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (12, 6, 6, 3), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", x)
    out, names = load_images(tmp_path / "faces.npy")
    assert out.shape == (12, 3, 6, 6)
    np.testing.assert_allclose(out[2, 1], x[2, :, :, 1] / 255, rtol=1e-6)
    assert names[0] == "faces_00" and names[-1] == "faces_11"
    small, _ = load_images(tmp_path / "faces.npy", size=(3, 3), channels=1)
    assert small.shape == (12, 1, 3, 3)
    ds = load_dataset(tmp_path / "faces.npy")
    assert ds.x_train.shape == (9, 3, 6, 6) and ds.x_test.shape == (3, 3, 6, 6)


def test_npz_with_explicit_split(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x_train=rng.random((7, 4, 4)),
        y_train=np.arange(7) % 3,
        x_test=rng.random((3, 4, 4)),
        y_test=np.array([0, 1, 2]),
    )
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.x_train.shape == (7, 1, 4, 4) and ds.x_test.shape == (3, 1, 4, 4)
    assert ds.y_test.tolist() == [0, 1, 2] and ds.y_train.dtype == np.int64
    assert ds.name == "d"


def test_npz_x_y_with_string_labels(tmp_path):
    x = np.zeros((10, 2, 3), np.uint8)
    np.savez(tmp_path / "s.npz", x=x, y=np.array(["b", "a"] * 5))
    ds = load_dataset(tmp_path / "s.npz")
    assert ds.class_names == ("a", "b")
    assert len(ds.x_train) == 8 and sorted(ds.y_test.tolist()) == [0, 1]


def test_npz_table_stays_2d(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 5)) * 100  # not range-checked
    np.savez(tmp_path / "t.npz", x)
    ds = load_dataset(tmp_path / "t.npz")
    assert ds.x_train.shape == (16, 5) and ds.sample_shape == (5,)
    assert not ds.is_image
    with pytest.raises(DataError, match="feature table"):
        _ = ds.image_shape


def test_adbench_npz_table():
    path = SHARED / "odds" / "adbench_npz" / "6_cardio.npz"
    if not path.exists():
        pytest.skip(f"{path} not present")
    ds = load_dataset(path, test_size=0.25)
    n = len(ds.x_train) + len(ds.x_test)
    assert ds.x_train.ndim == 2 and n == 1831 and set(np.unique(ds.y_train)) <= {0, 1}


def test_npz_unknown_layout(tmp_path):
    np.savez(tmp_path / "u.npz", a=np.zeros((3, 4, 4)), b=np.zeros(3))
    with pytest.raises(DataError, match=r"\['a', 'b'\].*x_train"):
        load_dataset(tmp_path / "u.npz")


def test_float_images_out_of_range(tmp_path):
    np.save(tmp_path / "f.npy", np.full((4, 5, 5), 200.0))
    with pytest.raises(DataError, match=r"\[0, 1\].*255"):
        load_images(tmp_path / "f.npy")


def test_nan_in_images(tmp_path):
    x = np.zeros((4, 5, 5), np.float32)
    x[1, 2, 3] = np.nan
    np.save(tmp_path / "n.npy", x)
    with pytest.raises(DataError, match=r"1 NaN or infinite.*\(1, 0, 2, 3\)"):
        load_images(tmp_path / "n.npy")
    with pytest.raises(DataError, match="NaN"):
        load_dataset(tmp_path / "n.npy")


def test_wrong_rank(tmp_path):
    np.save(tmp_path / "r.npy", np.zeros(10, np.uint8))
    with pytest.raises(DataError, match="shape \\(10,\\)"):
        load_dataset(tmp_path / "r.npy")


def test_pickled_npy_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="never unpickles"):
        load_images(tmp_path / "o.npy")


def test_single_sample_needs_test_size_zero(tmp_path):
    path = _png(tmp_path / "one.png", 4, 4)
    with pytest.raises(DataError, match="test_size=0"):
        load_dataset(path)
    ds = load_dataset(path, test_size=0)
    assert ds.x_train.shape == (1, 1, 4, 4) and ds.x_test.shape == (0, 1, 4, 4)


def test_missing_paths_and_unknown_names(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        load_dataset(tmp_path / "missing.npy")
    with pytest.raises(DataFileError, match="does not exist"):
        load_images(tmp_path / "missing")
    with pytest.raises(DatasetNotFoundError, match="known names are digits, mnist, fashion-mnist"):
        load_dataset("cifar")
    (tmp_path / "table.csv").write_text("1,2\n")
    with pytest.raises(DataFileError, match="unsupported file type .csv"):
        load_dataset(tmp_path / "table.csv")
