"""``aekit text train|evaluate|predict|tree``: sentence autoencoders (seq2seq) and sentiment
trees (Socher et al.'s recursive autoencoder) on plain text files, one sentence per line.

Several ``--data`` files without ``--labels`` mean one class per file (as MR ships:
``rt-polarity.neg rt-polarity.pos``); ``--data a b`` and ``--data a --data b`` both work.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .._utils import write_json
from ..errors import ConfigError, DataError, ModelFileError, RunExistsError
from ..text import class_names_for, read_labels, read_lines, tokenize

text_app = typer.Typer(
    no_args_is_help=True,
    help="Text: seq2seq sentence autoencoders and recursive-autoencoder sentiment trees.",
)
MODELS = ("seq2seq_ae", "recursive_ae")
_EXTRA = {"allow_extra_args": True}  # `--data a b`: the files after the first arrive as extra args


def _files(first: list[Path] | None, ctx: typer.Context) -> list[Path]:
    extra = list(ctx.args)
    bad = [a for a in extra if a.startswith("-")]
    if bad:
        raise ConfigError(f"unknown option(s) {', '.join(bad)}")
    files = [*(first or []), *map(Path, extra)]
    if not files:
        raise ConfigError("give the data: --data FILE [FILE ...]")
    return files


def read_text_data(
    files: list[Path], labels: Path | None, *, encoding: str, need_labels: bool
) -> tuple[list[str], list[str] | None]:
    """Sentences of ``files`` (one per line) and their labels (from ``labels``, or one class per file).

    Lines without a single token are dropped with a warning naming the first of them (after the
    labels were matched line by line, so labels stay aligned).
    """
    sentences: list[str] = []
    where: list[str] = []
    per_file: list[int] = []
    for f in files:
        lines = read_lines(f, encoding=encoding)
        sentences += lines
        where += [f"{f}, line {i + 1}" for i in range(len(lines))]
        per_file.append(len(lines))
    y: list[str] | None = None
    if labels is not None:
        y = read_labels(labels, len(sentences), encoding=encoding)
    elif len(files) > 1:
        names = class_names_for(files)
        y = [name for name, n in zip(names, per_file) for _ in range(n)]
    elif need_labels:
        raise ConfigError(
            "the recursive autoencoder learns from labels: give --labels FILE (one label per line) "
            "or one data file per class (--data neg.txt pos.txt)"
        )
    keep = [i for i, s in enumerate(sentences) if tokenize(s)]
    if len(keep) < len(sentences):
        kept = set(keep)
        first = next(i for i in range(len(sentences)) if i not in kept)
        warnings.warn(
            f"skipped {len(sentences) - len(keep)} empty line(s) (first: {where[first]})", UserWarning, stacklevel=2
        )
        sentences = [sentences[i] for i in keep]
        y = [y[i] for i in keep] if y is not None else None
    if not sentences:
        raise DataError(f"no sentences in {', '.join(map(str, files))}")
    return sentences, y


def _load_text_run(run: Path):
    from ..io import load
    from ..io.persistence import read_meta

    doc = read_meta(run)
    if doc.get("kind") not in ("text_autoencoder", "sentiment_rae"):
        raise ModelFileError(f"{run} holds a {doc.get('kind')!r}, not a text model; train one with `aekit text train`")
    return load(run)


def _show_warnings(console) -> Any:
    """Print warnings (truncation, skipped lines) as one yellow line each."""

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
        console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)

    return show


@text_app.command("train", context_settings=_EXTRA)
def train_cmd(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", help="seq2seq_ae | recursive_ae"),
    data: list[Path] = typer.Option(None, "--data", help="text file(s), one sentence per line"),
    labels: Path | None = typer.Option(None, "--labels", help="one label per line (else: one class per data file)"),
    out: Path = typer.Option(..., "--out", help="run folder to create"),
    encoding: str = typer.Option("utf-8", help="encoding of the text files (MR: latin-1)"),
    epochs: int | None = typer.Option(None, min=1, help="default: 10 (seq2seq_ae), 4 (recursive_ae)"),
    batch_size: int | None = typer.Option(None, min=1),
    lr: float | None = typer.Option(None),
    max_len: int | None = typer.Option(None, min=1, help="tokens per sentence; longer ones are truncated"),
    min_count: int | None = typer.Option(
        None, min=1, help="rarer words become <unk> (default: 1 seq2seq_ae, 2 recursive_ae)"),
    embed_dim: int | None = typer.Option(None, min=1, help="word vector size"),
    latent_dim: int | None = typer.Option(None, min=1, help="seq2seq_ae: code size"),
    hidden: int | None = typer.Option(None, min=1, help="seq2seq_ae: RNN units"),
    cell: str | None = typer.Option(None, help="seq2seq_ae: gru | lstm"),
    teacher_forcing: float | None = typer.Option(None, help="seq2seq_ae: < 1 for scheduled sampling"),
    alpha: float | None = typer.Option(None, help="recursive_ae: weight of reconstruction vs. sentiment"),
    n_models: int | None = typer.Option(
        None, "--n-models", min=1, help="recursive_ae: RAEs in the ensemble (default 1), their probabilities averaged"),
    cross_fit: bool = typer.Option(
        False, "--cross-fit", help="recursive_ae: fit each member's classifier on sentences it did not train on "
        "(the benchmark's recipe with --n-models 8: 77.7% on MR)"),
    val_fraction: float = typer.Option(0.1, help="share of the sentences held out for metrics.json"),
    seed: int = typer.Option(0),
    threads: int | None = typer.Option(None, help="torch threads"),
    overwrite: bool = typer.Option(False, help="replace an existing run folder"),
    quiet: bool = typer.Option(False, help="no progress output"),
) -> None:
    """Train a text model; writes RUN/aekit.json, model.safetensors, metrics.json, history.csv."""
    from ..io.persistence import staged_dir, write_dir
    from ..tasks.text import SentimentRAE, TextAutoencoder
    from .main import console
    from .runs import _scores, _write_history

    if model not in MODELS:
        raise ConfigError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if out.exists() and not overwrite:
        raise RunExistsError(f"run folder {out} already exists; pass --overwrite or choose another --out")
    files = _files(data, ctx)
    rae = model == "recursive_ae"
    with warnings.catch_warnings():
        warnings.showwarning = _show_warnings(console)
        warnings.simplefilter("always", UserWarning)
        sentences, y = read_text_data(files, labels, encoding=encoding, need_labels=rae)
        opts = {k: v for k, v in dict(epochs=epochs, batch_size=batch_size, lr=lr, max_len=max_len,
                                       embed_dim=embed_dim, min_count=min_count).items() if v is not None}
        if cross_fit and not rae:
            raise ConfigError("--cross-fit is for --model recursive_ae")
        if rae:
            opts.update({k: v for k, v in dict(alpha=alpha, n_models=n_models).items() if v is not None})
            opts["cross_fit"] = cross_fit
            est = SentimentRAE(seed=seed, threads=threads, verbose=not quiet, **opts)
        else:
            opts.update({k: v for k, v in dict(latent_dim=latent_dim, hidden=hidden, cell=cell,
                                               teacher_forcing=teacher_forcing).items() if v is not None})
            est = TextAutoencoder(seed=seed, threads=threads, verbose=not quiet, **opts)
        perm = np.random.default_rng(seed).permutation(len(sentences))
        n_val = int(round(len(sentences) * val_fraction))
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        train_s = [sentences[i] for i in train_idx]
        val_s = [sentences[i] for i in val_idx]
        t0 = time.perf_counter()
        if rae:
            est.fit(train_s, [y[i] for i in train_idx])
        else:
            est.fit(train_s)
        seconds = time.perf_counter() - t0
        metrics: dict[str, Any] = {
            "model": model, "n_train": len(train_s), "n_val": len(val_s), "train_seconds": round(seconds, 2),
            "epochs": est.n_epochs_, "vocabulary": len(est.vocab_), "data": [str(f) for f in files],
        }
        if rae:
            metrics["classes"] = [str(c) for c in est.classes_]
            if val_s:
                metrics["val_accuracy"] = float(est.score(val_s, [y[i] for i in val_idx]))
        elif val_s:
            metrics.update({f"val_{k}": v for k, v in est.evaluate(val_s).items()})
    with staged_dir(out, overwrite=overwrite) as tmp:
        write_json(tmp / "metrics.json", metrics)
        _write_history(tmp / "history.csv", est.history_)
        write_dir(tmp, est)
    shown = _scores(metrics, prefix="val_")
    console.print(
        f"trained {model} on {len(train_s):,} sentences ({est.n_epochs_} epochs, {seconds:.0f} s)"
        + (f"; held out {len(val_s):,}: {shown}" if shown else "") + f" -> [bold]{out}[/bold]",
        highlight=False,
    )


@text_app.command("evaluate", context_settings=_EXTRA)
def evaluate_cmd(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="run folder from `aekit text train`"),
    data: list[Path] = typer.Option(None, "--data", help="text file(s), one sentence per line"),
    labels: Path | None = typer.Option(None, "--labels", help="one label per line (else: one class per data file)"),
    out: Path = typer.Option(..., "--out", help="metrics JSON"),
    encoding: str = typer.Option("utf-8", help="encoding of the text files"),
) -> None:
    """Accuracy of a recursive autoencoder, or reconstruction metrics of a seq2seq autoencoder."""
    from ..tasks.text import SentimentRAE
    from .main import console
    from .runs import _scores

    if out.suffix.lower() != ".json":
        raise ConfigError(f"--out must be a .json file, got {out}")
    est = _load_text_run(run)
    files = _files(data, ctx)
    rae = isinstance(est, SentimentRAE)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warnings(console)
        warnings.simplefilter("always", UserWarning)
        sentences, y = read_text_data(files, labels, encoding=encoding, need_labels=rae)
        if rae:
            known = {str(c) for c in est.classes_}
            unknown = sorted(set(y) - known)
            if unknown:
                raise DataError(
                    f"labels {unknown} are not classes of {run} ({', '.join(sorted(known))}); with one class per "
                    "file, name the files after the classes (e.g. rt-polarity.neg, rt-polarity.pos)"
                )
            classes = np.asarray([str(c) for c in est.classes_])
            pred = classes[est.predict_proba(sentences).argmax(1)]
            y_arr = np.asarray(y)
            rep: dict[str, Any] = {"accuracy": float((pred == y_arr).mean()), "n_sentences": len(y)}
            rep["per_class_accuracy"] = {c: float((pred[y_arr == c] == c).mean())
                                         for c in classes if (y_arr == c).any()}
        else:
            rep = est.evaluate(sentences)
    rep["run"] = str(run)
    rep["data"] = [str(f) for f in files]
    write_json(out, rep)
    shown = _scores(rep)
    console.print(f"{rep.get('n_sentences', len(sentences)):,} sentences: {shown}", highlight=False)
    console.print(f"metrics: [bold]{out}[/bold]", highlight=False)


@text_app.command("predict")
def predict_cmd(
    run: Path = typer.Argument(..., help="run folder from `aekit text train`"),
    input: Path = typer.Option(..., "--input", help="text file, one sentence per line"),
    encoding: str = typer.Option("utf-8", help="encoding of the text file"),
    beam: int = typer.Option(1, min=1, help="seq2seq_ae: beam width of the decoding"),
) -> None:
    """Print one line per sentence: class, probability, sentence (RAE) or the reconstruction (seq2seq)."""
    from ..tasks.text import SentimentRAE
    from .main import console

    est = _load_text_run(run)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warnings(console)
        warnings.simplefilter("always", UserWarning)
        sentences, _ = read_text_data([input], None, encoding=encoding, need_labels=False)
        if isinstance(est, SentimentRAE):
            proba = est.predict_proba(sentences)
            for s, p in zip(sentences, proba):
                typer.echo(f"{est.classes_[int(p.argmax())]}\t{p.max():.3f}\t{s}")
        else:
            for r in est.reconstruct(sentences, beam=beam):
                typer.echo(r)


@text_app.command("tree")
def tree_cmd(
    run: Path = typer.Argument(..., help="run folder of a recursive autoencoder"),
    sentence: str = typer.Argument(..., help="the sentence, in quotes"),
    json_out: bool = typer.Option(False, "--json", help="print the tree as JSON"),
) -> None:
    """Print the greedy tree of a sentence with each node's sentiment and probability."""
    import json

    from ..tasks.text import SentimentRAE

    est = _load_text_run(run)
    if not isinstance(est, SentimentRAE):
        raise ModelFileError(f"{run} holds a seq2seq autoencoder; trees come from `--model recursive_ae` runs")
    node = est.tree(sentence)
    typer.echo(json.dumps(node.to_dict(), indent=2) if json_out else str(node))


def register(app: typer.Typer) -> None:
    """Add ``text train|evaluate|predict|tree`` to the ``aekit`` app."""
    app.add_typer(text_app, name="text")
