"""Fully connected autoencoders: the tutorial's "vanilla" model and Hinton & Salakhutdinov's."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Autoencoder, make_activation, warn_if_overcomplete, xavier_init
from .registry import register_model


@dataclass(frozen=True, kw_only=True)
class DenseAEConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)  # (C, H, W) images or (D,) feature vectors
    hidden: tuple[int, ...] = (128, 32)  # encoder widths; the decoder mirrors them
    latent_dim: int = 2  # size of the code
    activation: str = "relu"  # hidden layers
    code_activation: str = "relu"  # the tutorial's 2-unit code has a ReLU; "linear" for hinton2006
    output: str = "sigmoid"  # "sigmoid" for [0,1] data (BCE), "linear" for standardised tables
    loss: str = "auto"  # "auto" (bce for sigmoid output, mse for linear), "bce", "mse"
    tied: bool = False  # decoder uses the transposed encoder weights (own biases)
    dropout: float = 0.0  # on the input and hidden layers of the encoder
    sparsity: str = ""  # "" | "l1:WEIGHT" | "kl:TARGET:WEIGHT"
    code_noise: float = 0.0  # std of Gaussian noise on the code's pre-activation while training (binary codes)

    def __post_init__(self) -> None:
        if int(self.latent_dim) < 1 or any(int(h) < 1 for h in self.hidden):
            raise ConfigError(f"latent_dim and hidden sizes must be >= 1, got {self.latent_dim}, {self.hidden}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (0 <= self.code_noise < 1e3):
            raise ConfigError(f"code_noise must be a standard deviation >= 0, got {self.code_noise}")


@register_model(
    "dense_ae",
    presets={
        # 784-128-32-2-32-128-784, ReLU everywhere including the code: 210,130 parameters
        "tutorial": dict(hidden=(128, 32), latent_dim=2, code_activation="relu"),
        # Hinton & Salakhutdinov (2006): 784-1000-500-250-30 with a linear code; ELU hidden units
        # train end to end (no RBM pretraining) to 2.78 test squared error/image, below their 3.00
        # (benchmarks/hinton2006.py; ReLU reached 15.2 vs ELU 9.6 after 6 epochs on a subset)
        "hinton2006": dict(hidden=(1000, 500, 250), latent_dim=30, activation="elu", code_activation="linear"),
    },
)
class DenseAE(Autoencoder):
    """Fully connected autoencoder: flatten -> hidden layers -> code -> mirrored decoder."""

    Config = DenseAEConfig

    def __init__(self, config: DenseAEConfig) -> None:
        super().__init__(config)
        self.input_dim = math.prod(self.input_shape)
        sizes = [self.input_dim, *config.hidden, config.latent_dim]
        self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        rev = sizes[::-1]
        if config.tied:
            # decoder layer i reuses encoder layer -1-i transposed; only the biases are its own
            self.dec = None
            self.dec_bias = nn.ParameterList(nn.Parameter(torch.zeros(b)) for b in rev[1:])
        else:
            self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(rev[:-1], rev[1:]))
        self.act = make_activation(config.activation)
        self.code_act = make_activation(config.code_activation)
        self.drop = nn.Dropout(config.dropout) if config.dropout else nn.Identity()
        xavier_init(self)
        warn_if_overcomplete(self.input_dim, config.latent_dim, bool(config.sparsity), "dense_ae")

    def encode(self, x: Tensor) -> Tensor:
        h = x.reshape(x.shape[0], -1)  # (B, *input_shape) -> (B, D)
        for i, layer in enumerate(self.enc):
            h = layer(self.drop(h))
            h = self.code_act(self.add_code_noise(h)) if i == len(self.enc) - 1 else self.act(h)
        return h  # (B, latent_dim)

    def decode(self, z: Tensor) -> Tensor:
        h = z
        n = len(self.enc)
        for i in range(n):
            if self.dec is None:
                h = F.linear(h, self.enc[n - 1 - i].weight.t(), self.dec_bias[i])
            else:
                h = self.dec[i](h)
            if i < n - 1:
                h = self.act(h)
        return h.reshape(z.shape[0], *self.input_shape)  # (B, D) -> (B, *input_shape) logits

