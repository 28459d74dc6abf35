"""Autoencoders for multichannel time-series windows: 1-D convolutional and recurrent (seq2seq).

Both take windows of shape ``(T, C)`` (time steps, channels; a batch is ``(B, T, C)``, time-major
per sample, as ``aekit.data`` cuts them) and return logits of the same shape. The default output is
linear with a mean squared error, for standardised sensor data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import AEOutput, Autoencoder, make_activation, warn_if_overcomplete, xavier_init
from .registry import register_model


def _check_window_shape(name: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise ConfigError(
            f"{name} needs input_shape (T, C) = (time steps, channels) of one window, got {tuple(shape)}"
        )


# -- 1-D convolutional ---------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Conv1dAEConfig:
    input_shape: tuple[int, ...] = (64, 1)  # (T, C): time steps, channels
    # the defaults are Keras' "timeseries anomaly detection" example: Conv1D 32, 16 (kernel 7,
    # stride 2) mirrored by Conv1DTranspose, code (16, T/4); it also has dropout 0.2 in two places
    channels: tuple[int, ...] = (32, 16)  # encoder widths; each conv has stride 2 (halves T)
    kernel_size: int = 7  # odd; "same" padding
    activation: str = "relu"
    latent_dim: int | None = None  # None: the last feature map (channels[-1], T/2^k) is the code
    code_activation: str = "linear"  # of the dense bottleneck (only with latent_dim)
    batch_norm: bool = False
    dropout: float = 0.0  # after each hidden block of the encoder and decoder
    output: str = "linear"  # "linear" for standardised signals (MSE), "sigmoid" for [0, 1] data
    loss: str = "auto"
    sparsity: str = ""

    def __post_init__(self) -> None:
        _check_window_shape("conv1d_ae", self.input_shape)
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise ConfigError(f"channels must be one or more positive widths, got {self.channels}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1 or None, got {self.latent_dim}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@register_model(
    "conv1d_ae",
    presets={
        "small": dict(channels=(16, 8), kernel_size=5),
        # a dense 16-value code: smaller than a univariate window (the default code (16, T/4) is
        # four times a 1-channel window, and an over-complete code can learn to copy its input)
        "bottleneck": dict(latent_dim=16),
    },
)
class Conv1dAE(Autoencoder):
    """1-D convolutional autoencoder for (T, C) windows: strided convs, mirrored transposed convs."""

    Config = Conv1dAEConfig

    def __init__(self, config: Conv1dAEConfig) -> None:
        super().__init__(config)
        t, c_in = self.input_shape
        ch = [int(c) for c in config.channels]
        k, pad = config.kernel_size, config.kernel_size // 2
        self.factor = 2 ** len(ch)
        # windows are zero-padded at the end up to a multiple of 2^depth and outputs cropped back
        self.padded_t = math.ceil(t / self.factor) * self.factor

        def finish(b: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.BatchNorm1d(b)] if config.batch_norm else []
            layers.append(make_activation(config.activation))
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            return layers

        # a stride-2 convolution computes half the outputs of conv + max-pool: 1.3-1.8x faster
        # training on CPU (T=64, batch 256, one thread), and it is the Keras example's design
        enc: list[nn.Module] = []
        for a, b in zip([c_in, *ch[:-1]], ch):
            enc += [nn.Conv1d(a, b, k, stride=2, padding=pad), *finish(b)]
        self.encoder = nn.Sequential(*enc)
        self.fmap = (ch[-1], self.padded_t // self.factor)

        # mirrored: convT(c_k -> c_k), convT(c_k -> c_{k-1}), ..., each doubling T, then a conv head
        dec: list[nn.Module] = []
        widths = [ch[-1], *ch[::-1]]  # e.g. (32, 16) -> [16, 16, 32]
        for a, b in zip(widths[:-1], widths[1:]):
            dec += [nn.ConvTranspose1d(a, b, k, stride=2, padding=pad, output_padding=1), *finish(b)]
        dec.append(nn.Conv1d(widths[-1], c_in, k, padding=pad))
        self.decoder = nn.Sequential(*dec)

        if config.latent_dim is not None:
            n = math.prod(self.fmap)
            self.to_code = nn.Linear(n, config.latent_dim)
            self.from_code = nn.Linear(config.latent_dim, n)
            self.code_act = make_activation(config.code_activation)
        else:
            self.to_code = self.from_code = None
        xavier_init(self)
        code_dim = config.latent_dim or math.prod(self.fmap)
        warn_if_overcomplete(t * c_in, code_dim, bool(config.sparsity), "conv1d_ae")

    def encode(self, x: Tensor) -> Tensor:
        t = self.input_shape[0]
        x = x.transpose(1, 2)  # (B, T, C) -> (B, C, T), a view
        if self.padded_t != t:
            x = F.pad(x, (0, self.padded_t - t))
        z = self.encoder(x)  # -> (B, c_k, T/2^k)
        if self.to_code is not None:
            z = self.code_act(self.to_code(z.flatten(1)))  # -> (B, latent_dim)
        return z

    def decode(self, z: Tensor) -> Tensor:
        if self.from_code is not None:
            z = F.relu(self.from_code(z)).reshape(z.shape[0], *self.fmap)  # (B, L) -> (B, c_k, T/2^k)
        out = self.decoder(z)  # -> (B, C, padded T)
        return out[:, :, : self.input_shape[0]].transpose(1, 2)  # -> (B, T, C) logits


# -- recurrent (seq2seq) -------------------------------------------------------------------------
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
DECODER_INPUTS = ("repeat", "teacher")


@dataclass(frozen=True, kw_only=True)
class RecurrentAEConfig:
    input_shape: tuple[int, ...] = (64, 1)  # (T, C): time steps, channels
    cell: str = "lstm"  # "lstm" | "gru"
    hidden: int = 64  # units per recurrent layer (encoder and decoder)
    num_layers: int = 1
    latent_dim: int = 16  # the code: a Linear from the encoder's last hidden state
    code_activation: str = "linear"
    # "repeat": the decoder reads the code at every step (Keras' RepeatVector): deterministic and
    # parallel over the batch. "teacher": it reads [code, previous step]; the previous target step
    # while training (teacher forcing), its own previous output at inference (a loop over time)
    decoder_input: str = "repeat"
    reverse: bool = False  # decode the window back to front (Srivastava et al. 2015)
    output: str = "linear"
    loss: str = "auto"
    sparsity: str = ""

    def __post_init__(self) -> None:
        _check_window_shape("lstm_ae", self.input_shape)
        if self.cell not in CELLS:
            raise ConfigError(f"cell must be one of {', '.join(map(repr, CELLS))}, got {self.cell!r}")
        if self.hidden < 1 or self.num_layers < 1 or self.latent_dim < 1:
            raise ConfigError(
                f"hidden, num_layers and latent_dim must be >= 1, got {self.hidden}, {self.num_layers}, "
                f"{self.latent_dim}"
            )
        if self.decoder_input not in DECODER_INPUTS:
            raise ConfigError(f"decoder_input must be one of {DECODER_INPUTS}, got {self.decoder_input!r}")


@register_model(
    "lstm_ae",
    presets={
        "gru": dict(cell="gru"),
        "small": dict(hidden=32, latent_dim=8),
        # in the style of Srivastava et al. (2015): two layers, reconstruction in reverse order,
        # conditioned on the previous output (their "conditional decoder"); inference loops over T
        "srivastava": dict(num_layers=2, reverse=True, decoder_input="teacher"),
    },
)
class RecurrentAE(Autoencoder):
    """Seq2seq LSTM/GRU autoencoder: last encoder state -> code -> decoder RNN -> per-step head."""

    Config = RecurrentAEConfig

    def __init__(self, config: RecurrentAEConfig) -> None:
        super().__init__(config)
        t, c = self.input_shape
        rnn = CELLS[config.cell]
        h, n = config.hidden, config.num_layers
        self.is_lstm = config.cell == "lstm"
        self.teacher = config.decoder_input == "teacher"
        self.encoder_rnn = rnn(c, h, n, batch_first=True)
        self.to_code = nn.Linear(h, config.latent_dim)
        self.code_act = make_activation(config.code_activation)
        # the code sets the decoder's initial state: h0 (tanh, the range of a hidden state) and,
        # for an LSTM, c0, for every layer
        self.to_state = nn.Linear(config.latent_dim, n * h * (2 if self.is_lstm else 1))
        self.decoder_rnn = rnn(config.latent_dim + (c if self.teacher else 0), h, n, batch_first=True)
        self.head = nn.Linear(h, c)
        # Linear layers get Keras' glorot init; the RNNs keep PyTorch's uniform(+-1/sqrt(hidden))
        xavier_init(self.to_code)
        xavier_init(self.to_state)
        xavier_init(self.head)
        warn_if_overcomplete(t * c, config.latent_dim, bool(config.sparsity), "lstm_ae")

    def encode(self, x: Tensor) -> Tensor:
        _, state = self.encoder_rnn(x)  # (B, T, C) -> h_n (num_layers, B, hidden)
        h_last = (state[0] if self.is_lstm else state)[-1]  # the top layer's last hidden state
        return self.code_act(self.to_code(h_last))  # -> (B, latent_dim)

    def _initial_state(self, z: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        n, h = self.config.num_layers, self.config.hidden
        s = self.to_state(z).reshape(z.shape[0], -1, n, h).permute(1, 2, 0, 3)  # (1 or 2, n, B, h)
        h0 = torch.tanh(s[0]).contiguous()
        return (h0, s[1].contiguous()) if self.is_lstm else h0

    def _to_time_order(self, y: Tensor) -> Tensor:
        return y.flip(1) if self.config.reverse else y

    def decode(self, z: Tensor) -> Tensor:
        t, c = self.input_shape
        state = self._initial_state(z)
        if not self.teacher:
            steps = z.unsqueeze(1).expand(-1, t, -1).contiguous()  # (B, L) -> (B, T, L)
            out, _ = self.decoder_rnn(steps, state)  # -> (B, T, hidden)
            return self._to_time_order(self.head(out))  # -> (B, T, C) logits
        # autoregressive: each step reads the code and the previous output (zeros first)
        prev = z.new_zeros(z.shape[0], 1, c)
        code = z.unsqueeze(1)
        outs = []
        for _ in range(t):
            out, state = self.decoder_rnn(torch.cat([code, prev], 2), state)
            y = self.head(out)  # (B, 1, C) logits
            outs.append(y)
            prev = self.activate(y)
        return self._to_time_order(torch.cat(outs, 1))

    def decode_teacher_forced(self, z: Tensor, target: Tensor) -> Tensor:
        """Logits with the previous *target* step as decoder input (one batched RNN call)."""
        seq = self._to_time_order(target)  # in decoding order
        prev = torch.cat([seq.new_zeros(seq.shape[0], 1, seq.shape[2]), seq[:, :-1]], 1)  # shifted right
        steps = torch.cat([z.unsqueeze(1).expand(-1, seq.shape[1], -1), prev.to(z.dtype)], 2)
        out, _ = self.decoder_rnn(steps, self._initial_state(z))
        return self._to_time_order(self.head(out))

    def forward(self, x: Tensor) -> AEOutput:
        if self.teacher and self.training:
            # teacher forcing reads the window it is given: the inputs (for a denoising run, the
            # corrupted ones, as the model has no other view of the targets inside forward)
            z = self.encode(x)
            return AEOutput(logits=self.decode_teacher_forced(z, x), z=z)
        return super().forward(x)
