"""The autoencoder contract shared by every model: encode, decode, reconstruct, loss."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "linear": nn.Identity,
}
OUTPUTS = ("sigmoid", "linear")


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass(frozen=True)
class Sparsity:
    """A penalty on the code: ``l1:WEIGHT`` or ``kl:TARGET:WEIGHT`` (target activation rho)."""

    kind: str  # "l1" | "kl"
    weight: float
    target: float = 0.05

    @classmethod
    def parse(cls, spec: str | None) -> Sparsity | None:
        if spec is None or spec in ("", "none"):
            return None
        parts = spec.split(":")
        usage = "use 'l1:WEIGHT' (e.g. l1:1e-4) or 'kl:TARGET:WEIGHT' (e.g. kl:0.05:1e-3)"
        try:
            if parts[0] == "l1" and len(parts) == 2:
                out = cls("l1", float(parts[1]))
            elif parts[0] == "kl" and len(parts) == 3:
                out = cls("kl", float(parts[2]), float(parts[1]))
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(f"bad sparsity {spec!r}: {usage}") from None
        if not (out.weight >= 0 and math.isfinite(out.weight)):
            raise ConfigError(f"sparsity weight must be a finite number >= 0, got {out.weight}")
        if out.kind == "kl" and not 0 < out.target < 1:
            raise ConfigError(f"KL sparsity target must be in (0, 1), got {out.target}")
        return out

    def __call__(self, z: Tensor) -> Tensor:
        z = z.float().flatten(1)
        if self.kind == "l1":
            # Keras' activity_regularizer: weight * sum|z| per sample, averaged over the batch
            return self.weight * z.abs().sum(1).mean()
        # KL(rho || rho_hat_j) summed over code units, rho_hat_j = mean activation over the batch
        rho = self.target
        rho_hat = z.mean(0).clamp(1e-6, 1 - 1e-6)
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        return self.weight * kl.sum()


@dataclass(frozen=True)
class AEOutput:
    """What a forward pass returns: decoder logits (before the output activation) and the code."""

    logits: Tensor  # (B, *input_shape)
    z: Tensor  # (B, code_dim) or (B, C, h, w) for convolutional codes


def check_common(config) -> None:
    """Validation shared by the autoencoder configs."""
    shape = tuple(config.input_shape)
    if not shape or any(int(s) <= 0 for s in shape):
        raise ConfigError(f"input_shape must be positive sizes, got {shape}")
    if config.output not in OUTPUTS:
        raise ConfigError(f"output must be one of {OUTPUTS}, got {config.output!r}")
    if config.loss not in ("auto", "bce", "mse"):
        raise ConfigError(f"loss must be 'auto', 'bce' or 'mse', got {config.loss!r}")
    if config.loss == "bce" and config.output != "sigmoid":
        raise ConfigError("loss='bce' needs output='sigmoid' (targets in [0, 1])")
    Sparsity.parse(config.sparsity)


class Autoencoder(nn.Module):
    """Base class: subclasses implement ``encode`` and ``decode`` (to logits)."""

    model_name: str = "autoencoder"
    #: convolutional models run faster in channels-last memory on CPU (oneDNN)
    prefers_channels_last: bool = False

    def __init__(self, config) -> None:
        super().__init__()
        check_common(config)
        self.config = config
        self.input_shape: tuple[int, ...] = tuple(int(s) for s in config.input_shape)
        self.sparsity = Sparsity.parse(config.sparsity)
        self.recon_kind = ("bce" if config.output == "sigmoid" else "mse") if config.loss == "auto" else config.loss

    # -- the contract -------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        return AEOutput(logits=self.decode(z), z=z)

    def add_code_noise(self, pre: Tensor) -> Tensor:
        """Gaussian noise of std ``config.code_noise`` on the code's pre-activation, in training only.

        Krizhevsky & Hinton (2011): noise before logistic code units pushes them to saturate, so
        thresholding the code at 0.5 loses little (semantic hashing, binary codes).
        """
        std = float(getattr(self.config, "code_noise", 0.0) or 0.0)
        if std and self.training:
            return pre + std * torch.randn_like(pre)
        return pre

    def activate(self, logits: Tensor) -> Tensor:
        """The output activation: logits -> reconstruction in data space."""
        return torch.sigmoid(logits) if self.config.output == "sigmoid" else logits

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.activate(self.decode(self.encode(x)))

    @property
    def code_shape(self) -> tuple[int, ...]:
        """Shape of one code, computed with a dry run on a zero input."""
        if not hasattr(self, "_code_shape"):
            p = next(self.parameters())
            with torch.no_grad():
                z = self.encode(torch.zeros((1, *self.input_shape), device=p.device, dtype=p.dtype))
            self._code_shape = tuple(z.shape[1:])
        return self._code_shape

    @property
    def code_dim(self) -> int:
        return math.prod(self.code_shape)

    def recon_error(self, logits: Tensor, target: Tensor) -> Tensor:
        """Element-wise reconstruction loss (BCE from logits or squared error), float32."""
        logits = logits.float()
        if self.recon_kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return (self.activate(logits) - target).pow(2)

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Loss terms for a batch ``(inputs, targets)``: ``recon``, ``sparsity``, and ``loss``."""
        inputs, targets = batch
        out = self(inputs)
        # mean over pixels, then over the batch (Keras' binary_crossentropy / mse)
        recon = self.recon_error(out.logits, targets).mean()
        terms = {"recon": recon}
        total = recon
        if self.sparsity is not None:
            terms["sparsity"] = self.sparsity(out.z)
            total = total + terms["sparsity"]
        terms["loss"] = total
        return terms


def warn_if_overcomplete(input_dim: int, code_dim: int, sparse: bool, name: str) -> None:
    """An autoencoder whose code is at least as wide as its input can learn the identity."""
    if code_dim >= input_dim and not sparse:
        warnings.warn(
            f"{name}: the code ({code_dim} values) is not smaller than the input ({input_dim}); "
            "without a sparsity penalty (e.g. sparsity='l1:1e-4') or input noise it can learn "
            "to copy its input",
            UserWarning,
            stacklevel=3,
        )


def xavier_init(module: nn.Module) -> None:
    """Keras defaults (glorot_uniform weights, zero biases): a faithful tutorial port."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
