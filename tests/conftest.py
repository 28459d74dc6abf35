"""Test setup: one torch thread (timings with two swing wildly on shared machines), real data
from ../shared/datasets, no network, a fixed seed per test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("AEKIT_OFFLINE", "1")
_shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if "AEKIT_DATA_HOME" not in os.environ and _shared.is_dir():
    os.environ["AEKIT_DATA_HOME"] = str(_shared)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) floats in [0, 1], with labels."""
    from aekit.data import load_dataset

    return load_dataset("digits")
