"""Faster CPU forms of the conv autoencoder's layer sequences: same function, same parameters.

Two exact rewrites, chosen per layer from measurements on CPU (oneDNN, channels-last, fp32;
``benchmarks/profile_speed.py`` profiles them):

* ``act -> MaxPool2d`` becomes ``MaxPool2d -> act`` for ReLU: ReLU is non-decreasing, so it
  commutes with a max, and it then runs on a quarter of the pixels. Gradients are identical too:
  positive values (and hence the pooling's arg-max, ties included) are unchanged by ReLU, and
  where the pooled value is <= 0 both orders give a zero gradient.
* ``Upsample(x2, nearest) -> Conv2d(3x3, same)`` becomes one operation on the low-resolution
  input (sub-pixel decomposition). Each 2x2 block of the output sees only a 2x2 window of the
  input, with the 3x3 kernel's rows and columns summed in pairs: output row ``2i`` uses input
  rows ``(i-1, i)`` with kernel rows ``(w0, w1+w2)``, and row ``2i+1`` uses rows ``(i, i+1)``
  with ``(w0+w1, w2)`` (the same for columns). That is a stride-2 transposed convolution with a
  4x4 kernel (16 instead of 36 multiply-adds per output block, and no upsampled tensor); for
  one or two output channels (the C -> 1 output layer) it runs better as a 3x3 convolution with
  ``4 * C_out`` outputs at low resolution followed by a pixel shuffle, and narrow or widening
  layers keep the plain form (:func:`pick_upsample_method`). The derived kernels are computed
  from the layer's own 3x3 weight in every forward pass, so gradients reach it directly.

:class:`FastSequential` applies these rewrites while running an ``nn.Sequential`` on CPU; the
modules, their parameters (``state_dict``) and initialisation are those of the plain sequence.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# 3x3 taps (d) -> the taps of the derived kernels. Along one axis, the transposed conv's 4 taps
# are (w2, w1+w2, w0+w1, w0); the sub-pixel phase-0 taps (w0, w1+w2, 0), phase-1 (0, w0+w1, w2).
_TRANSPOSE_1D = ((0, 0, 1), (0, 1, 1), (1, 1, 0), (1, 0, 0))  # [k][d]
_PHASE_1D = (((1, 0, 0), (0, 1, 1), (0, 0, 0)), ((0, 0, 0), (1, 1, 0), (0, 0, 1)))  # [a][r][d]


def _tap_maps() -> tuple[Tensor, Tensor]:
    m = torch.tensor(_TRANSPOSE_1D, dtype=torch.float32)
    p = torch.tensor(_PHASE_1D, dtype=torch.float32)
    transpose = torch.einsum("kd,le->klde", m, m).reshape(16, 9)  # (4x4 taps, 3x3 taps)
    subpixel = torch.einsum("ard,bse->abrsde", p, p).reshape(36, 9)  # (phase, 3x3 taps; 3x3 taps)
    return transpose, subpixel


_TRANSPOSE_MAP, _SUBPIXEL_MAP = _tap_maps()


def _map_taps(weight: Tensor, tap_map: Tensor) -> Tensor:
    """``(C_out, C_in, 3, 3)`` -> ``(C_out, C_in, n)``: each new tap a sum of 3x3 taps (fp32)."""
    c_out, c_in = weight.shape[:2]
    dev = weight.device.type
    off = torch.autocast(dev, enabled=False) if torch.is_autocast_enabled(dev) else nullcontext()
    with off:  # the kernel sums in fp32 even under autocast (the conv casts them afterwards)
        return weight.reshape(c_out, c_in, 9) @ tap_map.to(weight).t()


def upsample_conv_transpose_weight(weight: Tensor) -> Tensor:
    """``(C_out, C_in, 3, 3)`` conv weight -> ``(C_in, C_out, 4, 4)`` transposed-conv weight.

    ``conv_transpose2d(x, K, stride=2, padding=1)`` with this ``K`` equals
    ``conv2d(upsample_nearest_2x(x), weight, padding=1)``.
    """
    c_out, c_in = weight.shape[:2]
    return _map_taps(weight, _TRANSPOSE_MAP).view(c_out, c_in, 4, 4).transpose(0, 1)


def upsample_subpixel_weight(weight: Tensor) -> Tensor:
    """``(C_out, C_in, 3, 3)`` -> ``(4 * C_out, C_in, 3, 3)``: one 3x3 kernel per output phase.

    ``pixel_shuffle(conv2d(x, K, padding=1), 2)`` with this ``K`` (and each bias repeated four
    times) equals ``conv2d(upsample_nearest_2x(x), weight, padding=1)``.
    """
    c_out, c_in = weight.shape[:2]
    k = _map_taps(weight, _SUBPIXEL_MAP).view(c_out, c_in, 4, 3, 3)
    return k.transpose(1, 2).reshape(4 * c_out, c_in, 3, 3)  # pixel_shuffle's channel order


def upsample2x_conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None, method: str = "auto") -> Tensor:
    """``conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)``.

    ``method``: ``"transpose"`` (stride-2 transposed conv), ``"subpixel"`` (low-resolution conv
    + pixel shuffle), ``"plain"`` (the reference), or ``"auto"`` (:func:`pick_upsample_method`).
    """
    c_out, c_in = weight.shape[:2]
    if method == "auto":
        method = pick_upsample_method(c_in, c_out)
    if method == "transpose":
        k = upsample_conv_transpose_weight(weight)
        if x.is_contiguous(memory_format=torch.channels_last):
            k = k.contiguous(memory_format=torch.channels_last)
        return F.conv_transpose2d(x, k, bias, stride=2, padding=1)
    if method == "subpixel":
        k = upsample_subpixel_weight(weight)
        if x.is_contiguous(memory_format=torch.channels_last):
            k = k.contiguous(memory_format=torch.channels_last)
        b = bias.repeat_interleave(4) if bias is not None else None
        return F.pixel_shuffle(F.conv2d(x, k, b, padding=1), 2)
    if method == "plain":
        return F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)
    raise ValueError(f"unknown method {method!r}")


def pick_upsample_method(c_in: int, c_out: int) -> str:
    """The fastest form on CPU, from fwd+bwd timings (1 thread, batch 128, 7x7 and 14x14 inputs).

    One or two output channels (the output layer): the sub-pixel conv, 2-3x faster than the
    reference. At least 16 input channels and no more outputs than inputs (the decoder of the
    wide model): the transposed conv, 1.1-1.6x. Otherwise (narrow layers such as 8 -> 16, or
    widening ones such as 16 -> 32) the plain upsample + conv was as fast or faster.
    """
    if c_out <= 2:
        return "subpixel"
    if c_in >= 16 and c_out <= c_in:
        return "transpose"
    return "plain"


def _is_upsample2x(m: nn.Module) -> bool:
    return (
        type(m) is nn.Upsample
        and m.mode == "nearest"
        and m.size is None
        and m.scale_factor in (2, 2.0, (2, 2), (2.0, 2.0))
        and not m.recompute_scale_factor
    )


def _is_conv3x3_same(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.Conv2d)
        and m.kernel_size == (3, 3)
        and m.stride == (1, 1)
        and m.padding == (1, 1)
        and m.dilation == (1, 1)
        and m.groups == 1
        and m.padding_mode == "zeros"
    )


def _plan(mods: list[nn.Module]) -> list[tuple]:
    """Steps ``("mod", i)``, ``("pool_relu", i_pool)``, ``("upconv", i_conv)``, ``("relu_", i)``."""
    steps: list[tuple] = []
    i = 0
    fresh = False  # does the running tensor belong to us (safe for an in-place ReLU)?
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if type(m) is nn.ReLU and type(nxt) is nn.MaxPool2d and not nxt.return_indices:
            steps.append(("pool_relu", i + 1))  # relu(pool(x)) == pool(relu(x))
            i, fresh = i + 2, True
        elif _is_upsample2x(m) and nxt is not None and _is_conv3x3_same(nxt):
            steps.append(("upconv", i + 1))
            i, fresh = i + 2, True
        elif type(m) is nn.ReLU and fresh:
            steps.append(("relu_", i))
            i += 1
        else:
            steps.append(("mod", i))
            fresh = isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d))
            i += 1
    return steps


def _has_hooks(mods: list[nn.Module]) -> bool:
    """Module hooks expect each module to be called: with any, run the plain sequence."""
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        for m in mods
    )


class FastSequential(nn.Sequential):
    """``nn.Sequential`` that runs the exact rewrites above on CPU (plain order elsewhere).

    Same children, names and parameters as ``nn.Sequential``; ``fast = False`` turns it off
    (it is also off for non-CPU tensors and while any child module has hooks).
    """

    fast: bool = True

    def forward(self, x: Tensor) -> Tensor:
        mods = list(self._modules.values())
        if not self.fast or x.device.type != "cpu" or _has_hooks(mods):
            return super().forward(x)
        key = tuple(map(id, mods))
        cached = self.__dict__.get("_fast_plan")
        if cached is None or cached[0] != key:
            cached = (key, _plan(mods))
            self.__dict__["_fast_plan"] = cached
        for op, i in cached[1]:
            m = mods[i]
            if op == "mod":
                x = m(x)
            elif op == "pool_relu":
                x = torch.relu_(m(x))
            elif op == "relu_":
                x = torch.relu_(x)
            else:  # "upconv"
                x = upsample2x_conv3x3(x, m.weight, m.bias)
        return x
