"""``aekit caption make-data|train|evaluate|predict``: video to text on generated moving digits or
the user's own captioned clips (a folder with ``captions.csv``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .._utils import write_json
from ..errors import ConfigError, DataFileError, ModelFileError, RunExistsError

caption_app = typer.Typer(
    no_args_is_help=True,
    help="Video to text: generate moving-digit clips, train a CNN + LSTM captioner, evaluate, predict.",
)


def read_clip_data(path: Path, split: str, *, n_frames: int | None = None, size=None):
    """Frames and captions from a make-data folder (``split``.npz), an .npz, or a clip folder."""
    from ..video import CAPTIONS_FILE, load_clip_folder, load_clips

    if path.is_dir() and (path / f"{split}.npz").is_file():
        return load_clips(path / f"{split}.npz")
    if path.is_file() and path.suffix.lower() == ".npz":
        return load_clips(path)
    if path.is_dir() and (path / CAPTIONS_FILE).is_file():
        return load_clip_folder(path, n_frames=n_frames, size=size)
    raise DataFileError(
        f"{path} is neither a folder from `aekit caption make-data` (with {split}.npz), an .npz of clips, "
        f"nor a folder of clips with {CAPTIONS_FILE}"
    )


def _load_run(run: Path):
    from ..io import load
    from ..io.persistence import read_meta

    doc = read_meta(run)
    if doc.get("kind") != "video_captioner":
        raise ModelFileError(
            f"{run} holds a {doc.get('kind')!r}, not a captioner; train one with `aekit caption train`")
    return load(run)


def _parse_channels(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise ConfigError(f"--channels must be comma-separated widths such as 8,16,32,32, got {text!r}") from None


@caption_app.command("make-data")
def make_data_cmd(
    out: Path = typer.Option(..., "--out", help="folder to create: train.npz, test.npz, examples/*.gif"),
    n_train: int = typer.Option(20000, min=1, help="training clips (from MNIST training digits)"),
    n_test: int = typer.Option(2000, min=1, help="test clips (from MNIST test digits)"),
    digits: int = typer.Option(1, min=1, max=2, help="digits per clip: 1 or 2"),
    frames: int = typer.Option(20, min=8, help="frames per clip"),
    size: int = typer.Option(64, min=32, help="frame size in pixels"),
    examples: int = typer.Option(8, min=0, help="test clips also written as GIFs to look at"),
    seed: int = typer.Option(0, help="training clips use seed, test clips seed + 1"),
    overwrite: bool = typer.Option(False, help="replace an existing folder"),
) -> None:
    """Generate a moving-digits data set (deterministic for a seed)."""
    from ..io.persistence import staged_dir
    from ..video import moving_mnist, save_clips, write_gif
    from .main import console

    if out.exists() and not overwrite:
        raise RunExistsError(f"{out} already exists; pass --overwrite or choose another --out")
    opts = dict(n_frames=frames, size=size, n_digits=digits)
    t0 = time.perf_counter()
    train = moving_mnist("train", n_clips=n_train, seed=seed, **opts)
    test = moving_mnist("test", n_clips=n_test, seed=seed + 1, **opts)
    with staged_dir(out, overwrite=overwrite) as tmp:
        for name, s in (("train", train), ("test", test)):
            save_clips(tmp / f"{name}.npz", s.frames, s.captions, digits=s.digits, directions=s.directions,
                       bounces=s.bounces, positions=s.positions)
        for i in range(min(examples, n_test)):
            write_gif(tmp / "examples" / f"test_{i:03d}.gif", test.frames[i])  # readable by `predict`
        write_json(tmp / "info.json", {
            "generator": "moving_mnist", "n_train": n_train, "n_test": n_test, "seed_train": seed,
            "seed_test": seed + 1, **opts, "examples": test.captions[: min(examples, n_test)],
        })
    console.print(
        f"{n_train:,} training and {n_test:,} test clips of {frames} frames {size}x{size} ({digits} digit(s), "
        f"{time.perf_counter() - t0:.0f} s) -> [bold]{out}[/bold]", highlight=False,
    )
    console.print(f"e.g. \"{test.captions[0]}\" ({out / 'examples' / 'test_000.gif'})", highlight=False)


@caption_app.command("train")
def train_cmd(
    data: Path = typer.Option(..., "--data", help="make-data folder (train.npz), an .npz, or a clip folder"),
    out: Path = typer.Option(..., "--out", help="run folder to create"),
    preset: str = typer.Option(
        "spatial", help="spatial (attention over positions within frames: best on both benchmark sets, needed "
        "for several moving objects) | frames (attention over whole frames: half the cost) | small | wide | "
        "frame_bag | pooled"),
    spatial_attention: bool | None = typer.Option(
        None, "--spatial-attention/--no-spatial-attention",
        help="words also attend over positions within frames and read the attended object's path"),
    frame_bag: bool = typer.Option(False, help="the baseline: the CNN on the mean frame, no temporal model"),
    epochs: int = typer.Option(10, min=1),
    batch_size: int = typer.Option(8, min=1),
    lr: float = typer.Option(2e-3),
    word_balance: float = typer.Option(1.0, min=0.0, help="up-weight rare words: 0 plain likelihood, 1 default"),
    hidden: int | None = typer.Option(None, min=1, help="LSTM units"),
    frame_dim: int | None = typer.Option(None, min=1, help="per-frame feature size"),
    channels: str | None = typer.Option(None, help="conv widths, e.g. 8,16,32,32"),
    cnn: str | None = typer.Option(None, help="strided | pooled (conv_ae's layout)"),
    init_encoder: Path | None = typer.Option(
        None, help="a conv_ae run/model folder whose encoder initialises the frame CNN (needs --cnn pooled)"),
    n_frames: int | None = typer.Option(None, min=1, help="clip folders: resample every clip to this many frames"),
    size: int | None = typer.Option(None, min=8, help="clip folders: resize frames to size x size"),
    val_fraction: float = typer.Option(0.1, help="share of the clips held out to pick the best epoch"),
    beam: int = typer.Option(1, min=1, help="beam width saved with the model (1: greedy)"),
    seed: int = typer.Option(0),
    threads: int | None = typer.Option(None, min=1, help="torch threads"),
    overwrite: bool = typer.Option(False, help="replace an existing run folder"),
    quiet: bool = typer.Option(False, help="no progress output"),
) -> None:
    """Train a captioner; writes RUN/aekit.json, model.safetensors, metrics.json, history.csv, examples.png
    (and attention.png with spatial attention)."""
    from ..io import load
    from ..io.persistence import staged_dir, write_dir
    from ..tasks.captioning import VideoCaptioner
    from ..video import write_attention_sheet, write_sheet
    from .main import console
    from .runs import _scores, _write_history

    if out.exists() and not overwrite:
        raise RunExistsError(f"run folder {out} already exists; pass --overwrite or choose another --out")
    if frame_bag and preset not in ("spatial", "frame_bag"):  # "spatial": the default, not a choice
        raise ConfigError("--frame-bag and --preset both choose the model; give one of them")
    encoder = None
    if init_encoder is not None:
        encoder = load(init_encoder)
        encoder = getattr(encoder, "model_", encoder)
    frames, captions = read_clip_data(data, "train", n_frames=n_frames, size=size)
    est = VideoCaptioner(
        preset="frame_bag" if frame_bag else preset, hidden=hidden, frame_dim=frame_dim,
        channels=_parse_channels(channels), cnn=cnn, spatial_attention=spatial_attention, epochs=epochs,
        batch_size=batch_size, lr=lr,
        word_balance=word_balance,
        val_fraction=val_fraction, beam=beam, seed=seed, threads=threads, verbose=not quiet,
    )
    t0 = time.perf_counter()
    est.fit(frames, captions, encoder_init=encoder)
    seconds = time.perf_counter() - t0
    best = next((r for r in est.history_ if r["epoch"] == est.best_epoch_), est.history_[-1])
    metrics: dict[str, Any] = {
        "model": "frame_bag" if not est.model_.config.temporal else "video_captioner",
        "n_clips": len(frames), "frames": list(frames.shape[1:]), "train_seconds": round(seconds, 2),
        "epochs": est.n_epochs_, "best_epoch": est.best_epoch_, "vocabulary": len(est.vocab_),
        "data": str(data), **{k: v for k, v in best.items() if k.startswith("val_")},
    }
    with staged_dir(out, overwrite=overwrite) as tmp:
        write_json(tmp / "metrics.json", metrics)
        _write_history(tmp / "history.csv", est.history_)
        held_out = est.validation_indices_
        idx = np.asarray(held_out[:6] if len(held_out) else np.arange(min(6, len(frames))))
        pred = est.predict(frames[idx])
        write_sheet(tmp / "examples.png", frames[idx], [[f"true: {captions[i]}", f"predicted: {p}"]
                                                        for i, p in zip(idx, pred)])
        if est.model_.config.spatial_attention:
            words, maps = est.attention(frames[idx[0]], pred[0])
            write_attention_sheet(tmp / "attention.png", frames[idx[0]], words, maps)
        write_dir(tmp, est)
    shown = _scores(metrics, prefix="val_")
    console.print(
        f"trained the captioner on {len(frames):,} clips ({est.n_epochs_} epochs, {seconds:.0f} s)"
        + (f"; held out: {shown}" if shown else "") + f" -> [bold]{out}[/bold]", highlight=False,
    )


@caption_app.command("evaluate")
def evaluate_cmd(
    run: Path = typer.Argument(..., help="run folder from `aekit caption train`"),
    data: Path = typer.Option(..., "--data", help="make-data folder (test.npz), an .npz, or a clip folder"),
    out: Path = typer.Option(..., "--out", help="metrics JSON"),
    beam: int | None = typer.Option(None, min=1, help="beam width (default: the run's)"),
    allow_unknown: bool = typer.Option(False, help="accept reference words the model never saw"),
    n_frames: int | None = typer.Option(None, min=1, help="clip folders: resample every clip to this many frames"),
) -> None:
    """Exact match, BLEU-4 and slot accuracies (digit, direction, bounce) on a test set."""
    from .main import console
    from .runs import _scores

    if out.suffix.lower() != ".json":
        raise ConfigError(f"--out must be a .json file, got {out}")
    est = _load_run(run)
    frames, captions = read_clip_data(data, "test", n_frames=n_frames, size=est.frame_shape_)
    t0 = time.perf_counter()
    rep = est.evaluate(frames, captions, beam=beam, allow_unknown=allow_unknown)
    rep.update(seconds=round(time.perf_counter() - t0, 2), run=str(run), data=str(data))
    write_json(out, rep)
    shown = _scores(rep, skip=("seconds",))
    console.print(f"{rep['n_clips']:,} clips: {shown}", highlight=False)
    console.print(f"metrics: [bold]{out}[/bold]", highlight=False)


@caption_app.command("predict")
def predict_cmd(
    run: Path = typer.Argument(..., help="run folder from `aekit caption train`"),
    clip: Path = typer.Option(..., "--clip", help="a clip: .npy (frames, height, width) or .gif"),
    beam: int | None = typer.Option(None, min=1, help="beam width (default: the run's)"),
    strip: Path | None = typer.Option(None, help="frame strip PNG (default: CLIP-NAME_caption.png here)"),
    attention: Path | None = typer.Option(
        None, help="spatial-attention sheet PNG, for captioners with spatial attention "
        "(default: CLIP-NAME_attention.png here)"),
) -> None:
    """Print the caption of a clip and write a frame strip with the caption under it.

    A captioner with spatial attention (--preset spatial) also gets a sheet showing where each
    word looked in each frame.
    """
    from ..video import read_clip, write_attention_sheet, write_strip

    est = _load_run(run)
    spatial = est.model_.config.spatial_attention
    if attention is not None and not spatial:
        raise ConfigError("--attention needs a captioner trained with spatial attention (--preset spatial)")
    frames = read_clip(clip)
    text = est.caption(frames, beam=beam)
    typer.echo(text)
    strip = strip or Path(f"{clip.stem}_caption.png")
    write_strip(strip, frames, [text])
    typer.echo(f"strip: {strip}", err=True)
    if spatial:
        words, maps = est.attention(frames, text)
        attention = attention or Path(f"{clip.stem}_attention.png")
        write_attention_sheet(attention, frames, words, maps)
        typer.echo(f"attention: {attention}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``caption make-data|train|evaluate|predict`` to the ``aekit`` app."""
    app.add_typer(caption_app, name="caption")
