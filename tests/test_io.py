"""save/load: safetensors + JSON, atomic, refusing to overwrite, failing clearly on bad files."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import aekit
from aekit.errors import ConfigError, ModelFileError, RunExistsError


@pytest.fixture
def model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return aekit.create_model("conv_ae", "tutorial", input_shape=(1, 8, 8), latent_dim=6)


def test_round_trip_rebuilds_the_same_model(model, tmp_path):
    path = aekit.save(model, tmp_path / "m")
    doc = json.loads((path / "aekit.json").read_text())
    assert doc["kind"] == "model" and doc["model_name"] == "conv_ae"
    assert doc["model_config"]["latent_dim"] == 6 and len(doc["weights"]["sha256"]) == 64
    loaded = aekit.load(path)
    x = torch.rand(5, 1, 8, 8)
    assert torch.allclose(loaded.reconstruct(x), model.eval().reconstruct(x))
    assert not any(p.suffix == ".pkl" for p in path.iterdir())


def test_refuses_to_overwrite_and_loses_nothing(model, tmp_path):
    path = aekit.save(model, tmp_path / "m")
    before = (path / "model.safetensors").read_bytes()
    with pytest.raises(RunExistsError, match="overwrite"):
        aekit.save(model, path)
    assert (path / "model.safetensors").read_bytes() == before
    with pytest.raises(ConfigError):  # not saveable: the old folder must survive
        aekit.save(torch.nn.Linear(2, 2), path, overwrite=True)
    assert (path / "model.safetensors").read_bytes() == before
    aekit.save(model, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temp folders left


def _edit(path, fn):
    doc = json.loads((path / "aekit.json").read_text())
    fn(doc)
    (path / "aekit.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "tamper,match",
    [
        (lambda d: d["model_config"].update(channels=[4, 4]), "do not fit"),
        (lambda d: d.update(kind="hologram_maker"), "unknown kind"),
        (lambda d: d.update(model_name="vae_xl"), "unknown model"),
        (lambda d: d.update(format_version=99), "upgrade aekit"),
        (lambda d: d.update(format="keras"), "not an aekit file"),
        (lambda d: d["model_config"].update(kernel_size=4), "invalid model config"),
        (lambda d: d.pop("model_config"), "model_config"),
    ],
)
def test_tampered_aekit_json_fails_clearly(model, tmp_path, tamper, match):
    path = aekit.save(model, tmp_path / "m")
    _edit(path, tamper)
    with pytest.raises(ModelFileError, match=match):
        aekit.load(path)


def test_invalid_json_and_missing_files(model, tmp_path):
    path = aekit.save(model, tmp_path / "m")
    (path / "aekit.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        aekit.load(path)
    with pytest.raises(ModelFileError, match="does not exist"):
        aekit.load(tmp_path / "nowhere")


def test_replaced_weights_are_detected(model, tmp_path):
    path = aekit.save(model, tmp_path / "m")
    other = {f"model.{k}": torch.zeros_like(v) for k, v in model.state_dict().items()}
    save_file(other, str(path / "model.safetensors"))
    with pytest.raises(ModelFileError, match="sha256"):
        aekit.load(path)


def test_weights_from_another_model_kind(model, tmp_path):
    path = aekit.save(model, tmp_path / "m")
    dense = aekit.create_model("dense_ae", input_shape=(1, 8, 8))
    dense_path = aekit.save(dense, tmp_path / "d")
    (path / "model.safetensors").write_bytes((dense_path / "model.safetensors").read_bytes())
    _edit(path, lambda d: d["weights"].update(sha256=None))
    with pytest.raises(ModelFileError, match="do not fit"):
        aekit.load(path)


def test_wrong_kind_is_refused(model, tmp_path, digits):
    emb = aekit.Embedder(epochs=1, latent_dim=3).fit(digits.x_train[:64].reshape(64, -1))
    path = aekit.save(emb, tmp_path / "e")
    with pytest.raises(ModelFileError, match="not a 'model'"):
        aekit.load(path, kind="model")
    loaded = aekit.load(path, kind="embedder")
    X = digits.x_test[:5].reshape(5, -1)
    np.testing.assert_allclose(loaded.transform(X), emb.transform(X), rtol=1e-5, atol=1e-6)


def test_loading_runs_no_code(model, tmp_path):
    """The format has no pickle: a file holding a pickle payload is rejected, not executed."""
    path = aekit.save(model, tmp_path / "m")
    (path / "model.safetensors").write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n" * 4)
    _edit(path, lambda d: d["weights"].update(sha256=None))
    with pytest.raises(ModelFileError, match="safetensors"):
        aekit.load(path)
