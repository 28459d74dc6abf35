"""The conv autoencoder's fast CPU ops equal the plain ones: outputs and gradients."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aekit.models import create_model
from aekit.models._fast_ops import (
    FastSequential,
    upsample2x_conv3x3,
    upsample_conv_transpose_weight,
    upsample_subpixel_weight,
)

CL = torch.channels_last


def _plain(x, w, b):
    return F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), w, b, padding=1)


def _grads(fn, x, w, b, g):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    b = b.detach().requires_grad_() if b is not None else None
    y = fn(x, w, b)
    y.backward(g)
    return y.detach(), x.grad, w.grad, (b.grad if b is not None else None)


def _close(a, b, tol):
    scale = max(1.0, float(b.abs().max()))
    torch.testing.assert_close(a, b, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("method", ["transpose", "subpixel"])
@pytest.mark.parametrize(
    "c_in,c_out,h,w",
    [(1, 1, 5, 7), (3, 1, 7, 7), (3, 4, 4, 3), (8, 16, 7, 7), (16, 1, 14, 14), (1, 8, 1, 1)],
)
@pytest.mark.parametrize("bias", [True, False])
def test_upsample_conv_exact_in_float64(method, c_in, c_out, h, w, bias):
    """The decomposition is exact: float64 agrees to rounding (outputs and all gradients)."""
    x = torch.randn(3, c_in, h, w, dtype=torch.float64)
    wt = torch.randn(c_out, c_in, 3, 3, dtype=torch.float64)
    b = torch.randn(c_out, dtype=torch.float64) if bias else None
    g = torch.randn(3, c_out, 2 * h, 2 * w, dtype=torch.float64)
    ref = _grads(_plain, x, wt, b, g)
    got = _grads(lambda *a: upsample2x_conv3x3(*a, method=method), x, wt, b, g)
    for r, o in zip(ref, got):
        if r is not None:
            _close(o, r, 1e-12)


@pytest.mark.parametrize("method", ["auto", "transpose", "subpixel"])
@pytest.mark.parametrize("c_in,c_out,h,w", [(1, 1, 9, 5), (3, 3, 7, 7), (16, 1, 14, 14), (32, 16, 7, 7)])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_upsample_conv_float32_onednn(method, c_in, c_out, h, w, layout):
    """float32 on the oneDNN kernels, both layouts: equal to ~1e-5 of the values' scale."""
    fmt = CL if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(4, c_in, h, w).contiguous(memory_format=fmt)
    wt = (torch.randn(c_out, c_in, 3, 3) * 0.3).contiguous(memory_format=fmt)
    b = torch.randn(c_out)
    g = torch.randn(4, c_out, 2 * h, 2 * w).contiguous(memory_format=fmt)
    ref = _grads(_plain, x, wt, b, g)
    got = _grads(lambda *a: upsample2x_conv3x3(*a, method=method), x, wt, b, g)
    for r, o in zip(ref, got):
        _close(o, r, 1e-5)


def test_derived_kernels_by_hand():
    w = torch.arange(9.0).view(1, 1, 3, 3)  # rows (0 1 2), (3 4 5), (6 7 8)
    k = upsample_conv_transpose_weight(w)[0, 0]
    col = torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])  # (w2, w1+w2, w0+w1, w0)
    torch.testing.assert_close(k, col @ w[0, 0] @ col.t())
    p = upsample_subpixel_weight(w).view(2, 2, 3, 3)  # (row phase, col phase, 3, 3)
    # output pixel (0, 0) of each block: rows (i-1, i) get (w0, w1+w2), the same for columns
    torch.testing.assert_close(p[0, 0], torch.tensor([[0.0, 1 + 2, 0], [3 + 6, 4 + 5 + 7 + 8, 0], [0, 0, 0]]))
    torch.testing.assert_close(p[1, 1], torch.tensor([[0.0, 0, 0], [0, 0 + 1 + 3 + 4, 2 + 5], [0, 6 + 7, 8]]))


def _model(preset=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(0)
        return create_model("conv_ae", preset, **kw)


def _set_fast(model, fast):
    for m in model.modules():
        if isinstance(m, FastSequential):
            m.fast = fast


def _loss_and_grads(model, x):
    model.zero_grad(set_to_none=True)
    loss = model.loss((x, x))["loss"]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "preset,kw,shape",
    [
        ("tutorial", {}, (1, 28, 28)),
        ("wide", {}, (1, 28, 28)),
        ("tutorial", {}, (3, 10, 7)),  # 3 channels, odd size (padded inside the model)
        (None, {"channels": (16, 32), "batch_norm": True}, (1, 12, 12)),
        (None, {"channels": (8,), "latent_dim": 5}, (1, 9, 9)),
        (None, {"channels": (8, 8), "kernel_size": 5}, (1, 8, 8)),  # no rewrite applies
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_model_fast_equals_plain(preset, kw, shape, channels_last):
    model = _model(preset, input_shape=shape, **kw)
    # binary inputs: many tied values inside the pooling windows
    x = (torch.rand(6, *shape) >= 0.5).float()
    if channels_last:
        model.to(memory_format=CL)
        x = x.contiguous(memory_format=CL)
    _set_fast(model, False)
    ref_loss, ref_grads = _loss_and_grads(model, x)
    _set_fast(model, True)
    loss, grads = _loss_and_grads(model, x)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for n, g in ref_grads.items():
        _close(grads[n], g, 1e-5)


def test_pool_relu_swap_is_exact_with_ties():
    """ReLU after the pooling: bit-identical outputs and gradients, ties included."""
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([0.5, 0.0, -0.5, 0.1]))  # flat regions tie at the bias
    seq = FastSequential(conv, nn.ReLU(), nn.MaxPool2d(2))
    x = (torch.rand(5, 1, 10, 10) >= 0.7).float()
    g = torch.randn(5, 4, 5, 5)
    out = {}
    for fast in (False, True):
        seq.fast = fast
        seq.zero_grad()
        y = seq(x)
        y.backward(g)
        out[fast] = (y.detach(), conv.weight.grad.clone(), conv.bias.grad.clone())
    for a, b in zip(out[False], out[True]):
        assert torch.equal(a, b)


def test_state_dict_layout_unchanged():
    model = _model("tutorial")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "encoder.0.weight": (16, 1, 3, 3), "encoder.0.bias": (16,),
        "encoder.3.weight": (8, 16, 3, 3), "encoder.3.bias": (8,),
        "decoder.0.weight": (8, 8, 3, 3), "decoder.0.bias": (8,),
        "decoder.3.weight": (16, 8, 3, 3), "decoder.3.bias": (16,),
        "decoder.6.weight": (1, 16, 3, 3), "decoder.6.bias": (1,),
    }
    # a plain nn.Sequential model with the same children loads it and computes the same
    plain_enc = nn.Sequential(*model.encoder)
    plain_dec = nn.Sequential(*model.decoder)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model.decoder(model.encoder(x)), plain_dec(plain_enc(x)), rtol=1e-5, atol=1e-5)


def test_hooks_see_every_module():
    model = _model("tutorial")
    seen = []
    for i, m in enumerate(model.decoder):
        m.register_forward_hook(lambda mod, inp, out, i=i: seen.append(i))
    model(torch.rand(2, 1, 28, 28))
    assert seen == list(range(len(model.decoder)))
