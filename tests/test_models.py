"""Every registered model: forward shape, finite output, gradients to every parameter, presets."""

from __future__ import annotations

import warnings

import pytest
import torch

import aekit
from aekit.errors import ConfigError, UnknownNameError
from aekit.models import Sparsity, create_model, list_models, list_presets, model_class

SHAPES = {
    "dense_ae": [(1, 8, 8), (13,)],
    "conv_ae": [(1, 8, 8), (3, 10, 7)],
    "conv1d_ae": [(37, 1), (16, 3)],  # (T, C) windows
    "lstm_ae": [(37, 1), (16, 3)],
}


def _cases():
    for name in list_models():
        if getattr(model_class(name), "input_kind", None) in ("tokens", "video"):
            continue  # token-id models (seq2seq_ae, recursive_ae): the same checks in test_text.py
        for preset in [None, *list_presets(name)]:
            for shape in SHAPES.get(name, [(1, 8, 8)]):
                yield name, preset, shape


@pytest.mark.parametrize("name,preset,shape", list(_cases()))
def test_forward_backward(name, preset, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = create_model(name, preset, input_shape=shape)
    x = torch.rand(4, *shape)
    out = model(x)
    assert out.logits.shape == x.shape
    assert torch.isfinite(out.logits).all()
    if model.config.output == "sigmoid":  # window models default to linear output (standardised data)
        assert model.reconstruct(x).min() >= 0 and model.reconstruct(x).max() <= 1
    terms = model.loss((x, x))
    assert set(terms) >= {"loss", "recon"}
    terms["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no/invalid gradient for {missing}"
    assert model.encode(x).shape[1:] == model.code_shape


@pytest.mark.parametrize(
    "name,preset,n_params",
    [("dense_ae", "tutorial", 210_130), ("conv_ae", "tutorial", 3_217), ("conv_ae", "wide", 74_497)],
)
def test_tutorial_parameter_counts(name, preset, n_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = create_model(name, preset)
    assert sum(p.numel() for p in model.parameters()) == n_params


def test_presets_shape_the_code():
    assert create_model("dense_ae", "tutorial").code_shape == (2,)
    assert create_model("dense_ae", "hinton2006").code_shape == (30,)
    assert create_model("conv_ae", "tutorial").code_shape == (8, 7, 7)
    assert create_model("conv_ae", "tutorial", latent_dim=16).code_shape == (16,)
    # the tutorial's code has a ReLU; Hinton's is linear
    assert isinstance(create_model("dense_ae", "tutorial").code_act, torch.nn.ReLU)
    assert isinstance(create_model("dense_ae", "hinton2006").code_act, torch.nn.Identity)


def test_tied_weights_share_the_encoder():
    tied = create_model("dense_ae", "tutorial", tied=True)
    untied = create_model("dense_ae", "tutorial")
    assert sum(p.numel() for p in tied.parameters()) < sum(p.numel() for p in untied.parameters())
    x = torch.rand(3, 1, 28, 28)
    tied.loss((x, x))["loss"].backward()
    assert tied.enc[0].weight.grad is not None


def test_unknown_names_fail_with_the_list():
    with pytest.raises(UnknownNameError, match="dense_ae"):
        create_model("densee_ae")
    with pytest.raises(UnknownNameError, match="tutorial"):
        create_model("dense_ae", "nope")
    with pytest.raises(ConfigError, match="latent_dimm"):
        create_model("dense_ae", latent_dimm=3)


@pytest.mark.parametrize(
    "kwargs", [dict(latent_dim=0), dict(hidden=(0,)), dict(output="tanh"), dict(dropout=1.0),
               dict(activation="swish"), dict(loss="bce", output="linear")]
)
def test_bad_config_is_a_clear_error(kwargs):
    with pytest.raises(ConfigError):
        create_model("dense_ae", **kwargs)


def test_overcomplete_code_warns_unless_sparse():
    with pytest.warns(UserWarning, match="not smaller than the input"):
        create_model("dense_ae", input_shape=(8,), hidden=(16,), latent_dim=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_model("dense_ae", input_shape=(8,), hidden=(16,), latent_dim=10, sparsity="l1:1e-3")


def test_sparsity_penalties():
    z = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    assert Sparsity.parse("l1:0.5")(z).item() == pytest.approx(0.5 * (3 + 3) / 2)
    kl = Sparsity.parse("kl:0.05:1.0")
    assert kl(torch.full((4, 3), 0.05)).item() == pytest.approx(0.0, abs=1e-6)
    assert kl(torch.full((4, 3), 0.5)).item() > 0.1
    for bad in ["l1", "l2:1", "kl:2:1", "l1:-1", "l1:abc"]:
        with pytest.raises(ConfigError):
            Sparsity.parse(bad)
    m = create_model("dense_ae", input_shape=(16,), hidden=(32,), latent_dim=64, sparsity="l1:1e-2")
    x = torch.rand(5, 16)
    terms = m.loss((x, x))
    assert terms["loss"].item() == pytest.approx((terms["recon"] + terms["sparsity"]).item())


def test_mse_models_for_tables():
    m = create_model("dense_ae", input_shape=(5,), hidden=(8,), latent_dim=2, output="linear")
    x = torch.randn(6, 5)
    assert m.recon_kind == "mse"
    assert m.loss((x, x))["recon"].item() == pytest.approx(((m.reconstruct(x) - x) ** 2).mean().item(), rel=1e-5)


def test_public_api_exports():
    assert {"dense_ae", "conv_ae"} <= set(aekit.list_models())
    assert aekit.list_presets("conv_ae") == ["tutorial", "wide"]
