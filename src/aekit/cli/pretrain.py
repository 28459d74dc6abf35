"""``aekit pretrain``, ``aekit finetune RUN``, ``aekit compare-pretraining``: does pretraining
on unlabelled data help with a few labels?

``pretrain`` writes a run folder like ``aekit train`` does (aekit.json of kind "model" with a
``run`` section, model.safetensors, metrics.json, history.csv, figures), plus the activation
statistics of every encoder layer and ``filters.png``; its stages checkpoint into
``RUN/stages/`` so ``aekit pretrain --resume RUN`` finishes an interrupted run.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .._utils import is_worker_process, write_json
from ..errors import ConfigError, DataError, DataFileError, ResumeError, RunExistsError

STAGES_DIR = "stages"


@dataclass
class PretrainSpec:
    """Everything ``aekit pretrain`` needs; stored in aekit.json so ``--resume`` can rebuild it."""

    dataset: str = "mnist"
    preset: str | None = "hinton2006"  # dense_ae preset: 784-1000-500-250-30, ELU, linear code
    model: str = "dense_ae"  # or conv_ae (end_to_end only), e.g. preset "wide" with latent_dim 64
    hidden: tuple[int, ...] | None = None  # overrides the preset's encoder widths
    latent_dim: int | None = None
    activation: str | None = None
    tied: bool = False
    strategy: str = "greedy"  # "greedy" | "end_to_end"
    sparsity: str | None = None
    denoise: str | None = None
    epochs: int = 10  # per layer (greedy) or in all (end to end)
    batch_size: int = 128
    lr: float = 1e-3
    binarize: float | None = None
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    n_train: int | None = None


def _load_data(name: str, *, n_train: int | None = None, binarize: float | None = None):
    from ..data import binarize as binarize_images
    from ..data import load_dataset

    ds = load_dataset(name)
    if n_train is not None:
        ds = ds.subset(n_train, None)
    if binarize is not None:
        ds = dataclasses.replace(ds, x_train=binarize_images(ds.x_train, binarize),
                                 x_test=binarize_images(ds.x_test, binarize))
    return ds


def _build(spec: PretrainSpec, input_shape: tuple[int, ...]):
    import warnings

    from .._utils import seed_everything
    from ..models import build_config, model_class

    if spec.model == "dense_ae":
        config = build_config("dense_ae", spec.preset, input_shape=tuple(input_shape),
                              hidden=tuple(spec.hidden) if spec.hidden else None, latent_dim=spec.latent_dim,
                              activation=spec.activation, tied=spec.tied or None)
    else:
        dense_only = [f for f, v in (("--hidden", spec.hidden), ("--tied", spec.tied)) if v]
        if dense_only:
            raise ConfigError(f"{', '.join(dense_only)} only apply to --model dense_ae, not {spec.model}")
        if spec.strategy == "greedy":
            raise ConfigError(f"greedy layer-wise pretraining stacks dense layers; use --strategy end_to_end "
                              f"with --model {spec.model}")
        config = build_config(spec.model, spec.preset, input_shape=tuple(input_shape), latent_dim=spec.latent_dim,
                              activation=spec.activation)
    seed_everything(spec.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the over-complete first layer is intended
        return model_class(spec.model)(config)


def _run_doc(spec: PretrainSpec, ds) -> dict[str, Any]:
    """The ``run`` section in `aekit train`'s form (so `aekit evaluate`, `embed`, ... work) and ours."""
    from .. import __version__
    from .runs import RunSpec

    run_spec = RunSpec(model=spec.model, dataset=spec.dataset, preset=spec.preset, latent_dim=spec.latent_dim,
                       epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
                       denoise=spec.denoise, sparsity=spec.sparsity, binarize=spec.binarize, seed=spec.seed,
                       threads=spec.threads, device=spec.device, val_fraction=0.0, n_train=spec.n_train,
                       model_options={k: v for k, v in (("hidden", list(spec.hidden) if spec.hidden else None),
                                                        ("activation", spec.activation),
                                                        ("tied", spec.tied or None)) if v is not None})
    return {
        "run": {
            "spec": asdict(run_spec),
            "dataset": {"name": ds.name, "source": ds.source, "sample_shape": list(ds.sample_shape)},
            "preprocessing": {"binarize": spec.binarize, "scale": "[0,1] images"},
            "aekit_version": __version__,
        },
        "pretraining": {"spec": {**asdict(spec), "hidden": list(spec.hidden) if spec.hidden else None}},
    }


def pretrain_run(spec: PretrainSpec, out: str | Path, *, overwrite: bool = False, resume: bool = False,
                 progress: bool | None = None, figures: bool = True) -> dict[str, Any]:
    """Pretrain ``spec`` into run folder ``out``; returns the metrics (also in metrics.json)."""
    import shutil

    from ..io.persistence import CONFIG_FILE, FORMAT, FORMAT_VERSION, write_dir
    from ..models import model_meta
    from ..tasks.pretraining import STRATEGIES, pretrain
    from .runs import _write_history, evaluate_model, prepare_data, write_figures

    out = Path(out)
    if out.exists() and not resume and not is_worker_process():  # distributed: rank 0 checks
        if not overwrite:
            raise RunExistsError(f"run folder {out} already exists; pass --overwrite to replace it, "
                                 f"--resume {out} to continue it, or choose another --out")
        if not out.is_dir():
            raise RunExistsError(f"{out} exists and is not a folder; remove it or choose another --out")
    if spec.strategy not in STRATEGIES:
        raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {spec.strategy!r}")
    ds = _load_data(spec.dataset, n_train=spec.n_train, binarize=spec.binarize)
    model = _build(spec, ds.sample_shape)
    doc = _run_doc(spec, ds)
    from ..data.noise import parse_corruption
    from ..models.base import Sparsity

    parse_corruption(spec.denoise)
    Sparsity.parse(spec.sparsity)
    # everything has been validated: only now is an old run replaced
    if out.exists() and overwrite and not resume and not is_worker_process():
        shutil.rmtree(out)
    if not is_worker_process():
        out.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json(out / CONFIG_FILE, {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "model",
                                       **model_meta(model), **doc, "weights": {"file": "model.safetensors",
                                                                                "sha256": None}})
    result = pretrain(model, ds.x_train, strategy=spec.strategy, sparsity=spec.sparsity, denoise=spec.denoise,
                      epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr, seed=spec.seed,
                      threads=spec.threads, device=spec.device, checkpoint_dir=out / STAGES_DIR, resume=resume,
                      progress=progress)
    model = result.model.cpu()
    write_dir(out, model, extra=doc)
    records = [{"stage": stage, **r} for stage, recs in result.history.items() for r in recs]
    _write_history(out / "history.csv", records)
    from .runs import RunSpec

    run_spec = RunSpec(**doc["run"]["spec"])
    data = prepare_data(run_spec, ds)
    metrics = evaluate_model(model, data, run_spec)
    metrics.update(
        strategy=spec.strategy, sparsity=spec.sparsity, denoise=spec.denoise,
        epochs=spec.epochs, epochs_meaning="per layer" if spec.strategy == "greedy" else "in all",
        seconds=sum(r.get("seconds", 0.0) for r in records) if resume else result.seconds,
        layers=result.layer_stats,
        code_mean_activation=result.layer_stats[-1]["mean_activation"],
        code_dead_fraction=result.layer_stats[-1]["dead_fraction"],
        first_layer_mean_activation=result.layer_stats[0]["mean_activation"],
        first_layer_dead_fraction=result.layer_stats[0]["dead_fraction"],
    )
    if not spec.denoise:
        metrics.pop("denoise", None)
    write_json(out / "metrics.json", metrics)
    if figures:
        from ..viz.filters import filter_grid

        last = [dict(r, epoch=i + 1) for i, r in enumerate(records) if r["stage"] == records[-1]["stage"]]
        write_figures(out, model, data, last, run_spec)
        if len(model.input_shape) >= 2 and spec.model == "dense_ae":
            filter_grid(model.enc[0].weight, out / "filters.png", image_shape=model.input_shape[-2:],
                        title=f"{spec.strategy} pretraining on {spec.dataset}: first-layer filters "
                              f"(100 of {model.enc[0].out_features})")
    return metrics


def resume_pretrain(run: str | Path, *, progress: bool | None = None) -> dict[str, Any]:
    """Finish an interrupted ``aekit pretrain`` run (finished stages are restored, not retrained)."""
    from ..io.persistence import read_meta

    run = Path(run)
    doc = read_meta(run)
    try:
        raw = dict(doc["pretraining"]["spec"])
        raw["hidden"] = tuple(raw["hidden"]) if raw.get("hidden") else None
        spec = PretrainSpec(**raw)
    except (KeyError, TypeError) as err:
        raise ResumeError(f"{run} is not an `aekit pretrain` run folder (no valid pretraining section: {err})") from err
    if not (run / STAGES_DIR).is_dir():
        raise ResumeError(f"{run} has no {STAGES_DIR}/ checkpoints to resume from")
    return pretrain_run(spec, run, resume=True, progress=progress)


# -- fine-tuning -----------------------------------------------------------------------------------
def read_label_file(path: str | Path, n: int) -> np.ndarray:
    """Labels from .npy / .csv / .txt (one per line; a header line is skipped); must hold ``n``."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"label file {path} does not exist")
    try:
        if path.suffix.lower() == ".npy":
            y = np.load(path, allow_pickle=False)
        else:
            lines = [ln.strip().split(",")[-1] for ln in path.read_text().splitlines() if ln.strip()]
            if lines and not lines[0].lstrip("-").isdigit():
                lines = lines[1:]  # a header
            y = np.array([int(v) for v in lines])
    except (ValueError, OSError) as err:
        raise DataFileError(f"label file {path} could not be read as integer labels ({err})") from err
    y = np.asarray(y).reshape(-1) if np.ndim(y) == 2 and 1 in np.shape(y) else np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"label file {path} must hold one label per sample, got shape {y.shape}")
    if len(y) != n:
        raise DataError(f"label file {path} has {len(y)} labels but the training set has {n} samples")
    return y


def _run_dataset(doc: dict[str, Any]) -> tuple[str | None, float | None]:
    spec = (doc.get("run") or {}).get("spec") or {}
    return spec.get("dataset"), (doc.get("run") or {}).get("preprocessing", {}).get("binarize")


def finetune_run(
    run: str | Path, out: str | Path, *, n_labels: int, seed: int = 0, scratch: bool = False,
    dataset: str | None = None, label_file: str | Path | None = None, overwrite: bool = False,
    baselines: bool = True, classifier_options: dict[str, Any] | None = None, pseudo_label: bool = False,
) -> dict[str, Any]:
    """Fine-tune the encoder of run ``run`` on ``n_labels`` class-balanced labels into folder ``out``.

    ``pseudo_label``: then also learn from the training images not drawn as labelled, by
    confident pseudo-labels (``PretrainedClassifier.fit(X_unlabelled=...)``).
    """
    from ..io import load
    from ..io.persistence import read_meta, staged_dir, write_dir
    from ..tasks.pretraining import PretrainedClassifier, draw_labelled, frozen_code_classifier
    from .runs import _write_history

    out = Path(out)
    if out.exists() and not overwrite:
        raise RunExistsError(f"{out} already exists; pass --overwrite to replace it or choose another --out")
    doc = read_meta(run)
    ae = load(run, kind="model")
    name, binarize = _run_dataset(doc)
    name = dataset or name
    if not name:
        raise ConfigError(f"{run} does not say which data set it was trained on; pass --dataset")
    ds = _load_data(name, binarize=binarize)
    if math.prod(ds.sample_shape) != math.prod(ae.input_shape):
        raise DataError(f"the encoder in {run} expects inputs of shape {tuple(ae.input_shape)} "
                        f"({math.prod(ae.input_shape)} values) but {name} has samples of shape {ds.sample_shape}")
    y = read_label_file(label_file, len(ds.x_train)) if label_file else ds.y_train
    if y is None:
        raise DataError(f"data set {name!r} has no training labels; pass --label-file with one label per sample")
    if ds.y_test is None or len(ds.y_test) == 0:
        raise DataError(f"data set {name!r} has no labelled test set to measure accuracy on")
    unseen = np.setdiff1d(np.unique(ds.y_test), np.unique(y[y != -1]))
    if len(unseen):
        raise DataError(f"test labels {unseen.tolist()} are not present in the training labels")
    idx = draw_labelled(y, n_labels, seed=seed)
    t0 = time.perf_counter()
    clf = PretrainedClassifier(ae, from_scratch=scratch, seed=seed, **(classifier_options or {}))
    unlabelled = np.delete(ds.x_train, idx, axis=0) if pseudo_label else None
    clf.fit(ds.x_train[idx], y[idx], X_unlabelled=unlabelled)
    seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "test_accuracy": float(clf.score(ds.x_test, ds.y_test)),
        "method": ("scratch" if scratch else "pretrained") + ("+pseudo" if pseudo_label else ""),
        "n_unlabelled": 0 if unlabelled is None else int(len(unlabelled)),
        "run": str(run), "dataset": name, "n_labels": int(n_labels), "seed": int(seed),
        "n_test": int(len(ds.x_test)), "epochs": clf.n_epochs_, "seconds": seconds,
        "classifier": {k: v for k, v in clf.get_params().items() if k != "encoder"},
    }
    metrics["test_error"] = 1.0 - metrics["test_accuracy"]
    if baselines and not scratch:
        for m in ("logreg", "knn"):
            base = frozen_code_classifier(ae, m, seed=seed).fit(ds.x_train[idx], y[idx])
            metrics[f"frozen_{m}_test_accuracy"] = float(base.score(ds.x_test, ds.y_test))
    with staged_dir(out, overwrite=overwrite) as tmp:
        about = {k: metrics[k] for k in ("run", "dataset", "n_labels", "seed", "method")}
        write_dir(tmp, clf, extra={"finetune": about})
        with open(tmp / "labelled.csv", "w", newline="") as f:  # the draw: auditable, reproducible
            w = csv.writer(f)
            w.writerow(["index", "label"])
            w.writerows(zip(idx.tolist(), y[idx].tolist()))
        _write_history(tmp / "history.csv", clf.history_)
        write_json(tmp / "metrics.json", metrics)
    return metrics


# -- the comparison ----------------------------------------------------------------------------------
def compare_run(
    dataset: str, out: str | Path, *, labels: list[int], seeds: int, strategies: dict[str, PretrainSpec],
    encoders: dict[str, str | Path] | None = None, classifier_options: dict[str, Any] | None = None,
    resume: bool = True, progress: bool | None = None, on_result=None, pseudo_label: list[str] | tuple = (),
) -> dict[str, Any]:
    """Pretrain each strategy into ``out/NAME`` (reused when finished, resumed when interrupted),
    then compare every method on the same label draws; writes results.json and the figure."""
    from ..io import load
    from ..tasks.pretraining import compare_pretraining, summarise
    from ..viz.filters import accuracy_vs_labels

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = _load_data(dataset)
    if ds.y_train is None or ds.y_test is None:
        raise DataError(f"data set {dataset!r} has no labels to compare with")
    runs: dict[str, Path] = {k: Path(v) for k, v in (encoders or {}).items()}
    pre_metrics = {}
    for name, spec in strategies.items():
        if name in runs:
            continue
        run = out / name
        if (run / "metrics.json").is_file() and (run / "model.safetensors").is_file():
            pass  # finished earlier: reuse
        elif (run / STAGES_DIR).is_dir() and resume:
            resume_pretrain(run, progress=progress)
        else:
            pretrain_run(spec, run, overwrite=True, progress=progress)
        runs[name] = run
    for name, run in runs.items():
        mp = Path(run) / "metrics.json"
        pre_metrics[name] = json.loads(mp.read_text()) if mp.is_file() else {}
    encs = {name: load(run, kind="model") for name, run in runs.items()}
    t0 = time.perf_counter()
    rows = compare_pretraining(ds.x_train, ds.y_train, ds.x_test, ds.y_test, encs, labels=labels, seeds=seeds,
                               classifier_options=classifier_options, pseudo_label=pseudo_label,
                               on_result=on_result)
    summary = summarise(rows)
    result = {"dataset": dataset, "labels": labels, "seeds": seeds, "runs": {k: str(v) for k, v in runs.items()},
              "pretraining": {k: {key: m.get(key) for key in ("strategy", "sparsity", "denoise", "epochs", "seconds",
                                                              "test_sq_err_per_image", "layers")}
                              for k, m in pre_metrics.items()},
              "finetune_seconds": time.perf_counter() - t0, "summary": summary, "rows": rows}
    write_json(out / "results.json", result)
    accuracy_vs_labels(summary, out / "accuracy_vs_labels.png",
                       title=f"{dataset}: test accuracy against labelled examples ({seeds} seeds, mean ± std)")
    return result


def summary_table(summary: list[dict[str, Any]], title: str | None = None):
    """A rich table: one row per method, one column per label count (accuracy mean ± std, in %)."""
    from rich.table import Table

    ns = sorted({r["n_labels"] for r in summary})
    t = Table(title=title)
    t.add_column("method")
    for n in ns:
        t.add_column(f"{n:,} labels", justify="right")
    by = {(r["method"], r["n_labels"]): r for r in summary}
    for m in dict.fromkeys(r["method"] for r in summary):
        t.add_row(m, *[f"{100 * by[m, n]['mean']:.2f} ± {100 * by[m, n]['std']:.2f}" if (m, n) in by else "-"
                       for n in ns])
    return t


# -- commands -----------------------------------------------------------------------------------------
def parse_pseudo(text: str | None) -> list[str]:
    """``"scratch,end_to_end"`` -> the methods to rerun with pseudo-labels (``""``/``"none"``: none)."""
    names = [v.strip() for v in (text or "").split(",") if v.strip()]
    if names == ["none"]:
        return []
    bad = [v for v in names if v not in ("scratch", "greedy", "end_to_end")]
    if bad:
        raise ConfigError(f"--pseudo-label takes scratch, greedy and/or end_to_end (comma-separated), got {bad}")
    return names


def _parse_ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be whole numbers separated by commas, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise ConfigError(f"{what} must be positive whole numbers, got {text!r}")
    return vals


def pretrain_cmd(
    dataset: str = typer.Option("mnist", help="mnist | fashion-mnist | digits | PATH"),
    model: str = typer.Option("dense_ae", help="dense_ae | conv_ae (conv_ae: --strategy end_to_end only)"),
    preset: str | None = typer.Option(
        None, help="model preset (default: hinton2006 = 784-1000-500-250-30 for dense_ae; conv_ae: e.g. wide)"),
    hidden: str | None = typer.Option(None, help="encoder widths, e.g. 1000,500,250 (overrides the preset)"),
    latent_dim: int | None = typer.Option(None, help="code size (overrides the preset)"),
    activation: str | None = typer.Option(None, help="hidden activation (preset: elu)"),
    tied: bool = typer.Option(False, "--tied", help="decoder uses the transposed encoder weights"),
    strategy: str = typer.Option("greedy", help="greedy (layer by layer, then stacked) | end_to_end"),
    sparsity: str | None = typer.Option(None, help="l1:W | kl:RHO:W (greedy: on every hidden layer)"),
    denoise: str | None = typer.Option(None, help="input corruption, e.g. mask:0.3 or shift:2+mask:0.3"),
    epochs: int = typer.Option(10, min=1, help="epochs per layer (greedy) or in all (end_to_end)"),
    batch_size: int = typer.Option(128, min=1),
    lr: float = typer.Option(1e-3),
    binarize: float | None = typer.Option(None, help="threshold pixels to {0,1}"),
    n_train: int | None = typer.Option(None, help="use only the first N training images"),
    seed: int = typer.Option(0),
    threads: int | None = typer.Option(None, help="torch threads"),
    out: Path | None = typer.Option(None, help="run folder (default runs/pretrain-STRATEGY-DATASET)"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    resume: Path | None = typer.Option(None, help="finish the interrupted pretraining run in this folder"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Pretrain an autoencoder on the unlabelled training images (greedy sparse or end to end)."""
    from .main import _parse_threads, console

    progress = False if quiet else None
    if resume is not None:
        m = resume_pretrain(resume, progress=progress)
        out = resume
    else:
        widths = tuple(_parse_ints(hidden, "--hidden")) if hidden else None
        if preset is None and model == "dense_ae":
            preset = "hinton2006"
        spec = PretrainSpec(dataset=dataset, preset=preset, model=model, hidden=widths,
                            latent_dim=latent_dim, activation=activation, tied=tied, strategy=strategy,
                            sparsity=sparsity, denoise=denoise, epochs=epochs, batch_size=batch_size, lr=lr,
                            binarize=binarize, seed=seed, threads=_parse_threads(threads), n_train=n_train)
        out = out or Path("runs") / f"pretrain-{strategy}-{Path(dataset).name}"
        m = pretrain_run(spec, out, overwrite=overwrite, progress=progress)
    from rich.table import Table

    t = Table(title=f"{m['strategy']} pretraining on {m['dataset']}: test squared error/image "
                    f"{m['test_sq_err_per_image']:.2f} (PCA-{m['pca_n_components']}: {m['pca_sq_err_per_image']:.2f})")
    for col in ("layer", "units", "mean activation", "active", "dead units"):
        t.add_column(col, justify="right")
    for s in m["layers"]:
        t.add_row(str(s["layer"]), str(s["units"]), f"{s['mean_activation']:.3f}",
                  f"{100 * s['fraction_active']:.1f}%", f"{100 * s['dead_fraction']:.1f}%")
    console.print(t)
    files = "aekit.json, model.safetensors, metrics.json, history.csv, " + (
        "filters.png, " if (out / "filters.png").is_file() else "") + "reconstructions.png, loss.png, latent.png"
    console.print(f"run folder: [bold]{out}[/bold] ({files})")


def finetune_cmd(
    run: Path = typer.Argument(..., help="run folder from `aekit pretrain` (or `aekit train`)"),
    labels: int = typer.Option(100, "--labels", help="labelled examples, drawn class-balanced from the training set"),
    seed: int = typer.Option(0, help="seeds the label draw and the fine-tuning"),
    scratch: bool = typer.Option(False, "--scratch", help="train the same network from random initialisation"),
    out: Path = typer.Option(..., help="classifier folder to create"),
    dataset: str | None = typer.Option(None, help="data set (default: the run's)"),
    label_file: Path | None = typer.Option(None, help="labels for the training set (.npy/.csv/.txt), -1 = unlabelled"),
    freeze: bool = typer.Option(False, "--freeze", help="keep the encoder fixed (only the head learns)"),
    unfreeze_after: int | None = typer.Option(None, help="with --freeze: fine-tune everything after N epochs"),
    encoder_lr_scale: float = typer.Option(0.1, help="encoder learning rate = lr x this"),
    epochs: int | None = typer.Option(None, help="passes over the labelled set (default: ~800 steps)"),
    lr: float = typer.Option(3e-3, help="head learning rate (AdamW)"),
    augment: str = typer.Option("shift:2", help="augmentation of the labelled images (none to switch off)"),
    pseudo_label: bool = typer.Option(
        False, "--pseudo-label",
        help="then also learn from the unlabelled rest of the training set by confident pseudo-labels "
             "(FixMatch-style)"),
    unlabelled_steps: int = typer.Option(2000, min=1, help="with --pseudo-label: steps of that phase"),
    threshold: float = typer.Option(0.95, help="with --pseudo-label: confidence a pseudo-label needs"),
    threads: int | None = typer.Option(None),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Fine-tune a pretrained encoder (plus a classifier head) on a few labelled examples."""
    from .main import _parse_threads, console

    opts = dict(freeze_encoder=freeze, unfreeze_after=unfreeze_after, encoder_lr_scale=encoder_lr_scale,
                epochs=epochs, lr=lr, augment=None if augment.lower() == "none" else augment,
                unlabelled_steps=unlabelled_steps, threshold=threshold, threads=_parse_threads(threads))
    m = finetune_run(run, out, n_labels=labels, seed=seed, scratch=scratch, dataset=dataset, label_file=label_file,
                     overwrite=overwrite, classifier_options=opts, pseudo_label=pseudo_label)
    extra = "".join(f", frozen codes + {k}: {100 * m[f'frozen_{k}_test_accuracy']:.2f}%"
                    for k in ("logreg", "knn") if f"frozen_{k}_test_accuracy" in m)
    console.print(f"{m['method']} on {m['n_labels']} labels (seed {seed}): test accuracy "
                  f"[bold]{100 * m['test_accuracy']:.2f}%[/bold]{extra} ({m['seconds']:.1f} s)")
    console.print(f"classifier folder: [bold]{out}[/bold] (aekit.json, model.safetensors, metrics.json, labelled.csv)")


def compare_cmd(
    dataset: str = typer.Option("mnist", help="a labelled data set: mnist | fashion-mnist | digits"),
    labels: str = typer.Option("100,1000", help="labelled-set sizes, comma-separated"),
    seeds: int = typer.Option(5, min=1, help="label draws (and fine-tuning seeds) per size"),
    out: Path = typer.Option(Path("runs/compare-pretraining"), help="folder for runs, results.json and the figure"),
    greedy: Path | None = typer.Option(None, help="use this finished greedy pretraining run"),
    end_to_end: Path | None = typer.Option(None, help="use this finished end-to-end pretraining run"),
    epochs: int = typer.Option(5, min=1, help="pretraining epochs (per layer for greedy)"),
    sparsity: str = typer.Option("l1:3e-5", help="greedy layers' sparsity penalty"),
    denoise: str = typer.Option("shift:2+mask:0.3", help="end-to-end pretraining corruption"),
    preset: str = typer.Option("hinton2006"),
    n_train: int | None = typer.Option(None, help="pretrain on the first N training images only"),
    pseudo_label: str = typer.Option(
        "", help="methods to run again with pseudo-labels on the unlabelled images, e.g. scratch,end_to_end"),
    threads: int | None = typer.Option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Pretrained vs random initialisation vs frozen-code baselines, over label counts and seeds."""
    from .main import _parse_threads, console

    threads = _parse_threads(threads)
    common = dict(dataset=dataset, preset=preset, epochs=epochs, threads=threads, n_train=n_train)
    strategies = {"greedy": PretrainSpec(strategy="greedy", sparsity=sparsity or None, **common),
                  "end_to_end": PretrainSpec(strategy="end_to_end", denoise=denoise or None, **common)}
    given = {k: v for k, v in (("greedy", greedy), ("end_to_end", end_to_end)) if v is not None}

    def show(r):
        if not quiet:
            console.print(f"  {r['method']:<20} {r['n_labels']:>6,} labels seed {r['seed']}: "
                          f"{100 * r['test_accuracy']:.2f}% ({r['seconds']:.1f} s)", highlight=False)

    res = compare_run(dataset, out, labels=_parse_ints(labels, "--labels"), seeds=seeds, strategies=strategies,
                      encoders=given, classifier_options={"threads": threads}, progress=False if quiet else None,
                      on_result=show, pseudo_label=parse_pseudo(pseudo_label))
    console.print(summary_table(res["summary"], title=f"{dataset}: test accuracy (%), mean ± std over {seeds} seeds"))
    console.print(f"results: [bold]{out}/results.json[/bold]; figure: [bold]{out}/accuracy_vs_labels.png[/bold]")


def register(app: typer.Typer) -> None:
    """Add ``pretrain``, ``finetune`` and ``compare-pretraining`` to the ``aekit`` app."""
    app.command("pretrain")(pretrain_cmd)
    app.command("finetune")(finetune_cmd)
    app.command("compare-pretraining")(compare_cmd)
