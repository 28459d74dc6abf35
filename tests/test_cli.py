"""The ``aekit`` command line, called in-process through ``aekit.cli.main.main(argv)``.

Tiny runs (digits, 200 training images, 1-2 epochs, small models) keep the file fast. Every bad
input must end with exit code 2, one ``error: ...`` line naming the problem, no traceback, and
nothing lost: existing files unchanged and no half-written run folder.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from threadpoolctl import threadpool_limits

import aekit
from _cli_helpers import run_cli
from aekit.cli import main as cli_main
from aekit.cli.main import main
from aekit.errors import ModelFileError

TINY = ["--dataset", "digits", "--n-train", "200", "--quiet"]
BASE_ARGS = ["train", "--model", "dense_ae", "--latent-dim", "8", "--epochs", "2", "--seed", "0", *TINY]
RUN_FILES = ("aekit.json", "model.safetensors", "metrics.json", "history.csv", "reconstructions.png", "loss.png")
METRIC_KEYS = (
    "test_bce_per_pixel", "test_mse_per_pixel", "test_sq_err_per_image", "pca_sq_err_per_image",
    "train_samples_per_s", "epochs", "seconds",
)


# -- helpers ----------------------------------------------------------------------------------
def assert_fails(capsys, argv, *words) -> str:
    """Exit code 2, exactly one error line holding every word (case-insensitive), no traceback."""
    code, text = run_cli(capsys, *argv)
    assert code == 2, f"exit code {code}:\n{text}"
    assert "Traceback" not in text, text
    errors = [ln for ln in text.splitlines() if ln.strip().lower().startswith("error")]
    assert len(errors) == 1, text
    line = errors[0]
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    return line


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``folder`` (hidden temp files included)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def history_epochs(run: Path) -> list[int]:
    with open(run / "history.csv", newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def write_png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format="PNG")


def idx_gz(arr: np.ndarray) -> bytes:
    """An IDX file (uint8), gzipped: written here, independent of aekit's own writer."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return gzip.compress(head + arr.tobytes(), mtime=0)


def make_fake_mnist(home: Path, n_train: int = 60, n_test: int = 20) -> Path:
    folder = home / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    parts = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(n_test) % 10,
    }
    for name, arr in parts.items():
        (folder / name).write_bytes(idx_gz(arr))
    return folder


# -- shared runs (module scope: trained once) -------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """conftest pins torch to one thread; PCA (sklearn/scipy) would still use every BLAS thread,
    which on a busy 2-core machine makes one 360x256 SVD take seconds instead of milliseconds."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished dense_ae run (code 8, 2 epochs); tests must copy it before changing it."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert main([*BASE_ARGS, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def denoise_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("denoise") / "run"
    argv = ["train", "--model", "conv_ae", "--preset", "wide", "--denoise", "seed", "--epochs", "1", *TINY]
    assert main([*argv, "--out", str(out)]) == 0
    return out


@pytest.fixture()
def images_npy(tmp_path, digits) -> tuple[Path, np.ndarray]:
    x = digits.x_test[:20, 0]  # (20, 8, 8) floats in [0, 1]
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path, x


# -- train --------------------------------------------------------------------------------------
def test_train_writes_run_folder(run_dir):
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
        assert (run_dir / name).stat().st_size > 0, name
    metrics = read_json(run_dir / "metrics.json")
    for key in METRIC_KEYS:
        assert key in metrics, key
        assert isinstance(metrics[key], (int, float)) and np.isfinite(metrics[key]), (key, metrics[key])
    assert metrics["epochs"] == 2 and metrics["code_dim"] == 8 and metrics["n_test"] == 360
    assert metrics["train_samples_per_s"] > 0 and metrics["seconds"] > 0
    assert metrics["test_mse_per_pixel"] * 64 == pytest.approx(metrics["test_sq_err_per_image"], rel=1e-4)
    assert history_epochs(run_dir) == [1, 2]
    doc = read_json(run_dir / "aekit.json")
    assert doc["kind"] == "model" and doc["model_name"] == "dense_ae"
    assert doc["model_config"]["latent_dim"] == 8
    assert doc["run"]["spec"]["n_train"] == 200
    digest = hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest()
    assert doc["weights"]["sha256"] == digest
    for png in ("reconstructions.png", "loss.png"):
        with Image.open(run_dir / png) as img:
            assert img.format == "PNG" and min(img.size) > 50
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_run_files_follow_the_umask(run_dir):
    png_mode = (run_dir / "reconstructions.png").stat().st_mode & 0o777
    modes = {name: oct((run_dir / name).stat().st_mode & 0o777) for name in RUN_FILES}
    assert modes == dict.fromkeys(RUN_FILES, oct(png_mode))


def test_train_prints_the_metrics_table(tmp_path, capsys):
    code, out = run_cli(capsys, "train", "--latent-dim", "4", "--epochs", "1", *TINY, "--out", tmp_path / "r")
    assert code == 0, out
    for word in ("dense_ae", "test BCE/pixel", "PCA MSE/image", "AE/PCA", "run folder"):
        assert word in out
    assert "epoch" not in out.replace("epochs", "")  # --quiet: no progress lines


def test_loaded_model_reproduces_the_reported_metrics(run_dir, digits):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a finished run loads its weights, not the checkpoint
        model = aekit.load(run_dir)
    assert isinstance(model, torch.nn.Module) and not model.training
    x = torch.from_numpy(digits.x_test)
    with torch.no_grad():
        rec = model.reconstruct(x).numpy()
    sq_err = float(((rec - digits.x_test) ** 2).reshape(len(rec), -1).sum(1).mean())
    metrics = read_json(run_dir / "metrics.json")
    assert sq_err == pytest.approx(metrics["test_sq_err_per_image"], rel=1e-5)
    assert metrics["n_params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("model", "extra", "check"),
    [
        ("dense_ae", ["--preset", "tutorial"], {"latent_dim": 2, "hidden": [128, 32]}),
        ("dense_ae", ["--latent-dim", "3"], {"latent_dim": 3}),
        ("dense_ae", ["--sparsity", "l1:1e-4", "--latent-dim", "16"], {"sparsity": "l1:1e-4"}),
        ("dense_ae", ["--binarize", "0.5", "--latent-dim", "4"], {"latent_dim": 4}),
        ("conv_ae", ["--preset", "tutorial"], {"channels": [16, 8]}),
        ("conv_ae", ["--preset", "wide", "--denoise", "seed"], {"channels": [32, 64]}),
    ],
    ids=["dense-tutorial", "latent-dim", "sparsity", "binarize", "conv-tutorial", "conv-wide-denoise"],
)
def test_train_options(tmp_path, capsys, model, extra, check):
    run = tmp_path / "run"
    code, out = run_cli(capsys, "train", "--model", model, *extra, "--epochs", "1", *TINY, "--out", run)
    assert code == 0, out
    doc = read_json(run / "aekit.json")
    assert doc["model_name"] == model
    for key, value in check.items():
        assert doc["model_config"][key] == value, key
    spec = doc["run"]["spec"]
    metrics = read_json(run / "metrics.json")
    loaded = aekit.load(run)
    assert metrics["n_params"] == sum(p.numel() for p in loaded.parameters())
    if "--preset" in extra:
        assert spec["preset"] == extra[extra.index("--preset") + 1] == metrics["preset"]
    if "--latent-dim" in extra:
        assert metrics["code_dim"] == int(extra[extra.index("--latent-dim") + 1])
    if "--sparsity" in extra:
        with open(run / "history.csv", newline="") as f:
            assert "train_sparsity" in next(csv.DictReader(f))
    if "--binarize" in extra:
        assert spec["binarize"] == 0.5
        assert doc["run"]["preprocessing"]["binarize"] == 0.5
    if "--denoise" in extra:
        assert spec["denoise"] == "seed" == metrics["denoise"]
        assert metrics["noisy_sq_err_per_image"] > 0
        assert "+seed" in out


def test_same_seed_gives_identical_weights(run_dir, tmp_path):
    again = tmp_path / "again"
    assert main([*BASE_ARGS, "--out", str(again)]) == 0
    a, b = load_file(str(run_dir / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    other = tmp_path / "other"
    assert main([*[x if x != "0" else "1" for x in BASE_ARGS], "--out", str(other)]) == 0
    c = load_file(str(other / "model.safetensors"))
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_overcomplete_code_warns_but_trains(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="not smaller than the input"):
        code, out = run_cli(capsys, "train", "--latent-dim", "100", "--epochs", "1", *TINY, "--out", run)
    assert code == 0, out
    assert (run / "model.safetensors").is_file()
    assert read_json(run / "metrics.json")["code_dim"] == 100


def test_lossless_pca_gives_no_ratio(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="not smaller than the input"):
        code, out = run_cli(capsys, "train", "--latent-dim", "64", "--epochs", "1", *TINY, "--out", run)
    assert code == 0, out
    metrics = read_json(run / "metrics.json")
    assert metrics["pca_lossless"] is True
    assert metrics["ae_over_pca"] is None


def test_overcomplete_sparse_code_does_not_warn(tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out = run_cli(
            capsys, "train", "--latent-dim", "100", "--sparsity", "l1:1e-4", "--epochs", "1", *TINY,
            "--out", tmp_path / "run",
        )
    assert code == 0, out
    assert not [w for w in caught if "not smaller than the input" in str(w.message)]


# -- evaluate -----------------------------------------------------------------------------------
def test_evaluate_prints_table_and_writes_json(run_dir, tmp_path, capsys):
    before = snapshot(run_dir)
    out_json = tmp_path / "sub" / "eval.json"
    code, out = run_cli(capsys, "evaluate", run_dir, "--json", out_json)
    assert code == 0, out
    for word in ("BCE / pixel", "MSE / pixel", "squared error / image", "ratio AE / PCA", "PCA-8", "360 test"):
        assert word in out
    m = read_json(out_json)
    assert m["ae_over_pca"] == pytest.approx(m["test_sq_err_per_image"] / m["pca_sq_err_per_image"])
    trained = read_json(run_dir / "metrics.json")
    for key in ("test_bce_per_pixel", "test_mse_per_pixel", "test_sq_err_per_image", "pca_sq_err_per_image"):
        assert m[key] == pytest.approx(trained[key], rel=1e-5), key
    assert snapshot(run_dir) == before


def test_evaluate_binarized_run_binarizes_again(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", "--binarize", "0.5", "--latent-dim", "4", "--epochs", "1", *TINY,
                   "--out", run)[0] == 0
    code, out = run_cli(capsys, "evaluate", run, "--json", tmp_path / "m.json")
    assert code == 0, out
    m, trained = read_json(tmp_path / "m.json"), read_json(run / "metrics.json")
    assert m["test_sq_err_per_image"] == pytest.approx(trained["test_sq_err_per_image"], rel=1e-5)


def test_evaluate_on_another_dataset_of_the_same_shape(run_dir, tmp_path, capsys, digits):
    path = tmp_path / "other.npy"
    np.save(path, digits.x_test[:50, 0])
    code, out = run_cli(capsys, "evaluate", run_dir, "--dataset", path, "--json", tmp_path / "m.json")
    assert code == 0, out
    assert read_json(tmp_path / "m.json")["n_test"] == 10  # 50 images, 20 % test split


def test_evaluate_on_a_dataset_of_another_shape_fails(run_dir, tmp_path, capsys):
    path = tmp_path / "big.npy"
    np.save(path, np.random.default_rng(0).random((30, 16, 16), dtype=np.float32))
    assert_fails(capsys, ["evaluate", run_dir, "--dataset", path], "shape", "(1, 8, 8)")


# -- reconstruct / denoise ----------------------------------------------------------------------
def test_reconstruct_npy_to_npy_matches_the_model(run_dir, images_npy, tmp_path, capsys):
    path, x = images_npy
    out = tmp_path / "rec.npy"
    code, text = run_cli(capsys, "reconstruct", run_dir, "--input", path, "--out", out)
    assert code == 0, text
    assert "20 images" in text
    rec = np.load(out)
    assert rec.shape == (20, 1, 8, 8) and rec.dtype == np.float32
    model = aekit.load(run_dir)
    with torch.no_grad():
        expected = model.reconstruct(torch.from_numpy(x[:, None].copy())).numpy()
    np.testing.assert_allclose(rec, expected, atol=1e-6)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_reconstruct_npy_to_png_figure(run_dir, images_npy, tmp_path, capsys):
    path, _ = images_npy
    fig = tmp_path / "fig.png"
    code, text = run_cli(capsys, "reconstruct", run_dir, "--input", path, "--out", fig, "--n", "5")
    assert code == 0, text
    with Image.open(fig) as img:
        assert img.format == "PNG" and img.size[0] > 100


def test_reconstruct_png_folder(run_dir, tmp_path, capsys, digits):
    folder = tmp_path / "pngs"
    folder.mkdir()
    pixels = (digits.x_test[:5, 0] * 255).round().astype(np.uint8)
    for i, arr in enumerate(pixels):
        write_png(folder / f"img{i}.png", arr)
    out = tmp_path / "rec.npy"
    code, text = run_cli(capsys, "reconstruct", run_dir, "--input", folder, "--out", out)
    assert code == 0, text
    rec = np.load(out)
    assert rec.shape == (5, 1, 8, 8)
    model = aekit.load(run_dir)
    with torch.no_grad():
        expected = model.reconstruct(torch.from_numpy(pixels[:, None] / np.float32(255))).numpy()
    np.testing.assert_allclose(rec, expected, atol=1e-5)


def test_reconstruct_resizes_a_larger_png(run_dir, tmp_path, capsys):
    img = tmp_path / "big.png"
    write_png(img, np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8))
    out = tmp_path / "rec.npy"
    code, text = run_cli(capsys, "reconstruct", run_dir, "--input", img, "--out", out)
    assert code == 0, text
    assert np.load(out).shape == (1, 1, 8, 8)


def test_denoise_writes_pngs(denoise_run, tmp_path, capsys, digits):
    x = np.clip(digits.x_test[:12, 0] + np.random.default_rng(0).normal(0, 0.3, (12, 8, 8)), 0, 1)
    noisy = tmp_path / "noisy.npy"
    np.save(noisy, x.astype(np.float32))
    out = tmp_path / "clean"
    code, text = run_cli(capsys, "denoise", denoise_run, "--input", noisy, "--out", out)
    assert code == 0, text
    pngs = sorted(p.name for p in out.glob("*.png") if not p.name.startswith("_"))
    assert pngs == [f"noisy_{i:02d}.png" for i in range(12)]
    assert (out / "_overview.png").is_file()
    with Image.open(out / "noisy_00.png") as img:
        assert img.size == (8, 8) and img.mode == "L"
    assert not list(out.glob(".*"))


def test_denoise_loads_without_warning(denoise_run, images_npy, tmp_path, capsys):
    path, _ = images_npy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, text = run_cli(capsys, "denoise", denoise_run, "--input", path, "--out", tmp_path / "d.npy")
    assert code == 0, text
    assert not [str(w.message) for w in caught if "copy its input" in str(w.message)]


def test_denoise_with_added_noise_to_figure(denoise_run, images_npy, tmp_path, capsys):
    path, _ = images_npy
    fig = tmp_path / "den.png"
    code, text = run_cli(capsys, "denoise", denoise_run, "--input", path, "--add-noise", "seed", "--out", fig)
    assert code == 0, text
    with Image.open(fig) as img:
        assert img.format == "PNG"


# -- datasets / models --------------------------------------------------------------------------
def test_datasets_lists_the_named_sets_and_where_found(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    make_fake_mnist(home)
    monkeypatch.setenv("AEKIT_DATA_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cli_main.console, "width", 400)  # no wrapped paths
    code, out = run_cli(capsys, "datasets")
    assert code == 0, out
    rows = {ln.split()[1]: ln for ln in out.splitlines() if ln.startswith("│") and len(ln.split()) > 2}
    assert {"digits", "mnist", "fashion-mnist"} <= set(rows)
    assert "scikit-learn" in rows["digits"]
    assert str(home / "mnist") in rows["mnist"]
    assert "60,000 + 10,000" in rows["mnist"] and "1x28x28" in rows["mnist"]


def test_datasets_says_when_mnist_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AEKIT_DATA_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cli_main.console, "width", 400)
    code, out = run_cli(capsys, "datasets")
    assert code == 0, out
    mnist = next(ln for ln in out.splitlines() if ln.startswith("│ mnist "))
    assert "not found" in mnist


def test_models_lists_models_presets_and_parameter_counts(capsys):
    code, out = run_cli(capsys, "models")
    assert code == 0, out
    for word in ("dense_ae", "conv_ae", "tutorial (210,130)", "hinton2006", "tutorial (3,217)", "wide (74,497)"):
        assert word in out, word


# -- bad input: data sets -----------------------------------------------------------------------
def test_fake_mnist_home_trains(tmp_path, monkeypatch, capsys):
    """Control for the corrupt-file tests below: the intact fake data home works."""
    make_fake_mnist(tmp_path / "home")
    monkeypatch.setenv("AEKIT_DATA_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    code, out = run_cli(capsys, "train", "--dataset", "mnist", "--latent-dim", "4", "--epochs", "1", "--quiet",
                        "--out", run)
    assert code == 0, out
    assert read_json(run / "aekit.json")["model_config"]["input_shape"] == [1, 28, 28]


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a gzip file at all " * 20)
    return path


def _corrupt_body(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    for i in range(20, len(data) - 8, 7):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def _raw_truncated(path: Path) -> Path:
    raw = path.with_name(path.name.removesuffix(".gz"))
    raw.write_bytes(gzip.decompress(path.read_bytes())[:1000])
    path.unlink()
    return raw


def _short_labels(path: Path) -> Path:
    path.write_bytes(idx_gz(np.zeros(7, np.uint8)))
    return path


@pytest.mark.parametrize(
    ("file", "damage", "words"),
    [
        ("train-images-idx3-ubyte.gz", _truncate, ("train-images-idx3-ubyte.gz", "truncated")),
        ("t10k-images-idx3-ubyte.gz", _garbage, ("t10k-images-idx3-ubyte.gz", "not an IDX file")),
        ("train-images-idx3-ubyte.gz", _corrupt_body, ("train-images-idx3-ubyte.gz", "gzip")),
        ("train-images-idx3-ubyte.gz", _raw_truncated, ("train-images-idx3-ubyte", "truncated")),
        ("t10k-labels-idx1-ubyte.gz", _short_labels, ("t10k-labels-idx1-ubyte.gz", "label")),
    ],
    ids=["truncated-gz", "not-gzip", "corrupt-gz", "truncated-raw-idx", "labels-count"],
)
def test_corrupt_idx_dataset(tmp_path, monkeypatch, capsys, file, damage, words):
    folder = make_fake_mnist(tmp_path / "home")
    damage(folder / file)
    before = snapshot(folder)
    monkeypatch.setenv("AEKIT_DATA_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    assert_fails(capsys, ["train", "--dataset", "mnist", "--epochs", "1", "--quiet", "--out", run], *words)
    assert not run.exists()
    assert snapshot(folder) == before  # a damaged data file is reported, not deleted or rewritten


def test_missing_named_dataset_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AEKIT_DATA_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("AEKIT_OFFLINE", "1")
    run = tmp_path / "run"
    code, text = run_cli(capsys, "train", "--dataset", "mnist", "--epochs", "1", "--quiet", "--out", run)
    assert code == 2 and "not available" in text and "AEKIT_DATA_HOME" in text
    assert "Traceback" not in text and not run.exists()


def _folder_with_text(folder: Path) -> None:
    for i in range(4):
        write_png(folder / f"a{i}.png", np.full((8, 8), 40 * i, np.uint8))
    (folder / "notes.txt").write_text("not an image")


def _folder_broken_png(folder: Path) -> None:
    for i in range(4):
        write_png(folder / f"a{i}.png", np.full((8, 8), 40 * i, np.uint8))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


def _folder_mixed_sizes(folder: Path) -> None:
    for i in range(3):
        write_png(folder / f"a{i}.png", np.zeros((8, 8), np.uint8))
    write_png(folder / "b.png", np.zeros((10, 12), np.uint8))


def _folder_mixed_channels(folder: Path) -> None:
    for i in range(3):
        write_png(folder / f"a{i}.png", np.zeros((8, 8), np.uint8))
    write_png(folder / "b.png", np.zeros((8, 8, 3), np.uint8))


def _folder_empty(folder: Path) -> None:
    return None


def _folder_empty_class(folder: Path) -> None:
    (folder / "cats").mkdir()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_folder_with_text, ("notes.txt", "not an image")),
        (_folder_broken_png, ("broken.png",)),
        (_folder_mixed_sizes, ("differ in size", "b.png", "10x12")),
        (_folder_mixed_channels, ("channels", "b.png")),
        (_folder_empty, ("no images", "empty")),
        (_folder_empty_class, ("no images", "cats")),
    ],
    ids=["text-file", "broken-png", "mixed-sizes", "mixed-channels", "empty", "empty-class-folder"],
)
def test_bad_image_folder_dataset(tmp_path, capsys, make, words):
    folder = tmp_path / "imgs"
    folder.mkdir()
    make(folder)
    before = snapshot(folder)
    run = tmp_path / "run"
    assert_fails(capsys, ["train", "--dataset", folder, "--epochs", "1", "--quiet", "--out", run], *words)
    assert not run.exists()
    assert snapshot(folder) == before


BAD_ARRAYS = {
    "nan": (lambda: np.where(np.eye(8)[None] > 0, np.nan, 0.5).repeat(10, 0).astype(np.float32), ("NaN",)),
    "inf": (lambda: np.pad(np.full((9, 8, 8), 0.5), ((0, 1), (0, 0), (0, 0)), constant_values=np.inf),
            ("infinite",)),
    "rank-1": (lambda: np.linspace(0, 1, 64, dtype=np.float32), ("shape", "(64,)")),
    "rank-5": (lambda: np.zeros((10, 1, 1, 8, 8), np.float32), ("shape", "(10, 1, 1, 8, 8)")),
    "zero-rows": (lambda: np.zeros((0, 8, 8), np.float32), ("no images", "(0, 8, 8)")),
    "zero-rows-table": (lambda: np.zeros((0, 64), np.float32), ("empty",)),
    "out-of-range": (lambda: np.full((10, 8, 8), 255.0, np.float32), ("[0, 1]", "255")),
    "int64": (lambda: np.zeros((10, 8, 8), np.int64), ("int64",)),
}


@pytest.mark.parametrize("kind", list(BAD_ARRAYS))
def test_bad_npy_dataset(tmp_path, capsys, kind):
    make, words = BAD_ARRAYS[kind]
    path = tmp_path / "x.npy"
    np.save(path, make())
    run = tmp_path / "run"
    assert_fails(capsys, ["train", "--dataset", path, "--epochs", "1", "--quiet", "--out", run], *words)
    assert not run.exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [(lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), ("Python objects",)),
     (lambda p: (np.save(p, np.zeros((50, 8, 8), np.float32)), _truncate(p)), ("could not be read",))],
    ids=["pickle", "truncated"],
)
def test_unreadable_npy_dataset(tmp_path, capsys, content, words):
    path = tmp_path / "x.npy"
    content(path)
    run = tmp_path / "run"
    assert_fails(capsys, ["train", "--dataset", path, "--epochs", "1", "--quiet", "--out", run], "x.npy", *words)
    assert not run.exists()


@pytest.mark.parametrize("kind", ["nan", "rank-1", "rank-5", "zero-rows"])
def test_bad_npy_input_to_reconstruct(run_dir, tmp_path, capsys, kind):
    make, words = BAD_ARRAYS[kind]
    path = tmp_path / "x.npy"
    np.save(path, make())
    out = tmp_path / "rec.npy"
    out.write_bytes(b"keep me")
    before = snapshot(run_dir)
    assert_fails(capsys, ["reconstruct", run_dir, "--input", path, "--out", out], *words)
    assert out.read_bytes() == b"keep me"
    assert snapshot(run_dir) == before


def test_bad_inputs_to_reconstruct_and_denoise(run_dir, denoise_run, images_npy, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    _folder_with_text(folder)
    assert_fails(capsys, ["reconstruct", run_dir, "--input", folder, "--out", tmp_path / "r.npy"], "notes.txt")
    assert_fails(capsys, ["denoise", denoise_run, "--input", tmp_path / "nope.npy", "--out", tmp_path / "d"],
                 "nope.npy", "does not exist")
    path, _ = images_npy
    assert_fails(capsys, ["reconstruct", run_dir, "--input", path, "--out", tmp_path / "r.jpg"], "--out", ".png")
    assert_fails(capsys, ["denoise", denoise_run, "--input", path, "--add-noise", "blur", "--out",
                          tmp_path / "d.png"], "blur")
    assert not [p.name for p in tmp_path.iterdir() if p.name not in ("imgs", "x.npy")]


# -- bad input: tampered model folders ----------------------------------------------------------
def _invalid_json(run: Path) -> None:
    (run / "aekit.json").write_text('{"format": "aekit", "kind": ')


def _edit_json(**changes):
    def edit(run: Path) -> None:
        doc = read_json(run / "aekit.json")
        for key, value in changes.items():
            if key == "latent_dim":
                doc["model_config"]["latent_dim"] = value
            else:
                doc[key] = value
        (run / "aekit.json").write_text(json.dumps(doc))

    return edit


def _replace_weights(run: Path) -> None:
    tensors = load_file(str(run / "model.safetensors"))
    tensors = {k: v + 0.01 for k, v in tensors.items()}
    save_file(tensors, str(run / "model.safetensors"))


def _truncate_weights_no_sha(run: Path) -> None:
    _truncate(run / "model.safetensors")
    doc = read_json(run / "aekit.json")
    doc["weights"]["sha256"] = None
    (run / "aekit.json").write_text(json.dumps(doc))


def _delete_json(run: Path) -> None:
    (run / "aekit.json").unlink()


TAMPERS = {
    "invalid-json": (_invalid_json, ("aekit.json", "not valid JSON")),
    "model-config": (_edit_json(latent_dim=9), ("do not fit",)),
    "kind": (_edit_json(kind="embedder"), ("'embedder'", "not a 'model'")),
    "model-name": (_edit_json(model_name="vae_xl"), ("unknown model", "vae_xl")),
    "format-version": (_edit_json(format_version=99), ("format 99", "upgrade aekit")),
    "replaced-weights": (_replace_weights, ("model.safetensors", "sha256")),
    "truncated-weights": (_truncate_weights_no_sha, ("model.safetensors", "not a readable safetensors")),
    "no-aekit-json": (_delete_json, ("no aekit.json",)),
}


@pytest.mark.parametrize("command", ["evaluate", "reconstruct"])
@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampered_model_folder(run_dir, images_npy, tmp_path, capsys, tamper, command):
    run = copy_run(run_dir, tmp_path / "run")
    make, words = TAMPERS[tamper]
    make(run)
    before = snapshot(run)
    path, _ = images_npy
    extra = ["--input", path, "--out", tmp_path / "rec.npy"] if command == "reconstruct" else []
    assert_fails(capsys, [command, run, *extra], *words)
    assert snapshot(run) == before
    assert not (tmp_path / "rec.npy").exists()


def test_tampered_run_cannot_be_resumed(run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path / "run")
    doc = read_json(run / "aekit.json")
    doc["run"]["spec"]["latent_dim"] = 9  # the spec now builds a model the checkpoint does not fit
    (run / "aekit.json").write_text(json.dumps(doc))
    before = snapshot(run)
    assert_fails(capsys, ["train", "--resume", run, "--quiet"], "checkpoint", "does not match")
    assert snapshot(run) == before


def test_loading_a_run_as_the_wrong_kind(run_dir):
    with pytest.raises(ModelFileError, match="not a 'embedder'"):
        aekit.load(run_dir, kind="embedder")
    assert isinstance(aekit.load(run_dir, kind="model"), torch.nn.Module)


def test_saved_task_and_plain_model_in_the_cli(tmp_path, capsys, digits, images_npy):
    x = digits.x_train[:200].reshape(200, -1)
    emb = aekit.Embedder("dense_ae", latent_dim=4, epochs=1, seed=0).fit(x)
    aekit.save(emb, tmp_path / "emb")
    assert_fails(capsys, ["evaluate", tmp_path / "emb"], "not a run folder")
    path, _ = images_npy
    assert_fails(capsys, ["reconstruct", tmp_path / "emb", "--input", path, "--out", tmp_path / "r.npy"],
                 "'embedder'", "not a 'model'")
    assert_fails(capsys, ["train", "--resume", tmp_path / "emb", "--quiet"], "no checkpoint")
    # a plain saved model reconstructs, but is no run folder to evaluate
    model = aekit.create_model("dense_ae", input_shape=(1, 8, 8), latent_dim=4)
    aekit.save(model, tmp_path / "model")
    assert_fails(capsys, ["evaluate", tmp_path / "model"], "not a run folder")
    code, text = run_cli(capsys, "reconstruct", tmp_path / "model", "--input", path, "--out", tmp_path / "r.npy")
    assert code == 0, text
    assert np.load(tmp_path / "r.npy").shape == (20, 1, 8, 8)


def test_not_a_model_folder(tmp_path, capsys, images_npy):
    path, _ = images_npy
    assert_fails(capsys, ["evaluate", tmp_path / "nowhere"], "does not exist")
    (tmp_path / "empty").mkdir()
    assert_fails(capsys, ["reconstruct", tmp_path / "empty", "--input", path], "no aekit.json")


# -- bad input: existing run folders ------------------------------------------------------------
def test_existing_run_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("do not delete")
    before = snapshot(run)
    assert_fails(capsys, ["train", "--epochs", "1", *TINY, "--out", run], "already exists", "--overwrite")
    assert snapshot(run) == before


def test_existing_run_kept_when_overwrite_fails(run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path / "run")
    before = snapshot(run)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((20, 8, 8), np.nan, np.float32))
    assert_fails(capsys, ["train", "--dataset", bad, "--epochs", "1", "--quiet", "--overwrite", "--out", run],
                 "NaN")
    assert_fails(capsys, ["train", "--lr", "-1", "--epochs", "1", *TINY, "--overwrite", "--out", run], "lr")
    assert_fails(capsys, ["train", "--model", "nope", *TINY, "--overwrite", "--out", run], "unknown model")
    assert snapshot(run) == before


def test_existing_run_kept_when_overwrite_fails_on_device(run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path / "run")
    before = snapshot(run)
    assert_fails(capsys, ["train", "--device", "tpu", "--epochs", "1", *TINY, "--overwrite", "--out", run],
                 "device", "tpu")
    assert snapshot(run) == before


def test_overwrite_replaces_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "old.txt").write_text("old")
    code, out = run_cli(capsys, "train", "--latent-dim", "4", "--epochs", "1", *TINY, "--overwrite", "--out", run)
    assert code == 0, out
    assert not (run / "old.txt").exists() and (run / "model.safetensors").is_file()


def test_out_is_an_existing_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert_fails(capsys, ["train", *TINY, "--out", target], "already exists")
    assert_fails(capsys, ["train", *TINY, "--overwrite", "--out", target], "not a folder")
    assert target.read_text() == "x"


# -- bad input: hyper-parameters ----------------------------------------------------------------
BAD_OPTIONS = [
    pytest.param(["--lr", "-1"], ("lr", "-1"), id="lr-negative"),
    pytest.param(["--lr", "0"], ("lr",), id="lr-zero"),
    pytest.param(["--lr", "nan"], ("lr", "nan"), id="lr-nan"),
    pytest.param(["--epochs", "0"], ("--epochs",), id="epochs-0"),
    pytest.param(["--batch-size", "0"], ("--batch-size",), id="batch-size-0"),
    pytest.param(["--val-fraction", "1.5"], ("val-fraction", "1.5"), id="val-fraction-1.5"),
    pytest.param(["--val-fraction", "-0.1"], ("val-fraction",), id="val-fraction-negative"),
    pytest.param(["--model", "nope"], ("unknown model", "nope", "dense_ae"), id="unknown-model"),
    pytest.param(["--preset", "nope"], ("preset", "nope", "tutorial"), id="unknown-preset"),
    pytest.param(["--model", "conv_ae", "--preset", "hinton2006"], ("conv_ae", "hinton2006"), id="preset-of-other"),
    pytest.param(["--denoise", "blur"], ("unknown corruption", "blur"), id="denoise-unknown"),
    pytest.param(["--denoise", "gaussian:abc"], ("gaussian:abc",), id="denoise-not-a-number"),
    pytest.param(["--denoise", "mask:1.5"], ("mask", "1.5"), id="denoise-out-of-range"),
    pytest.param(["--sparsity", "l2:1"], ("sparsity", "l2:1"), id="sparsity-unknown"),
    pytest.param(["--sparsity", "l1"], ("sparsity", "l1:WEIGHT"), id="sparsity-no-weight"),
    pytest.param(["--sparsity", "l1:-1"], ("sparsity", "-1"), id="sparsity-negative"),
    pytest.param(["--binarize", "1.5"], ("binarize", "1.5"), id="binarize-1.5"),
    pytest.param(["--latent-dim", "0"], ("latent_dim",), id="latent-dim-0"),
    pytest.param(["--threads", "0"], ("threads",), id="threads-0"),
    pytest.param(["--patience", "0"], ("patience",), id="patience-0"),
    pytest.param(["--n-train", "-5"], ("n_train", "-5"), id="n-train-negative"),
    pytest.param(["--n-train", "0"], ("training samples",), id="n-train-0"),
    pytest.param(["--device", "tpu"], ("device", "tpu"), id="device"),
    pytest.param(["--precision", "fp8"], ("precision", "fp8"), id="precision"),
    pytest.param(["--dataset", "nosuchset"], ("unknown dataset", "nosuchset"), id="dataset-unknown"),
    pytest.param(["--dataset", "missing/dir"], ("missing/dir", "does not exist"), id="dataset-missing"),
    pytest.param(["--no-such-option"], ("--no-such-option",), id="unknown-option"),
]


@pytest.mark.parametrize(("options", "words"), BAD_OPTIONS)
def test_bad_hyper_parameters(tmp_path, capsys, options, words):
    run = tmp_path / "run"
    args = ["train", "--epochs", "1", "--n-train", "200", "--quiet", "--out", run, *options]
    assert_fails(capsys, args, *words)
    assert not run.exists()


# -- bad input: resume --------------------------------------------------------------------------
def test_resume_without_checkpoint(run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path / "run")
    (run / "checkpoint.safetensors").unlink()
    before = snapshot(run)
    assert_fails(capsys, ["train", "--resume", run, "--quiet"], "no checkpoint.safetensors")
    assert snapshot(run) == before
    assert_fails(capsys, ["train", "--resume", tmp_path / "nowhere", "--quiet"], "does not exist")


def test_resume_with_damaged_checkpoint(run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path / "run")
    (run / "checkpoint.safetensors").write_bytes(b"\x00" * 100)
    before = snapshot(run)
    assert_fails(capsys, ["train", "--resume", run, "--quiet"], "checkpoint", "damaged")
    assert snapshot(run) == before


def _npy_16x16(tmp_path: Path) -> Path:
    path = tmp_path / "big.npy"
    np.save(path, np.random.default_rng(0).random((40, 16, 16), dtype=np.float32))
    return path


def test_resume_with_other_data_shape_is_refused(run_dir, tmp_path, capsys, monkeypatch):
    """The ResumeError itself, with sys.argv set as in a real `aekit ...` process."""
    run = copy_run(run_dir, tmp_path / "run")
    before = snapshot(run)
    argv = ["train", "--resume", str(run), "--dataset", str(_npy_16x16(tmp_path)), "--quiet"]
    monkeypatch.setattr(sys, "argv", ["aekit", *argv])
    assert_fails(capsys, argv, "cannot resume", "(1, 8, 8)", "(1, 16, 16)")
    assert snapshot(run) == before


def test_resume_with_other_data_shape_is_refused_in_process(run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path / "run")
    before = snapshot(run)
    argv = ["train", "--resume", run, "--dataset", _npy_16x16(tmp_path), "--quiet"]
    assert_fails(capsys, argv, "cannot resume", "(1, 16, 16)")
    assert snapshot(run) == before


def test_resume_extends_a_finished_run_with_more_epochs(run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path / "run")
    code, out = run_cli(capsys, "train", "--resume", run, "--epochs", "3", "--quiet")
    assert code == 0, out
    assert history_epochs(run) == [1, 2, 3]
    assert read_json(run / "metrics.json")["epochs"] == 3


def test_reconstruct_applies_the_runs_binarisation(tmp_path, capsys):
    """A run trained with --binarize sees user images binarised the same way."""
    import numpy as np

    from aekit.cli.main import main as cli_main

    run = tmp_path / "run"
    assert cli_main(["train", "--dataset", "digits", "--epochs", "1", "--n-train", "100", "--binarize", "0.5",
                     "--model", "dense_ae", "--latent-dim", "4", "--out", str(run), "--quiet"]) == 0
    rng = np.random.default_rng(0)
    x = rng.uniform(0.3, 0.7, size=(3, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli_main(["reconstruct", str(run), "--input", str(tmp_path / "x.npy"),
                     "--out", str(tmp_path / "r.npy")]) == 0
    model = aekit.load(run)
    import torch

    want = model.reconstruct(torch.from_numpy((x >= 0.5).astype(np.float32))).detach().numpy()
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), want, rtol=1e-5, atol=1e-6)
