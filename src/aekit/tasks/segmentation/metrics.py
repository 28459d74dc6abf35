"""Segmentation metrics: confusion matrix, Dice and IoU per class, pixel error, ISBI 2012 Rand error.

Rand error (the ISBI 2012 challenge's "foreground-restricted Rand error", Arganda-Carreras et al.
2015, as in the challenge's Fiji script): both masks are turned into segmentations by labelling
the 4-connected components of the non-boundary pixels (for the ISBI data the boundary class is
the membrane, so the segments are the cells). Only pixels inside the ground truth's segments
count (its boundary pixels are ignored). With ``n_ij`` the number of such pixels in predicted
segment ``i`` and true segment ``j``, and predicted boundary pixels inside true segments counted
as one-pixel segments of their own (``n_0`` of them),

    A = sum_{i>0, j} n_ij**2 + n_0          (pairs together in both)
    S = sum_{i>0} (sum_j n_ij)**2 + n_0     (pairs together in the prediction)
    T = sum_j (sum_i n_ij + n_0j)**2        (pairs together in the truth)
    Rand F-score = 2 A / (S + T),  rand error = 1 - F-score

(``A / S`` is the Rand precision or "merge" score, ``A / T`` the recall or "split" score.)
A set's Rand error is the mean over its images, computed on the thresholded prediction (the
challenge also swept thresholds and kept the best). scikit-image's ``adapted_rand_error`` differs
in two details: it counts pairs of distinct pixels (``n (n - 1)`` rather than ``n**2``) and keeps
the predicted boundary pixels together as one segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ...errors import DataError

_FOUR = ndimage.generate_binary_structure(2, 1)  # 4-connectivity


def _check_pair(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape:
        raise DataError(f"true and predicted masks differ in shape: {true.shape} vs {pred.shape}")
    return true.astype(np.int64, copy=False), pred.astype(np.int64, copy=False)


def confusion_matrix(true, pred, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): rows = true class, columns = predicted class."""
    true, pred = _check_pair(true, pred)
    if true.size and (true.min() < 0 or true.max() >= num_classes or pred.min() < 0 or pred.max() >= num_classes):
        raise DataError(f"class values must be in 0..{num_classes - 1}")
    return np.bincount(true.ravel() * num_classes + pred.ravel(), minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def dice_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Dice (F1) per class, 2 TP / (2 TP + FP + FN); 1.0 for a class absent from truth and prediction."""
    tp = np.diag(cm).astype(np.float64)
    denom = 2 * tp + (cm.sum(0) - tp) + (cm.sum(1) - tp)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """IoU (Jaccard) per class, TP / (TP + FP + FN); 1.0 for a class absent from truth and prediction."""
    tp = np.diag(cm).astype(np.float64)
    denom = tp + (cm.sum(0) - tp) + (cm.sum(1) - tp)
    return np.where(denom > 0, tp / np.maximum(denom, 1), 1.0)


def dice(true, pred, num_classes: int) -> np.ndarray:
    """Dice per class over all pixels of ``true`` / ``pred`` (integer class maps of one shape)."""
    return dice_from_confusion(confusion_matrix(true, pred, num_classes))


def iou(true, pred, num_classes: int) -> np.ndarray:
    """IoU per class over all pixels."""
    return iou_from_confusion(confusion_matrix(true, pred, num_classes))


def pixel_error(true, pred) -> float:
    """Share of pixels whose predicted class differs from the true one."""
    true, pred = _check_pair(true, pred)
    return float((true != pred).mean()) if true.size else 0.0


#: the thresholds of the ISBI 2012 scoring script (0.0, 0.1, ..., 1.0)
ISBI_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(11))


def isbi_pixel_error(true_masks: Sequence[np.ndarray], region_probas: Sequence[np.ndarray],
                     boundary_class: int = 1, thresholds: Sequence[float] = ISBI_THRESHOLDS) -> dict[str, float]:
    """The ISBI 2012 challenge's pixel error: 1 - the maximal F-score of pixel similarity.

    As the challenge's Fiji script (``PixelError.getPixelErrorMaximalFScore(0.0, 1.0, 0.1)``)
    computes it: the positives are the non-boundary pixels (the white cell interiors of the ISBI
    labels); the prediction is the probability of not being boundary, called positive where it
    exceeds a threshold; true/false positives and negatives are pooled over all images, the
    F-score computed at each threshold, and the best one kept. This is the "pixel error" the
    challenge's leaderboard and Ronneberger et al. (0.0611) report; it is not the share of
    misclassified pixels (:func:`pixel_error`).

    Parameters
    ----------
    true_masks : class maps (H, W), one per image.
    region_probas : the predicted probability of *not* being ``boundary_class``, (H, W) per image.

    Returns
    -------
    dict with ``isbi_pixel_error``, ``isbi_pixel_fscore`` and the ``isbi_threshold`` that gave it.
    """
    if len(true_masks) != len(region_probas) or not len(true_masks):
        raise DataError(f"need matching, non-empty lists ({len(true_masks)} masks, {len(region_probas)} maps)")
    tp = np.zeros(len(thresholds))
    fp = np.zeros(len(thresholds))
    fn = np.zeros(len(thresholds))
    for t, p in zip(true_masks, region_probas):
        t, p = np.asarray(t), np.asarray(p, dtype=np.float64)
        if t.shape != p.shape:
            raise DataError(f"true mask and probability map differ in shape: {t.shape} vs {p.shape}")
        pos = t != boundary_class
        for k, th in enumerate(thresholds):
            called = p > th
            tp[k] += np.count_nonzero(called & pos)
            fp[k] += np.count_nonzero(called & ~pos)
            fn[k] += np.count_nonzero(~called & pos)
    denom = 2 * tp + fp + fn
    f = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    best = int(np.argmax(f))
    return {"isbi_pixel_error": float(1 - f[best]), "isbi_pixel_fscore": float(f[best]),
            "isbi_threshold": float(thresholds[best])}


def regions(mask, boundary_class: int = 1) -> np.ndarray:
    """Label the 4-connected regions of the non-boundary pixels (1, 2, ...); boundary pixels get 0.

    Regions of different classes are labelled separately even when they touch.
    """
    mask = np.asarray(mask)
    out = np.zeros(mask.shape, dtype=np.int64)
    offset = 0
    for c in np.unique(mask):
        if c == boundary_class:
            continue
        lab, n = ndimage.label(mask == c, structure=_FOUR)
        out[lab > 0] = lab[lab > 0] + offset
        offset += n
    return out


def adapted_rand_error(true_labels, pred_labels) -> dict[str, float]:
    """Foreground-restricted Rand error of two label images (0 = boundary), see the module doc.

    Returns ``rand_error``, ``rand_fscore``, ``rand_precision`` (merge) and ``rand_recall`` (split).
    An image without true segments has nothing to judge: error 0.
    """
    true, pred = _check_pair(true_labels, pred_labels)
    fg = true > 0
    t, p = true[fg], pred[fg]
    if t.size == 0:
        return {"rand_error": 0.0, "rand_fscore": 1.0, "rand_precision": 1.0, "rand_recall": 1.0}
    _, t = np.unique(t, return_inverse=True)
    inside = p > 0
    n0 = int((~inside).sum())  # predicted boundary pixels inside true segments: singletons
    _, p_in = np.unique(p[inside], return_inverse=True)
    nt = int(t.max()) + 1
    joint = np.bincount(p_in * nt + t[inside], minlength=(int(p_in.max()) + 1 if p_in.size else 0) * nt).astype(
        np.float64
    )
    a = float(joint @ joint) + n0
    s_sizes = np.bincount(p_in).astype(np.float64)
    s = float(s_sizes @ s_sizes) + n0
    t_sizes = np.bincount(t).astype(np.float64)
    tt = float(t_sizes @ t_sizes)
    f = 2 * a / (s + tt)
    return {"rand_error": 1.0 - f, "rand_fscore": f, "rand_precision": a / s, "rand_recall": a / tt}


def rand_error(true_mask, pred_mask, boundary_class: int = 1) -> float:
    """ISBI 2012 Rand error of two class maps whose ``boundary_class`` separates the regions."""
    return adapted_rand_error(regions(true_mask, boundary_class), regions(pred_mask, boundary_class))["rand_error"]


def segmentation_report(
    true_masks: Sequence[np.ndarray],
    pred_masks: Sequence[np.ndarray],
    num_classes: int,
    *,
    class_names: Sequence[str] | None = None,
    positive_class: int = 1,
    rand: bool = True,
) -> dict:
    """All metrics over a set of images: pooled confusion, per-class Dice / IoU, pixel error,
    mean Rand error (``positive_class`` is the boundary class), and the positive class's scores.
    """
    if len(true_masks) != len(pred_masks) or not len(true_masks):
        raise DataError(
            f"need matching, non-empty lists of masks ({len(true_masks)} true, {len(pred_masks)} predicted)"
        )
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    cm = sum(confusion_matrix(t, p, num_classes) for t, p in zip(true_masks, pred_masks))
    d, j = dice_from_confusion(cm), iou_from_confusion(cm)
    n_pix = int(cm.sum())
    out = {
        "pixel_error": float((n_pix - np.trace(cm)) / max(n_pix, 1)),
        "dice": {names[c]: float(d[c]) for c in range(num_classes)},
        "iou": {names[c]: float(j[c]) for c in range(num_classes)},
        "positive_class": names[positive_class],
        "dice_positive": float(d[positive_class]),
        "iou_positive": float(j[positive_class]),
        "mean_dice": float(d.mean()),
        "mean_iou": float(j.mean()),
        "confusion": cm.tolist(),
        "n_images": len(true_masks),
        "n_pixels": n_pix,
    }
    if rand:
        per = [rand_error(t, p, positive_class) for t, p in zip(true_masks, pred_masks)]
        out["rand_error"] = float(np.mean(per))
        out["rand_error_per_image"] = [float(v) for v in per]
    return out
