"""Time-series window autoencoders: conv1d_ae and lstm_ae on (T, C) windows."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

import aekit
from aekit import TrainConfig, Trainer
from aekit.errors import ConfigError
from aekit.models import (
    Conv1dAE,
    RecurrentAE,
    create_model,
    list_presets,
    load_weights,
    model_from_meta,
    model_meta,
)

TINY = {
    "conv1d_ae": dict(channels=(4, 3), kernel_size=3),
    "lstm_ae": dict(hidden=8, latent_dim=4),
}
VARIANTS = [
    ("conv1d_ae", {}),
    ("conv1d_ae", dict(latent_dim=5, batch_norm=True, activation="elu")),
    ("conv1d_ae", dict(channels=(4, 4, 2), dropout=0.1)),
    ("lstm_ae", {}),
    ("lstm_ae", dict(cell="gru", num_layers=2)),
    ("lstm_ae", dict(reverse=True)),
    ("lstm_ae", dict(decoder_input="teacher", reverse=True)),
]


def _model(name, shape, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small windows make over-complete codes
        return create_model(name, input_shape=shape, **{**TINY[name], **kw})


def _sines(n, t, c, seed=0, freq=(0.15, 0.4)):
    """Windows of sines with random frequency, phase and amplitude per channel: (n, t, c)."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.arange(t, dtype=torch.float32).view(1, t, 1)
    freq = freq[0] + (freq[1] - freq[0]) * torch.rand(n, 1, c, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, c, generator=g)
    amp = 0.8 + 0.4 * torch.rand(n, 1, c, generator=g)
    return amp * torch.sin(freq * steps + phase)


def _fit(model, x, steps, lr=1e-2, batch=64):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for i in range(steps):
        xb = x[(i * batch) % len(x):][:batch]
        loss = model.loss((xb, xb))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name,kw", VARIANTS)
@pytest.mark.parametrize("shape", [(37, 1), (50, 3), (64, 1)])
def test_forward_backward_any_window(name, kw, shape):
    model = _model(name, shape, **kw)
    x = torch.randn(5, *shape)
    out = model(x)
    assert out.logits.shape == x.shape
    assert torch.isfinite(out.logits).all()
    assert out.z.shape[1:] == model.code_shape
    terms = model.loss((x, x))
    assert set(terms) == {"loss", "recon"}
    terms["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no/invalid gradient for {missing}"
    model.eval()
    with torch.no_grad():
        r = model.reconstruct(x)
        assert r.shape == x.shape
        assert torch.equal(r, model.reconstruct(x))  # deterministic at inference
    # the default output is linear: reconstructions are not squashed into [0, 1]
    assert model.recon_kind == "mse" and torch.equal(model.activate(out.logits), out.logits)


def test_code_shapes():
    assert _model("conv1d_ae", (50, 3)).code_shape == (3, 13)  # 50 -> padded 52 -> / 4
    assert _model("conv1d_ae", (64, 1)).code_shape == (3, 16)
    assert _model("conv1d_ae", (37, 2), latent_dim=6).code_shape == (6,)
    assert _model("conv1d_ae", (50, 3), channels=(4, 4, 2)).code_dim == 2 * 7  # 50 -> 56 -> / 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert create_model("conv1d_ae", input_shape=(64, 8)).code_shape == (16, 16)
        assert create_model("conv1d_ae", "small", input_shape=(64, 8)).code_shape == (8, 16)
        assert create_model("conv1d_ae", "bottleneck", input_shape=(64, 8)).code_shape == (16,)
    assert create_model("lstm_ae", input_shape=(64, 8)).code_shape == (16,)
    assert _model("lstm_ae", (37, 3), latent_dim=7).code_dim == 7


def test_cells_and_presets():
    lstm, gru = _model("lstm_ae", (20, 2)), _model("lstm_ae", (20, 2), cell="gru")
    assert isinstance(lstm.encoder_rnn, torch.nn.LSTM) and isinstance(lstm.decoder_rnn, torch.nn.LSTM)
    assert isinstance(gru.encoder_rnn, torch.nn.GRU) and isinstance(gru.decoder_rnn, torch.nn.GRU)
    assert isinstance(create_model("lstm_ae", "gru").encoder_rnn, torch.nn.GRU)
    assert set(list_presets("lstm_ae")) >= {"gru", "small"}
    assert "small" in list_presets("conv1d_ae")
    assert isinstance(_model("conv1d_ae", (20, 2)), Conv1dAE) and isinstance(lstm, RecurrentAE)


def test_reverse_decodes_back_to_front():
    fwd = _model("lstm_ae", (23, 2))
    rev = _model("lstm_ae", (23, 2), reverse=True)
    rev.load_state_dict(fwd.state_dict())
    z = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.allclose(rev.decode(z), fwd.decode(z).flip(1))


@pytest.mark.parametrize("reverse", [False, True])
def test_teacher_forcing_matches_the_autoregressive_loop(reverse):
    """Fed its own previous outputs, the teacher-forced (batched) path equals inference's loop."""
    model = _model("lstm_ae", (17, 2), decoder_input="teacher", reverse=reverse, num_layers=2)
    x = torch.randn(4, 17, 2)
    with torch.no_grad():
        model.eval()
        z = model.encode(x)
        free = model.decode(z)
        model.train()
        forced = model.decode_teacher_forced(z, model.activate(free))
        assert torch.allclose(forced, free, atol=1e-5)
        # in training mode forward() teacher-forces with the window itself, so it differs
        assert not torch.allclose(model(x).logits, free, atol=1e-3)


@pytest.mark.parametrize(
    "name,kw,lr",
    [("conv1d_ae", dict(channels=(8, 4), kernel_size=5), 1e-2), ("lstm_ae", dict(hidden=16), 3e-2),
     ("lstm_ae", dict(hidden=16, decoder_input="teacher"), 3e-2)],
)
def test_loss_decreases_on_sines(name, kw, lr):
    x = _sines(256, 32, 2, freq=(0.3, 0.35))
    losses = _fit(_model(name, (32, 2), **kw), x, 70, lr=lr)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_trainer_fits_windows():
    x = _sines(128, 24, 3)
    model = _model("conv1d_ae", (24, 3))
    h = Trainer(TrainConfig(epochs=3, batch_size=32, lr=1e-2, progress=False)).fit(model, x, x[:32])
    assert len(h) == 3 and h[-1]["train_loss"] < h[0]["train_loss"]


@pytest.mark.parametrize("name", ["conv1d_ae", "lstm_ae"])
def test_spikes_reconstruct_worse_than_normal_windows(name):
    """The anomaly-detection use: a trained model reconstructs injected spikes badly."""
    t, c, freq = 32, 1, (0.3, 0.35)
    x = _sines(512, t, c, freq=freq)
    kw = dict(channels=(8, 4), kernel_size=5, latent_dim=8) if name == "conv1d_ae" else dict(hidden=16)
    model = _model(name, (t, c), **kw)
    _fit(model, x, 120, lr=3e-2 if name == "lstm_ae" else 1e-2)
    normal = _sines(64, t, c, seed=1, freq=freq)
    spiked = normal.clone()
    where = torch.randint(4, t - 4, (64,), generator=torch.Generator().manual_seed(2))
    spiked[torch.arange(64), where, 0] += 4.0
    model.eval()
    with torch.inference_mode():
        err_normal = (model.reconstruct(normal) - normal).pow(2).mean((1, 2))
        err_spiked = (model.reconstruct(spiked) - spiked).pow(2).mean((1, 2))
    # a spike of 4 adds ~16 / 32 = 0.5 to a window's mean squared error if not reproduced; the
    # trained models reach ~0.01 (conv) and ~0.02 (lstm) on normal windows (ratios 20-100 over seeds)
    assert err_spiked.median() > 5 * err_normal.median()
    assert (err_spiked > err_normal).float().mean() > 0.95


@pytest.mark.parametrize("name,kw", [("conv1d_ae", {}), ("conv1d_ae", dict(latent_dim=4)), ("lstm_ae", {}),
                                     ("lstm_ae", dict(decoder_input="teacher", cell="gru"))])
def test_registry_round_trip(name, kw, tmp_path):
    model = _model(name, (50, 3), **kw).eval()
    x = torch.randn(4, 50, 3)
    doc = json.loads(json.dumps(model_meta(model)))
    assert doc["model_name"] == name and doc["model_config"]["input_shape"] == [50, 3]
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    again = load_weights(model_from_meta(doc, "here"), tensors, "here")
    assert type(again) is type(model) and again.config == model.config
    with torch.no_grad():
        assert torch.equal(again.reconstruct(x), model.reconstruct(x))
    aekit.save(model, tmp_path / "m")
    loaded = aekit.load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))


def test_create_model_defaults():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = create_model("conv1d_ae", input_shape=(50, 3))
    assert model.config.channels == (32, 16) and model.config.kernel_size == 7 and model.config.output == "linear"
    assert model(torch.randn(2, 50, 3)).logits.shape == (2, 50, 3)


@pytest.mark.parametrize(
    "name,kw,match",
    [
        ("conv1d_ae", dict(input_shape=(1, 8, 8)), r"\(T, C\)"),
        ("conv1d_ae", dict(input_shape=(0, 3)), "positive"),
        ("conv1d_ae", dict(kernel_size=4), "odd"),
        ("conv1d_ae", dict(channels=()), "channels"),
        ("conv1d_ae", dict(channels=(8, 0)), "channels"),
        ("conv1d_ae", dict(latent_dim=0), "latent_dim"),
        ("conv1d_ae", dict(dropout=1.0), "dropout"),
        ("conv1d_ae", dict(activation="swish"), "activation"),
        ("conv1d_ae", dict(output="tanh"), "output"),
        ("conv1d_ae", dict(loss="bce"), "sigmoid"),
        ("lstm_ae", dict(input_shape=(64,)), r"\(T, C\)"),
        ("lstm_ae", dict(cell="rnn"), "cell"),
        ("lstm_ae", dict(hidden=0), "hidden"),
        ("lstm_ae", dict(num_layers=0), "num_layers"),
        ("lstm_ae", dict(latent_dim=0), "latent_dim"),
        ("lstm_ae", dict(decoder_input="previous"), "decoder_input"),
        ("lstm_ae", dict(code_activation="swish"), "activation"),
        ("lstm_ae", dict(sparsity="l2:1"), "sparsity"),
    ],
)
def test_bad_config_is_a_clear_error(name, kw, match):
    with pytest.raises(ConfigError, match=match):
        create_model(name, **kw)


@pytest.mark.parametrize("name", ["conv1d_ae", "lstm_ae"])
def test_sparsity(name):
    model = _model(name, (30, 2), sparsity="l1:1e-2")
    x = torch.randn(6, 30, 2)
    terms = model.loss((x, x))
    assert set(terms) == {"loss", "recon", "sparsity"}
    assert terms["sparsity"].item() == pytest.approx(1e-2 * model.encode(x).flatten(1).abs().sum(1).mean().item(),
                                                     rel=1e-5)
    assert terms["loss"].item() == pytest.approx((terms["recon"] + terms["sparsity"]).item())


def test_overcomplete_code_warns():
    with pytest.warns(UserWarning, match="not smaller than the input"):
        create_model("conv1d_ae", input_shape=(64, 1))  # code (16, 16) for 64 values
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_model("conv1d_ae", input_shape=(64, 8))
        create_model("conv1d_ae", "bottleneck", input_shape=(64, 1))
        create_model("lstm_ae", input_shape=(64, 1))
