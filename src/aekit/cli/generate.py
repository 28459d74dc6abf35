"""``aekit sample`` and ``aekit interpolate`` for VAE runs, and the ``evaluate --nll`` helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from ..errors import ConfigError, DataError


def register(app: typer.Typer) -> None:
    """Add ``sample`` and ``interpolate`` to the ``aekit`` command line."""
    app.command("sample")(sample_cmd)
    app.command("interpolate")(interpolate_cmd)


def _load_generative(run: Path):
    from ..io import load

    model = load(run, kind="model")
    if not hasattr(model, "sample"):
        raise ConfigError(
            f"{run} holds a {getattr(model, 'model_name', type(model).__name__)!r}, which cannot generate "
            "images: train a VAE (`aekit train --model vae ...`)"
        )
    return model


def _save_array(out: Path, arr: np.ndarray) -> None:
    from .._utils import atomic_path

    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def _check_out(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in (".png", ".npy"):
        raise ConfigError(f"--out must end in .png (a figure) or .npy (the array), got {out}")
    return suffix


def sample_cmd(
    run: Path = typer.Argument(..., help="run folder (or saved model) of a VAE"),
    n: int | None = typer.Option(
        None, "--n", help="images to draw (default 64); with --manifold, grid values per axis (default 20)"
    ),
    out: Path = typer.Option(Path("samples.png"), "--out", help="figure (.png) or array (.npy)"),
    seed: int = typer.Option(0, help="seed of the latent draws"),
    manifold: bool = typer.Option(
        False, "--manifold", help="2-D latent only: decode a grid of latent values (the manifold map) instead"
    ),
) -> None:
    """Draw new images from a VAE (z ~ N(0, I), decoded), or map its 2-D latent space."""
    import torch

    from .main import console

    suffix = _check_out(out)
    model = _load_generative(run)
    if manifold:
        from ..tasks.generative import latent_grid
        from ..viz.generative import manifold_map

        latent = int(model.config.latent_dim)
        if latent != 2:
            raise ConfigError(
                f"--manifold maps a 2-D latent space; this model has latent_dim={latent} "
                "(train one with `--preset 2d` or `--latent-dim 2`)"
            )
        model._check_trained("map the latent space of")
        z1, z2, Z = latent_grid(20 if n is None else n)
        imgs = model.decode_latents(torch.from_numpy(Z)).cpu().numpy()
        if suffix == ".npy":
            _save_array(out, imgs.reshape(len(z2), len(z1), *imgs.shape[1:]))
        else:
            manifold_map(imgs, out, z1=z1, z2=z2, title=f"{run.name}: decoded latent grid")
        console.print(f"{len(z2)} x {len(z1)} latent grid -> [bold]{out}[/bold]")
        return
    n = 64 if n is None else n
    imgs = model.sample(n, generator=torch.Generator().manual_seed(seed)).cpu().numpy()
    if suffix == ".npy":
        _save_array(out, imgs)
    else:
        from ..viz.generative import sample_grid

        sample_grid(imgs, out, title=f"{run.name}: {n} samples (decoder means)")
    console.print(f"{n} samples -> [bold]{out}[/bold]")


def _test_images(run: Path, dataset: str | None) -> tuple[np.ndarray, str]:
    """The test images of a run's data set (with its preprocessing), or of ``dataset``."""
    from ..data import load_dataset
    from ..io import read_meta
    from .runs import RunSpec, prepare_data

    doc = read_meta(run)
    if "run" in doc:
        spec = RunSpec(**doc["run"]["spec"])
        if dataset:
            spec.dataset = dataset
        data = prepare_data(spec)
        return data.test_target, spec.dataset
    if not dataset:
        raise ConfigError(f"{run} is a saved model, not a run folder: say which images to use with --dataset")
    return load_dataset(dataset).x_test, dataset


def interpolate_cmd(
    run: Path = typer.Argument(..., help="run folder of a VAE"),
    from_: int = typer.Option(..., "--from", help="index of the first test image"),
    to: int = typer.Option(..., "--to", help="index of the second test image"),
    steps: int = typer.Option(10, help="decoded points from one image to the other, ends included"),
    out: Path = typer.Option(Path("interpolation.png"), "--out", help="figure (.png) or array (.npy)"),
    dataset: str | None = typer.Option(None, help="take the images from this data set's test split"),
) -> None:
    """Decode the straight line between the latent means of two test images."""
    suffix = _check_out(out)
    model = _load_generative(run)
    x, name = _test_images(run, dataset)
    for flag, i in (("--from", from_), ("--to", to)):
        if not 0 <= i < len(x):
            raise DataError(
                f"{flag} {i} is out of range: the test split of {name} has {len(x)} images (0..{len(x) - 1})"
            )
    a, b = x[from_].reshape(model.input_shape), x[to].reshape(model.input_shape)
    path = model.interpolate(a, b, steps).cpu().numpy()
    if suffix == ".npy":
        _save_array(out, path)
    else:
        from ..viz.generative import interpolation_figure

        interpolation_figure([(f"{from_} -> {to}", a, path, b)], out, title=f"{run.name}: {name} test images")
    from .main import console

    console.print(f"{steps} steps from test image {from_} to {to} -> [bold]{out}[/bold]")


def nll_metrics(run: Path, dataset: str | None = None, *, k: int = 5000) -> dict[str, Any]:
    """``evaluate --nll``: test ELBO and importance-weighted NLL (nats) of a VAE run.

    Bernoulli decoders score binary test images: the run's own thresholding (``--binarize``) if
    it had one, else the stochastic binarisation of :mod:`aekit.tasks.generative` (fixed seed).
    On the run's own data set the numbers are added to ``RUN/metrics.json``.
    """
    from .._utils import write_json
    from ..tasks.generative import evaluate_likelihood
    from .runs import load_run

    model, spec, _ = load_run(run)
    if not hasattr(model, "log_weights"):
        raise ConfigError(
            f"--nll estimates a VAE's likelihood; {run} holds a {model.model_name!r} (a deterministic "
            "autoencoder has none): train --model vae"
        )
    x, name = _test_images(run, dataset)
    res = evaluate_likelihood(model, x, k=k)
    out = {
        "test_elbo": res["elbo"],
        "test_nll": res["nll"],
        "test_elbo_std_err": res["elbo_std_err"],
        "test_nll_std_err": res["nll_std_err"],
        "nll_k": res["k"],
        "nll_binarization": res["binarized"],
        "nll_seconds": res["seconds"],
    }
    metrics_file = run / "metrics.json"
    if (dataset is None or dataset == spec.dataset) and metrics_file.is_file():
        import json

        doc = json.loads(metrics_file.read_text())
        doc.update(out)
        write_json(metrics_file, doc)
    return out


def add_nll_rows(table, m: dict[str, Any]) -> None:
    """The ``evaluate --nll`` rows of the metrics table."""
    table.add_row("ELBO (nats, higher is better)", f"{m['test_elbo']:.2f} ± {m['test_elbo_std_err']:.2f}", "-")
    table.add_row(f"NLL, k={m['nll_k']} (nats)", f"{m['test_nll']:.2f} ± {m['test_nll_std_err']:.2f}", "-")
