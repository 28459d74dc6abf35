"""The ``aekit`` command line: a thin shell over runs, tasks, io and viz."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import AekitError, ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="aekit: train autoencoders, look at what they learnt, denoise and reconstruct.",
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 130)


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) >= 10 ** -digits or v == 0 else f"{v:.2e}"
    return str(v)


def _metrics_table(rows: list[dict], title: str | None = None) -> Table:
    t = Table(title=title)
    for col in ("model", "params", "epochs", "test BCE/pixel", "test MSE/image", "PCA MSE/image", "AE/PCA", "seconds"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for m in rows:
        t.add_row(
            m["model"] + (f":{m['preset']}" if m.get("preset") else "")
            + (f" +{m['denoise']}" if m.get("denoise") else ""),
            f"{m['n_params']:,}",
            str(m.get("epochs", "-")),
            _fmt(m.get("test_bce_per_pixel")),
            _fmt(m["test_sq_err_per_image"], 3),
            _fmt(m["pca_sq_err_per_image"], 3) + (" (lossless)" if m.get("pca_lossless") else ""),
            _fmt(m.get("ae_over_pca"), 2),
            _fmt(m.get("seconds"), 1),
        )
    return t


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _parse_threads(threads: int | None) -> int | None:
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    return threads


@app.command()
def train(
    ctx: typer.Context,
    model: str = typer.Option("dense_ae", help="registered model name (see `aekit models`)"),
    dataset: str = typer.Option("digits", help="digits | mnist | fashion-mnist | PATH (image folder, .npy, .npz)"),
    epochs: int = typer.Option(20, min=1),
    batch_size: int = typer.Option(128, min=1),
    lr: float = typer.Option(1e-3, help="Adam learning rate"),
    latent_dim: int | None = typer.Option(None, help="code size (overrides the preset)"),
    preset: str | None = typer.Option(None, help="tutorial | hinton2006 (dense_ae) | tutorial | wide (conv_ae)"),
    denoise: str | None = typer.Option(
        None,
        help="train as a denoiser: seed | gaussian:0.5 | saltpepper:0.1 | mask:0.3 | shift:2, "
        "or several joined by + (shift:2+mask:0.3)",
    ),
    fixed_noise: bool = typer.Option(
        False, help="draw the noisy inputs once, as the tutorial (default: fresh each epoch)"
    ),
    sparsity: str | None = typer.Option(None, help="penalty on the code: l1:1e-4 | kl:0.05:1e-3"),
    binary_code: bool = typer.Option(
        False, help="a near-binary code for Hamming search: sigmoid code units trained with noise before them"
    ),
    code_noise: float = typer.Option(
        8.0, help="with --binary-code: std of that noise (8 beat 2 and 4 for 64-bit MNIST codes)"
    ),
    binarize: float | None = typer.Option(None, help="threshold pixels to {0,1} (the tutorial uses 0.5)"),
    val_fraction: float = typer.Option(0.1, help="share of the training set held out for validation"),
    patience: int | None = typer.Option(None, help="early stopping after N epochs without improvement"),
    n_train: int | None = typer.Option(None, help="use only the first N training samples"),
    seed: int = typer.Option(0),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model"),
    stream: bool | None = typer.Option(
        None, "--stream/--no-stream",
        help="read a .npy data set batch by batch (data larger than memory); default: when the file is "
        "larger than a quarter of the free memory",
    ),
    out: Path | None = typer.Option(None, help="run folder (default runs/MODEL-DATASET)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run folder"),
    resume: Path | None = typer.Option(None, help="continue the interrupted run in this folder"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
) -> None:
    """Train an autoencoder and write a run folder (model, metrics, history, figures)."""
    from .runs import RunSpec, resume_run, train_run

    progress = False if quiet else None
    if resume is not None:
        console.print(f"resuming [bold]{resume}[/bold]")
        epochs_given = _given(ctx, "epochs")
        dataset_given = _given(ctx, "dataset")
        metrics = resume_run(resume, epochs=epochs if epochs_given else None,
                             dataset=dataset if dataset_given else None, progress=progress)
        run_dir = resume
    else:
        spec = RunSpec(
            model=model, dataset=dataset, preset=preset, latent_dim=latent_dim, epochs=epochs,
            batch_size=batch_size, lr=lr, denoise=denoise, fixed_noise=fixed_noise, sparsity=sparsity,
            binarize=binarize, seed=seed, threads=_parse_threads(threads), device=device, precision=precision,
            compile=compile, patience=patience, val_fraction=val_fraction, n_train=n_train, stream=stream,
            model_options=dict(code_activation="sigmoid", code_noise=code_noise) if binary_code else {},
        )
        run_dir = out or Path("runs") / f"{model}-{Path(dataset).name}"
        metrics = train_run(spec, run_dir, overwrite=overwrite, progress=progress)
    console.print(_metrics_table([metrics]))
    console.print(f"run folder: [bold]{run_dir}[/bold] (aekit.json, model.safetensors, metrics.json, "
                  "history.csv, reconstructions.png, loss.png, latent.png)")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="run folder from `aekit train`"),
    dataset: str | None = typer.Option(None, help="evaluate on another data set of the same shape"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the metrics to this file"),
    nll: bool = typer.Option(
        False, "--nll", help="VAEs: also the test ELBO and importance-weighted NLL in nats (added to metrics.json)"
    ),
    k: int = typer.Option(5000, "--k", help="importance samples per test image for --nll"),
) -> None:
    """Test BCE/pixel, MSE/pixel, squared error per image, and PCA with the same code size."""
    from .._utils import write_json
    from .runs import evaluate_run

    extra = {}
    if nll:
        from .generate import nll_metrics

        extra = nll_metrics(run, dataset, k=k)
    m = {**evaluate_run(run, dataset), **extra}
    t = Table(title=f"{run} on {m['dataset']} ({m['n_test']} test images, code {m['code_dim']})")
    t.add_column("metric")
    t.add_column("autoencoder", justify="right")
    t.add_column(f"PCA-{m['pca_n_components']}", justify="right")
    t.add_row("BCE / pixel", _fmt(m["test_bce_per_pixel"]), "-")
    t.add_row("MSE / pixel", _fmt(m["test_mse_per_pixel"], 5), _fmt(m["pca_mse_per_pixel"], 5))
    t.add_row("squared error / image", _fmt(m["test_sq_err_per_image"], 3), _fmt(m["pca_sq_err_per_image"], 3))
    t.add_row("ratio AE / PCA", _fmt(m["ae_over_pca"], 3), "1")
    if nll:
        from .generate import add_nll_rows

        add_nll_rows(t, m)
    console.print(t)
    if json_out:
        write_json(json_out, m)


def _load_model_for_images(run: Path):
    from ..io import load, read_meta

    model = load(run, kind="model")
    binarize = (read_meta(run).get("run") or {}).get("preprocessing", {}).get("binarize")
    return model, binarize


def _read_inputs(path: Path, model):
    from ..data import load_images

    shape = model.input_shape
    if len(shape) == 3:
        x, names = load_images(path, size=shape[1:], channels=shape[0])
    else:
        x, names = load_images(path)
        if x[0].size != shape[0]:
            raise ConfigError(f"the model expects vectors of {shape[0]} values; images of {x.shape[1:]} do not fit")
    return x.reshape(len(x), *shape), names


@app.command()
def reconstruct(
    run: Path = typer.Argument(..., help="run folder or saved model"),
    input: Path = typer.Option(..., "--input", help="images.npy | image.png | DIR"),
    out: Path = typer.Option(Path("reconstructions.png"), help="figure (.png) or array (.npy)"),
    n: int = typer.Option(10, help="images shown in the figure"),
) -> None:
    """Reconstruct your own images with a trained model: a figure, or the array."""
    _apply(run, input, out, n, noise=None, verb="reconstruction")


@app.command()
def denoise(
    run: Path = typer.Argument(..., help="run folder of a model trained with --denoise"),
    input: Path = typer.Option(..., "--input", help="noisy images: images.npy | image.png | DIR"),
    out: Path = typer.Option(Path("denoised.png"), help="figure (.png), array (.npy) or folder of PNGs"),
    add_noise: str | None = typer.Option(None, help="corrupt clean inputs first (to try it out), e.g. seed"),
    n: int = typer.Option(10, help="images shown in the figure"),
) -> None:
    """Clean noisy images with a denoising autoencoder."""
    _apply(run, input, out, n, noise=add_noise, verb="denoised")


def _apply(run: Path, input: Path, out: Path, n: int, noise: str | None, verb: str) -> None:
    import numpy as np

    from .._utils import atomic_path
    from ..data import binarize as binarize_images
    from ..data import corrupt_numpy
    from ..training.metrics import reconstruct_batches
    from ..viz import image_strip, reconstruction_grid

    model, binarize = _load_model_for_images(run)
    x, names = _read_inputs(input, model)
    if binarize is not None:  # the run's own preprocessing, as in training
        x = binarize_images(x, binarize)
    clean = x
    if noise:
        x = corrupt_numpy(x, noise, seed=0)
    rec = reconstruct_batches(model, x)
    suffix = out.suffix.lower()
    if suffix == ".npy":
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.save(f, rec)
    elif suffix == ".png":
        rows = [("input", x[:n])] if not noise else [("clean", clean[:n]), ("noisy", x[:n])]
        rows.append((verb, rec[:n]))
        reconstruction_grid(rows, out, n=min(n, len(x)), titles=[Path(s).name[:12] for s in names[:n]])
    elif suffix == "":
        from PIL import Image

        out.mkdir(parents=True, exist_ok=True)
        for img, name in zip(rec, names):
            arr = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
            arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
            target = out / (Path(name).stem + ".png")
            with atomic_path(target) as tmp:
                Image.fromarray(arr).save(tmp, format="PNG")
        image_strip(rec[:n], out / "_overview.png", captions=[Path(s).name[:12] for s in names[:n]])
    else:
        raise ConfigError(f"--out must end in .png or .npy, or be a folder (no suffix); got {out}")
    console.print(f"{len(x)} images -> [bold]{out}[/bold]")


@app.command()
def datasets() -> None:
    """List the named data sets and where each was found."""
    from ..data import list_datasets

    t = Table(title="named data sets (set AEKIT_DATA_HOME to add a folder)")
    for col in ("name", "samples", "shape", "found at", "description"):
        t.add_column(col)
    for d in list_datasets():
        n = f"{d.n_train:,} + {d.n_test:,}" if d.n_train is not None else "-"
        found = d.found_at or ("not found (downloadable)" if d.downloadable else "not found")
        shape = "x".join(map(str, d.sample_shape)) if d.sample_shape else "-"
        t.add_row(d.name, n, shape, found, d.description)
    console.print(t)


@app.command()
def models() -> None:
    """List the registered models and their presets."""
    from ..models import create_model, list_models, list_presets, model_class, model_description

    t = Table(title="registered models")
    for col in ("model", "input", "presets (parameters)", "description"):
        t.add_column(col)
    import warnings

    for name in list_models():
        default = tuple(model_class(name).Config.__dataclass_fields__["input_shape"].default)
        kind = getattr(model_class(name), "input_kind", None)  # "tokens", "video": not plain images
        shape = (1, 28, 28) if len(default) == 3 and kind is None else default  # images at MNIST size
        parts = []
        for p in list_presets(name) or [None]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = create_model(name, p, input_shape=shape)
            parts.append(f"{p or 'default'} ({sum(x.numel() for x in m.parameters()):,})")
        t.add_row(name, "x".join(map(str, shape)), ", ".join(parts), model_description(name))
    console.print(t)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="folder for the three run folders"),
    epochs: int = typer.Option(100, help="epochs per model"),
    threads: int = typer.Option(1, help="torch threads: one is plenty for 8x8 images, and immune to a busy core"),
) -> None:
    """Train the tutorial's three autoencoders on the embedded digits set and compare with PCA."""
    from .runs import RunSpec, train_run

    # the tutorial's models; smaller batches than its MNIST runs (256/128), since digits has
    # only 1,437 training images: more steps per epoch in the same time
    specs = [
        ("dense", RunSpec(model="dense_ae", preset="tutorial", batch_size=64)),
        ("conv", RunSpec(model="conv_ae", preset="tutorial", batch_size=32)),
        ("denoiser", RunSpec(model="conv_ae", preset="wide", batch_size=32, denoise="seed")),
    ]
    rows = []
    for name, spec in specs:
        spec.dataset, spec.epochs, spec.binarize, spec.threads = "digits", epochs, 0.5, threads
        console.rule(f"[bold]{name}[/bold]: {spec.model} ({spec.preset}) on digits")
        rows.append(train_run(spec, out / name, overwrite=True))
    console.print(_metrics_table(rows, title="digits (8x8, binarised at 0.5), test set of 360 images"))
    console.print(f"run folders with figures: [bold]{out}/{{dense,conv,denoiser}}[/bold]")


def _register_subcommands() -> None:
    from .caption import register as register_caption
    from .detect import detect_app
    from .export import export_cmd
    from .generate import register as register_generate
    from .pretrain import register as register_pretrain
    from .retrieval import embed_cmd, index_app, map_cmd, search_cmd
    from .segment import register as register_segment
    from .serve import serve_cmd
    from .text import register as register_text

    app.add_typer(detect_app, name="detect")
    app.add_typer(index_app, name="index")
    app.command("search")(search_cmd)
    app.command("embed")(embed_cmd)
    app.command("map")(map_cmd)
    app.command("export")(export_cmd)
    app.command("serve")(serve_cmd)
    register_pretrain(app)
    register_segment(app)
    register_text(app)
    register_caption(app)
    register_generate(app)


_register_subcommands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: typed aekit errors become one clear line and exit code 2.

    Under ``torchrun`` every process runs the same command (see :mod:`aekit.training.distributed`):
    rank 0 prints and writes, the others stay quiet unless they fail.
    """
    from ..training import distributed

    try:
        if distributed.init_from_env() and not distributed.is_main():
            console.quiet = True  # rank 0 reports; the others speak only to fail
            import warnings

            warnings.simplefilter("ignore")
        app(args=argv, standalone_mode=False)
    except AekitError as err:
        who = f"(rank {distributed.rank()}) " if distributed.world_size() > 1 else ""
        console.quiet = False
        console.print(f"[bold red]error:[/bold red] {who}{escape(str(err))}", highlight=False, soft_wrap=True)
        return err.exit_code
    except typer.Abort:
        console.print("aborted")
        return 130
    except KeyboardInterrupt:
        console.print("interrupted: the last finished epoch is kept in the run folder's checkpoint")
        return 130
    except Exception as err:
        # usage errors from typer's click (bad option values, unknown options): exit code 2
        if hasattr(err, "show") and isinstance(getattr(err, "exit_code", None), int):
            err.show()
            return err.exit_code
        raise
    finally:
        distributed.shutdown()
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
