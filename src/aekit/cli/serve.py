"""``aekit serve RUN [RUN ...] [--index INDEX]``: the models behind an HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import typer

from ..errors import ConfigError

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_cmd(
    runs: list[Path] = typer.Argument(None, help="run folders / saved tasks: model, embedder, denoiser, "
                                                  "anomaly_detector, series_anomaly_detector"),
    index: Path | None = typer.Option(None, "--index", help="image index folder from `aekit index build` "
                                                            "(serves /v1/search)"),
    host: str = typer.Option("127.0.0.1", help="address to bind; the default is reachable from this machine only"),
    port: int = typer.Option(8000, min=0, max=65535),
    max_body_mb: float = typer.Option(10.0, help="largest request body in MB (larger ones get 413)"),
    cors_origin: list[str] = typer.Option(None, "--cors-origin", help="allow cross-origin requests from this "
                                                                      "origin (repeatable); none by default"),
    workers: int = typer.Option(1, min=1, help="server processes (each loads every model)"),
    batch_window_ms: float = typer.Option(2.0, help="wait up to this long for concurrent requests to merge into "
                                                    "one forward pass (never when none is in flight; 0: merge only "
                                                    "what queued meanwhile)"),
    no_batching: bool = typer.Option(False, "--no-batching", help="run every request on its own"),
    threads: int | None = typer.Option(None, help="torch threads per process (default: torch's)"),
    log_level: str = typer.Option("info", help="uvicorn log level: critical | error | warning | info | debug"),
) -> None:
    """Serve models over HTTP: /v1/reconstruct, /v1/embed, /v1/score, /v1/search; docs at /docs."""
    import uvicorn

    from ..serve.app import create_app
    from .main import console

    runs = list(runs or [])
    if not runs and index is None:
        raise ConfigError("name at least one run folder to serve (or an --index)")
    if not max_body_mb > 0:
        raise ConfigError(f"--max-body-mb must be > 0, got {max_body_mb}")
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    settings = dict(max_body_mb=max_body_mb, cors_origins=list(cors_origin or []) or None,
                    batch_window_ms=None if no_batching else batch_window_ms)
    # load everything before binding: a bad folder fails here with one line (AekitError -> main())
    app = create_app(runs, index, **settings)
    svc = app.state.service
    for m in svc.listed():
        shape = "x".join(map(str, m.shape))
        extra = f", threshold {m.threshold:.4g}" if m.threshold is not None else ""
        console.print(f"loaded [bold]{m.name}[/bold]: {m.kind}, {m.input_type} {shape}, "
                      f"/v1/{', /v1/'.join(m.endpoints)}{extra}  ({m.path})", highlight=False)
    if svc.index is not None:
        ix = svc.index
        console.print(f"index [bold]{ix.name}[/bold]: {ix.size:,} images, {ix.obj.metric}, built with "
                      f"{ix.built_with or 'a model that is not loaded'}", highlight=False)
    if not is_loopback(host):
        console.print(f"[bold yellow]warning:[/bold yellow] binding to {host} makes the service reachable from "
                      "the network; it has no authentication: put it behind a reverse proxy with TLS and auth",
                      highlight=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"serving on [bold]http://{shown}:{port}[/bold] (docs at /docs); Ctrl+C stops it", highlight=False)
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    # several processes: each imports the app factory, which reads the same settings
    cfg = {"runs": [str(Path(r).resolve()) for r in runs], "index": str(Path(index).resolve()) if index else None,
           **settings, "torch_threads": threads}
    os.environ["AEKIT_SERVE_CONFIG"] = json.dumps(cfg)
    del app
    uvicorn.run("aekit.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level)
