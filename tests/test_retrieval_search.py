"""ImageSearch and the index CLI on digits: correctness against brute force, save/load, bits, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from _cli_helpers import run_cli
from aekit.cli.main import console
from aekit.errors import AekitError, DataError, ModelFileError
from aekit.tasks.retrieval.search import ImageSearch


def _train(digits, **opts) -> torch.nn.Module:
    aekit.seed_everything(0)
    model = aekit.create_model("dense_ae", input_shape=(1, 8, 8), hidden=(64,), **opts)
    x = torch.from_numpy(digits.x_train)
    aekit.Trainer(aekit.TrainConfig(epochs=8, batch_size=64, threads=1, progress=False)).fit(model, x)
    return model.eval()


@pytest.fixture(scope="module")
def float_model(digits):
    return _train(digits, latent_dim=8, code_activation="linear")


@pytest.fixture(scope="module")
def bit_model(digits):
    return _train(digits, latent_dim=16, code_activation="sigmoid", code_noise=4.0)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory, digits):
    d = tmp_path_factory.mktemp("imgs")
    for i in range(30):
        Image.fromarray((digits.x_test[i, 0] * 255).astype(np.uint8)).save(d / f"img{i:02d}.png")
    return d


def brute_force(db: np.ndarray, q: np.ndarray, k: int, metric: str):
    if metric == "euclidean":
        d = np.sqrt(((q[:, None] - db[None]) ** 2).sum(-1))
    elif metric == "cosine":
        a = q / np.linalg.norm(q, axis=1, keepdims=True)
        b = db / np.linalg.norm(db, axis=1, keepdims=True)
        d = 1 - a @ b.T
    else:
        d = (q[:, None] != db[None]).sum(-1).astype(float)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, 1)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_query_matches_brute_force(metric, float_model, digits):
    s = ImageSearch(float_model, metric=metric).fit(digits.x_train)
    ids, dist = s.query(digits.x_test[:25], k=7)
    db, q = s.encode(digits.x_train), s.encode(digits.x_test[:25])
    order, want = brute_force(db, q, 7, metric)
    np.testing.assert_allclose(dist, want, rtol=1e-3, atol=1e-4)
    assert (ids == order).mean() > 0.97  # ties at float precision may swap
    self_ids, self_d = s.query(digits.x_train[:5], k=1)
    np.testing.assert_array_equal(self_ids[:, 0], np.arange(5))
    assert np.abs(self_d).max() < 1e-3


def test_codes_retrieve_the_same_digit_far_above_chance(float_model, digits):
    s = ImageSearch(float_model).fit(digits.x_train)
    ids, _ = s.query(digits.x_test, k=10)
    precision = (digits.y_train[ids] == digits.y_test[:, None]).mean()
    assert precision > 0.6, precision  # chance is 0.1


def test_hamming_bits_match_brute_force(bit_model, digits):
    s = ImageSearch(bit_model, metric="hamming").fit(digits.x_train)
    codes = s.encode(digits.x_train)
    assert codes.shape == (len(digits.x_train), 16) and set(np.unique(codes)) <= {0, 1}
    ids, dist = s.query(digits.x_test[:20], k=5)
    order, want = brute_force(codes, s.encode(digits.x_test[:20]), 5, "hamming")
    np.testing.assert_array_equal(dist, want)
    assert dist.dtype.kind in "fiu" and (dist == np.round(dist)).all()


def test_save_load_round_trip_and_fingerprint(float_model, bit_model, digits, tmp_path):
    s = ImageSearch(float_model).fit(digits.x_train[:300])
    s.save(tmp_path / "idx")
    doc = json.loads((tmp_path / "idx" / "aekit.json").read_text())
    assert doc["kind"] == "image_search" and len(doc["fitted"]["fingerprint"]) == 64
    back = aekit.load(tmp_path / "idx")
    assert isinstance(back, ImageSearch) and back.size == 300
    a, b = s.query(digits.x_test[:10], k=4), back.query(digits.x_test[:10], k=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    back.check_encoder(float_model)
    with pytest.raises(ModelFileError, match="another model"):
        back.check_encoder(bit_model)
    with pytest.raises(AekitError):
        s.save(tmp_path / "idx")  # refuses to overwrite


def test_folder_ids_are_paths_and_add_refuses_duplicates(float_model, image_dir):
    s = ImageSearch(float_model).fit(image_dir)
    assert s.size == 30
    ids, dist = s.query(image_dir / "img03.png", k=1)
    assert Path(ids[0, 0]) == (image_dir / "img03.png").resolve() and dist[0, 0] < 1e-3
    with pytest.raises(DataError, match="img0"):
        s.add(image_dir)
    assert s.size == 30


def test_fit_on_a_dataset_name_records_where_images_came_from(float_model, digits, tmp_path):
    from aekit.tasks.retrieval.sources import collection_labels

    s = ImageSearch(float_model).fit("digits", n=300)  # the training split by default
    assert s.size == 300 and s.collections_ == [
        {"kind": "dataset", "name": "digits", "split": "train", "offset": 0, "count": 300}]
    s.add("digits:test", n=50)  # integer ids continue after the first collection's
    assert s.size == 350 and s.collections_[1]["offset"] == 300
    ids, _ = s.query(digits.x_test[:3], k=1)
    assert ids[:, 0].tolist() == [300, 301, 302]  # the test images themselves, found exactly
    np.testing.assert_allclose(s.images(ids[:, 0]), digits.x_test[:3], atol=1e-6)
    np.testing.assert_allclose(s.images([[5]])[0, 0], digits.x_train[5], atol=1e-6)
    assert collection_labels(s, ids[:, 0]).tolist() == digits.y_test[:3].tolist()
    back = aekit.load(s.save(tmp_path / "idx"))  # the record travels with the index
    assert back.collections_ == s.collections_
    np.testing.assert_allclose(back.images([301]), digits.x_test[1:2], atol=1e-6)


def test_rgb_folder_for_a_colour_model(tmp_path):
    aekit.seed_everything(0)
    model = aekit.create_model("conv_ae", input_shape=(3, 16, 16), channels=(8,), latent_dim=8).eval()
    rng = np.random.default_rng(0)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for i in range(12):
        img = np.zeros((20, 24, 3), np.uint8) + np.array(colours[i % 3], np.uint8)
        img[rng.integers(0, 20, 30), rng.integers(0, 24, 30)] = 255
        Image.fromarray(img).save(tmp_path / f"c{i:02d}.jpg" if i % 2 else tmp_path / f"c{i:02d}.png")
    s = ImageSearch(model).fit(tmp_path)  # resized 20x24 -> 16x16, kept in colour
    assert s.size == 12 and s.images([str(tmp_path / "c04.png")]).shape == (1, 3, 16, 16)
    ids, dist = s.query(tmp_path / "c04.png", k=1)
    assert Path(ids[0, 0]).name == "c04.png" and dist[0, 0] < 1e-4
    with pytest.raises(DataError, match=r"\(3, 16, 16\)"):
        s.query(np.zeros((1, 1, 16, 16), np.float32), k=1)  # a grey array for a colour model: clear error


def test_bad_inputs(float_model, digits, tmp_path):
    s = ImageSearch(float_model).fit(digits.x_train[:50])
    with pytest.raises(DataError, match="resize"):
        s.query(np.zeros((2, 10, 10), np.float32))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        s.query(np.full((1, 1, 8, 8), 3.0, np.float32))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AekitError):
        ImageSearch(float_model).fit(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(AekitError, match="broken.png"):
        ImageSearch(float_model).fit(bad)
    with pytest.raises(AekitError, match="k"):
        s.query(digits.x_test[:1], k=500)
    with pytest.raises(AekitError, match="multiple of 8"):
        ImageSearch(_tiny_odd_code_model(), metric="hamming").fit(digits.x_train[:10])


def _tiny_odd_code_model():
    return aekit.create_model("dense_ae", input_shape=(1, 8, 8), hidden=(16,), latent_dim=5, code_activation="sigmoid")


# -- command line -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setattr(console, "width", 300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, float_model):
    d = tmp_path_factory.mktemp("run") / "model"
    aekit.save(float_model, d)
    return d


def test_cli_build_search_embed_map(run_dir, capsys, tmp_path, image_dir):
    code, text = run_cli(capsys, "index", "build", "--model", run_dir, "--images", "digits", "--out", tmp_path / "idx")
    assert code == 0, text
    assert "indexed 1,437 images" in text
    code, text = run_cli(capsys, "search", tmp_path / "idx", "--query", "digits", "--n", "4", "--k", "6",
                         "--out", tmp_path / "grid.png", "--json", tmp_path / "r.json")
    assert code == 0, text
    r = json.loads((tmp_path / "r.json").read_text())
    assert len(r["ids"]) == 4 and len(r["ids"][0]) == 6
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size[0] > 300
    code, text = run_cli(capsys, "search", tmp_path / "idx", "--query", image_dir / "img05.png", "--k", "3",
                         "--json", tmp_path / "one.json")
    assert code == 0, text
    one = json.loads((tmp_path / "one.json").read_text())
    assert one["queries"][0].endswith("img05.png") and len(one["ids"][0]) == 3
    code, text = run_cli(capsys, "embed", run_dir, "--images", image_dir, "--out", tmp_path / "codes.npy")
    assert code == 0, text
    assert np.load(tmp_path / "codes.npy").shape == (30, 8)
    assert len(json.loads((tmp_path / "codes.ids.json").read_text())) == 30
    code, text = run_cli(capsys, "map", run_dir, "--dataset", "digits", "--out", tmp_path / "map.png")
    assert code == 0, text
    assert (tmp_path / "map.png").exists()


def test_cli_add_is_all_or_nothing(run_dir, capsys, tmp_path, image_dir):
    idx = tmp_path / "idx"
    assert run_cli(capsys, "index", "build", "--model", run_dir, "--images", image_dir, "--out", idx)[0] == 0
    before = {p.name: p.read_bytes() for p in idx.iterdir()}
    code, text = run_cli(capsys, "index", "add", idx, "--images", image_dir)  # the same paths again
    assert code == 2 and "Traceback" not in text and "img0" in text
    assert {p.name: p.read_bytes() for p in idx.iterdir()} == before
    more = tmp_path / "more"
    more.mkdir()
    for p in sorted(image_dir.iterdir())[:20]:
        (more / f"new_{p.name}").write_bytes(p.read_bytes())
    code, text = run_cli(capsys, "index", "add", idx, "--images", more)
    assert code == 0, text
    assert "50 in all" in text


def test_cli_bits_need_a_binary_model(run_dir, capsys, tmp_path):
    code, text = run_cli(capsys, "index", "build", "--model", run_dir, "--images", "digits", "--bits", "64",
                         "--out", tmp_path / "idx")
    assert code == 2 and "--binary-code" in text
    assert not (tmp_path / "idx").exists()
