"""Run folders: train a model on a data set into RUN/, evaluate it, resume it.

A run folder holds ``aekit.json`` (model + how it was trained), ``checkpoint.safetensors``
(every epoch), and when finished ``model.safetensors``, ``metrics.json``, ``history.csv`` and
figures. The CLI is a thin shell over these functions.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from .._utils import is_worker_process, resolve_device, seed_everything, write_json
from ..data import Dataset, binarize, load_dataset, parse_corruption
from ..errors import ConfigError, DataError, ModelFileError, ResumeError, RunExistsError
from ..io.persistence import CHECKPOINT_FILE, CONFIG_FILE, FORMAT, FORMAT_VERSION, read_meta, write_dir
from ..models import build_config, model_class, model_from_meta
from ..training import TrainConfig, Trainer, pca_baseline, reconstruction_metrics
from ..training.metrics import reconstruct_batches


@dataclass
class RunSpec:
    """Everything ``aekit train`` needs; stored in aekit.json so ``--resume`` can rebuild it."""

    model: str = "dense_ae"
    dataset: str = "digits"
    preset: str | None = None
    latent_dim: int | None = None
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    denoise: str | None = None
    fixed_noise: bool = False
    sparsity: str | None = None
    binarize: float | None = None
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    patience: int | None = None
    val_fraction: float = 0.1
    n_train: int | None = None
    n_test: int | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    stream: bool | None = None  # a .npy read batch by batch; None: when larger than a quarter of free memory


@dataclass
class PreparedData:
    train_in: torch.Tensor
    train_target: torch.Tensor
    val: tuple[torch.Tensor, torch.Tensor] | None
    test_in: np.ndarray  # noisy when denoising (fixed seed), else the clean test images
    test_target: np.ndarray
    test_labels: np.ndarray | None
    train_clean: np.ndarray  # for the PCA baseline
    dataset: Dataset


#: streamed runs keep at most this many held-out samples in memory for validation and for testing,
#: and fit the PCA baseline on at most this many training samples
STREAM_HELD_OUT = 10_000


def should_stream(spec: RunSpec) -> bool:
    """Whether ``spec`` trains from a .npy file batch by batch (``--stream``) instead of in memory."""
    path = Path(spec.dataset)
    is_npy = path.suffix.lower() == ".npy" and path.is_file()
    if spec.stream and not (is_npy or path.is_dir()):
        raise ConfigError(
            f"--stream reads .npy files and image folders batch by batch; {spec.dataset!r} is neither "
            "(save the array with np.save, or convert a CSV series with aekit.data.streaming.csv_to_npy)"
        )
    if spec.stream is not None:
        return bool(spec.stream)
    if not is_npy:
        return False
    from ..data.streaming import free_memory_bytes

    free = free_memory_bytes()
    return free is not None and path.stat().st_size > free / 4


def prepare_stream(spec: RunSpec) -> PreparedData:
    """The rows of a .npy file (or the images of a folder) split into training (read batch by
    batch), validation and test (at most :data:`STREAM_HELD_OUT` each, in memory)."""
    from ..data.streaming import ImageFolderStream, NpyStream

    if spec.fixed_noise:
        raise ConfigError("--fixed-noise draws every noisy input up front; it cannot stream (drop one of them)")
    if Path(spec.dataset).is_dir():
        full = ImageFolderStream(spec.dataset)
        full.binarize = spec.binarize
    else:
        full = NpyStream(spec.dataset, binarize=spec.binarize)
    n = len(full) if spec.n_train is None else min(len(full), spec.n_train)
    if not 0 <= spec.val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {spec.val_fraction}")
    rng = np.random.default_rng(spec.seed)
    order = rng.permutation(n)
    n_test = spec.n_test if spec.n_test is not None else min(STREAM_HELD_OUT, max(1, int(round(n * 0.1))))
    n_val = min(STREAM_HELD_OUT, int(round(n * spec.val_fraction)))
    if n - n_test - n_val < 1:
        raise DataError(f"{spec.dataset} has {n} samples: too few for {n_test} test and {n_val} validation samples")
    te_idx, va_idx, tr_idx = order[:n_test], order[n_test : n_test + n_val], np.sort(order[n_test + n_val :])
    train = full.subset(tr_idx)
    val = None
    if n_val:
        v = torch.from_numpy(full.subset(np.sort(va_idx)).to_array())
        val = (v, v)
    x_te = full.subset(np.sort(te_idx)).to_array()
    test_in = x_te
    corruption = parse_corruption(spec.denoise)
    if corruption is not None:
        gen = torch.Generator().manual_seed(spec.seed + 7)
        test_in = corruption(torch.from_numpy(np.ascontiguousarray(x_te)), gen).numpy()
    pca_rows = np.sort(rng.choice(len(train), size=min(STREAM_HELD_OUT, len(train)), replace=False))
    clean = train.subset(pca_rows).to_array()
    path = Path(spec.dataset)
    ds = Dataset(path.stem if path.is_file() else path.name, x_te[:0], None, x_te, None,
                 f"{path.resolve()} (streamed, {len(train):,} training samples read batch by batch)")
    return PreparedData(train, train, val, test_in, x_te, None, clean, ds)


def sample_shape(data: PreparedData) -> tuple[int, ...]:
    x = data.train_in
    return tuple(x.sample_shape) if hasattr(x, "sample_shape") else tuple(x.shape[1:])


def prepare_data(spec: RunSpec, dataset: Dataset | None = None) -> PreparedData:
    """Load, subset, binarise and split the data as ``spec`` says."""
    if dataset is None and should_stream(spec):
        return prepare_stream(spec)
    ds = dataset or load_dataset(spec.dataset)
    if spec.n_train is not None or spec.n_test is not None:
        ds = ds.subset(spec.n_train, spec.n_test)
    x_tr, x_te = ds.x_train, ds.x_test
    if len(x_tr) == 0:
        raise DataError(f"data set {spec.dataset!r} has no training samples")
    if spec.binarize is not None:
        x_tr, x_te = binarize(x_tr, spec.binarize), binarize(x_te, spec.binarize)
    if not 0 <= spec.val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {spec.val_fraction}")
    if len(x_te) == 0:
        raise DataError(f"data set {spec.dataset!r} has no test samples to evaluate on")
    rng = np.random.default_rng(spec.seed)
    order = rng.permutation(len(x_tr))
    n_val = int(round(len(x_tr) * spec.val_fraction))
    tr_idx, va_idx = np.sort(order[n_val:]), np.sort(order[:n_val])
    train = torch.from_numpy(np.ascontiguousarray(x_tr[tr_idx]))
    val = None
    if n_val:
        v = torch.from_numpy(np.ascontiguousarray(x_tr[va_idx]))
        val = (v, v)
    test_in = x_te
    corruption = parse_corruption(spec.denoise)
    if corruption is not None:
        gen = torch.Generator().manual_seed(spec.seed + 7)
        test_in = corruption(torch.from_numpy(np.ascontiguousarray(x_te)), gen).numpy()
    return PreparedData(train, train, val, test_in, x_te, ds.y_test, x_tr[tr_idx], ds)


def build_model(spec: RunSpec, input_shape: tuple[int, ...]) -> torch.nn.Module:
    opts = dict(spec.model_options)
    opts.update(input_shape=tuple(input_shape), latent_dim=spec.latent_dim, sparsity=spec.sparsity)
    config = build_config(spec.model, spec.preset, **opts)
    seed_everything(spec.seed)
    with warnings.catch_warnings():
        if spec.denoise:
            warnings.simplefilter("ignore", UserWarning)  # an over-complete code is fine for denoising
        return model_class(spec.model)(config)


def _run_doc(spec: RunSpec, data: PreparedData) -> dict[str, Any]:
    return {
        "run": {
            "spec": asdict(spec),
            "dataset": {"name": data.dataset.name, "source": data.dataset.source,
                        "sample_shape": list(sample_shape(data))},
            "preprocessing": {"binarize": spec.binarize, "scale": "[0,1] images"},
            "aekit_version": __version__,
        }
    }


def train_run(
    spec: RunSpec,
    out: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool | None = None,
    figures: bool = True,
    dataset: Dataset | None = None,
) -> dict[str, Any]:
    """Train ``spec`` into run folder ``out``; returns the metrics (also in metrics.json)."""
    out = Path(out)
    if out.exists() and not resume and not is_worker_process():  # distributed: rank 0 checks
        if not overwrite:
            raise RunExistsError(
                f"run folder {out} already exists; pass --overwrite to replace it, "
                f"--resume {out} to continue it, or choose another --out"
            )
        if not out.is_dir():
            raise RunExistsError(f"{out} exists and is not a folder; remove it or choose another --out")
    resolve_device(spec.device)  # fail on a bad --device before anything on disk changes
    data = prepare_data(spec, dataset)
    model = build_model(spec, sample_shape(data))
    config = TrainConfig(
        epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr, seed=spec.seed, threads=spec.threads,
        device=spec.device, precision=spec.precision, compile=spec.compile, patience=spec.patience,
        fixed_noise=spec.fixed_noise, progress=progress,
    )
    # everything has been validated: only now is an old run replaced
    if out.exists() and overwrite and not resume and not is_worker_process():
        shutil.rmtree(out)
    if not is_worker_process():
        out.mkdir(parents=True, exist_ok=True)
    doc = _run_doc(spec, data)
    if not resume:
        _write_pending_meta(out, model, doc)
    trainer = Trainer(
        config,
        corruption=parse_corruption(spec.denoise),
        checkpoint=out / CHECKPOINT_FILE,
        metadata={"model_name": model.model_name},
    )
    t0 = time.perf_counter()
    streamed = not torch.is_tensor(data.train_in)
    train = data.train_in if streamed else (data.train_in, data.train_target)
    history = trainer.fit(model, train, data.val, resume=resume)
    seconds = time.perf_counter() - t0
    model.to("cpu")
    write_dir(out, model, extra=doc)
    _write_history(out / "history.csv", history.records)
    metrics = evaluate_model(model, data, spec)
    metrics.update(
        epochs=len(history.records),
        stopped_early=history.stopped_early,
        best_epoch=history.best_epoch,
        final_train_loss=history.records[-1]["train_loss"] if history.records else None,
        final_val_loss=history.records[-1].get("val_loss") if history.records else None,
        train_samples_per_s=history.steady_samples_per_s(),
        seconds=sum(r.get("seconds", 0.0) for r in history.records) if resume else seconds,
        precision=trainer.precision,
        threads=torch.get_num_threads(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"),
        streamed=streamed,
        processes=trainer.world,
    )
    write_json(out / "metrics.json", metrics)
    if figures:
        write_figures(out, model, data, history.records, spec)
    return metrics


def _write_pending_meta(out: Path, model, doc: dict[str, Any]) -> None:
    """aekit.json before training: loadable from the checkpoint if the run is killed."""
    from ..models import model_meta

    write_json(
        out / CONFIG_FILE,
        {"format": FORMAT, "format_version": FORMAT_VERSION, "aekit_version": __version__, "kind": "model",
         **model_meta(model), **doc, "weights": {"file": "model.safetensors", "sha256": None}},
    )


def _scores(values: dict[str, Any], *, prefix: str = "", skip: tuple[str, ...] = ()) -> str:
    """'k 0.1234, ...' for the float values whose key starts with ``prefix`` (for one-line reports)."""
    return ", ".join(
        f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float) and k.startswith(prefix) and k not in skip
    )


def _write_history(path: Path, records: list[dict]) -> None:
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    from .._utils import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(records)


def evaluate_model(model, data: PreparedData, spec: RunSpec) -> dict[str, Any]:
    """Test metrics of ``model`` and of PCA with the same code size on the same data."""
    m = reconstruction_metrics(model, data.test_in, data.test_target)
    code_dim = int(model.code_dim)
    pca = pca_baseline(data.train_clean, data.test_in, data.test_target, code_dim, seed=spec.seed)
    out: dict[str, Any] = {
        "model": spec.model,
        "preset": spec.preset,
        "dataset": spec.dataset,
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "code_dim": code_dim,
        "n_test": int(len(data.test_in)),
        "test_bce_per_pixel": m.get("bce_per_pixel"),
        "test_mse_per_pixel": m["mse_per_pixel"],
        "test_sq_err_per_image": m["sq_err_per_image"],
        "pca_sq_err_per_image": pca["sq_err_per_image"],
        "pca_mse_per_pixel": pca["mse_per_pixel"],
        "pca_n_components": pca["n_components"],
        "pca_lossless": pca["lossless"],
        # a lossless PCA (code at least as wide as the input) on clean data has no error to
        # compare with; on noisy inputs (denoising) it is the do-nothing baseline
        "ae_over_pca": (m["sq_err_per_image"] / pca["sq_err_per_image"])
        if pca["sq_err_per_image"] > 1e-6 else None,
    }
    if spec.denoise:
        noisy = (np.asarray(data.test_in) - np.asarray(data.test_target)) ** 2
        out["denoise"] = spec.denoise
        out["noisy_sq_err_per_image"] = float(noisy.reshape(len(noisy), -1).sum(1).mean())
    return out


def write_figures(out: Path, model, data: PreparedData, records: list[dict], spec: RunSpec) -> list[Path]:
    from ..viz import latent_map, loss_curves, reconstruction_grid

    n = min(10, len(data.test_in))
    rec = reconstruct_batches(model, data.test_in[:n])
    rows = [("original", data.test_target[:n])]
    if spec.denoise:
        rows.append(("noisy", data.test_in[:n]))
    rows.append(("reconstruction", rec))
    err = ((rec - data.test_target[:n]) ** 2).reshape(n, -1).sum(1)
    paths = [reconstruction_grid(rows, out / "reconstructions.png", n=n,
                                 annotations=[f"{e:.1f}" for e in err],
                                 title=f"{spec.model} on {spec.dataset}: test images (squared error below)")]
    if records:
        paths.append(loss_curves(records, out / "loss.png", title=f"{spec.model} on {spec.dataset}"))
    k = min(2000, len(data.test_in))
    codes = reconstruct_batches(model, data.test_in[:k], what="encode").reshape(k, -1)
    labels = data.test_labels[:k] if data.test_labels is not None else None
    paths.append(latent_map(codes, out / "latent.png", labels=labels,
                            class_names=data.dataset.class_names))
    if callable(getattr(model, "sample", None)) and len(getattr(model, "input_shape", ())) == 3:
        # generative models: what they draw from the prior, beside what they reconstruct
        from ..viz.generative import sample_grid

        with torch.no_grad():
            imgs = model.sample(64, generator=torch.Generator().manual_seed(spec.seed)).float().cpu().numpy()
        paths.append(sample_grid(imgs, out / "samples.png", title=f"{spec.model}: 64 samples from the prior"))
    return paths


def load_run(run: str | Path) -> tuple[torch.nn.Module, RunSpec, dict[str, Any]]:
    """A finished or interrupted run folder: its model, its spec, and its aekit.json."""
    from ..io import load

    run = Path(run)
    doc = read_meta(run)
    if "run" not in doc:
        raise ModelFileError(f"{run} is a saved model but not a run folder from `aekit train` (no run section)")
    try:
        spec = RunSpec(**doc["run"]["spec"])
    except TypeError as err:
        raise ModelFileError(f"{run}/aekit.json has an invalid run section ({err})") from err
    model = load(run, kind="model")
    return model, spec, doc


def resume_run(
    run: str | Path, *, epochs: int | None = None, dataset: str | None = None, progress: bool | None = None
) -> dict[str, Any]:
    """Continue an interrupted run (or extend a finished one with more ``epochs``)."""
    run = Path(run)
    doc = read_meta(run)
    if not (run / CHECKPOINT_FILE).is_file():
        raise ResumeError(f"{run} has no {CHECKPOINT_FILE} to resume from")
    try:
        spec = RunSpec(**doc["run"]["spec"])
    except (KeyError, TypeError) as err:
        raise ResumeError(f"{run}/aekit.json has no valid run section to resume from ({err})") from err
    model_from_meta(doc, str(run))  # the config must still be valid
    if epochs is not None:
        spec.epochs = epochs
    if dataset is not None:
        spec.dataset = dataset
    return train_run(spec, run, resume=True, progress=progress)


def evaluate_run(run: str | Path, dataset: str | None = None) -> dict[str, Any]:
    """Re-evaluate a run on its data set (or another with the same sample shape)."""
    model, spec, _ = load_run(run)
    if dataset:
        spec.dataset = dataset
    data = prepare_data(spec)
    shape = sample_shape(data)
    if math.prod(shape) != math.prod(model.input_shape):
        raise DataError(
            f"data set {spec.dataset!r} has samples of shape {shape} but the model in {run} expects "
            f"{tuple(model.input_shape)}"
        )
    return evaluate_model(model, data, spec)

