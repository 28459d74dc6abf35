"""Prediction on images of any size: overlapping windows, blended, with mirrored borders.

The image is mirror-padded by ``overlap // 2`` pixels on every side (Ronneberger et al.'s
overlap-tile strategy: the network sees mirrored context at the image border instead of zeros),
cut into ``tile`` x ``tile`` windows whose starts are multiples of ``2**depth`` (so every
window's pooling grid lines up with the whole image's), and the windows' probabilities are
averaged with weights that are 0 for the ``overlap // 4`` pixels at a window's edge and ramp
linearly to 1 across the rest of the overlap. A pixel is therefore always taken from windows
where it lies at least ``overlap // 4`` pixels inside, which makes the result equal the
whole-image prediction of a fully convolutional net up to float rounding once that distance
covers the net's receptive field, and close to it otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ...models.unet import mirror_pad


def _ramp(size: int, overlap: int, device) -> Tensor:
    """1-D window weights: 0 on the outer ``overlap // 4`` pixels, a linear ramp, 1 in the middle."""
    u = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    dead = overlap // 4
    span = max(overlap - 2 * dead, 1)
    up = ((u - dead) / span).clamp(0, 1)
    return torch.minimum(up, up.flip(0))


def _grid(n: int, tile: int, stride: int, margin: int) -> tuple[int, list[int]]:
    """Padded length and window starts covering ``n`` pixels plus ``margin`` on both sides."""
    need = n + 2 * margin
    count = max(1, math.ceil((need - tile) / stride) + 1)
    return (count - 1) * stride + tile, [i * stride for i in range(count)]


@torch.inference_mode()
def predict_tiled(
    model,
    image: Tensor,
    *,
    tile: int | None = 512,
    overlap: int = 128,
    batch_size: int = 4,
) -> Tensor:
    """Class probabilities (K, H, W) of one image (C, H, W) from a segmentation ``model``.

    ``model.predict_proba(x)`` must give (B, K, h, w) for (B, C, h, w) inputs whose sides are
    multiples of ``model.factor``. ``tile=None`` (or an image that fits in one tile with its
    margins) predicts the whole mirror-padded image in one pass.
    """
    if overlap < 0:
        raise ConfigError(f"tile overlap must be >= 0, got {overlap}")
    f = int(getattr(model, "factor", 1))
    c, h, w = image.shape
    margin = overlap // 2
    x = image[None]
    if tile is None or (h + 2 * margin <= tile and w + 2 * margin <= tile):
        ph = -(h + 2 * margin) % f
        pw = -(w + 2 * margin) % f
        xp = mirror_pad(x, margin, margin + ph, margin, margin + pw)
        return model.predict_proba(xp)[0, :, margin : margin + h, margin : margin + w]
    tile = (tile // f) * f
    stride = ((tile - overlap) // f) * f
    if tile < f or stride < f:
        raise ConfigError(
            f"tile {tile} with overlap {overlap} leaves no stride: the tile must exceed the overlap by "
            f"at least {f} pixels (2**depth) and be a multiple of {f}"
        )
    H, rows = _grid(h, tile, stride, margin)
    W, cols = _grid(w, tile, stride, margin)
    xp = mirror_pad(x, margin, H - h - margin, margin, W - w - margin)[0]  # (C, H, W) padded
    wy, wx = _ramp(tile, overlap, x.device), _ramp(tile, overlap, x.device)
    weight = wy[:, None] * wx[None, :]  # (tile, tile)
    acc = None
    norm = torch.zeros(H, W, device=x.device)
    starts = [(r, q) for r in rows for q in cols]
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        batch = torch.stack([xp[:, r : r + tile, q : q + tile] for r, q in chunk])
        probs = model.predict_proba(batch).float()  # (b, K, tile, tile)
        if acc is None:
            acc = torch.zeros(probs.shape[1], H, W, device=x.device)
        for (r, q), p in zip(chunk, probs):
            acc[:, r : r + tile, q : q + tile] += p * weight
            norm[r : r + tile, q : q + tile] += weight
    out = acc / norm.clamp_min(1e-12)  # only the cropped-off margins can have no weight
    return out[:, margin : margin + h, margin : margin + w]
