"""Run PyOD detectors on prepared train/test splits; started by benchmarks/odds.py in PyOD's own venv.

    python _pyod_worker.py --data splits.npz --out result --detectors pca_pyod,pyod_ae,pyod_iforest

``splits.npz`` holds ``seeds`` (int array) and, per seed S, ``train_S`` and ``test_S`` (float32,
already standardised). Writes ``<out>.npz`` (``<detector>_<S>``: test scores, higher = more
anomalous) and ``<out>.json`` (fit and score seconds per detector and seed, versions). Threads are
limited to ``--threads`` (OMP/MKL and torch) before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings


def make_detector(name: str, seed: int):
    """PyOD's detectors with their default parameters; only the seed (and silence) are set."""
    if name == "pca_pyod":
        from pyod.models.pca import PCA

        return PCA(random_state=seed)
    if name == "pyod_ae":
        from pyod.models.auto_encoder import AutoEncoder

        return AutoEncoder(random_state=seed, verbose=0)
    if name == "pyod_iforest":
        from pyod.models.iforest import IForest

        return IForest(random_state=seed)
    raise SystemExit(f"unknown PyOD detector {name!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="output path without suffix")
    p.add_argument("--detectors", default="pca_pyod,pyod_ae,pyod_iforest")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    import pyod

    warnings.filterwarnings("ignore")
    data = np.load(args.data)
    names = [d for d in args.detectors.split(",") if d]
    scores: dict[str, np.ndarray] = {}
    timings: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
    for seed in [int(s) for s in data["seeds"]]:
        x_train, x_test = data[f"train_{seed}"], data[f"test_{seed}"]
        for name in names:
            det = make_detector(name, seed)
            t0 = time.perf_counter()
            det.fit(x_train)
            t1 = time.perf_counter()
            s = np.asarray(det.decision_function(x_test), dtype=np.float64)
            t2 = time.perf_counter()
            scores[f"{name}_{seed}"] = s
            timings[name][str(seed)] = {"fit_s": t1 - t0, "score_s": t2 - t1}
    np.savez(args.out + ".npz", **scores)
    meta = {
        "timings": timings,
        "env": {"python": platform.python_version(), "pyod": getattr(pyod, "__version__", None),
                "torch": torch.__version__, "numpy": np.__version__,
                "torch_threads": torch.get_num_threads()},
    }
    with open(args.out + ".json", "w", encoding="utf-8") as fh:
        json.dump(meta, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
