"""``aekit detect fit|score``: anomaly detection on CSV tables, arrays and sensor series."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .._utils import atomic_path, is_worker_process, write_json
from ..data.series import Series, read_series_csv
from ..data.tables import read_table_csv
from ..errors import ConfigError, DataError, DataFileError
from ..io.persistence import read_meta, staged_dir, write_dir
from ..tasks.anomaly import evaluation as ev
from ..tasks.anomaly.detector import AnomalyDetector
from ..tasks.anomaly.series import SeriesAnomalyDetector, SeriesResult
from ..viz.anomaly import score_histogram, series_figure
from ..viz.figures import loss_curves
from .runs import _write_history

detect_app = typer.Typer(
    no_args_is_help=True,
    help="Anomaly detection: train on (mostly) normal data, then score new data.",
)
KINDS = ("auto", "table", "series")
TIME_NAMES = ("timestamp", "time", "date", "datetime")


@dataclass
class DetectData:
    """What a data file holds for detection: a table (X, y) or a series (+ labelled windows)."""

    kind: str  # "table" | "series"
    source: Path
    X: np.ndarray | None = None
    columns: list[str] | None = None
    labels: np.ndarray | None = None  # per row / per time step, 0/1
    series: Series | None = None
    windows: list[tuple[int, int]] | None = None  # labelled windows as step indices (inclusive)


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            row = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path} could not be read as a CSV file ({err})") from err
    if row is None:
        raise DataFileError(f"{path} is empty: expected a header row and data rows")
    return [c.strip() for c in row]


def _guess_kind(path: Path) -> str:
    if path.suffix.lower() == ".csv":
        return "series" if any(c.lower() in TIME_NAMES for c in _csv_header(path)) else "table"
    if path.suffix.lower() == ".npy":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        return "series" if arr.ndim == 1 else "table"
    return "table"


def _windows_from_json(path: Path, data_file: Path, timestamps: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """Labelled windows from JSON: a list of [start, end] or NAB's {"dir/file.csv": [[start, end], ...]}."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataFileError(f"{path} could not be read as JSON windows ({err})") from err
    if isinstance(doc, dict):
        hits = [v for k, v in doc.items() if Path(k).name == data_file.name]
        if not hits:
            raise DataError(f"{path} has no windows for {data_file.name} (keys such as {list(doc)[:3]})")
        doc = hits[0]
    if not isinstance(doc, list) or not all(isinstance(w, list) and len(w) == 2 for w in doc):
        raise DataError(f"{path}: windows must be a list of [start, end] pairs")
    out = []
    for a, b in doc:
        if timestamps is not None and isinstance(a, str):
            ta, tb = np.datetime64(a.replace(" ", "T")), np.datetime64(b.replace(" ", "T"))
            lo = int(np.searchsorted(timestamps, ta, side="left"))
            hi = int(np.searchsorted(timestamps, tb, side="right")) - 1
        else:
            lo, hi = int(a), int(b)
        lo, hi = max(lo, 0), min(hi, n - 1)
        if hi >= lo:
            out.append((lo, hi))
    return out


def _runs_of_ones(labels: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive 1s as inclusive (start, end) index pairs."""
    d = np.diff(np.concatenate([[0], labels.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def load_detect_data(
    path: Path, *, kind: str = "auto", columns: list[str] | None = None, label_column: str | None = None,
    windows: Path | None = None, max_gap: int = 3, freq: str | None = "auto",
) -> DetectData:
    """Read a data file for ``aekit detect``: CSV (table or series), ``.npy`` or ``.npz``."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path} does not exist")
    if kind not in KINDS:
        raise ConfigError(f"--kind must be one of {KINDS}, got {kind!r}")
    kind = _guess_kind(path) if kind == "auto" else kind
    suffix = path.suffix.lower()
    if kind == "series":
        if suffix == ".csv":
            keep = None
            if columns or label_column:
                header = _csv_header(path)
                keep = columns or [c for c in header if c != label_column and c.lower() not in TIME_NAMES]
                keep = keep + ([label_column] if label_column else [])
            s = read_series_csv(path, columns=keep, max_gap=max_gap, freq=freq)
            labels = None
            if label_column:
                i = s.columns.index(label_column)
                raw = s.values[:, i]
                labels = (raw > 0.5).astype(np.int64)
                vals = np.delete(s.values, i, axis=1)
                s = Series(timestamps=s.timestamps, values=vals, columns=[c for c in s.columns if c != label_column],
                           gap=s.gap, filled=s.filled, source=s.source, step=s.step,
                           n_duplicates=s.n_duplicates, n_unsorted=s.n_unsorted)
        elif suffix in (".npy", ".npz"):
            from ..data.series import as_series

            arr = _load_array(path)
            s, labels = as_series(arr, max_gap=max_gap, freq=None, source=str(path)), None
        else:
            raise DataFileError(f"{path}: series come as .csv (timestamp,value,...) or .npy files")
        win = _windows_from_json(windows, path, s.timestamps, s.n) if windows else None
        if win is None and labels is not None and labels.any():
            win = _runs_of_ones(labels)  # labelled steps, shaded in the figure and reported as windows
        return DetectData("series", path, series=s, columns=list(s.columns), labels=labels, windows=win)
    if suffix == ".csv":
        X, cols, y = read_table_csv(path, label_column=label_column, columns=columns)
    elif suffix in (".npy", ".npz"):
        X, cols, y = _load_array(path), None, None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                y = np.asarray(z["y"]).astype(np.int64).ravel() if "y" in z else None
    else:
        raise DataFileError(f"{path}: tables come as .csv, .npy or .npz (arrays X and optional y)")
    if windows:
        raise ConfigError("--windows is for series; a table's labels come from --label-column")
    return DetectData("table", path, X=X, columns=cols, labels=y)


def _load_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = "X" if "X" in z else ("x" if "x" in z else None)
                if key is None:
                    raise DataError(f"{path} holds arrays {sorted(z.files)}; name the data array 'X'")
                return np.asarray(z[key])
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataFileError(f"{path} could not be read ({err}); save plain numeric arrays") from err


def _fmt_ts(ts) -> str:
    return str(np.datetime_as_string(ts, unit="s")).replace("T", " ")


def _series_summary(result: SeriesResult, data: DetectData) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_points": len(result.scores),
        "n_flagged": int(result.flags.sum()),
        "n_events": len(result.events),
        "n_gap_points": int(result.gap.sum()),
        "threshold": result.threshold,
        "events": result.events_table(),
    }
    if data.labels is not None and data.labels.any() and not data.labels.all():
        out["roc_auc"] = ev.roc_auc(data.labels, result.scores)
        out["average_precision"] = ev.average_precision(data.labels, result.scores)
    if data.windows:
        rep = ev.window_report(result.events, data.windows, len(result.scores), timestamps=result.timestamps)
        out["windows"] = rep
        first = np.array([e.start for e in result.events], dtype=np.int64)
        out["nab"] = ev.nab_score(first, data.windows, len(result.scores))
        lab = np.zeros(len(result.scores), np.int64)
        for a, b in data.windows:
            lab[a : b + 1] = 1
        if lab.any() and not lab.all():
            out["roc_auc_windows"] = ev.roc_auc(lab, result.scores)
    return out


def _table_summary(scores: np.ndarray, flags: np.ndarray, threshold: float, labels) -> dict[str, Any]:
    out: dict[str, Any] = {"n_rows": len(scores), "n_flagged": int(flags.sum()), "threshold": threshold}
    if labels is not None and labels.any() and not labels.all():
        out["roc_auc"] = ev.roc_auc(labels, scores)
        out["average_precision"] = ev.average_precision(labels, scores)
        out["best_f1"] = ev.best_f1(labels, scores)
        out["at_threshold"] = ev.binary_report(labels, flags.astype(np.int64))
    return out


def _long_series(data: Path, columns: list[str] | None):
    """A series on disk (``--stream``): a .npy as is, a CSV converted once to a cached .npy beside it."""
    from ..tasks.anomaly import LongSeries

    if data.suffix.lower() == ".npy":
        return LongSeries.from_npy(data, columns)
    if data.suffix.lower() != ".csv":
        raise ConfigError(f"--stream reads a series from a .csv or a .npy (n_steps, channels), not {data.name}")
    return LongSeries.from_csv(data, columns=columns)


def _score_all(det, d: DetectData) -> tuple[SeriesResult | None, np.ndarray, np.ndarray, dict[str, Any]]:
    """Scores, flags and the printed/JSON summary of ``d`` (the series result for series)."""
    if d.kind == "series":
        result = det.detect(d.series)
        return result, result.scores, result.flags, _series_summary(result, d)
    scores = det.anomaly_score(d.X)
    flags = scores > det.threshold_.value
    return None, scores, flags, _table_summary(scores, flags, float(det.threshold_.value), d.labels)


def _write_table_scores(path: Path, scores: np.ndarray, flags: np.ndarray) -> None:
    ids = np.cumsum(flags) * flags  # each flagged row is its own event, numbered in row order
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "score", "flag", "event"])
        for i, (s, fl, e) in enumerate(zip(scores, flags, ids)):
            w.writerow([i, f"{s:.6g}", int(fl), int(e)])


def _figure(path: Path, det, data: DetectData, scores, flags, result: SeriesResult | None, title: str) -> Path:
    from ..tasks.anomaly import LongSeries

    if isinstance(data.series, LongSeries):  # a long series: at most 20,000 readings, scores max-pooled
        ls = data.series
        edges = np.linspace(0, ls.n, min(ls.n, 20_000) + 1).astype(np.int64)
        pick = edges[:-1]
        pooled = np.maximum.reduceat(scores, pick)
        vals = ls._rows.read_rows(pick).astype(np.float64)
        return series_figure(
            path, vals, pooled, threshold=float(det.threshold_.value), timestamps=pick,
            flags=np.maximum.reduceat(flags.astype(np.int8), pick).astype(bool), columns=list(ls.columns),
            title=title + (f" (every {ls.n // len(pick):,}th reading; scores: maximum per bucket)"
                           if len(pick) < ls.n else ""),
        )
    if data.kind == "series":
        s = data.series
        return series_figure(
            path, s.values, scores, threshold=float(det.threshold_.value), timestamps=s.timestamps, flags=flags,
            events=result.events, label_windows=data.windows, columns=list(s.columns), gap=s.gap, title=title,
        )
    return score_histogram(path, scores, labels=data.labels, threshold=float(det.threshold_.value), title=title)


def _print_summary(console, summary: dict[str, Any], kind: str) -> None:
    th = summary["threshold"]
    if kind == "series":
        console.print(
            f"{summary['n_points']:,} time steps, {summary['n_flagged']:,} flagged (threshold {th:.4g}), "
            f"{summary['n_events']} events, {summary['n_gap_points']} gap steps"
        )
        for i, e in enumerate(summary["events"][:20], start=1):
            keys = ("start_time", "end_time", "peak_time") if "start_time" in e else ("start", "end", "peak")
            where = [str(e[k]).replace("T", " ") for k in keys]
            console.print(f"  event {i}: {where[0]} .. {where[1]}  peak {where[2]} score {e['peak_score']:.4g}")
        if len(summary["events"]) > 20:
            console.print(f"  ... {len(summary['events']) - 20} more in the summary JSON")
        if "windows" in summary:
            w = summary["windows"]
            console.print(
                f"labelled windows: {w['windows_hit']} hit, {w['windows_missed']} missed; "
                f"{w['false_alarm_events']} false-alarm events; NAB standard score "
                f"{summary['nab']['normalized']:.1f} (raw {summary['nab']['raw']:.3f})"
            )
    else:
        console.print(f"{summary['n_rows']:,} rows, {summary['n_flagged']:,} flagged (threshold {th:.4g})")
    if "roc_auc" in summary:
        console.print(f"ROC-AUC {summary['roc_auc']:.4f}, average precision {summary['average_precision']:.4f}")


def _split_columns(columns: str | None) -> list[str] | None:
    return [c.strip() for c in columns.split(",") if c.strip()] if columns else None


def _train_part(data: DetectData, train_until: str | None) -> DetectData:
    """The first part of the data (rows or time steps before ``train_until``) as the normal period."""
    if not train_until:
        return data
    if data.kind == "series" and data.series.timestamps is not None and not train_until.isdigit():
        try:
            cut = int(np.searchsorted(data.series.timestamps, np.datetime64(train_until.replace(" ", "T"))))
        except ValueError as err:
            raise ConfigError(f"--train-until {train_until!r} is neither a row count nor a timestamp") from err
    elif train_until.isdigit():
        cut = int(train_until)
    elif train_until.endswith("%") and train_until[:-1].replace(".", "", 1).isdigit():
        n = data.series.n if data.kind == "series" else len(data.X)
        cut = int(round(n * float(train_until[:-1]) / 100))
    else:
        raise ConfigError(f"--train-until takes a row count, a percentage (15%) or a timestamp, got {train_until!r}")
    if data.kind == "series":
        labels = None if data.labels is None else data.labels[:cut]
        return DetectData("series", data.source, series=data.series[:cut], columns=data.columns, labels=labels)
    labels = None if data.labels is None else data.labels[:cut]
    return DetectData("table", data.source, X=data.X[:cut], columns=data.columns, labels=labels)


@detect_app.command("fit")
def fit_cmd(
    data: Path = typer.Option(..., "--data", help="CSV (table, or series with a timestamp column), .npy or .npz"),
    out: Path = typer.Option(..., "--out", help="run folder to create"),
    model: str = typer.Option("auto", help="auto | dense | conv1d | lstm | gru | conv (images) | a registered name"),
    threshold: str = typer.Option(
        None, help="fpr:Q (false-alarm budget) | alarms_per_day:A | f1 | contamination:C | quantile:P | std:K | "
        "value:V  [default: fpr:0.01 for tables, fpr:0.001 for series]"
    ),
    contamination: float | None = typer.Option(None, help="known anomalous share of the training data"),
    kind: str = typer.Option("auto", help="auto | table | series (auto: a CSV with a timestamp column is a series)"),
    columns: str | None = typer.Option(None, help="comma-separated columns to use (default: all numeric)"),
    label_column: str | None = typer.Option(None, help="column of 0/1 labels (1 = anomalous), not a feature"),
    train_until: str | None = typer.Option(
        None, help="train on the start only: a row count, a percentage (15%) or a timestamp"
    ),
    windows: Path | None = typer.Option(None, help="labelled windows JSON (a list of [start, end], or NAB's)"),
    window: int = typer.Option(64, help="series: steps per window"),
    stride: str = typer.Option("auto", help="series: step between training windows"),
    point_score: str = typer.Option("mean", help="series: mean (centred) | last (causal)"),
    smooth: str = typer.Option("auto", help="series: trailing mean of the scores over N steps (auto: 4 windows)"),
    max_gap: int = typer.Option(3, help="series: missing steps interpolated silently up to this run length"),
    min_event_gap: str = typer.Option(
        "auto", help="series: merge flagged runs separated by at most this many steps (auto: half a window)"
    ),
    latent_dim: int | None = typer.Option(None, help="code size (default: from the input width)"),
    epochs: str = typer.Option("auto", help="training epochs, or auto (about --steps optimiser steps)"),
    steps: int | None = typer.Option(None, help="optimiser steps for --epochs auto (1000 tables, 3000 series)"),
    batch_size: int = typer.Option(128, min=1),
    lr: float = typer.Option(1e-3),
    val_fraction: float = typer.Option(0.2, help="share held out to calibrate the threshold"),
    seed: int = typer.Option(0),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's choice)"),
    overwrite: bool = typer.Option(False, help="replace an existing run folder"),
    quiet: bool = typer.Option(False, help="no progress bar"),
    stream: bool = typer.Option(
        False, "--stream", help="series longer than memory: convert the CSV once to a cached .npy beside it and "
        "read it in blocks (rows evenly spaced, in order, without gaps)",
    ),
) -> None:
    """Train a detector on (mostly) normal data and calibrate its alarm threshold.

    Writes OUT/aekit.json, model.safetensors, metrics.json, history.csv, loss.png, scores.png.
    """
    from .main import console

    if out.exists() and not overwrite and not is_worker_process():  # distributed: rank 0 checks
        raise ConfigError(f"{out} already exists; choose another --out or pass --overwrite")
    if stream:
        bad = [n for n, v in (("--label-column", label_column), ("--windows", windows), ("--train-until", train_until),
                               ("--contamination", contamination)) if v is not None]
        if bad or kind == "table":
            raise ConfigError(f"--stream fits series detectors on unlabelled series; drop {', '.join(bad) or '--kind'}")
        d = DetectData("series", data, columns=_split_columns(columns))
        train = d
    else:
        d = load_detect_data(data, kind=kind, columns=_split_columns(columns), label_column=label_column,
                             windows=windows, max_gap=max_gap)
        train = _train_part(d, train_until)
    ep: int | str = "auto" if epochs == "auto" else _int_option("--epochs", epochs)
    common = dict(model=model, latent_dim=latent_dim, epochs=ep, batch_size=batch_size, lr=lr,
                  contamination=contamination, val_fraction=val_fraction, seed=seed, threads=threads,
                  verbose=not quiet)
    if steps is not None:
        common["steps"] = _int_option("--steps", str(steps))
    t0 = time.perf_counter()
    if d.kind == "series":
        det = SeriesAnomalyDetector(
            window=window, stride="auto" if stride == "auto" else _int_option("--stride", stride),
            point_score=point_score, max_gap=max_gap,
            smooth="auto" if smooth == "auto" else _int_option("--smooth", smooth),
            min_event_gap="auto" if min_event_gap == "auto" else _int_option("--min-event-gap", min_event_gap, low=0),
            threshold=threshold or "fpr:0.001", **common,
        )
        if stream:
            d.series = _long_series(data, d.columns)
            det.fit(d.series)
        else:
            det.fit(train.series, train.labels)
    else:
        det = AnomalyDetector(threshold=threshold or "fpr:0.01", **common)
        det.fit(train.X, train.labels)
    fit_s = time.perf_counter() - t0
    result, scores, flags, summary = _score_all(det, d)  # the training part and what follows it
    metrics = {
        "kind": d.kind,
        "data": str(data),
        "model": getattr(det.model_, "model_name", model),
        "n_params": int(sum(p.numel() for p in det.model_.parameters())),
        "threshold": det.threshold_.to_dict(),
        "train_flag_rate": det.train_flag_rate_,
        "fit_seconds": round(fit_s, 3),
        "epochs": len(det.history_),
        **{k: v for k, v in summary.items() if k not in ("events", "threshold")},
        "events": summary.get("events", [])[:1000],
    }
    with staged_dir(out, overwrite=overwrite) as tmp:
        # absolute, so export / serve find the data from any working directory
        write_dir(tmp, det, extra={"data": {"source": str(Path(data).resolve()), "kind": d.kind,
                                            "columns": d.columns}})
        write_json(tmp / "metrics.json", metrics)
        _write_history(tmp / "history.csv", det.history_)
        if det.history_:
            loss_curves(det.history_, tmp / "loss.png", title="detector training loss")
        _figure(tmp / "scores.png", det, d, scores, flags, result, f"{data.name}: anomaly scores")
    th = det.threshold_
    console.print(
        f"trained {metrics['model']} ({metrics['n_params']:,} parameters) in {fit_s:.1f} s; threshold "
        f"{th.method} = {th.value:.4g} ({th.spec}); {det.train_flag_rate_:.2%} of the training data above it"
    )
    _print_summary(console, summary, d.kind)
    console.print(f"run folder: [bold]{out}[/bold] (aekit.json, model.safetensors, metrics.json, history.csv, "
                  "loss.png, scores.png)")


def _int_option(name: str, value: str, *, low: int = 1) -> int:
    try:
        v = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer or auto, got {value!r}") from None
    if v < low:
        raise ConfigError(f"{name} must be >= {low}, got {v}")
    return v


@detect_app.command("score")
def score_cmd(
    run: Path = typer.Argument(..., help="run folder from `aekit detect fit` (or a saved detector)"),
    data: Path = typer.Option(..., "--data", help="data to score: the same kind and columns as in training"),
    out: Path = typer.Option(..., "--out", help="scores CSV: timestamp|row, score, flag (1 = anomalous), event"),
    label_column: str | None = typer.Option(None, help="column of 0/1 labels, for ROC-AUC and the figure"),
    windows: Path | None = typer.Option(None, help="labelled windows JSON (series), for the NAB-style report"),
    figure: Path | None = typer.Option(None, help="figure path (default: OUT with .png)"),
    overwrite: bool = typer.Option(False, help="replace existing output files"),
    stream: bool = typer.Option(False, "--stream", help="a series longer than memory, read in blocks (see detect fit)"),
) -> None:
    """Score data with a trained detector: per-row or per-time-step scores, flags and events.

    Also writes a figure (default OUT.png) and a summary JSON (OUT.json).
    """
    from .. import load
    from .main import console

    doc = read_meta(run)
    if doc.get("kind") not in ("anomaly_detector", "series_anomaly_detector"):
        raise ConfigError(
            f"{run} holds a {doc.get('kind')!r}, not an anomaly detector; train one with `aekit detect fit`"
        )
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out must be a .csv file, got {out}")
    figure = figure or out.with_suffix(".png")
    summary_path = out.with_suffix(".json")
    for p in (out, figure, summary_path):
        if p.exists() and not overwrite:
            raise ConfigError(f"{p} already exists; choose another --out or pass --overwrite")
    det = load(run)
    kind = "series" if doc["kind"] == "series_anomaly_detector" else "table"
    columns = det.columns_ if kind == "series" else (doc.get("data", {}).get("columns") or None)
    if stream:
        if kind != "series" or label_column or windows:
            raise ConfigError("--stream scores series detectors on unlabelled series (no --label-column/--windows)")
        d = DetectData("series", data, columns=list(columns), series=_long_series(data, list(columns)))
    else:
        d = load_detect_data(data, kind=kind, columns=columns, label_column=label_column, windows=windows,
                             max_gap=getattr(det, "max_gap", 3), freq=getattr(det, "freq_", "auto"))
    t0 = time.perf_counter()
    result, scores, flags, summary = _score_all(det, d)
    summary["score_seconds"] = round(time.perf_counter() - t0, 3)
    if kind == "series":
        result.to_csv(out)
    else:
        _write_table_scores(out, scores, flags)
    _figure(figure, det, d, scores, flags, result, f"{data.name}: anomaly scores ({run.name})")
    write_json(summary_path, summary)
    _print_summary(console, summary, kind)
    console.print(f"scores: [bold]{out}[/bold]; figure: {figure}; summary: {summary_path}")
