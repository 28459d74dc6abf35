"""Augmentation that moves an image and its mask together: crops, flips, 90-degree turns, elastic.

Everything runs on whole batches of tensors with an explicit ``torch.Generator`` (the Trainer's,
saved in checkpoints, so a resumed run draws the same crops).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError
from ...models.unet import mirror_pad

AUGMENTS = ("flip", "rot90", "elastic")


@dataclass(frozen=True)
class Augment:
    """Which augmentations to apply; parse from ``"flip,rot90,elastic"`` (or ``"none"``).

    Elastic deformation follows Ronneberger et al.: random displacement vectors on a coarse
    ``grid`` x ``grid`` lattice, drawn from a Gaussian with ``sigma`` pixels standard deviation,
    interpolated bicubically to every pixel (a smooth field), then applied with ``grid_sample``
    (bilinear for the image, nearest for the mask; mirrored at the borders).
    """

    flip: bool = True
    rot90: bool = True
    elastic: bool = True
    sigma: float = 10.0  # displacement std in pixels, at the coarse grid points
    grid: int = 3

    @classmethod
    def parse(cls, spec: str | Augment | None) -> Augment:
        if isinstance(spec, Augment):
            return spec
        if spec is None or spec in ("", "none"):
            return cls(False, False, False)
        names = [s.strip() for s in spec.split(",") if s.strip()]
        kwargs: dict = {"flip": False, "rot90": False, "elastic": False}
        for n in names:
            key, _, val = n.partition(":")
            if key not in AUGMENTS:
                raise ConfigError(f"unknown augmentation {key!r}; use a comma list of {', '.join(AUGMENTS)} (or none)")
            kwargs[key] = True
            if key == "elastic" and val:
                try:
                    kwargs["sigma"] = float(val)
                except ValueError:
                    raise ConfigError(f"elastic:SIGMA needs a number of pixels, got {val!r}") from None
        return cls(**kwargs)

    def __str__(self) -> str:
        parts = [n for n in AUGMENTS if getattr(self, n)]
        if self.elastic:
            parts[-1] = f"elastic:{self.sigma:g}"
        return ",".join(parts) or "none"


def random_crops(
    images: Sequence[Tensor], masks: Sequence[Tensor], n: int, size: int, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``n`` random ``size`` x ``size`` crops from random images (each at least ``size`` on a side).

    Returns images (n, C, size, size) float and masks (n, size, size) int64.
    """
    which = torch.randint(len(images), (n,), generator=gen).tolist()
    xs, ys = [], []
    for i in which:
        h, w = images[i].shape[-2:]
        top = int(torch.randint(h - size + 1, (1,), generator=gen))
        left = int(torch.randint(w - size + 1, (1,), generator=gen))
        xs.append(images[i][:, top : top + size, left : left + size])
        ys.append(masks[i][top : top + size, left : left + size])
    return torch.stack(xs), torch.stack(ys)


def pad_to_at_least(x: Tensor, y: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Mirror-pad an image (C, H, W) and its mask (H, W) so both sides are at least ``size``."""
    h, w = x.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if not (ph or pw):
        return x, y
    pads = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    return mirror_pad(x[None], *pads)[0], mirror_pad(y[None, None], *pads)[0, 0]


def dihedral(
    x: Tensor, y: Tensor, gen: torch.Generator, flip: bool = True, rot90: bool = True
) -> tuple[Tensor, Tensor]:
    """A random flip and/or quarter turn per sample, the same for image (B, C, H, W) and mask (B, H, W)."""
    if not (flip or rot90):
        return x, y
    xs, ys = [], []
    square = x.shape[-1] == x.shape[-2]
    for b in range(len(x)):
        xi, yi = x[b], y[b]
        if flip and bool(torch.randint(2, (1,), generator=gen)):
            xi, yi = xi.flip(-1), yi.flip(-1)
        if rot90 and square:
            k = int(torch.randint(4, (1,), generator=gen))
            xi, yi = torch.rot90(xi, k, (-2, -1)), torch.rot90(yi, k, (-2, -1))
        elif flip and bool(torch.randint(2, (1,), generator=gen)):
            xi, yi = xi.flip(-2), yi.flip(-2)  # non-square crops: a vertical flip instead of turns
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), torch.stack(ys)


def elastic_field(n: int, h: int, w: int, sigma: float, grid: int, gen: torch.Generator) -> Tensor:
    """Smooth random sampling grids (n, h, w, 2) for ``grid_sample`` (normalised coordinates)."""
    coarse = torch.randn(n, 2, grid, grid, generator=gen) * sigma  # pixels
    disp = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)  # (n, 2, h, w)
    ys = torch.linspace(-1, 1, h)
    xs = torch.linspace(-1, 1, w)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (h, w, 2) as (x, y)
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    return base[None] + disp.permute(0, 2, 3, 1) * scale  # (n, h, w, 2)


def elastic(x: Tensor, y: Tensor, gen: torch.Generator, sigma: float = 10.0, grid: int = 3) -> tuple[Tensor, Tensor]:
    """Elastic deformation of images (B, C, H, W) and masks (B, H, W) with one field per sample."""
    field = elastic_field(len(x), x.shape[-2], x.shape[-1], sigma, grid, gen).to(x.device)
    xd = F.grid_sample(x.float(), field, mode="bilinear", padding_mode="reflection", align_corners=True)
    yd = F.grid_sample(y[:, None].float(), field, mode="nearest", padding_mode="reflection", align_corners=True)
    return xd, yd[:, 0].round().long()


def augment_batch(x: Tensor, y: Tensor, aug: Augment, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Apply ``aug`` to images (B, C, H, W) and masks (B, H, W) identically."""
    x, y = dihedral(x, y, gen, aug.flip, aug.rot90)
    if aug.elastic and aug.sigma > 0:
        x, y = elastic(x, y, gen, aug.sigma, aug.grid)
    return x.contiguous(), y.contiguous()
