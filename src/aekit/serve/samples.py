"""Example inputs for the web page: test images of the data set a model was trained on."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np


@functools.lru_cache(maxsize=4)
def _load(name: str):
    from ..data import load_dataset

    return load_dataset(name)  # a named set only: callers pass canonical names


def dataset_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    ds = _load(name)
    return (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)


def draw_samples(dataset: str, shape: tuple[int, ...], n: int, seed: int | None) -> list[dict[str, Any]]:
    """``n`` random test samples of named ``dataset`` shaped for a model with input ``shape``."""
    from .inputs import png_data_url

    x, y = dataset_split(dataset, "test")
    if len(x) == 0:
        return []
    per = math.prod(shape)
    if x[0].size != per:
        raise ValueError(f"data set {dataset!r} has samples of shape {list(x.shape[1:])}, not the model's "
                         f"input {list(shape)}")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), size=min(n, len(x)), replace=False)
    out = []
    for i in sorted(int(j) for j in idx):
        sample = np.asarray(x[i], dtype=np.float32).reshape(shape)
        out.append({
            "id": f"{dataset}:test:{i}",
            "label": int(y[i]) if y is not None else None,
            "image_png": png_data_url(sample) if len(shape) == 3 else None,
            "input": np.round(sample.astype(np.float64), 6).tolist(),
        })
    return out
