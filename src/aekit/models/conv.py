"""Convolutional autoencoders: the tutorial's conv_AE and its wider denoiser."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ._fast_ops import FastSequential
from .base import Autoencoder, make_activation, warn_if_overcomplete, xavier_init
from .registry import register_model


@dataclass(frozen=True, kw_only=True)
class ConvAEConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)  # (C, H, W)
    channels: tuple[int, ...] = (16, 8)  # conv widths; each conv is followed by a 2x2 max-pool
    kernel_size: int = 3  # odd; "same" padding
    activation: str = "relu"
    latent_dim: int | None = None  # None: the last feature map is the code; else a dense bottleneck
    code_activation: str = "linear"  # of the dense bottleneck (only with latent_dim)
    code_noise: float = 0.0  # std of noise on the bottleneck's pre-activation while training (binary codes)
    batch_norm: bool = False
    output: str = "sigmoid"
    loss: str = "auto"
    sparsity: str = ""

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3:
            raise ConfigError(f"conv_ae needs input_shape (C, H, W), got {tuple(self.input_shape)}")
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise ConfigError(f"channels must be one or more positive widths, got {self.channels}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1 or None, got {self.latent_dim}")
        if self.code_noise and self.latent_dim is None:
            raise ConfigError("code_noise needs a dense bottleneck: set latent_dim (e.g. 64 for 64-bit codes)")


class HeadConv2d(nn.Conv2d):
    """``Conv2d(C -> 1)`` computed as a depthwise convolution plus a sum over channels.

    Same parameters and function as the plain convolution; oneDNN pads a 1-channel output to
    16 channels, so this is markedly faster on CPU (see shared/reference/performance.md). In
    ConvAE's decoder on CPU, the upsampling before it and this layer run fused instead, as a
    sub-pixel convolution at the lower resolution (``_fast_ops.upsample2x_conv3x3``).
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.out_channels != 1 or self.groups != 1 or x.is_cuda:
            return super().forward(x)
        w = self.weight.reshape(self.in_channels, 1, *self.kernel_size)  # (1,C,k,k) -> (C,1,k,k)
        y = F.conv2d(x, w, None, self.stride, self.padding, self.dilation, groups=self.in_channels)
        y = y.sum(1, keepdim=True)  # (B, C, H, W) -> (B, 1, H, W)
        return y + self.bias.view(1, 1, 1, 1) if self.bias is not None else y


@register_model(
    "conv_ae",
    presets={
        # conv 16, 8 (3x3 same) + 2x2 max-pool each -> 7x7x8 code; 3,217 parameters
        "tutorial": dict(channels=(16, 8)),
        # the tutorial's denoiser: 32 and 64 filters, 7x7x64 code; 74,497 parameters
        "wide": dict(channels=(32, 64)),
    },
)
class ConvAE(Autoencoder):
    """Convolutional autoencoder: (conv + max-pool) x k, mirrored with nearest upsampling."""

    Config = ConvAEConfig
    prefers_channels_last = True

    def __init__(self, config: ConvAEConfig) -> None:
        super().__init__(config)
        c_in, h, w = self.input_shape
        ch = [int(c) for c in config.channels]
        k, pad = config.kernel_size, config.kernel_size // 2
        self.factor = 2 ** len(ch)
        # inputs are zero-padded up to a multiple of 2^depth and outputs cropped back
        self.padded_hw = (math.ceil(h / self.factor) * self.factor, math.ceil(w / self.factor) * self.factor)

        def block(a: int, b: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(a, b, k, padding=pad)]
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(b))
            layers.append(make_activation(config.activation))
            return layers

        enc: list[nn.Module] = []
        for a, b in zip([c_in, *ch[:-1]], ch):
            enc += [*block(a, b), nn.MaxPool2d(2)]
        self.encoder = FastSequential(*enc)  # nn.Sequential + exact CPU rewrites
        self.fmap = (ch[-1], self.padded_hw[0] // self.factor, self.padded_hw[1] // self.factor)

        # decoder mirrors the encoder: conv(c_k -> c_k), up, conv(c_k -> c_{k-1}), up, ..., head
        dec: list[nn.Module] = []
        widths = [ch[-1], *ch[::-1]]  # e.g. (16, 8) -> [8, 8, 16]
        for a, b in zip(widths[:-1], widths[1:]):
            dec += [*block(a, b), nn.Upsample(scale_factor=2, mode="nearest")]
        dec.append(HeadConv2d(widths[-1], c_in, k, padding=pad))
        self.decoder = FastSequential(*dec)

        if config.latent_dim is not None:
            n = math.prod(self.fmap)
            self.to_code = nn.Linear(n, config.latent_dim)
            self.from_code = nn.Linear(config.latent_dim, n)
            self.code_act = make_activation(config.code_activation)
        else:
            self.to_code = self.from_code = None
        xavier_init(self)
        code_dim = config.latent_dim or math.prod(self.fmap)
        warn_if_overcomplete(c_in * h * w, code_dim, bool(config.sparsity), "conv_ae")

    def encode(self, x: Tensor) -> Tensor:
        c, h, w = self.input_shape
        ph, pw = self.padded_hw
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h))
        z = self.encoder(x)  # (B, C, H, W) -> (B, c_k, H/2^k, W/2^k)
        if self.to_code is not None:
            z = self.code_act(self.add_code_noise(self.to_code(z.flatten(1))))  # -> (B, latent_dim)
        return z

    def decode(self, z: Tensor) -> Tensor:
        if self.from_code is not None:
            z = F.relu(self.from_code(z)).reshape(z.shape[0], *self.fmap)  # (B, L) -> (B, c_k, h, w)
        out = self.decoder(z)  # -> (B, C, padded H, padded W) logits
        _, h, w = self.input_shape
        return out[:, :, :h, :w]

