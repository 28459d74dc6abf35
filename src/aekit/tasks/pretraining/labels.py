"""The few labels: a class-balanced, seeded draw from a labelled training set."""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError, DataError


def draw_labelled(y, n_labels: int, *, seed: int = 0) -> np.ndarray:
    """Indices of ``n_labels`` examples drawn class-balanced and reproducibly from labels ``y``.

    Each class gets ``n_labels // n_classes`` examples; the remainder goes one each to classes
    chosen by the same seed. The same ``(y, n_labels, seed)`` always gives the same indices.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class labels of the training set (any sortable values; ``-1`` marks unlabelled rows).
    n_labels : int
        How many labelled examples to draw (at least one per class).
    seed : int, default 0

    Returns
    -------
    ndarray of shape (n_labels,), int64, sorted
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"labels must be a 1-D array, got shape {y.shape}")
    known = y != -1 if np.issubdtype(y.dtype, np.number) else np.ones(len(y), bool)
    classes = np.unique(y[known])
    if len(classes) < 2:
        raise DataError(f"the labels hold {len(classes)} class(es); a classifier needs at least 2")
    n_labels = int(n_labels)
    if n_labels < len(classes):
        raise ConfigError(
            f"{n_labels} labelled examples are fewer than the {len(classes)} classes; "
            f"draw at least one per class (--labels {len(classes)} or more)"
        )
    rng = np.random.default_rng(seed)
    share = np.full(len(classes), n_labels // len(classes))
    share[rng.choice(len(classes), n_labels % len(classes), replace=False)] += 1
    picked = []
    for c, k in zip(classes, share):
        pool = np.flatnonzero(known & (y == c))
        if len(pool) < k:
            raise DataError(
                f"class {c!r} has only {len(pool)} examples, fewer than the {k} a balanced draw of "
                f"{n_labels} needs; ask for fewer labels"
            )
        picked.append(rng.choice(pool, k, replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)
