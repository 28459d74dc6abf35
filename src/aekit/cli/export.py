"""``aekit export RUN --format onnx --out model.onnx``: the whole scorer as one ONNX graph, parity-checked."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..errors import ConfigError, ExportParityError


def _report_table(report, title: str) -> Table:
    t = Table(title=title)
    for col in ("output", "shape", "dtype", "max abs diff", "normalised", "tolerance", "ok"):
        t.add_column(col, justify="left" if col in ("output", "shape", "dtype") else "right")
    for c in report.checks:
        shape = "x".join(str(s) for s in c.shape)
        name = c.name if c.in_graph else f"{c.name} (assembled)"
        if c.n_mismatch is not None:
            diff = f"{c.n_mismatch} differ" + (f" ({c.n_near_threshold} at threshold)" if c.n_near_threshold else "")
            rel, tol = "-", "exact"
        else:
            diff, rel, tol = f"{c.max_abs_diff:.3g}", f"{c.max_rel_diff:.3g}", f"{c.tolerance:g}"
        t.add_row(name, shape, c.dtype, diff, rel, tol, "[green]yes[/green]" if c.ok else "[bold red]NO[/bold red]")
    return t


def export_cmd(
    run: Path = typer.Argument(..., help="run folder (aekit train, aekit detect fit) or a saved model / index"),
    format: str = typer.Option("onnx", "--format", help="export format (onnx)"),
    out: Path | None = typer.Option(None, "--out", help="file to write (default RUN/model.onnx)"),
    tolerance: float | None = typer.Option(
        None, help="normalised difference allowed on every output (default 1e-4; see aekit.deploy.export)"
    ),
    opset: int | None = typer.Option(None, help="ONNX opset (default: the exporter's)"),
    check_samples: int = typer.Option(64, help="sample inputs ONNX Runtime must reproduce PyTorch on"),
    exporter: str = typer.Option("auto", help="auto (torch's dynamo exporter, TorchScript if it fails) | dynamo | "
                                 "torchscript"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing file"),
) -> None:
    """Export the whole scorer (preprocessing, network, score and threshold) and check it against PyTorch."""
    from ..deploy import FORMATS, export_onnx
    from .main import console

    fmt = format.lower()
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; formats: {', '.join(FORMATS)}")
    if not run.exists():
        raise ConfigError(f"{run} does not exist: give a run folder (aekit train, aekit detect fit) or a saved model")
    if check_samples < 1:
        raise ConfigError(f"--check-samples must be >= 1, got {check_samples}")
    target = out if out is not None else run / "model.onnx"
    try:
        report = export_onnx(run, target, tolerance=tolerance, check_samples=check_samples, opset=opset,
                             overwrite=overwrite, exporter=exporter)
    except ExportParityError as err:
        if err.report is not None:
            console.print(_report_table(err.report, f"{run}: ONNX Runtime vs PyTorch (refused)"))
        raise
    title = (f"{run}: {report.kind} ({report.model_name}), ONNX Runtime vs PyTorch on {report.n_checked} samples, "
             f"batches {', '.join(map(str, report.batch_sizes))}")
    console.print(_report_table(report, title))
    shape = "x".join(str(s) for s in report.input["shape"])
    console.print(f"samples: {report.sample_source}")
    if report.not_in_graph:
        console.print("not in the graph: " + "; ".join(report.not_in_graph))
    console.print(
        f"wrote [bold]{report.path}[/bold] (input {report.input['name']} {shape} {report.input['dtype']}; "
        f"{report.exporter} exporter, opset {report.opset}) in {report.seconds:.1f} s"
    )
