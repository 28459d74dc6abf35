"""Helpers shared by the benchmark scripts: environment facts, a plain-text table, JSON output.

Standard library only at import time, so that any script (or a worker running in another
virtual environment) can import it; torch and numpy are looked up lazily.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or `platform.processor()` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags(wanted: Sequence[str] = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")) -> list[str]:
    """Which of the `wanted` instruction-set flags the CPU reports (Linux only)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def git_commit() -> str | None:
    """The repository's HEAD commit (with '+dirty' when the tree has changes), or None."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def env_info(torch_threads: bool = True) -> dict[str, Any]:
    """Facts about this machine and the Python environment running the benchmark."""
    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(),
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    for name in ("numpy", "torch", "aekit"):
        try:
            mod = __import__(name)
            info[name] = getattr(mod, "__version__", "unknown")
        except Exception:  # noqa: BLE001 - a missing or broken package is just reported
            info[name] = None
    if torch_threads and info.get("torch"):
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
    return info


def command_line() -> str:
    """The command that started this process, quoted so that it can be pasted into a shell."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                 headers: Sequence[str] | None = None) -> str:
    """A Markdown table (also readable as plain text) of `rows` restricted to `columns`.

    Floats are printed with 4 significant digits (whole numbers with thousands separators from
    1,000 up), booleans as yes/no, None as '-'.
    """
    headers = list(headers or columns)

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e3 else f"{v:,.0f}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
              for row in cells]
    return "\n".join(lines)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                headers: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print `format_table(...)`, preceded by an optional title line."""
    if title:
        print(f"\n{title}")
    print(format_table(rows, columns, headers))


def write_json(name: str, payload: Mapping[str, Any], results_dir: Path | None = None) -> Path:
    """Write `payload` to `<results_dir>/<name>.json` atomically (temp file + rename)."""
    out_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def results_dir(args) -> Path:
    """Where the JSON goes: --results-dir, else benchmarks/results (a temp folder for --quick)."""
    if args.results_dir:
        return Path(args.results_dir)
    if args.quick:
        import tempfile

        return Path(tempfile.gettempdir()) / "aekit-bench-quick"
    return RESULTS_DIR
