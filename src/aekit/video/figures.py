"""Frame strips: a clip's frames side by side with its caption(s) underneath (Pillow only)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._utils import atomic_path
from .gif import as_uint8_frames


def frame_strip(
    frames: np.ndarray, lines: Sequence[str] = (), *, max_frames: int = 10, scale: int = 2, gap: int = 2
):
    """A PIL image: up to ``max_frames`` evenly spaced frames of (T, H, W), ``lines`` of text below."""
    from PIL import Image, ImageDraw, ImageFont

    frames = as_uint8_frames(frames, "frame_strip")
    t, h, w = frames.shape
    idx = np.unique(np.linspace(0, t - 1, min(max_frames, t)).round().astype(int))
    hs, ws = h * scale, w * scale
    width = len(idx) * (ws + gap) + gap
    font = ImageFont.load_default()
    chars = max(width // 7, 20)
    text = [piece for line in lines for piece in textwrap.wrap(line, chars) or [""]]
    line_h = 14
    img = Image.new("L", (width, hs + 2 * gap + line_h * len(text) + (4 if text else 0)), color=255)
    for j, k in enumerate(idx):
        tile = Image.fromarray(frames[k]).resize((ws, hs), Image.NEAREST)
        img.paste(tile, (gap + j * (ws + gap), gap))
    draw = ImageDraw.Draw(img)
    for j, line in enumerate(text):
        draw.text((gap + 2, hs + 2 * gap + 2 + j * line_h), line, fill=0, font=font)
    return img


def write_strip(path: str | os.PathLike, frames: np.ndarray, lines: Sequence[str] = (), **kwargs) -> Path:
    """Write :func:`frame_strip` as a PNG, atomically."""
    img = frame_strip(frames, lines, **kwargs)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)


def write_sheet(path: str | os.PathLike, clips: np.ndarray, captions: Sequence[Sequence[str]], **kwargs) -> Path:
    """Several strips stacked: clip ``i`` with its lines ``captions[i]`` (e.g. truth and prediction)."""
    from PIL import Image

    strips = [frame_strip(c, lines, **kwargs) for c, lines in zip(clips, captions)]
    width = max(s.width for s in strips)
    sheet = Image.new("L", (width, sum(s.height for s in strips)), color=255)
    y = 0
    for s in strips:
        sheet.paste(s, (0, y))
        y += s.height
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(path)
