"""Frame strips: a clip's frames side by side with its caption(s) underneath, and spatial
attention sheets (Pillow only)."""

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


def attention_sheet(
    frames: np.ndarray, words: Sequence[str], maps: np.ndarray, *, max_frames: int = 10, scale: int = 2,
    gap: int = 2, max_words: int = 30,
):
    """A PIL image: one row per word, the clip's frames with that word's attention tinted red.

    ``maps`` (n_words, T, h, w) are per-frame attention weights (:meth:`VideoCaptioner.attention`),
    upsampled (nearest) to the frame size. Full red is a cell holding 4 times the uniform weight
    or more, so attention spread evenly over the frame shows as a faint wash.
    """
    from PIL import Image, ImageDraw, ImageFont

    frames = as_uint8_frames(frames, "attention_sheet")
    maps = np.asarray(maps, dtype=np.float32)
    t, h, w = frames.shape
    if maps.ndim != 4 or len(maps) != len(words) or maps.shape[1] != t:
        raise ValueError(f"maps must be (n_words={len(words)}, T={t}, h, w), got {maps.shape}")
    words, maps = list(words)[:max_words], maps[:max_words]
    idx = np.unique(np.linspace(0, t - 1, min(max_frames, t)).round().astype(int))
    hs, ws = h * scale, w * scale
    font = ImageFont.load_default()
    label_w = 8 + 7 * max((len(x) for x in words), default=1)
    width = label_w + len(idx) * (ws + gap) + gap
    img = Image.new("RGB", (width, len(words) * (hs + gap) + gap + 16), color=(255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.text((gap + 2, 2), "red: where each word looks (spatial attention, per frame)", fill=(0, 0, 0), font=font)
    # nearest upsampling of an h' x w' map to the frame: which map cell each pixel falls in
    rows = np.minimum(np.arange(h) * maps.shape[2] // h, maps.shape[2] - 1)
    cols = np.minimum(np.arange(w) * maps.shape[3] // w, maps.shape[3] - 1)
    for i, word in enumerate(words):
        y = 16 + gap + i * (hs + gap)
        draw.text((gap + 2, y + hs // 2 - 6), word, fill=(0, 0, 0), font=font)
        for j, k in enumerate(idx):
            cells = maps.shape[2] * maps.shape[3]
            a = np.clip(maps[i, k][np.ix_(rows, cols)] * (cells / 4), 0, 1)
            g = frames[k].astype(np.float32) * 0.7
            rgb = np.stack([np.minimum(g + 255 * a * 0.8, 255), g, g], -1).astype(np.uint8)
            tile = Image.fromarray(rgb, "RGB").resize((ws, hs), Image.NEAREST)
            img.paste(tile, (label_w + j * (ws + gap), y))
    return img


def write_attention_sheet(
    path: str | os.PathLike, frames: np.ndarray, words: Sequence[str], maps: np.ndarray, **kwargs
) -> Path:
    """Write :func:`attention_sheet` as a PNG, atomically."""
    img = attention_sheet(frames, words, maps, **kwargs)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)
