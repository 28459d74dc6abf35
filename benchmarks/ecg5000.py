"""AnomalyDetector on ECG5000 heartbeats, against the TensorFlow autoencoder tutorial's numbers.

The TensorFlow "Intro to autoencoders" anomaly-detection example trains a dense 140-32-16-8
autoencoder (mirrored decoder, sigmoid output) on normal ECG5000 beats only, min-max scaled to
[0, 1], and flags a beat as anomalous when its reconstruction error exceeds mean + 1 std of the
training errors. On its own train/test split it reports, with the *normal* class as the positive
class: accuracy 0.944, precision 0.992, recall 0.907.

Only the UCR TRAIN split (500 beats x 140 samples; class 1 = normal, 292 beats; classes 2-5 =
anomalous, 208) is available here, so the protocol is stratified 5-fold cross-validation
(scikit-learn ``StratifiedKFold``, shuffle, seed 0): in each fold the detector is trained on the
*normal* beats of the training folds only (it holds out ``val_fraction`` of them to calibrate its
threshold) and scores the held-out fold (normal and anomalous beats). Two thresholds per trained
model: ``std:1`` (mean + 1 std, mirroring the tutorial, but on held-out normal beats) and the
library's default false-alarm budget ``fpr:0.01``; both are fitted on the same held-out normal
beats (the second by re-running ``fit_threshold`` on them, checked to reproduce the first).
Reported as mean +- std over the folds: accuracy, normal-class precision and recall (the tutorial's
view; ``binary_report``'s ``normal_precision``/``normal_recall``), anomaly-class F1, and ROC-AUC of
the scores. The TF numbers come from a different split (and 4,500 more test beats), so they are
context, not a like-for-like comparison.

Detectors: the ``AnomalyDetector`` defaults (dense, standardised), ``model="conv1d"``,
``model="gru"`` (``--gru``, slower), and the tutorial-like ``hidden=(32, 16), latent_dim=8,
scale="minmax"``, also with ``val_fraction=0`` (threshold on the training beats' errors, exactly as
the tutorial does).

    python benchmarks/ecg5000.py                # all detectors, 5 folds
    python benchmarks/ecg5000.py --quick        # smoke run, < 1 minute

Writes benchmarks/results/ecg5000.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("AEKIT_DATA_HOME", str(_common.REPO_ROOT.parent / "shared" / "datasets"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from aekit.tasks.anomaly import AnomalyDetector, binary_report, fit_threshold, roc_auc  # noqa: E402

# TensorFlow tutorial (tensorflow.org/tutorials/generative/autoencoder), normal class positive
TF_PUBLISHED = {"accuracy": 0.944, "normal_precision": 0.992, "normal_recall": 0.907}

DETECTORS: dict[str, dict[str, Any]] = {
    "defaults (dense)": {},
    "conv1d": dict(model="conv1d"),
    "gru": dict(model="gru"),
    # the TensorFlow tutorial's recipe: dense 32-16-8, min-max scaling, plain squared error, no noise
    "TF-like 32-16-8 minmax": dict(hidden=(32, 16), latent_dim=8, scale="minmax", error="mse", noise=None),
    "TF-like, threshold on train errors": dict(
        hidden=(32, 16), latent_dim=8, scale="minmax", error="mse", noise=None, val_fraction=0.0
    ),
}
THRESHOLDS = ("std:1", "fpr:0.01")
METRICS = ("accuracy", "normal_precision", "normal_recall", "f1", "auc")


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    a = np.loadtxt(path)
    return a[:, 1:].astype(np.float32), (a[:, 0].astype(int) != 1).astype(int)  # 1 = anomalous


def calibration_scores(det: AnomalyDetector, x_normal: np.ndarray) -> np.ndarray:
    """The scores of the beats fit() held out for calibration (its own split, seed and fraction)."""
    n = len(x_normal)
    order = np.random.default_rng(det.seed).permutation(n)
    n_val = int(round(n * det.val_fraction)) if n >= 10 else 0
    idx = order[:n_val] if n_val else order[n_val:]  # no hold-out: calibrated on the training beats
    return det.anomaly_score(x_normal[idx])


def run_detector(label: str, kw: dict[str, Any], X: np.ndarray, y: np.ndarray, folds, threads: int,
                 steps: int | None) -> dict[str, Any]:
    per_fold: dict[str, list[dict[str, Any]]] = {t: [] for t in THRESHOLDS}
    fit_s = []
    for k, (tr, te) in enumerate(folds):
        x_norm = X[tr][y[tr] == 0]
        params = {**kw, "threshold": THRESHOLDS[0], "threads": threads, "seed": 0}
        if steps is not None:
            params["steps"] = steps
        det = AnomalyDetector(**params)
        t = time.perf_counter()
        det.fit(x_norm)
        fit_s.append(time.perf_counter() - t)
        cal = calibration_scores(det, x_norm)
        again = fit_threshold(THRESHOLDS[0], cal).value
        if not np.isclose(again, det.threshold_.value, rtol=1e-6):
            raise RuntimeError(f"calibration split not reproduced: {again} != {det.threshold_.value}")
        scores = det.anomaly_score(X[te])
        auc = roc_auc(y[te], scores)
        for spec in THRESHOLDS:
            th = fit_threshold(spec, cal).value
            rep = binary_report(y[te], scores > th)
            per_fold[spec].append({"fold": k, "threshold": th, "auc": auc, **rep})
    rows = []
    for spec in THRESHOLDS:
        rs = per_fold[spec]
        row: dict[str, Any] = {"detector": label, "threshold": spec, "params": kw, "folds": rs,
                               "fit_s": float(np.mean(fit_s))}
        for m in METRICS:
            v = np.array([r[m] for r in rs])
            row[m], row[m + "_std"] = float(v.mean()), float(v.std())
            row[m + "_pm"] = f"{v.mean():.3f} ± {v.std():.3f}"
        rows.append(row)
    print(f"  {label}: " + "; ".join(f"{r['threshold']}: acc {r['accuracy_pm']}, F1 {r['f1_pm']}" for r in rows)
          + f"; AUC {rows[0]['auc_pm']} ({np.mean(fit_s):.1f} s per fit)", flush=True)
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="StratifiedKFold shuffle seed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the library's)")
    ap.add_argument("--detectors", default=None, help="comma-separated DETECTORS labels (default all but gru)")
    ap.add_argument("--gru", action="store_true", help="also the GRU detector (slower)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 folds, 300 steps, dense only")
    ap.add_argument("--results-dir", default=None, help="folder for the JSON (default benchmarks/results; "
                    "with --quick a temporary folder, so that smoke runs keep the real results)")
    ap.add_argument("--out", default="ecg5000", help="results/<OUT>.json (default ecg5000)")
    args = ap.parse_args(argv)
    names = args.detectors.split(",") if args.detectors else [n for n in DETECTORS if n != "gru" or args.gru]
    if args.quick:
        args.folds, args.steps = 2, 300
        names = ["defaults (dense)", "TF-like 32-16-8 minmax"]
    torch.set_num_threads(args.threads)
    out_dir = _common.results_dir(args)

    t_start = time.perf_counter()
    env = _common.env_info()
    path = Path(os.environ["AEKIT_DATA_HOME"]) / "ecg5000" / "ECG5000_TRAIN.txt"
    X, y = load(path)
    print(f"ECG5000 TRAIN: {len(X)} beats x {X.shape[1]}, {int((y == 0).sum())} normal, {int(y.sum())} anomalous; "
          f"stratified {args.folds}-fold CV (seed {args.seed}); {args.threads} torch thread(s)", flush=True)
    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(X, y))
    rows = []
    for name in names:
        rows += run_detector(name, DETECTORS[name], X, y, folds, args.threads, args.steps)["rows"]
    table = [{k: r[k] for k in ("detector", "threshold", "accuracy_pm", "normal_precision_pm", "normal_recall_pm",
                                 "f1_pm", "auc_pm", "fit_s")} for r in rows]
    table.append({"detector": "TensorFlow tutorial (published, own split)", "threshold": "mean + 1 std (train)",
                  "accuracy_pm": f"{TF_PUBLISHED['accuracy']:.3f}",
                  "normal_precision_pm": f"{TF_PUBLISHED['normal_precision']:.3f}",
                  "normal_recall_pm": f"{TF_PUBLISHED['normal_recall']:.3f}"})
    _common.print_table(table, ["detector", "threshold", "accuracy_pm", "normal_precision_pm", "normal_recall_pm",
                                "f1_pm", "auc_pm", "fit_s"],
                        ["detector", "threshold", "accuracy", "normal precision", "normal recall", "anomaly F1",
                         "ROC-AUC", "fit s"],
                        title=f"ECG5000 TRAIN split, stratified {args.folds}-fold CV, mean ± std over folds")
    out = _common.write_json(args.out, {
        "benchmark": "ecg5000", "command": _common.command_line(), "env": env,
        "protocol": f"stratified {args.folds}-fold CV (shuffle, seed {args.seed}) on the 500-beat UCR TRAIN split; "
                    "train on the training folds' normal beats (class 1), score the held-out fold; thresholds "
                    "calibrated on the detector's held-out normal beats",
        "tf_published": TF_PUBLISHED, "rows": rows, "wall_s": time.perf_counter() - t_start,
    }, out_dir)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
