"""Input corruptions for denoising autoencoders, on torch tensors with values in [0, 1].

Each corruption is a small frozen dataclass; ``spec`` gives its string form, which
``parse_corruption`` reads back: ``seed``, ``gaussian:STD``, ``saltpepper:P``, ``mask:P``,
``shift:PX`` (a random translation: a geometric corruption, so the code learns to ignore where
the object sits), and any of them chained with ``+`` (``shift:2+mask:0.3``, applied left to right).
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
    "ShiftNoise",
    "ChainedCorruption",
    "corrupt_numpy",
    "parse_corruption",
]

VALID_FORMS = (
    "none | seed | seed:SHIFT,STD | gaussian:STD | saltpepper:P | mask:P | shift:PX, "
    "or several joined by '+' (e.g. shift:2+mask:0.3)"
)


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


@dataclass(frozen=True)
class ShiftNoise(Corruption):
    """Each image translated by a random whole number of pixels in [-px, px] along each axis.

    Pixels moved in from outside are 0 (the background of MNIST-like images). Needs images
    batch first, ``(N, H, W)`` or ``(N, C, H, W)``; all channels of an image move together.
    Trained to undo it, an autoencoder's code stops depending on where the object sits, which
    is what content-based search wants (``benchmarks/retrieval.py``).
    """

    name: ClassVar[str] = "shift"
    px: int = 2  # largest shift, in pixels, along each axis

    def __post_init__(self) -> None:
        px = self.px
        if not (isinstance(px, (int, float)) and math.isfinite(px) and float(px).is_integer() and 1 <= px <= 64):
            raise ConfigError(
                f"shift PX must be a whole number of pixels in 1..64, got {px}; valid forms: {VALID_FORMS}"
            )
        object.__setattr__(self, "px", int(px))

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if x.ndim not in (3, 4):
            raise DataError(
                f"shift:{self.px} moves images, so it needs a batch of shape (N, H, W) or (N, C, H, W); "
                f"got shape {tuple(x.shape)}. Pass images unflattened, or use mask/gaussian noise for tables"
            )
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        device = generator.device if generator is not None else x.device
        d = torch.randint(-self.px, self.px + 1, (2, n), generator=generator, device=device).to(x.device)
        rows = torch.arange(h, device=x.device)[None, :] - d[0][:, None]  # source row of each output row
        cols = torch.arange(w, device=x.device)[None, :] - d[1][:, None]
        valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # (N, H, W)
        r = rows.clamp(0, h - 1)[:, :, None].expand(n, h, w)
        c = cols.clamp(0, w - 1)[:, None, :].expand(n, h, w)
        flat = (r * w + c).reshape(n, 1, h * w)
        src = x.reshape(n, -1, h * w)
        out = torch.gather(src, 2, flat.expand(n, src.shape[1], h * w)).reshape(x.shape)
        mask = valid if x.ndim == 3 else valid[:, None]
        return out * mask.to(x.dtype)

    @property
    def spec(self) -> str:
        return f"shift:{self.px}"


@dataclass(frozen=True)
class ChainedCorruption(Corruption):
    """Several corruptions applied left to right (``shift:2+mask:0.3``), one generator for all."""

    parts: tuple[Corruption, ...] = ()

    def __post_init__(self) -> None:
        if len(self.parts) < 2 or not all(isinstance(c, Corruption) for c in self.parts):
            raise ConfigError("a chained corruption needs two or more corruptions, e.g. 'shift:2+mask:0.3'")

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        for c in self.parts:
            x = c._apply(x, generator)
        return x

    @property
    def spec(self) -> str:
        return "+".join(c.spec for c in self.parts)


CORRUPTIONS: dict[str, type[Corruption]] = {
    cls.name: cls for cls in (SeedNoise, GaussianNoise, SaltPepperNoise, MaskNoise, ShiftNoise)
}


def parse_corruption(spec: str | Corruption | None) -> Corruption | None:
    """Build a Corruption from its string form.

    Parameters
    ----------
    spec : str, Corruption or None
        ``None``, ``""`` or ``"none"`` for no corruption; ``"seed"`` (or ``"seed:SHIFT,STD"``),
        ``"gaussian:STD"``, ``"saltpepper:P"``, ``"mask:P"``, ``"shift:PX"``, or several joined
        by ``+`` (applied left to right). Without a value the defaults apply (gaussian 0.5,
        saltpepper 0.1, mask 0.3, shift 2). A Corruption is returned unchanged.

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
    if "+" in text:
        pieces = [s.strip() for s in text.split("+")]
        if any(s in ("", "none") for s in pieces):
            raise ConfigError(f"{spec!r} has an empty or 'none' part; valid forms: {VALID_FORMS}")
        return ChainedCorruption(tuple(parse_corruption(s) for s in pieces))
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
