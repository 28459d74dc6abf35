"""Input corruptions for denoising autoencoders, on torch tensors with values in [0, 1].

Each corruption is a small frozen dataclass; ``spec`` gives its string form, which
``parse_corruption`` reads back: ``seed``, ``gaussian:STD``, ``saltpepper:P``, ``mask:P``.
The random numbers come from ``generator`` (drawn on the generator's device and moved to
the tensor's), so a seeded generator makes every draw reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from aekit.data.preprocess import to_float01
from aekit.errors import ConfigError, DataError, UnknownNameError

__all__ = [
    "CORRUPTIONS",
    "Corruption",
    "GaussianNoise",
    "MaskNoise",
    "SaltPepperNoise",
    "SeedNoise",
    "corrupt_numpy",
    "parse_corruption",
]

VALID_FORMS = "none | seed | seed:SHIFT,STD | gaussian:STD | saltpepper:P | mask:P"


def _uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) noise shaped like ``x``, drawn on the generator's device."""
    device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape, generator=generator, device=device, dtype=torch.float32)
    return u.to(x.device)


def _normal(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, 1) noise shaped like ``x``, drawn on the generator's device."""
    device = generator.device if generator is not None else x.device
    n = torch.randn(x.shape, generator=generator, device=device, dtype=torch.float32)
    return n.to(device=x.device, dtype=x.dtype)


def _check_std(kind: str, std: float) -> None:
    if not (math.isfinite(std) and std > 0.0):
        raise ConfigError(
            f"{kind} STD must be a positive number, got {std}; valid forms: {VALID_FORMS}"
        )


def _check_p(kind: str, p: float) -> None:
    if not (math.isfinite(p) and 0.0 < p <= 1.0):
        raise ConfigError(f"{kind} P must be in (0, 1], got {p}; valid forms: {VALID_FORMS}")


@dataclass(frozen=True)
class Corruption:
    """Base class: ``corruption(x, generator)`` returns a corrupted copy of ``x``."""

    name: ClassVar[str] = ""

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Corrupt a float tensor of values in [0, 1] (any shape, any device)."""
        if not torch.is_tensor(x) or not x.is_floating_point():
            what = x.dtype if torch.is_tensor(x) else type(x).__name__
            raise DataError(
                f"{type(self).__name__} needs a float tensor with values in [0, 1], got {what}; "
                "convert with torch.as_tensor(to_float01(x))"
            )
        return self._apply(x, generator)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    @property
    def spec(self) -> str:
        """String form, accepted by ``parse_corruption``."""
        raise NotImplementedError


@dataclass(frozen=True)
class SeedNoise(Corruption):
    """``clip(x + shift + N(0, std), 0, 1)``: a brightened, noisy copy (the tutorial's recipe)."""

    name: ClassVar[str] = "seed"
    shift: float = 0.2  # added to every value
    std: float = 0.2  # standard deviation of the Gaussian noise

    def __post_init__(self) -> None:
        if not (math.isfinite(self.shift) and -1.0 <= self.shift <= 1.0):
            raise ConfigError(
                f"seed SHIFT must be in [-1, 1], got {self.shift}; valid forms: {VALID_FORMS}"
            )
        _check_std("seed", self.std)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return (x + self.shift + self.std * _normal(x, generator)).clamp_(0.0, 1.0)

    @property
    def spec(self) -> str:
        if (self.shift, self.std) == (0.2, 0.2):
            return "seed"
        return f"seed:{self.shift!r},{self.std!r}"


@dataclass(frozen=True)
class GaussianNoise(Corruption):
    """``clip(x + N(0, std), 0, 1)``."""

    name: ClassVar[str] = "gaussian"
    std: float = 0.5  # standard deviation of the noise

    def __post_init__(self) -> None:
        _check_std("gaussian", self.std)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return (x + self.std * _normal(x, generator)).clamp_(0.0, 1.0)

    @property
    def spec(self) -> str:
        return f"gaussian:{self.std!r}"


@dataclass(frozen=True)
class SaltPepperNoise(Corruption):
    """A fraction ``p`` of the values set to 0 or 1, with equal probability."""

    name: ClassVar[str] = "saltpepper"
    p: float = 0.1  # fraction of values replaced

    def __post_init__(self) -> None:
        _check_p("saltpepper", self.p)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        u = _uniform(x, generator)  # u < p/2 -> pepper (0), p/2 <= u < p -> salt (1)
        out = x.masked_fill(u < self.p / 2, 0.0)
        return out.masked_fill_((u >= self.p / 2) & (u < self.p), 1.0)

    @property
    def spec(self) -> str:
        return f"saltpepper:{self.p!r}"


@dataclass(frozen=True)
class MaskNoise(Corruption):
    """A fraction ``p`` of the values set to 0 (masking noise)."""

    name: ClassVar[str] = "mask"
    p: float = 0.3  # fraction of values zeroed

    def __post_init__(self) -> None:
        _check_p("mask", self.p)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return x.masked_fill(_uniform(x, generator) < self.p, 0.0)

    @property
    def spec(self) -> str:
        return f"mask:{self.p!r}"


CORRUPTIONS: dict[str, type[Corruption]] = {
    cls.name: cls for cls in (SeedNoise, GaussianNoise, SaltPepperNoise, MaskNoise)
}


def parse_corruption(spec: str | Corruption | None) -> Corruption | None:
    """Build a Corruption from its string form.

    Parameters
    ----------
    spec : str, Corruption or None
        ``None``, ``""`` or ``"none"`` for no corruption; ``"seed"`` (or ``"seed:SHIFT,STD"``),
        ``"gaussian:STD"``, ``"saltpepper:P"``, ``"mask:P"``. Without a value the defaults
        apply (gaussian 0.5, saltpepper 0.1, mask 0.3). A Corruption is returned unchanged.

    Returns
    -------
    Corruption or None

    Raises
    ------
    UnknownNameError
        Unknown corruption name (a ConfigError).
    ConfigError
        Malformed or out-of-range value.
    """
    if spec is None or isinstance(spec, Corruption):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"corruption must be a string like 'mask:0.3', got {spec!r}")
    text = spec.strip().lower()
    if text in ("", "none"):
        return None
    kind, _, arg = text.partition(":")
    kind = kind.strip()
    if kind not in CORRUPTIONS:
        raise UnknownNameError(
            f"unknown corruption {kind!r} in {spec!r}; valid forms: {VALID_FORMS}"
        )
    try:
        values = [float(v) for v in arg.split(",")] if arg.strip() else []
    except ValueError:
        raise ConfigError(
            f"cannot read the numbers in {spec!r}; valid forms: {VALID_FORMS}"
        ) from None
    n_max = 2 if kind == "seed" else 1
    if len(values) not in (0, n_max):
        raise ConfigError(f"{spec!r} has {len(values)} value(s); valid forms: {VALID_FORMS}")
    return CORRUPTIONS[kind](*values)


def corrupt_numpy(x: Any, spec: str | Corruption | None, seed: int = 0) -> np.ndarray:
    """Corrupt a numpy array once (e.g. a fixed noisy test copy), reproducibly.

    Parameters
    ----------
    x : array-like
        Values in [0, 1], any shape.
    spec : str, Corruption or None
        As in ``parse_corruption``; None returns a float32 copy.
    seed : int, default=0
        Seed of the CPU generator.

    Returns
    -------
    ndarray of dtype float32
        Same shape as ``x``.
    """
    arr = to_float01(x)
    corruption = parse_corruption(spec)
    if corruption is None:
        return arr.copy()
    generator = torch.Generator().manual_seed(int(seed))
    return corruption(torch.from_numpy(arr), generator).numpy()
