"""SeriesAnomalyDetector on NAB's 7 realKnownCause series: windows hit, false alarms, NAB score, speed.

Protocol (one set of detector parameters for all 7 series, no per-file tuning): each series is read
with ``read_series_csv`` (sorted, put on its median-step grid, short gaps interpolated); the detector
is trained on the start of the series taken as the normal period - every step before the first
labelled NAB window (``labels/combined_windows.json``) - with its threshold calibrated on the last
``val_fraction`` of that part, then ``detect()`` runs on the whole series. Per series:

* windows hit / total and false-alarm events (events overlapping no window), from ``window_report``;
* the NAB standard-profile raw score and its per-file normalisation ``100 (raw - null) / (perfect -
  null)`` from ``nab_score`` with *one alarm per event* (detections = the first step of each event:
  an operator gets one alarm per event). NAB itself counts every flagged record, so the raw score
  with detections = every flagged step is a second column; it punishes long flagged runs outside
  the windows (each step is a false positive);
* ROC-AUC of the per-step scores against window membership (all steps of the series);
* fit and score (``detect`` on the whole series) seconds, 1 torch thread.

The headline is machine_temperature_system_failure: target "hit all 4 labelled windows with at most 5
false-alarm events"; Numenta HTM's published NAB standard raw score on that file is 1.36 (5 TP and
5 FP records). Corpus lines add the 7 files up; ``corpus normalized`` is NAB's normalisation of the
summed scores. Caveat: the series are scored on the regular grid (``rogue_agent_key_hold`` has 1,882
rows on a 5,338-step 5-minute grid: long gaps are filled, marked and never flagged), so the
probationary period and the step counts differ slightly from NAB's row-based ones.

The library defaults are always evaluated; ``--params '{"window": 144, ...}'`` adds a second
parameter set (keyword arguments of ``SeriesAnomalyDetector`` over its defaults), which becomes the
headline. ``--sweep`` first compares variants (model, window, steps, latent_dim, val_fraction) and,
for each trained model, the post-processing (smooth, threshold, min_event_gap) without retraining
(scores are smoothed, calibrated and grouped exactly as the library does); it writes
results/nab_sweep.json. The throughput table times batch scoring (the NAB series, and a synthetic
1,000,000-step series) and the streaming scorer (``stream().update`` one reading at a time, and in
blocks of 1,000) with 1 torch thread.

    python benchmarks/nab.py                                # library defaults
    python benchmarks/nab.py --params '{"window": 144, "smooth": 48}'
    python benchmarks/nab.py --sweep --sweep-only           # the variant comparison only
    python benchmarks/nab.py --quick                        # smoke run, < 1 minute

Writes benchmarks/results/nab.json (and nab_sweep.json with --sweep).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
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

from aekit.data.series import Series, read_series_csv  # noqa: E402
from aekit.tasks.anomaly import (  # noqa: E402
    SeriesAnomalyDetector,
    find_events,
    fit_threshold,
    nab_score,
    roc_auc,
    window_report,
)
from aekit.tasks.anomaly.series import trailing_mean  # noqa: E402

HEADLINE = "machine_temperature_system_failure"
HTM_RAW = 1.36  # Numenta HTM, NAB standard profile, raw score on machine_temperature (5 TP, 5 FP records)
TARGET_HITS, TARGET_MAX_FA = 4, 5
DAY_S = 86400.0

# --sweep: trained variants (keyword arguments over the library defaults); each trained model is then
# post-processed with every smooth x threshold x min_event_gap below, without retraining.
SWEEP_TRAIN: dict[str, dict[str, Any]] = {
    "dense w64 (defaults)": {},
    "dense w32": dict(window=32),
    "dense w144": dict(window=144),
    "dense w288 stride 4": dict(window=288, stride=4),
    "dense w64 latent 4": dict(latent_dim=4),
    "dense w64 steps 1000": dict(steps=1000),
    "dense w64 steps 10000": dict(steps=10000),
    "dense w64 val 0.4": dict(val_fraction=0.4),
    "dense w144 val 0.4": dict(window=144, val_fraction=0.4),
    "dense w144 latent 8": dict(window=144, latent_dim=8),
    "conv1d w64": dict(model="conv1d"),
    "gru w64 steps 500": dict(model="gru", steps=500),
    # seed robustness of the recommended setting (run with --sweep-variants)
    "dense w64 seed 1": dict(seed=1),
    "dense w64 seed 2": dict(seed=2),
}
DEFAULT_SWEEP = [k for k in SWEEP_TRAIN if "seed" not in k]
SWEEP_SMOOTH = (1, 12, 48, 144)
SWEEP_THRESHOLDS = ("fpr:0.001", "fpr:0.0001", "alarms_per_day:1", "alarms_per_day:0.3", "alarms_per_day:0.1")
SWEEP_GAPS = (0, 72, 288)
POST_KEYS = ("smooth", "threshold", "min_event_gap")


# ----------------------------------------------------------------------------- data


def data_root() -> Path:
    return Path(os.environ["AEKIT_DATA_HOME"]) / "nab"


def load_files(root: Path, only: list[str] | None = None) -> list[dict[str, Any]]:
    """The realKnownCause series with their labelled windows (inclusive grid indices) and training cut."""
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    files = []
    for key in sorted(windows):
        if not key.startswith("realKnownCause/"):
            continue
        name = Path(key).stem
        if only and name not in only:
            continue
        with contextlib.redirect_stderr(io.StringIO()):  # machine_temperature: "11 rows were out of order"
            s = read_series_csv(root / "data" / key)
        ts = s.timestamps
        wins = []
        for a, b in windows[key]:
            lo = int(np.searchsorted(ts, np.datetime64(a[:19]), "left"))
            hi = int(np.searchsorted(ts, np.datetime64(b[:19]), "right")) - 1
            wins.append((lo, min(hi, s.n - 1)))
        labels = np.zeros(s.n, bool)
        for lo, hi in wins:
            labels[lo : hi + 1] = True
        cut = wins[0][0]  # the normal period: everything before the first labelled window
        train = Series(ts[:cut], s.values[:cut], s.columns, s.gap[:cut], s.filled[:cut], s.source, s.step)
        files.append(dict(name=name, key=key, series=s, train=train, windows=wins, labels=labels, cut=cut,
                          rows=sum(1 for _ in open(root / "data" / key)) - 1,
                          points_per_day=DAY_S / float(s.step / np.timedelta64(1, "s"))))
    return files


# ----------------------------------------------------------------------------- evaluation


def evaluate(f: dict[str, Any], scores: np.ndarray, flags: np.ndarray, events) -> dict[str, Any]:
    """Window/event counts, NAB scores (per event, per flagged step) and ROC-AUC for one series."""
    n, wins = f["series"].n, f["windows"]
    rep = window_report(events, wins, n)
    nab_ev = nab_score(np.array([e.start for e in events], dtype=np.int64), wins, n)
    nab_pts = nab_score(flags, wins, n)
    return {
        "series": f["name"], "n": n, "train_steps": f["cut"], "windows": len(wins),
        "hit": rep["windows_hit"], "false_alarms": rep["false_alarm_events"], "events": rep["n_events"],
        "hit_str": f"{rep['windows_hit']}/{len(wins)}",
        "nab_raw": nab_ev["raw"], "nab_norm": nab_ev["normalized"], "nab_null": nab_ev["null"],
        "nab_perfect": nab_ev["perfect"], "nab_raw_points": nab_pts["raw"],
        "nab_norm_points": nab_pts["normalized"], "flagged_steps": int(flags.sum()),
        "auc": roc_auc(f["labels"].astype(int), scores),
        "window_detail": [{k: w[k] for k in ("start", "end", "hit", "first_detection", "lead")}
                          for w in rep["windows"]],
        "false_alarm_detail": [{k: e[k] for k in ("start", "end", "n_points", "peak_score")}
                               for e in rep["false_alarms"]],
    }


def corpus(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over files; 'corpus normalized' is NAB's normalisation of the summed raw scores."""
    raw = sum(r["nab_raw"] for r in rows)
    raw_pts = sum(r["nab_raw_points"] for r in rows)
    null = sum(r["nab_null"] for r in rows)
    perfect = sum(r["nab_perfect"] for r in rows)
    hl = next((r for r in rows if r["series"] == HEADLINE), None)
    out = {
        "hit": sum(r["hit"] for r in rows), "windows": sum(r["windows"] for r in rows),
        "false_alarms": sum(r["false_alarms"] for r in rows),
        "nab_raw": raw, "nab_norm": 100 * (raw - null) / (perfect - null),
        "nab_raw_points": raw_pts, "nab_norm_points": 100 * (raw_pts - null) / (perfect - null),
        "mean_auc": float(np.mean([r["auc"] for r in rows])),
    }
    out["hit_str"] = f"{out['hit']}/{out['windows']}"
    if hl is not None:
        out.update(mt_hit=hl["hit"], mt_fa=hl["false_alarms"], mt_nab_raw=hl["nab_raw"],
                   mt_target_met=bool(hl["hit"] >= TARGET_HITS and hl["false_alarms"] <= TARGET_MAX_FA))
    return out


def run_params(files: list[dict[str, Any]], params: dict[str, Any], threads: int,
               verbose: bool = True) -> list[dict[str, Any]]:
    """Fit on each series' normal start, detect on the whole series, evaluate (the library path)."""
    rows = []
    for f in files:
        det = SeriesAnomalyDetector(**{**params, "threads": threads})
        t = time.perf_counter()
        det.fit(f["train"])
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        res = det.detect(f["series"])
        score_s = time.perf_counter() - t
        row = evaluate(f, res.scores, res.flags, res.events)
        row.update(fit_s=fit_s, score_s=score_s, threshold=float(det.threshold_.value),
                   threshold_estimator=det.threshold_.details.get("estimator"),
                   n_calibration=det.n_calibration_points_, train_flag_rate=det.train_flag_rate_)
        rows.append(row)
        if verbose:
            print(f"  {f['name']}: hit {row['hit_str']}, {row['false_alarms']} false-alarm events, NAB raw "
                  f"{row['nab_raw']:.2f}, AUC {row['auc']:.3f} (fit {fit_s:.1f} s)", flush=True)
    return rows


# ----------------------------------------------------------------------------- sweep


def sweep(files: list[dict[str, Any]], threads: int, names: list[str] | None,
          grid: dict[str, tuple]) -> list[dict[str, Any]]:
    """Train each SWEEP_TRAIN variant once per file; post-process its raw scores every way in the grid."""
    out = []
    for label, train_kw in SWEEP_TRAIN.items():
        if label not in (names or DEFAULT_SWEEP):
            continue
        t0 = time.perf_counter()
        raw: list[tuple[np.ndarray, np.ndarray, int]] = []  # (full-series scores, training-part scores, n_train)
        fit_s = []
        for f in files:
            det = SeriesAnomalyDetector(**{**train_kw, "smooth": 1, "threads": threads})
            t = time.perf_counter()
            det.fit(f["train"])
            fit_s.append(time.perf_counter() - t)
            raw.append((det.anomaly_score(f["series"]), det.anomaly_score(f["train"]), det.n_train_points_))
        best = None
        for k, spec, gap in itertools.product(grid["smooth"], grid["threshold"], grid["min_event_gap"]):
            rows = []
            for f, (full, tr, n_train) in zip(files, raw, strict=True):
                # exactly what fit() + detect() do with smooth=k, threshold=spec, min_event_gap=gap
                sc, sc_tr = trailing_mean(full, k), trailing_mean(tr, k)
                sel = np.arange(n_train, f["cut"]) if n_train < f["cut"] else np.arange(n_train)
                sel = sel[~f["train"].gap[sel]]
                with contextlib.redirect_stderr(io.StringIO()):
                    th = fit_threshold(spec, sc_tr[sel], points_per_day=f["points_per_day"]).value
                flags = (sc > th) & ~f["series"].gap
                rows.append(evaluate(f, sc, flags, find_events(flags, sc, min_gap=gap)))
            c = corpus(rows)
            rec = {"variant": label, **train_kw, "smooth": k, "threshold": spec, "min_event_gap": gap, **c,
                   "fit_s": float(sum(fit_s)),
                   "per_file": {r["series"]: [r["hit"], r["false_alarms"], round(r["nab_raw"], 3)] for r in rows}}
            out.append(rec)
            if best is None or rec["nab_raw"] > best["nab_raw"]:
                best = rec
        print(f"  [{label}] trained 7 x in {sum(fit_s):.0f} s ({time.perf_counter() - t0:.0f} s with the grid); "
              f"best corpus NAB raw {best['nab_raw']:.2f}: smooth {best['smooth']}, {best['threshold']}, gap "
              f"{best['min_event_gap']} -> hit {best['hit_str']}, {best['false_alarms']} FA, machine_temperature "
              f"{best.get('mt_hit')}/4 hit {best.get('mt_fa')} FA", flush=True)
    return out


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows not beaten on (windows hit up, false alarms down); for each, the best NAB raw."""
    by_key: dict[tuple[int, int], dict[str, Any]] = {}
    for r in rows:
        key = (r["hit"], r["false_alarms"])
        if key not in by_key or r["nab_raw"] > by_key[key]["nab_raw"]:
            by_key[key] = r
    front = [r for (h, fa), r in by_key.items()
             if not any(h2 >= h and fa2 <= fa and (h2, fa2) != (h, fa) for h2, fa2 in by_key)]
    return sorted(front, key=lambda r: (-r["hit"], r["false_alarms"]))


# ----------------------------------------------------------------------------- throughput


def throughput(files: list[dict[str, Any]], params: dict[str, Any], threads: int, n_synth: int,
               n_stream: int, block: int) -> list[dict[str, Any]]:
    """Points/second of detect() (NAB headline series, synthetic series) and of the streaming scorer."""
    f = next((x for x in files if x["name"] == HEADLINE), files[0])
    det = SeriesAnomalyDetector(**{**params, "threads": threads}).fit(f["train"])
    rows = []

    def timed(label: str, n: int, fn) -> None:
        t = time.perf_counter()
        fn()
        s = time.perf_counter() - t
        rows.append({"case": label, "points": n, "seconds": s, "points_per_s": n / s})
        print(f"  {label}: {n / s:,.0f} points/s ({s:.2f} s)", flush=True)

    s = f["series"]
    det.detect(s)  # warm-up
    timed(f"detect() on {f['name']}", s.n, lambda: det.detect(s))
    rng = np.random.default_rng(0)
    t = np.arange(n_synth)
    values = (np.sin(2 * np.pi * t / 288) + 0.1 * rng.standard_normal(n_synth)) * float(det.scale_[0]) + float(
        det.center_[0])
    stamps = s.timestamps[0] + s.step * t
    big = Series(stamps, values[:, None], s.columns, np.zeros(n_synth, bool), np.zeros(n_synth, bool), None, s.step)
    timed(f"detect() on a synthetic {n_synth:,}-step series", n_synth, lambda: det.detect(big))

    vals, ts = s.values[:n_stream], s.timestamps[:n_stream]

    def one_at_a_time():
        st = det.stream()
        for i in range(len(vals)):
            st.update(ts[i], vals[i])
        st.flush()

    def blocks():
        st = det.stream()
        for i in range(0, len(vals), block):
            st.update(ts[i : i + block], vals[i : i + block])
        st.flush()

    timed(f"stream().update, 1 reading at a time ({n_stream:,} readings)", len(vals), one_at_a_time)
    timed(f"stream().update, blocks of {block:,} ({n_stream:,} readings)", len(vals), blocks)
    return rows


# ----------------------------------------------------------------------------- main


ROW_COLS = ["series", "train_steps", "hit_str", "false_alarms", "nab_raw", "nab_norm", "nab_raw_points", "auc",
            "fit_s", "score_s"]
ROW_HEAD = ["series", "train steps", "windows hit", "false-alarm events", "NAB raw (1/event)", "NAB norm",
            "NAB raw (every step)", "ROC-AUC", "fit s", "score s"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=None,
                    help="JSON of SeriesAnomalyDetector keyword arguments, evaluated beside the library defaults")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--files", default=None, help="comma-separated series names (default all 7)")
    ap.add_argument("--sweep", action="store_true", help="first compare the SWEEP_TRAIN variants x post-processing")
    ap.add_argument("--sweep-only", action="store_true", help="only the sweep (implies --sweep)")
    ap.add_argument("--sweep-variants", default=None, help="comma-separated SWEEP_TRAIN labels (default all)")
    ap.add_argument("--sweep-smooth", default=None, help=f"comma-separated smooth values (default {SWEEP_SMOOTH})")
    ap.add_argument("--sweep-gaps", default=None, help=f"comma-separated min_event_gap values (default {SWEEP_GAPS})")
    ap.add_argument("--sweep-thresholds", default=None, help="comma-separated threshold specs")
    ap.add_argument("--no-throughput", action="store_true", help="skip the scoring-throughput table")
    ap.add_argument("--synthetic-steps", type=int, default=1_000_000)
    ap.add_argument("--stream-readings", type=int, default=5000)
    ap.add_argument("--stream-block", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 series, 300 training steps, small throughput")
    ap.add_argument("--results-dir", default=None, help="folder for the JSON (default benchmarks/results; "
                    "with --quick a temporary folder, so that smoke runs keep the real results)")
    ap.add_argument("--out", default="nab", help="results/<OUT>.json (default nab)")
    args = ap.parse_args(argv)
    if args.sweep_only:
        args.sweep = True
    grid = {"smooth": tuple(int(v) for v in args.sweep_smooth.split(",")) if args.sweep_smooth else SWEEP_SMOOTH,
            "threshold": tuple(args.sweep_thresholds.split(",")) if args.sweep_thresholds else SWEEP_THRESHOLDS,
            "min_event_gap": tuple(int(v) for v in args.sweep_gaps.split(",")) if args.sweep_gaps else SWEEP_GAPS}
    torch.set_num_threads(args.threads)
    params = json.loads(args.params) if args.params else None
    only = args.files.split(",") if args.files else None
    base: dict[str, Any] = {}
    if args.quick:
        only = only or ["ec2_request_latency_system_failure", HEADLINE]
        base = {"steps": 300}
        args.synthetic_steps, args.stream_readings = 20_000, 500
        SWEEP_TRAIN.clear()
        SWEEP_TRAIN["dense w64 steps 300"] = dict(steps=300)
        DEFAULT_SWEEP[:] = list(SWEEP_TRAIN)
    out_dir = _common.results_dir(args)

    t_start = time.perf_counter()
    env = _common.env_info()
    files = load_files(data_root(), only)
    print(f"NAB realKnownCause: {len(files)} series from {data_root()}; {args.threads} torch thread(s)", flush=True)

    if args.sweep:
        names = args.sweep_variants.split(",") if args.sweep_variants else None
        rows = sweep(files, args.threads, names, grid)
        front = pareto(rows)
        cols = ["variant", "smooth", "threshold", "min_event_gap", "hit_str", "false_alarms", "nab_raw", "nab_norm",
                "nab_raw_points", "mt_hit", "mt_fa", "mt_nab_raw"]
        heads = ["variant", "smooth", "threshold", "gap", "hit", "FA", "NAB raw", "NAB norm", "NAB raw pts",
                 "MT hit", "MT FA", "MT raw"]
        top = sorted(rows, key=lambda r: -r["nab_raw"])[:15]
        _common.print_table(top, cols, heads, title="sweep: top 15 by corpus NAB raw (1 alarm per event), 7 series")
        _common.print_table(front, cols, heads, title="sweep: Pareto front (windows hit vs false-alarm events)")
        per_variant = []
        for label in dict.fromkeys(r["variant"] for r in rows):
            rs = [r for r in rows if r["variant"] == label]
            per_variant.append(max(rs, key=lambda r: r["nab_raw"]))
        _common.print_table(per_variant, cols + ["fit_s"], heads + ["fit s (7)"],
                            title="sweep: best post-processing per trained variant")
        path = _common.write_json(f"{args.out}_sweep", {
            "benchmark": "nab_sweep", "command": _common.command_line(), "env": env,
            "grid": {"train": {k: SWEEP_TRAIN[k] for k in (names or DEFAULT_SWEEP)}, **grid},
            "note": "per_file: [windows hit, false-alarm events, NAB raw 1/event]; mt_* = " + HEADLINE,
            "top": top, "pareto": front, "best_per_variant": per_variant, "rows": rows,
            "wall_s": time.perf_counter() - t_start,
        }, out_dir)
        print(f"\nwrote {path}")
        if args.sweep_only:
            return 0

    sets = {"library defaults": {**base}}
    if params is not None:
        sets["--params"] = {**base, **params}
    results = {}
    for label, p in sets.items():
        print(f"\n[{label}] {json.dumps(p)}", flush=True)
        rows = run_params(files, p, args.threads)
        c = corpus(rows)
        results[label] = {"params": p, "files": rows, "corpus": c}
        total = {"series": "corpus (7 series)" if len(rows) == 7 else "corpus", "train_steps": None,
                 "hit_str": c["hit_str"], "false_alarms": c["false_alarms"], "nab_raw": c["nab_raw"],
                 "nab_norm": c["nab_norm"], "nab_raw_points": c["nab_raw_points"], "auc": c["mean_auc"],
                 "fit_s": sum(r["fit_s"] for r in rows), "score_s": sum(r["score_s"] for r in rows)}
        _common.print_table(rows + [total], ROW_COLS, ROW_HEAD, title=f"{label}: {json.dumps(p)}")
    head_label = "--params" if params is not None else "library defaults"
    head = next((r for r in results[head_label]["files"] if r["series"] == HEADLINE), None)
    headline = None
    if head is not None:
        headline = {"series": HEADLINE, "params": head_label, "windows_hit": head["hit"],
                    "false_alarm_events": head["false_alarms"], "nab_raw": head["nab_raw"],
                    "nab_raw_every_step": head["nab_raw_points"], "htm_nab_raw": HTM_RAW,
                    "target": f"hit {TARGET_HITS}/4 windows with <= {TARGET_MAX_FA} false-alarm events",
                    "target_met": bool(head["hit"] >= TARGET_HITS and head["false_alarms"] <= TARGET_MAX_FA)}
        print(f"\nheadline ({HEADLINE}, {head_label}): {head['hit']}/4 windows hit, {head['false_alarms']} "
              f"false-alarm events (target <= {TARGET_MAX_FA}: {'met' if headline['target_met'] else 'NOT met'}); "
              f"NAB standard raw {head['nab_raw']:.2f} one alarm per event, {head['nab_raw_points']:.2f} every "
              f"flagged step; Numenta HTM: {HTM_RAW} (5 TP, 5 FP records)")

    tp_rows = []
    if not args.no_throughput:
        print(f"\nthroughput ({head_label}, {args.threads} thread(s)):", flush=True)
        tp_rows = throughput(files, sets[head_label], args.threads, args.synthetic_steps, args.stream_readings,
                             args.stream_block)
        _common.print_table(tp_rows, ["case", "points", "seconds", "points_per_s"],
                            ["scoring", "points", "seconds", "points/s"],
                            title=f"series scoring throughput, {args.threads} torch thread(s), {head_label}")

    path = _common.write_json(args.out, {
        "benchmark": "nab", "command": _common.command_line(), "env": env,
        "protocol": "train on the steps before the first labelled window, detect on the whole series; one "
                    "parameter set for all 7 realKnownCause series; NAB standard profile; 'nab_raw' uses one "
                    "detection per event (its first step), 'nab_raw_points' every flagged step",
        "headline": headline, "results": results, "throughput": tp_rows,
        "wall_s": time.perf_counter() - t_start,
    }, out_dir)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
