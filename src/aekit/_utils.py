"""Small helpers every layer may use: atomic file writes, JSON, seeds, threads, devices."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


def is_worker_process() -> bool:
    """True in the processes of a distributed run other than rank 0: they must not write files."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_rank() != 0


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` atomically.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if is_worker_process():
        # distributed runs: only rank 0 writes; the others write to scratch and throw it away
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; saved files follow the umask
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_safetensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Write tensors as safetensors, atomically and only under our own temporary name.

    ``safetensors.torch.save_file`` (0.8+) writes through its own ``.tmpXXXXXX`` file beside the
    target, which a kill would leave behind under a name nobody recognises; serialising to bytes
    and writing them through :func:`atomic_path` keeps a kill's leftovers predictable.
    """
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as pretty JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    return Path(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray,)):
        return o.tolist()
    if isinstance(o, (Path,)):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (model initialisation happens under this seed)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        from .errors import ConfigError

        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        from .errors import ConfigError

        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    return dev


def retain_freed_memory() -> bool:
    """Keep freed memory in the process for reuse (glibc): no page faults on large tensors.

    glibc returns freed blocks of a few MB to the OS (mmap / heap trimming), so a training
    loop that allocates the same activation sizes every step can page-fault on all of them:
    measured up to ~7,000 faults and 18% of the step time (conv_ae "wide", 1 thread). Raising
    both thresholds to 1 GiB keeps that memory; the process's resident size stays at its peak.
    Process-wide and idempotent; ``AEKIT_MALLOC_TUNING=0`` turns it off. True when applied.
    """
    if os.environ.get("AEKIT_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, 1 << 30))


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 arithmetic (AVX512-BF16 or AMX).

    Without it oneDNN emulates bf16 and autocast makes training slower (measured: 3x slower
    for the wide conv model on an AVX-512 Xeon without BF16), so ``precision="auto"`` stays fp32.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False
