"""Data larger than memory: .npy rows read per batch, image folders decoded on demand, CSV series
converted in one chunked pass; each checked against the in-memory path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from _cli_helpers import assert_fails, run_cli
from aekit.data import sliding_windows
from aekit.data.images import read_image_folder
from aekit.data.preprocess import to_float01
from aekit.data.streaming import ImageFolderStream, NpyStream, SeriesWindows, csv_to_npy
from aekit.errors import ConfigError, DataError, DataFileError
from aekit.models import create_model
from aekit.training import TrainConfig, Trainer


@pytest.fixture
def images_u8(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (300, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy", x


def test_npy_rows_equal_the_in_memory_array(images_u8, tmp_path):
    path, x = images_u8
    ds = NpyStream(path)
    assert len(ds) == 300 and ds.sample_shape == (1, 8, 8)
    idx = [17, 3, 4, 5, 299, 0, 17]  # any order, runs of consecutive rows, a repeat
    got = ds.__getitems__(idx).numpy()
    assert np.array_equal(got, to_float01(x[idx])[:, None])
    sub = ds.subset(np.arange(100, 200))
    assert np.array_equal(sub[0].numpy(), to_float01(x[100])[None])
    assert np.array_equal(NpyStream(path, binarize=0.5)[1].numpy(), (to_float01(x[1]) >= 0.5)[None].astype(np.float32))
    table = np.random.default_rng(1).normal(size=(50, 7)).astype(np.float32)
    np.save(tmp_path / "t.npy", table)
    assert np.array_equal(NpyStream(tmp_path / "t.npy").to_array(), table)


def test_npy_bad_files(images_u8, tmp_path):
    path, _ = images_u8
    data = path.read_bytes()
    (tmp_path / "short.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="truncated"):
        NpyStream(tmp_path / "short.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="Python objects"):
        NpyStream(tmp_path / "obj.npy")
    np.save(tmp_path / "flat.npy", np.zeros(10, np.float32))
    with pytest.raises(DataError, match="expected"):
        NpyStream(tmp_path / "flat.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), np.float32))
    with pytest.raises(DataError, match="no samples"):
        NpyStream(tmp_path / "empty.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(DataFileError, match="not a readable"):
        NpyStream(tmp_path / "text.npy")
    # truncated after opening: the read names the file
    ds = NpyStream(path)
    with open(path, "r+b") as f:
        f.truncate(len(data) - 64 * 50)
    with pytest.raises(DataFileError, match="shorter"):
        ds.__getitems__([299])


def test_training_on_a_stream_equals_training_in_memory(images_u8):
    path, x = images_u8
    mem = torch.from_numpy(to_float01(x)[:, None])
    cfg = TrainConfig(epochs=2, batch_size=32, progress=False, seed=3)
    histories = []
    for data in (mem, NpyStream(path)):
        torch.manual_seed(0)
        model = create_model("dense_ae", input_shape=(1, 8, 8), latent_dim=4)
        histories.append(Trainer(cfg, corruption=None).fit(model, data).column("train_loss"))
    assert histories[0] == pytest.approx(histories[1], rel=1e-6, abs=0)


def test_csv_to_npy_matches_the_in_memory_table(tmp_path):
    v = np.random.default_rng(2).normal(size=(1000, 3)) * [1, 10, 100] + [0, 5, -3]
    lines = ["timestamp,a,b,c"] + [f"{i},{a!r},{b!r},{c!r}" for i, (a, b, c) in enumerate(v.tolist())]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    for chunk in (1, 7, 100_000):
        stats = csv_to_npy(tmp_path / "s.csv", tmp_path / "s.npy", chunk_rows=chunk)
        assert stats.columns == ("a", "b", "c") and stats.n == 1000
        np.testing.assert_allclose(stats.mean, v.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(stats.std, v.std(0), rtol=1e-12)
        assert np.array_equal(np.load(tmp_path / "s.npy"), v.astype(np.float32))
    arr = np.load(tmp_path / "s.npy")
    std = (arr - stats.mean.astype(np.float32)) / stats.std.astype(np.float32)
    ref, starts = sliding_windows(std, 40, 7)
    win = SeriesWindows(tmp_path / "s.npy", 40, 7, center=stats.mean, scale=stats.std)
    assert len(win) == len(ref) and np.array_equal(win.starts, starts)
    for k in (0, 5, len(win) - 1):
        assert np.array_equal(win[k].numpy(), ref[k])
    assert csv_to_npy(tmp_path / "s.csv", tmp_path / "b.npy", columns=["c"]).columns == ("c",)


def test_csv_to_npy_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("t,a\n0,1.5\n1,oops\n")
    with pytest.raises(DataFileError, match=r"line 3, column 'a': 'oops'"):
        csv_to_npy(tmp_path / "bad.csv", tmp_path / "bad.npy")
    assert not (tmp_path / "bad.npy").exists()  # nothing half-written
    (tmp_path / "hole.csv").write_text("t,a\n0,\n")
    with pytest.raises(DataFileError, match="empty cells"):
        csv_to_npy(tmp_path / "hole.csv", tmp_path / "h.npy")
    (tmp_path / "head.csv").write_text("t,a\n")
    with pytest.raises(DataFileError, match="no data rows"):
        csv_to_npy(tmp_path / "head.csv", tmp_path / "h.npy")
    with pytest.raises(ConfigError, match="no column"):
        csv_to_npy(tmp_path / "bad.csv", tmp_path / "h.npy", columns=["zz"])


def test_image_folder_stream_equals_the_in_memory_reader(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
    x, _, _, _ = read_image_folder(tmp_path)
    ds = ImageFolderStream(tmp_path, workers=0)
    assert len(ds) == 5 and ds.sample_shape == (1, 12, 10)
    assert np.array_equal(torch.stack([ds[i] for i in range(5)]).numpy(), x)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(DataError, match="small.png"):
        ImageFolderStream(tmp_path, workers=0)[5]
    assert ImageFolderStream(tmp_path, size=(6, 6), workers=0)[5].shape == (1, 6, 6)


def test_cli_train_streams_a_npy(images_u8, tmp_path, capsys):
    path, _ = images_u8
    code, text = run_cli(capsys, "train", "--dataset", path, "--stream", "--epochs", "2", "--threads", "1",
                         "--out", tmp_path / "run", "--quiet")
    assert code == 0, text
    import json

    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["streamed"] is True and m["n_test"] == 30
    assert m["test_sq_err_per_image"] < m["pca_sq_err_per_image"] * 3
    assert_fails(capsys, ["train", "--dataset", "digits", "--stream", "--out", tmp_path / "r2"], "--stream", ".npy")
    assert_fails(capsys, ["train", "--dataset", path, "--stream", "--fixed-noise", "--denoise", "mask:0.3",
                          "--out", tmp_path / "r3"], "fixed-noise")
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_trainer_streams_an_image_folder_with_background_workers(tmp_path):
    rng = np.random.default_rng(4)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / f"{i:02d}.png")
    ds = ImageFolderStream(tmp_path)  # two DataLoader workers by default
    model = create_model("dense_ae", input_shape=(1, 8, 8), latent_dim=4)
    h = Trainer(TrainConfig(epochs=2, batch_size=8, progress=False)).fit(model, ds)
    assert [r["train_samples"] for r in h] == [40, 40]


def test_cli_train_streams_an_image_folder(tmp_path, capsys):
    rng = np.random.default_rng(5)
    (tmp_path / "imgs").mkdir()
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i:02d}.png")
    code, text = run_cli(capsys, "train", "--dataset", tmp_path / "imgs", "--stream", "--epochs", "1",
                         "--threads", "1", "--binarize", "0.5", "--out", tmp_path / "run", "--quiet")
    assert code == 0, text
    import json

    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["streamed"] is True and m["n_test"] == 6


def test_a_file_too_big_for_memory_says_to_stream(images_u8, monkeypatch):
    import aekit.data.arrayfile as af
    from aekit.data import load_dataset

    path, _ = images_u8

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.1 GiB")

    monkeypatch.setattr(af.np, "load", no_memory)
    with pytest.raises(DataError, match="does not fit in this process's memory.*--stream"):
        load_dataset(str(path))
