"""PyOD's benchmark protocol on the ODDS outlier-detection sets: aekit's AnomalyDetector side by side.

For every ``.mat`` in the ODDS folder (``$AEKIT_DATA_HOME/odds``, default ``../shared/datasets/odds``
relative to the repository) and every seed 0..4, as PyOD's benchmark does: a plain 60/40
``train_test_split(X, y, test_size=0.4, random_state=seed)``, z-scores fitted on the training part
(PyOD's ``standardizer``), each detector fitted *unsupervised* on the training 60% (anomalies
included) and judged by ROC-AUC and average precision of its test scores (higher = more anomalous).
Reported per set: the mean over seeds, and fit and score seconds per detector.

Detectors (``--detectors``, all measured in the same run, each with 1 thread):

- ``ours``: ``aekit.tasks.anomaly.detector.AnomalyDetector(seed=seed, threads=1)``, its defaults
  (``--ours-params '{"latent_dim": 4}'`` overrides them, for exploration);
- ``iforest``: scikit-learn ``IsolationForest(random_state=seed)``, score ``-score_samples``;
- ``pca``: two columns. ``pca_recon``: squared reconstruction error with the leading components
  that explain 90% of the training variance (``PCA(n_components=0.9)``, a choice of ours);
  ``pca_pyod``: ``pyod.models.pca.PCA()`` (all components, each weighted by 1/eigenvalue);
- ``pyod``: ``pyod.models.auto_encoder.AutoEncoder()`` (``pyod_ae``) and ``IForest()``
  (``pyod_iforest``) with their defaults (only ``random_state=seed`` and ``verbose=0`` set).

The PyOD detectors run in their own virtual environment, benchmarks/.venv-pyod (created on first
use: ``pip install pyod tqdm torch==2.13.0``), through benchmarks/_pyod_worker.py, one process per set.

Targets (issue): mean ROC-AUC over PyOD's 17 sets >= 0.85 with the default configuration; on
every set ours >= the better PCA column - 0.02; total fit time of ours <= PyOD AutoEncoder's.
annthyroid, breastw, mammography and thyroid are reported too, outside the mean over the 17.

``--sweep`` compares configurations of ours (JSON object name -> AnomalyDetector parameters, or a
file holding one) against the PCA columns, and merges them into results/odds_sweep.json.

    python benchmarks/odds.py                                  # 21 sets x 5 seeds, all detectors
    python benchmarks/odds.py --quick                          # smoke run: 1 seed, 5 small sets
    python benchmarks/odds.py --sets cardio,musk --detectors ours,pca --ours-params '{"latent_dim": 4}'
    python benchmarks/odds.py --sweep '{"lat4": {"latent_dim": 4}}' --seeds 2 --jobs 2

Writes benchmarks/results/odds.json (or odds_sweep.json with --sweep).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy / torch load their thread pools

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
PYOD_WORKER = BENCH_DIR / "_pyod_worker.py"
DEFAULT_PYOD_VENV = BENCH_DIR / ".venv-pyod"
TORCH_PIN = "torch==2.13.0"

#: the 17 sets of PyOD's published benchmark, and the 4 other ODDS sets reported alongside
SETS_17 = ["arrhythmia", "cardio", "glass", "ionosphere", "letter", "lympho", "mnist", "musk", "optdigits",
           "pendigits", "pima", "satellite", "satimage-2", "shuttle", "vertebral", "vowels", "wbc"]
SETS_EXTRA = ["annthyroid", "breastw", "mammography", "thyroid"]
QUICK_SETS = ["glass", "lympho", "vertebral", "wbc", "pima"]

IN_PROCESS = ("ours", "iforest", "pca_recon")
IN_PYOD = ("pca_pyod", "pyod_ae", "pyod_iforest")
ALL_DETECTORS = ("ours", "iforest", "pca_recon", "pca_pyod", "pyod_ae", "pyod_iforest")
GROUPS = {"pca": ("pca_recon", "pca_pyod"), "pyod": ("pyod_ae", "pyod_iforest")}
PCA_VARIANCE = 0.9

TARGET_MEAN_AUC = 0.85
TARGET_PCA_GAP = 0.02

#: PyOD's published benchmark (ROC-AUC, mean of 10 random 60/40 splits), for context
PUBLISHED = {
    "source": "PyOD benchmark (pyod.readthedocs.io/en/latest/benchmark.html), ROC-AUC",
    "mean_over_17": {"AutoEncoder": 0.80, "IForest": 0.82},
    "cardio": {"AutoEncoder": 0.82, "PCA": 0.95},
    "musk": {"AutoEncoder": 0.81, "PCA": 1.00},
}


# ----------------------------------------------------------------------------------------------
# data


def odds_dir() -> Path:
    home = os.environ.get("AEKIT_DATA_HOME")
    base = Path(home) if home else _common.REPO_ROOT.parent / "shared" / "datasets"
    return base / "odds"


def available_sets() -> list[str]:
    folder = odds_dir()
    have = {p.stem for p in folder.glob("*.mat")}
    ordered = [s for s in SETS_17 + SETS_EXTRA if s in have]
    return ordered + sorted(have - set(ordered))


def load_set(name: str):
    import numpy as np
    import scipy.io

    d = scipy.io.loadmat(str(odds_dir() / f"{name}.mat"))
    return np.asarray(d["X"], dtype=np.float64), np.asarray(d["y"]).ravel().astype(np.int64)


def split(X, y, seed: int):
    """PyOD's protocol: plain 60/40 split, z-scores fitted on the training part (``standardizer``).

    float64, as PyOD's benchmark (in float32, PyOD's PCA finds an exactly zero eigenvalue on
    vertebral, whose features are collinear, and scores everything infinite).
    """
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x_tr, x_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, random_state=seed)
    scaler = StandardScaler().fit(x_tr)
    return scaler.transform(x_tr), scaler.transform(x_te), y_tr, y_te


# ----------------------------------------------------------------------------------------------
# in-process detectors


def fit_score(name: str, x_tr, x_te, seed: int, ours_params: dict[str, Any], threads: int):
    """(test scores, fit seconds, score seconds, extra facts) of one in-process detector."""
    import numpy as np

    extra: dict[str, Any] = {}
    if name == "ours":
        from aekit.tasks.anomaly.detector import AnomalyDetector

        det = AnomalyDetector(seed=seed, threads=threads, **ours_params)
        t0 = time.perf_counter()
        det.fit(x_tr)
        t1 = time.perf_counter()
        s = det.anomaly_score(x_te)
        extra = {"epochs": len(det.history_), "code_dim": det.code_dim_,
                 "params": int(sum(p.numel() for p in det.model_.parameters()))}
    elif name == "iforest":
        from sklearn.ensemble import IsolationForest

        det = IsolationForest(random_state=seed)
        t0 = time.perf_counter()
        det.fit(x_tr)
        t1 = time.perf_counter()
        s = -det.score_samples(x_te)
    elif name == "pca_recon":
        from sklearn.decomposition import PCA

        t0 = time.perf_counter()
        det = PCA(n_components=PCA_VARIANCE, svd_solver="full", random_state=seed).fit(x_tr)
        t1 = time.perf_counter()
        rec = det.inverse_transform(det.transform(x_te))
        s = ((x_te - rec) ** 2).sum(1)
        extra = {"n_components": int(det.n_components_)}
    else:
        raise ValueError(name)
    t2 = time.perf_counter()
    return np.asarray(s, dtype=np.float64), t1 - t0, t2 - t1, extra


def metrics(y, s) -> dict[str, float]:
    """ROC-AUC and average precision; non-finite scores (counted) rank as the extremes they are."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict[str, float] = {}
    bad = ~np.isfinite(s)
    if bad.any():
        fin = s[~bad]
        hi, lo = (fin.max() + 1.0, fin.min() - 1.0) if len(fin) else (1.0, -1.0)
        s = np.where(np.isnan(s), lo, np.where(s > 0, np.where(bad, hi, s), np.where(bad, lo, s)))
        out["nonfinite_scores"] = int(bad.sum())
        if bad.mean() > 0.5:  # e.g. PyOD's PCA dividing by a zero eigenvalue: no ranking at all
            out["degenerate"] = True
    return {"auc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s)), **out}


def _task(args):
    """One (config, set, seed) of ours for a process pool (returns a per-seed record)."""
    cfg_name, params, set_name, seed, threads = args
    import torch

    torch.set_num_threads(threads)
    X, y = load_set(set_name)
    x_tr, x_te, _, y_te = split(X, y, seed)
    s, fit_s, score_s, extra = fit_score("ours", x_tr, x_te, seed, params, threads)
    return cfg_name, set_name, seed, {**metrics(y_te, s), "fit_s": fit_s, "score_s": score_s, **extra}


# ----------------------------------------------------------------------------------------------
# PyOD in its own venv


def _pyod_works(python: Path) -> str | None:
    if not python.is_file():
        return None
    code = ("import pyod, torch, pyod.models.auto_encoder, pyod.models.pca, pyod.models.iforest; "
            "print(pyod.__version__, torch.__version__)")
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    pyod_v, torch_v = out.stdout.split()[-2:]
    return f"pyod {pyod_v} / torch {torch_v}"


def ensure_pyod_python(args) -> tuple[Path, str]:
    """A Python with PyOD (creating benchmarks/.venv-pyod if needed) and its versions."""
    if args.pyod_python:
        python = Path(args.pyod_python)
        version = _pyod_works(python)
        if not version:
            raise SystemExit(f"--pyod-python {python}: cannot import pyod and torch")
        return python, version
    venv = DEFAULT_PYOD_VENV
    python = venv / "bin" / "python"
    version = _pyod_works(python)
    if version:
        return python, version
    if args.no_install:
        raise SystemExit(f"{venv} has no working PyOD and --no-install was given")
    print(f"creating {venv} (pyod, tqdm, {TORCH_PIN}; once) ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run(["python3", "-m", "venv", "--clear", str(venv)], check=True)
    # torch pinned in the same command, so that pip never pulls another torch version; PyOD's deep
    # detectors import tqdm, which pyod does not declare as a dependency
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "pyod", "tqdm", TORCH_PIN], check=True)
    version = _pyod_works(python)
    if not version:
        raise SystemExit(f"{venv}: PyOD installed but does not import")
    print(f"  {version} installed in {time.perf_counter() - t0:.0f} s", flush=True)
    return python, version


def run_pyod(python: Path, splits: dict[int, tuple], detectors: list[str], threads: int, tmp: Path,
             label: str) -> tuple[dict[str, dict[int, Any]], dict[str, Any]]:
    """Scores {detector: {seed: ndarray}}, and the worker's timings and versions."""
    import numpy as np

    data = tmp / f"{label}.npz"
    arrays = {"seeds": np.array(sorted(splits))}
    for seed, (x_tr, x_te) in splits.items():
        arrays[f"train_{seed}"], arrays[f"test_{seed}"] = x_tr, x_te
    np.savez(data, **arrays)
    out = tmp / f"{label}-out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [str(python), str(PYOD_WORKER), "--data", str(data), "--out", str(out),
           "--detectors", ",".join(detectors), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"{label}: PyOD worker failed (exit {proc.returncode})")
    meta = json.loads(Path(str(out) + ".json").read_text(encoding="utf-8"))
    npz = np.load(str(out) + ".npz")
    scores = {d: {seed: npz[f"{d}_{seed}"] for seed in splits} for d in detectors}
    return scores, meta


# ----------------------------------------------------------------------------------------------
# summaries


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def summarise_set(per_seed: dict[int, dict[str, dict[str, float]]], detectors: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in detectors:
        recs = [per_seed[s][d] for s in per_seed if d in per_seed[s]]
        if recs:
            out[d] = {k: _mean([r.get(k) for r in recs]) for k in ("auc", "ap", "fit_s", "score_s")}
            if any(r.get("degenerate") for r in recs):
                out[d]["degenerate_seeds"] = sum(bool(r.get("degenerate")) for r in recs)
    return out


def best_pca(summary: dict[str, Any]) -> float | None:
    """The better PCA column's mean AUC; a column whose scores were mostly infinite does not count."""
    vals = [summary[d]["auc"] for d in ("pca_recon", "pca_pyod") if d in summary
            and not summary[d].get("degenerate_seeds")]
    return max(vals) if vals else None


def table_rows(sets_info: dict[str, Any], summaries: dict[str, Any], detectors: list[str]) -> list[dict]:
    rows = []
    for name, info in sets_info.items():
        sm = summaries[name]
        row = {"set": name + ("" if name in SETS_17 else " *"), "n": info["n"], "d": info["d"],
               "pct": 100.0 * info["anomaly_fraction"]}
        for d in detectors:
            row[d] = sm.get(d, {}).get("auc")
        row["ap_ours"] = sm.get("ours", {}).get("ap")
        row["fit_ours"] = sm.get("ours", {}).get("fit_s")
        row["fit_pyod_ae"] = sm.get("pyod_ae", {}).get("fit_s")
        bp = best_pca(sm)
        row["gap"] = (sm["ours"]["auc"] - bp) if ("ours" in sm and bp is not None) else None
        rows.append(row)
    set_rows = list(zip(rows, sets_info, strict=True))
    for label, members in (("mean of the 17", SETS_17), ("mean of all", list(sets_info))):
        sel = [r for r, name in set_rows if name in members]
        if not sel or (label == "mean of the 17" and len(sel) != len(SETS_17)):
            continue
        mean = {"set": f"{label} ({len(sel)})"}
        for c in ("pct", *detectors, "ap_ours", "fit_ours", "fit_pyod_ae", "gap"):
            mean[c] = _mean([r.get(c) for r in sel])
        rows.append(mean)
    return rows


def table_columns(detectors: list[str]) -> tuple[list[str], list[str]]:
    heads = {"ours": "ours", "iforest": "IF skl", "pca_recon": "PCA90", "pca_pyod": "PCA pyod",
             "pyod_ae": "AE pyod", "pyod_iforest": "IF pyod"}
    cols = ["set", "n", "d", "pct", *detectors, "gap", "ap_ours", "fit_ours", "fit_pyod_ae"]
    names = ["set", "n", "d", "% anom", *[f"AUC {heads[d]}" for d in detectors], "ours-bestPCA", "AP ours",
             "fit s ours", "fit s AE pyod"]
    if "ours" not in detectors:
        cols, names = cols[:-4], names[:-4]
    elif "pyod_ae" not in detectors:
        cols, names = cols[:-1], names[:-1]
    return cols, names


def checks(summaries: dict[str, Any], per_set: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sets = list(summaries)
    if all(s in summaries and "ours" in summaries[s] for s in SETS_17):
        m = _mean([summaries[s]["ours"]["auc"] for s in SETS_17])
        out["mean_auc_17"] = {"value": m, "target": TARGET_MEAN_AUC, "met": m >= TARGET_MEAN_AUC}
    gaps = {s: summaries[s]["ours"]["auc"] - best_pca(summaries[s]) for s in sets
            if "ours" in summaries[s] and best_pca(summaries[s]) is not None}
    if gaps:
        fails = {s: g for s, g in gaps.items() if g < -TARGET_PCA_GAP}
        worst = min(gaps, key=gaps.get)
        out["vs_best_pca"] = {"target": f"ours >= best PCA - {TARGET_PCA_GAP} on every set",
                              "failures": fails, "worst_set": worst, "worst_gap": gaps[worst],
                              "met": not fails}
    fit_o = [r["ours"]["fit_s"] for s in per_set.values() for r in s.values() if "ours" in r and "pyod_ae" in r]
    fit_p = [r["pyod_ae"]["fit_s"] for s in per_set.values() for r in s.values() if "ours" in r and "pyod_ae" in r]
    if fit_o:
        out["fit_time"] = {"ours_total_s": sum(fit_o), "pyod_ae_total_s": sum(fit_p),
                           "ratio_ours_over_pyod_ae": sum(fit_o) / sum(fit_p), "met": sum(fit_o) <= sum(fit_p)}
    return out


def print_checks(c: dict[str, Any]) -> None:
    print()
    if "mean_auc_17" in c:
        m = c["mean_auc_17"]
        print(f"mean ROC-AUC over the 17 (ours): {m['value']:.4f} (target >= {m['target']}): "
              f"{'met' if m['met'] else 'NOT met'}")
    if "vs_best_pca" in c:
        v = c["vs_best_pca"]
        fails = ", ".join(f"{s} {g:+.3f}" for s, g in v["failures"].items()) or "none"
        print(f"ours >= best PCA - {TARGET_PCA_GAP} on every set: {'met' if v['met'] else 'NOT met'} "
              f"(failures: {fails}; worst {v['worst_set']} {v['worst_gap']:+.3f})")
    if "fit_time" in c:
        f = c["fit_time"]
        print(f"total fit time ours {f['ours_total_s']:.1f} s vs PyOD AutoEncoder {f['pyod_ae_total_s']:.1f} s "
              f"(ratio {f['ratio_ours_over_pyod_ae']:.3f}): {'met' if f['met'] else 'NOT met'}")


# ----------------------------------------------------------------------------------------------
# main modes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default=None, help="comma list of set names (default: every .mat in the folder)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    p.add_argument("--detectors", default="ours,iforest,pca,pyod",
                   help="comma list of ours, iforest, pca (= pca_recon + pca_pyod), pyod (= pyod_ae + "
                        "pyod_iforest), or single columns (default all)")
    p.add_argument("--ours-params", default="{}", help="JSON object of AnomalyDetector parameters")
    p.add_argument("--threads", type=int, default=1, help="threads of every detector (default 1)")
    p.add_argument("--quick", action="store_true", help=f"smoke run: 1 seed, sets {','.join(QUICK_SETS)}")
    p.add_argument("--sweep", default=None, help="JSON object (or file) name -> AnomalyDetector params: compare "
                   "these configurations of ours with the PCA columns; merged into results/odds_sweep.json")
    p.add_argument("--jobs", type=int, default=1, help="--sweep: parallel processes for ours (timings get noisier)")
    p.add_argument("--pyod-python", help="a Python with pyod installed (skips the venv)")
    p.add_argument("--no-install", action="store_true", help="never create the PyOD venv")
    p.add_argument("--results-dir", default=None, help="folder for the JSON (default benchmarks/results; "
                   "with --quick a temporary folder)")
    p.add_argument("--out", default=None, help="results/<OUT>.json (default odds, or odds_sweep with --sweep)")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = 1
        args.sets = args.sets or ",".join(QUICK_SETS)
    have = available_sets()
    if not have:
        p.error(f"no .mat files in {odds_dir()} (set AEKIT_DATA_HOME)")
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()] if args.sets else have
    missing = [s for s in args.sets if s not in have]
    if missing:
        p.error(f"not in {odds_dir()}: {missing}")
    dets: list[str] = []
    for d in (x.strip() for x in args.detectors.split(",") if x.strip()):
        for one in GROUPS.get(d, (d,)):
            if one not in ALL_DETECTORS:
                p.error(f"unknown detector {one!r}; choose from ours, iforest, pca, pyod, {', '.join(ALL_DETECTORS)}")
            if one not in dets:
                dets.append(one)
    args.detectors = [d for d in ALL_DETECTORS if d in dets]
    args.ours_params = _params(json.loads(args.ours_params))
    if args.sweep:
        text = Path(args.sweep).read_text(encoding="utf-8") if Path(args.sweep).is_file() else args.sweep
        args.sweep = {k: _params(v) for k, v in json.loads(text).items()}
    return args


def _params(d: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise SystemExit(f"AnomalyDetector parameters must be a JSON object, got {d!r}")
    return {k: (tuple(v) if k == "hidden" and isinstance(v, list) else v) for k, v in d.items()}


def set_info(name: str) -> dict[str, Any]:
    X, y = load_set(name)
    return {"n": int(X.shape[0]), "d": int(X.shape[1]), "anomalies": int(y.sum()),
            "anomaly_fraction": float(y.mean()), "in_17": name in SETS_17}


def benchmark(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    seeds = list(range(args.seeds))
    pyod_dets = [d for d in args.detectors if d in IN_PYOD]
    pyod_python, pyod_version = ensure_pyod_python(args) if pyod_dets else (None, None)
    env = _common.env_info()
    print(f"CPU: {env['cpu']} ({env['cpu_count']} cores); torch {env['torch']}; "
          f"{pyod_version or 'no PyOD'}; {args.threads} thread(s); sets from {odds_dir()}", flush=True)
    if args.ours_params:
        print(f"ours: AnomalyDetector(**{args.ours_params})")

    sets_info: dict[str, Any] = {}
    per_set: dict[str, dict[int, dict[str, Any]]] = {}
    summaries: dict[str, Any] = {}
    pyod_env = None
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aekit-odds-") as tmp:
        for name in args.sets:
            t_set = time.perf_counter()
            X, y = load_set(name)
            sets_info[name] = set_info(name)
            per_set[name] = {s: {} for s in seeds}
            splits = {s: split(X, y, s) for s in seeds}
            for seed in seeds:
                x_tr, x_te, _, y_te = splits[seed]
                for d in args.detectors:
                    if d in IN_PYOD:
                        continue
                    s, fit_s, score_s, extra = fit_score(d, x_tr, x_te, seed, args.ours_params, args.threads)
                    per_set[name][seed][d] = {**metrics(y_te, s), "fit_s": fit_s, "score_s": score_s, **extra}
            if pyod_dets:
                scores, meta = run_pyod(pyod_python, {s: splits[s][:2] for s in seeds}, pyod_dets, args.threads,
                                        Path(tmp), name)
                pyod_env = meta["env"]
                for d in pyod_dets:
                    for seed in seeds:
                        per_set[name][seed][d] = {**metrics(splits[seed][3], scores[d][seed]),
                                                  **meta["timings"][d][str(seed)]}
            summaries[name] = summarise_set(per_set[name], args.detectors)
            line = "  ".join(f"{d} {v['auc']:.3f}" for d, v in summaries[name].items())
            print(f"{name:12s} n={sets_info[name]['n']:6d} d={sets_info[name]['d']:4d}  AUC {line}  "
                  f"({time.perf_counter() - t_set:.0f} s)", flush=True)

    rows = table_rows(sets_info, summaries, args.detectors)
    cols, heads = table_columns(args.detectors)
    _common.print_table(rows, cols, heads,
                        title=f"ODDS, PyOD protocol (60/40 split, seeds 0..{args.seeds - 1}): mean test ROC-AUC; "
                              f"* = not among PyOD's 17; fit s = mean per fit, 1 thread")
    c = checks(summaries, per_set)
    print_checks(c)
    wall = time.perf_counter() - t_all
    payload = {
        "benchmark": "odds",
        "command": _common.command_line(),
        "env": env,
        "pyod_env": pyod_env,
        "quick": args.quick,
        "protocol": ("PyOD benchmark: train_test_split(X, y, test_size=0.4, random_state=seed); z-scores fitted "
                     "on the training part; unsupervised fit on the training 60% (anomalies included); "
                     "ROC-AUC and average precision of the test scores; mean over seeds"),
        "settings": {"sets": args.sets, "seeds": seeds, "detectors": args.detectors, "threads": args.threads,
                     "ours_params": args.ours_params, "pca_recon_variance": PCA_VARIANCE,
                     "pyod_ae": "pyod.models.auto_encoder.AutoEncoder(random_state=seed, verbose=0)",
                     "pca_pyod": "pyod.models.pca.PCA(random_state=seed)",
                     "pyod_iforest": "pyod.models.iforest.IForest(random_state=seed)",
                     "iforest": "sklearn.ensemble.IsolationForest(random_state=seed)"},
        "published_pyod": PUBLISHED,
        "targets": {"mean_auc_17": TARGET_MEAN_AUC, "max_gap_below_best_pca": TARGET_PCA_GAP,
                    "fit_time": "total ours <= total PyOD AutoEncoder"},
        "checks": c,
        "sets": sets_info,
        "summary": summaries,
        "table": rows,
        "per_seed": per_set,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "wall_s": wall,
    }
    out = args.out or "odds"
    path = _common.write_json(out, payload, _common.results_dir(args))
    print(f"wall time {wall:.0f} s; wrote {path}")
    return 0


def sweep(args) -> int:
    """Configurations of ours against the PCA columns (computed once), merged into odds_sweep.json."""
    from concurrent.futures import ProcessPoolExecutor

    seeds = list(range(args.seeds))
    out_name = args.out or "odds_sweep"
    out_dir = _common.results_dir(args)
    path = out_dir / f"{out_name}.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    env = _common.env_info()
    baselines = dict(old.get("baselines", {}))  # per number of seeds: set -> PCA columns' mean AUC
    base = dict(baselines.get(str(len(seeds)), {}))
    need = [s for s in args.sets if s not in base]
    if need:
        pyod_python = ensure_pyod_python(args)[0] if "pca_pyod" in args.detectors else None
        with tempfile.TemporaryDirectory(prefix="aekit-odds-") as tmp:
            for name in need:
                X, y = load_set(name)
                splits = {s: split(X, y, s) for s in seeds}
                per_seed: dict[int, dict[str, Any]] = {s: {} for s in seeds}
                for seed in seeds:
                    x_tr, x_te, _, y_te = splits[seed]
                    s, fit_s, score_s, _ = fit_score("pca_recon", x_tr, x_te, seed, {}, 1)
                    per_seed[seed]["pca_recon"] = {**metrics(y_te, s), "fit_s": fit_s}
                if pyod_python:
                    scores, _ = run_pyod(pyod_python, {s: splits[s][:2] for s in seeds}, ["pca_pyod"], 1,
                                         Path(tmp), name)
                    for seed in seeds:
                        per_seed[seed]["pca_pyod"] = metrics(splits[seed][3], scores["pca_pyod"][seed])
                base[name] = {**set_info(name),
                              **{d: _mean([per_seed[s][d]["auc"] for s in seeds]) for d in per_seed[seeds[0]]}}
                base[name]["best_pca"] = best_pca(summarise_set(per_seed, ["pca_recon", "pca_pyod"]))
                print(f"baseline {name}: best PCA {base[name]['best_pca']:.3f}", flush=True)

    configs = dict(old.get("configs", {}))
    tasks = [(c, p, s, seed, args.threads) for c, p in args.sweep.items() for s in args.sets for seed in seeds]
    res: dict[str, dict[str, dict[int, dict]]] = {c: {s: {} for s in args.sets} for c in args.sweep}
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def finish(c: str) -> None:
        """Summarise configuration c and rewrite the JSON (a crash later keeps what was measured)."""
        per = {s: {k: _mean([res[c][s][sd][k] for sd in seeds]) for k in ("auc", "ap", "fit_s")} for s in args.sets}
        gaps = {s: per[s]["auc"] - base[s]["best_pca"] for s in args.sets}
        worst = min(gaps, key=gaps.get)
        entry = {
            "params": args.sweep[c], "seeds": seeds, "sets": args.sets,
            "mean_auc_17": _mean([per[s]["auc"] for s in SETS_17]) if all(s in per for s in SETS_17) else None,
            "mean_auc_all": _mean([per[s]["auc"] for s in args.sets]),
            "worst_gap_to_pca": gaps[worst], "worst_set": worst,
            "n_below_pca_tol": sum(g < -TARGET_PCA_GAP for g in gaps.values()),
            "below": {s: round(g, 4) for s, g in gaps.items() if g < -TARGET_PCA_GAP},
            "total_fit_s": sum(res[c][s][sd]["fit_s"] for s in args.sets for sd in seeds),
            "per_set": per, "per_seed": res[c], "jobs": args.jobs,
            "date_utc": env["date_utc"], "load_average": env.get("load_average"),
        }
        key = c if len(seeds) == 2 else f"{c} [{len(seeds)} seeds]"
        configs[key] = entry
        rows.append({"config": key, **{k: entry[k] for k in ("mean_auc_17", "mean_auc_all", "worst_gap_to_pca",
                                                              "worst_set", "n_below_pca_tol", "total_fit_s")}})
        print(f"  {key}: mean AUC 17 {entry['mean_auc_17'] or float('nan'):.4f}, worst gap {gaps[worst]:+.3f} "
              f"({worst}), fit {entry['total_fit_s']:.0f} s ({time.perf_counter() - t0:.0f} s)", flush=True)
        payload = {
            "benchmark": "odds_sweep",
            "command_last": _common.command_line(),
            "commands": [*old.get("commands", []), _common.command_line()],
            "env": env,
            "note": ("configurations of AnomalyDetector (the params override its defaults of the time) under the "
                     "PyOD protocol; worst gap = min over sets of (ours - best of pca_recon / pca_pyod) mean AUC"),
            "baselines": {**baselines, str(len(seeds)): base},
            "configs": configs,
        }
        _common.write_json(out_name, payload, out_dir)

    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        left = {c: len(args.sets) * len(seeds) for c in args.sweep}
        for c, s, seed, rec in pool.map(_task, tasks, chunksize=1):
            res[c][s][seed] = rec
            left[c] -= 1
            if not left[c]:
                finish(c)
    _common.print_table(rows, ["config", "mean_auc_17", "mean_auc_all", "worst_gap_to_pca", "worst_set",
                               "n_below_pca_tol", "total_fit_s"],
                        ["config", "AUC 17", "AUC all", "worst gap", "worst set", f"# < PCA-{TARGET_PCA_GAP}",
                         "fit s"],
                        title=f"sweep: seeds {seeds}, {len(args.sets)} sets ({time.perf_counter() - t0:.0f} s)")
    print(f"wrote {out_dir / (out_name + '.json')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return sweep(args) if args.sweep else benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
