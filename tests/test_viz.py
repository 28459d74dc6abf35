"""Figures: each writes a PNG Pillow opens, of about the expected size; bad input fails loudly."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from threadpoolctl import threadpool_limits

from aekit.errors import ConfigError, DataError
from aekit.viz import image_strip, latent_map, loss_curves, reconstruction_grid
from aekit.viz.figures import _as_images, _reduce_2d


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()  # decodes the whole file: a truncated PNG fails here
        return im.size


def _blobs(n: int, h: int = 28, w: int = 28, seed: int = 0) -> np.ndarray:
    """Grey images of shape (n, 1, h, w) in [0, 1]: one bright blob each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(h / 4, 3 * h / 4, (n, 1, 1)), rng.uniform(w / 4, 3 * w / 4, (n, 1, 1))
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)[:, None].astype(np.float32)


@pytest.fixture(scope="module")
def clusters():
    """Codes of shape (200, 10) in 10 labelled clusters."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    return rng.normal(size=(200, 10)) + 3.0 * labels[:, None], labels


# ----------------------------------------------------------------------------- image grids


def test_reconstruction_grid_grey(tmp_path):
    x = _blobs(12)
    noisy = x + np.random.default_rng(1).normal(0, 0.3, x.shape)  # out of [0, 1]: clipped
    rec = 0.9 * x
    err = ((rec - x) ** 2).reshape(12, -1).mean(axis=1)
    out = reconstruction_grid(
        {"original": x, "noisy": noisy, "reconstruction": rec},
        tmp_path / "sub" / "grid.png",
        n=10,
        labels=list(range(12)),
        annotations=list(err),
        title="Denoising",
    )
    assert out == tmp_path / "sub" / "grid.png"
    w, h = _png_size(out)
    assert 950 <= w <= 1250  # 10 cells of 0.9 inch at 100 dpi, plus row labels
    assert 300 <= h <= 480
    assert sorted(p.name for p in out.parent.iterdir()) == ["grid.png"]  # no temp files left


def test_reconstruction_grid_rgb_list_of_pairs(tmp_path):
    red = np.zeros((4, 3, 16, 16), np.float32)
    red[:, 0] = 1.0
    rows = [("channels first", red), ("channels last", red.transpose(0, 2, 3, 1))]
    out = reconstruction_grid(rows, tmp_path / "rgb.png", n=10)  # only 4 images: 4 columns
    w, h = _png_size(out)
    assert 350 <= w <= 600 and 180 <= h <= 260
    px = np.asarray(Image.open(out).convert("RGB")).astype(int)
    is_red = (px[..., 0] > 200) & (px[..., 1] < 50) & (px[..., 2] < 50)
    assert is_red.sum() > 0.2 * is_red.size


def test_flat_vectors(tmp_path):
    flat = _blobs(5, 12, 20).reshape(5, -1)  # (5, 240): not square, needs image_shape
    out = reconstruction_grid({"x": flat, "x_hat": flat}, tmp_path / "f.png", image_shape=(12, 20))
    w, h = _png_size(out)
    assert w > h  # wide images give a wide grid
    square = _blobs(3).reshape(3, 784)  # (3, 784): read as 28x28 without image_shape
    _png_size(image_strip(square, tmp_path / "sq.png"))
    rgb = np.random.default_rng(0).random((2, 3 * 8 * 8))
    _png_size(image_strip(rgb, tmp_path / "rgb.png", image_shape=(3, 8, 8)))


def test_image_strip_captions_and_rows(tmp_path):
    images = _blobs(23, 12, 20)[:, 0]  # (n, H, W)
    out = image_strip(
        images,
        tmp_path / "strip.png",
        captions=[f"#{i}\nd={i / 7:.3f}" for i in range(23)],
        ncols=8,
        title="Neighbours",
    )
    w, h = _png_size(out)
    assert 700 <= w <= 900 and 250 <= h <= 400  # 8 columns, 3 rows


def test_uint8_images_are_scaled():
    imgs = _as_images(np.full((2, 4, 4), 255, np.uint8), image_shape=None, what="x")
    assert imgs.shape == (2, 4, 4) and imgs.max() == 1.0


@pytest.mark.parametrize(
    ("rows", "kwargs", "match"),
    [
        ({"a": np.zeros((4, 8, 8)), "b": np.zeros((3, 8, 8))}, {}, "same number of images"),
        ({"a": np.zeros((4, 8, 8)), "b": np.zeros((4, 9, 9))}, {}, "8x8"),
        ({"a": np.zeros((4, 100))}, {"image_shape": (9, 9)}, "needs 81 values"),
        ({"a": np.zeros((4, 100 + 1))}, {}, "pass image_shape"),
        ({"a": np.full((2, 8, 8), np.nan)}, {}, "NaN"),
        ({"a": np.zeros((2, 5, 8, 8))}, {}, "1 \\(grey\\) or 3 \\(RGB\\) channels"),
        ({"a": np.zeros((0, 8, 8))}, {}, "no images"),
        ({"a": np.zeros(8)}, {}, "must have shape"),
        ({"a": np.array([["x"]])}, {}, "real numbers"),
        ({}, {}, "rows is empty"),
        ({"a": np.zeros((4, 8, 8))}, {"annotations": ["1", "2"]}, "annotations has 2"),
    ],
)
def test_reconstruction_grid_bad_input(tmp_path, rows, kwargs, match):
    with pytest.raises(DataError, match=match):
        reconstruction_grid(rows, tmp_path / "bad.png", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_options(tmp_path):
    imgs = np.zeros((2, 8, 8))
    with pytest.raises(ConfigError, match=r"\.png"):
        image_strip(imgs, tmp_path / "x.jpg")
    with pytest.raises(ConfigError, match="n must be"):
        reconstruction_grid({"a": imgs}, tmp_path / "x.png", n=0)
    with pytest.raises(ConfigError, match="image_shape"):
        image_strip(imgs, tmp_path / "x.png", image_shape=(64,))
    with pytest.raises(DataError, match="captions has 1"):
        image_strip(imgs, tmp_path / "x.png", captions=["only one"])


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "fig.png"
    image_strip(np.zeros((2, 8, 8)), target)
    before = target.read_bytes()

    def broken_savefig(self, fname, **kwargs):
        fname.write(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        image_strip(np.ones((2, 8, 8)), target)
    assert target.read_bytes() == before  # the old figure is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # and no temp file is left


# ----------------------------------------------------------------------------- loss curves


def test_loss_curves_list_of_dicts(tmp_path):
    history = [
        {
            "epoch": e,
            "train_loss": 2.0 * np.exp(-e / 3) + 0.01,
            "train_recon_loss": 1.5 * np.exp(-e / 3),
            "val_loss": 2.2 * np.exp(-e / 3) + 0.02 if e % 2 == 0 else None,  # sparse val
            "lr": 1e-3,  # not a loss: ignored
        }
        for e in range(1, 21)
    ]
    ref = {"tutorial val_loss": [(5, 0.5), (10, 0.12), (20, 0.1)]}
    out = loss_curves(history, tmp_path / "loss.png", reference=ref, title="AE")
    assert _png_size(out) == (640, 420)


def test_loss_curves_dict_of_lists(tmp_path):
    history = {"train_loss": [0.3, 0.25, 0.22], "val_loss": [0.31, 0.27, 0.26]}
    assert _png_size(loss_curves(history, tmp_path / "l.png", log_y=False, dpi=50)) == (320, 210)
    assert _png_size(loss_curves({"train_loss": [0.5]}, tmp_path / "one.png", log_y=True))


@pytest.mark.parametrize(
    ("history", "kwargs", "error", "match"),
    [
        ({"train_loss": [1.0, 0.5], "val_loss": [1.0]}, {}, DataError, "same length"),
        ([{"epoch": 1, "acc": 0.5}], {}, DataError, "no loss values"),
        ([], {}, DataError, "no loss values"),
        ([{"train_loss": "high"}], {}, DataError, "not a number"),
        ([1.0, 0.5], {}, DataError, "one dict per epoch"),
        ({"train_loss": [1.0, 0.0]}, {"log_y": True}, DataError, "positive"),
        ({"train_loss": [1.0]}, {"log_y": "yes"}, ConfigError, "log_y"),
        ({"train_loss": [1.0]}, {"reference": {"ref": [(1, 2, 3)]}}, DataError, "pairs"),
    ],
)
def test_loss_curves_bad_input(tmp_path, history, kwargs, error, match):
    with pytest.raises(error, match=match):
        loss_curves(history, tmp_path / "bad.png", **kwargs)


# ----------------------------------------------------------------------------- latent map


def test_latent_map_2d_with_class_names(tmp_path, clusters):
    codes, labels = clusters
    names = [f"class {i}" for i in range(10)]
    out = latent_map(codes[:, :2], tmp_path / "z2.png", labels=labels, class_names=names)
    assert _png_size(out) == (640, 500)


@pytest.mark.parametrize("method", ["auto", "pca", "tsne"])
def test_latent_map_reduces_10d(tmp_path, clusters, method):
    codes, labels = clusters
    # One OpenMP thread: t-SNE's spinning threads crawl on a shared, busy machine.
    with threadpool_limits(limits=1, user_api="openmp"):
        out = latent_map(codes, tmp_path / "z.png", labels=labels, method=method)
    assert _png_size(out) == (640, 500)


def test_latent_map_other_cases(tmp_path, clusters):
    codes, labels = clusters
    _png_size(latent_map(codes, tmp_path / "nolabels.png"))
    _png_size(latent_map(codes[:, 0], tmp_path / "d1.png", labels=labels))  # (n,) is d = 1
    _png_size(latent_map(codes[:, :1], tmp_path / "d1n.png"))
    many = np.arange(200) % 30  # > 20 classes: colour bar instead of legend
    _png_size(latent_map(codes, tmp_path / "many.png", labels=many))
    words = np.array(["cat", "dog"])[labels % 2]
    _png_size(latent_map(codes, tmp_path / "words.png", labels=words, title=""))


def test_latent_map_subsample_is_reproducible(tmp_path, clusters):
    codes, labels = clusters
    a = latent_map(codes, tmp_path / "a.png", labels=labels, max_points=50, random_state=3)
    b = latent_map(codes, tmp_path / "b.png", labels=labels, max_points=50, random_state=3)
    assert a.read_bytes() == b.read_bytes()


def test_pca_axis_labels_give_variance(clusters):
    codes, _ = clusters
    rng = np.random.default_rng(0)
    xy, xlabel, ylabel = _reduce_2d(codes, "auto", 0, rng)
    assert xy.shape == (200, 2)
    assert xlabel.startswith("PCA 1 (") and xlabel.endswith("% var)")
    assert ylabel.startswith("PCA 2 (")


def test_latent_map_bad_input(tmp_path, clusters):
    codes, labels = clusters
    nan_codes = codes.copy()
    nan_codes[5, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        latent_map(nan_codes, tmp_path / "x.png")
    with pytest.raises(DataError, match=r"labels must have shape \(200,\)"):
        latent_map(codes, tmp_path / "x.png", labels=labels[:-1])
    with pytest.raises(DataError, match="integers"):
        latent_map(codes, tmp_path / "x.png", labels=labels + 0.5)
    with pytest.raises(DataError, match="class_names"):
        latent_map(codes, tmp_path / "x.png", labels=labels, class_names=["a", "b"])
    with pytest.raises(DataError, match="shape"):
        latent_map(np.zeros((2, 3, 4)), tmp_path / "x.png")
    with pytest.raises(ConfigError, match="method"):
        latent_map(codes, tmp_path / "x.png", method="umap")
    with pytest.raises(ConfigError, match="max_points"):
        latent_map(codes, tmp_path / "x.png", max_points=0)


# ----------------------------------------------------------------------------- backend


def test_no_pyplot_and_backend_untouched(tmp_path, monkeypatch):
    """Drawing must neither import pyplot (which picks a GUI backend) nor switch backends."""
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # importing it now fails
    backend = matplotlib.rcParams._get("backend")  # _get: reading must not resolve it
    codes = np.random.default_rng(0).normal(size=(20, 3))
    image_strip(np.zeros((2, 8, 8)), tmp_path / "a.png")
    reconstruction_grid({"a": np.zeros((2, 8, 8))}, tmp_path / "b.png")
    loss_curves({"train_loss": [1.0, 0.5]}, tmp_path / "c.png")
    latent_map(codes, tmp_path / "d.png", labels=np.arange(20) % 3)
    assert matplotlib.rcParams._get("backend") == backend
