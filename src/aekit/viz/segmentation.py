"""Segmentation figures: image, true mask, prediction and the errors highlighted, per row."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from .figures import _check_png_path, _new_figure, _save_png

#: false positives (predicted positive, truly not) in red, false negatives in blue
FP_RGB = np.array([1.0, 0.15, 0.15])
FN_RGB = np.array([0.2, 0.45, 1.0])


def _gray(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) in [0, 1] -> (H, W, 3) for drawing."""
    im = np.asarray(image, dtype=np.float32)
    if im.ndim == 3:
        im = im[0] if im.shape[0] == 1 else np.moveaxis(im[:3], 0, -1)
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, -1)
    return np.clip(im, 0, 1)


def error_overlay(
    image: np.ndarray, true: np.ndarray, pred: np.ndarray, positive: int = 1, alpha: float = 0.7
) -> np.ndarray:
    """RGB (H, W, 3): the image in gray, wrong pixels coloured — red where the positive class was
    predicted but is absent (false positive), blue where it was missed; other confusions red."""
    rgb = _gray(image) * 0.8
    fp = (pred == positive) & (true != positive)
    fn = (true == positive) & (pred != positive)
    other = (true != pred) & ~fp & ~fn
    for m, col in ((fp | other, FP_RGB), (fn, FN_RGB)):
        rgb[m] = (1 - alpha) * rgb[m] + alpha * col
    return rgb


def _class_rgb(mask: np.ndarray, num_classes: int) -> np.ndarray:
    if num_classes == 2:
        return np.repeat((mask == 1).astype(np.float32)[..., None], 3, -1)
    from matplotlib import colormaps

    return colormaps["tab10"](mask % 10)[..., :3]


def segmentation_figure(
    images: Sequence[np.ndarray],
    pred_masks: Sequence[np.ndarray],
    path: str | os.PathLike,
    *,
    true_masks: Sequence[np.ndarray] | None = None,
    num_classes: int = 2,
    positive_class: int = 1,
    class_names: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    title: str | None = None,
    dpi: float = 100,
) -> Path:
    """One row per image: image | true mask | prediction | errors highlighted (with ``true_masks``),
    or image | prediction | prediction over the image (without).

    Binary masks are drawn white for class 1; more classes use the tab10 colours. Each row's
    label gives the image's name and, with true masks, its pixel error and positive-class Dice.
    """
    path = _check_png_path(path)
    n = len(images)
    if n == 0 or len(pred_masks) != n or (true_masks is not None and len(true_masks) != n):
        raise DataError("segmentation_figure needs one prediction (and true mask) per image, at least one image")
    pos_name = class_names[positive_class] if class_names else f"class {positive_class}"
    if true_masks is not None:
        heads = ["image", "true mask", "prediction", f"errors (red: false {pos_name}, blue: missed)"]
    else:
        heads = ["image", "prediction", f"{pos_name} over the image"]
    ncol = len(heads)
    h0, w0 = np.asarray(pred_masks[0]).shape
    aspect = h0 / max(w0, 1)
    fig = _new_figure((3.0 * ncol, 3.0 * aspect * n + 0.6), dpi, constrained=True)
    axes = fig.subplots(n, ncol, squeeze=False)
    for i in range(n):
        img, pred = images[i], np.asarray(pred_masks[i])
        panels = [_gray(img)]
        label = names[i] if names else f"image {i}"
        if true_masks is not None:
            true = np.asarray(true_masks[i])
            panels += [
                _class_rgb(true, num_classes),
                _class_rgb(pred, num_classes),
                error_overlay(img, true, pred, positive_class),
            ]
            err = float((true != pred).mean())
            tp = float(((true == positive_class) & (pred == positive_class)).sum())
            den = float((true == positive_class).sum() + (pred == positive_class).sum())
            label += f"\npixel error {err:.3f}\nDice {2 * tp / den if den else 1.0:.3f}"
        else:
            over = _gray(img) * 0.8
            m = pred == positive_class
            over[m] = 0.4 * over[m] + 0.6 * FP_RGB
            panels += [_class_rgb(pred, num_classes), over]
        for j, (ax, p) in enumerate(zip(axes[i], panels)):
            ax.imshow(p, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(heads[j], fontsize=8)
        axes[i][0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save_png(fig, path, dpi)
