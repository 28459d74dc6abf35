"""Does pretraining help? Every method on the same class-balanced label draws, several seeds."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from ...errors import ConfigError, DataError
from .classifier import PretrainedClassifier, frozen_code_classifier
from .labels import draw_labelled

#: method -> what it is (the pretrained encoders' names replace NAME)
METHODS = {
    "scratch": "the same network from random initialisation, trained on the labelled examples only",
    "NAME": "encoder pretrained as NAME, head added, whole network fine-tuned",
    "NAME+logreg": "logistic regression on NAME's frozen codes (standardised)",
    "NAME+knn": "5-nearest neighbours on NAME's frozen codes (standardised)",
    "pixels+knn": "5-nearest neighbours on the raw pixels (no network at all)",
    "M+pseudo": "method M (scratch or NAME), then also trained on the unlabelled rest of the training set "
                "by confident pseudo-labels (FixMatch-style)",
}


def compare_pretraining(
    X_train,
    y_train,
    X_test,
    y_test,
    encoders: Mapping[str, nn.Module],
    *,
    labels: Sequence[int] = (100, 1000),
    seeds: int | Sequence[int] = 5,
    baselines: bool = True,
    classifier_options: Mapping[str, Any] | None = None,
    pseudo_label: Sequence[str] = (),
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Test accuracy of fine-tuning each pretrained encoder, of the same network from random
    initialisation, and of the frozen-code baselines, for every label count and seed.

    Parameters
    ----------
    X_train, y_train : the training set; labelled examples are drawn from it with
        :func:`draw_labelled` (class-balanced, seeded), the rest is never used here (the
        encoders were pretrained on it without labels).
    X_test, y_test : the test set.
    encoders : dict name -> pretrained autoencoder; the first one's architecture is also
        trained from scratch (``"scratch"``).
    labels : labelled-set sizes.
    seeds : a number of seeds (0..n-1) or the seeds themselves; seed s draws the labels and
        seeds the fine-tuning.
    baselines : also logistic regression and kNN on each encoder's frozen codes, and kNN on pixels.
    classifier_options : keyword arguments for every :class:`PretrainedClassifier`.
    pseudo_label : methods (``"scratch"`` and/or encoder names) to run a second time as
        ``METHOD+pseudo``: the same fine-tuning, then the pseudo-label phase on the training
        images that were not drawn as labelled (``X_unlabelled`` of ``PretrainedClassifier.fit``).
    on_result : called with each result row as soon as it is measured (progress output).

    Returns
    -------
    list of dict with ``method``, ``n_labels``, ``seed``, ``test_accuracy``, ``seconds``.
    """
    if not encoders:
        raise ConfigError("compare_pretraining needs at least one pretrained encoder")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ConfigError("seeds must be a positive number or a non-empty list")
    if y_train is None or y_test is None:
        raise DataError("compare_pretraining needs labels for the training and the test set")
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(y_train) != len(X_train):
        raise DataError(f"y_train must have one label per training sample ({len(X_train)})")
    unseen = np.setdiff1d(np.unique(y_test), np.unique(y_train))
    if len(unseen):
        raise DataError(f"test labels {unseen.tolist()} are not present in the training labels")
    pseudo = list(pseudo_label)
    unknown = [m for m in pseudo if m != "scratch" and m not in encoders]
    if unknown:
        raise ConfigError(f"pseudo_label names {unknown}; use 'scratch' or encoder names {list(encoders)}")
    opts = dict(classifier_options or {})
    first = next(iter(encoders.values()))
    rows: list[dict[str, Any]] = []

    def record(method: str, n: int, seed: int, clf, Xl, yl, Xu=None) -> None:
        t0 = time.perf_counter()
        clf.fit(Xl, yl) if Xu is None else clf.fit(Xl, yl, X_unlabelled=Xu)
        acc = float(clf.score(X_test, y_test))
        row = {"method": method, "n_labels": int(n), "seed": int(seed), "test_accuracy": acc,
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        if on_result is not None:
            on_result(row)

    for n in labels:
        for seed in seeds:
            idx = draw_labelled(y_train, n, seed=seed)
            Xl, yl = X_train[idx], y_train[idx]
            Xu = np.delete(X_train, idx, axis=0) if pseudo else None
            record("scratch", n, seed, PretrainedClassifier(first, from_scratch=True, seed=seed, **opts), Xl, yl)
            if "scratch" in pseudo:
                record("scratch+pseudo", n, seed, PretrainedClassifier(first, from_scratch=True, seed=seed, **opts),
                       Xl, yl, Xu)
            for name, ae in encoders.items():
                record(name, n, seed, PretrainedClassifier(ae, seed=seed, **opts), Xl, yl)
                if name in pseudo:
                    record(f"{name}+pseudo", n, seed, PretrainedClassifier(ae, seed=seed, **opts), Xl, yl, Xu)
                if baselines:
                    for m in ("logreg", "knn"):
                        record(f"{name}+{m}", n, seed, frozen_code_classifier(ae, m, seed=seed), Xl, yl)
            if baselines:
                record("pixels+knn", n, seed, frozen_code_classifier(None, "knn"), Xl, yl)
    return rows


def summarise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of test accuracy per (method, n_labels), in first-seen order."""
    groups: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        groups.setdefault((r["method"], int(r["n_labels"])), []).append(float(r["test_accuracy"]))
    return [
        {"method": m, "n_labels": n, "mean": float(np.mean(a)), "std": float(np.std(a, ddof=1)) if len(a) > 1 else 0.0,
         "n_seeds": len(a)}
        for (m, n), a in groups.items()
    ]
