"""Save and load models and tasks as a directory: ``aekit.json`` + ``model.safetensors``.

Nothing is pickled: loading reads JSON and raw tensors, so a file cannot run code. The JSON
names the kind of object and the registered model, so :func:`load` rebuilds the right thing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .. import __version__
from .._utils import is_worker_process, write_json, write_safetensors
from ..errors import ConfigError, ModelFileError, RunExistsError
from ..models import load_weights, model_from_meta, model_meta
from ..tasks.registry import KINDS
from ..training.checkpoint import load_checkpoint

FORMAT = "aekit"
FORMAT_VERSION = 1
CONFIG_FILE = "aekit.json"
WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- writing ------------------------------------------------------------------------------------
def _state_of(obj: Any) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    if isinstance(obj, nn.Module):
        meta = model_meta(obj)
        tensors = {f"model.{k}": v for k, v in obj.state_dict().items()}
        return "model", meta, tensors
    kind = getattr(type(obj), "_aekit_kind", None)
    if kind is None:
        raise ConfigError(f"cannot save a {type(obj).__name__}: only aekit models and tasks are saveable")
    meta, tensors = obj._aekit_state()
    return kind, meta, tensors


def write_dir(
    path: str | os.PathLike, obj: Any, *, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``obj`` into directory ``path`` (created if needed), each file atomically.

    Used for run folders that the CLI fills step by step; :func:`save` adds the refusal to
    overwrite and directory-level atomicity.
    """
    path = Path(path)
    if is_worker_process():  # distributed runs: rank 0 writes
        return path
    path.mkdir(parents=True, exist_ok=True)
    kind, meta, tensors = _state_of(obj)
    digest = _sha256(write_safetensors(path / WEIGHTS_FILE, tensors))
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "aekit_version": __version__,
        "kind": kind,
        **meta,
        **(extra or {}),
        "weights": {"file": WEIGHTS_FILE, "sha256": digest},
    }
    write_json(path / CONFIG_FILE, doc)
    return path


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty directory beside ``path``; on success it replaces ``path`` in one rename.

    Refuses an existing ``path`` unless ``overwrite``; on any error the staged directory is
    removed and ``path`` is left as it was, so a failure loses nothing.
    """
    path = Path(path)
    if is_worker_process():  # distributed runs: rank 0 checks and writes; the others use scratch
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}."))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if path.exists() and not overwrite:
        raise RunExistsError(f"{path} already exists; choose another path or pass overwrite=True")
    if path.exists() and not path.is_dir():
        raise RunExistsError(f"{path} exists and is not a directory; remove it or choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save(obj: Any, path: str | os.PathLike, *, overwrite: bool = False, extra: dict[str, Any] | None = None) -> Path:
    """Save a model or task to directory ``path`` (``aekit.json`` + ``model.safetensors``).

    Refuses to replace an existing ``path`` unless ``overwrite=True``; the new directory is
    written beside it and swapped in only when complete, so a failure loses nothing.
    """
    with staged_dir(path, overwrite=overwrite) as tmp:
        write_dir(tmp, obj, extra=extra)
    return Path(path)


# -- reading -------------------------------------------------------------------------------------
def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``aekit.json`` of a saved directory (or the JSON file itself)."""
    path = Path(path)
    cfg = path / CONFIG_FILE if path.is_dir() else path
    if not cfg.is_file():
        hint = "" if path.exists() else " (the path does not exist)"
        raise ModelFileError(f"{path} is not an aekit model or run folder: no {CONFIG_FILE}{hint}")
    try:
        doc = json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{cfg} is not valid JSON ({err}); the file is damaged or was edited by hand") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"{cfg} is not an aekit file (no \"format\": \"aekit\")")
    version = doc.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{cfg} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{cfg} was written by aekit {doc.get('aekit_version', '?')} (format {version}); this aekit "
            f"({__version__}) reads format {FORMAT_VERSION} or older: upgrade aekit"
        )
    return doc


def _read_tensors(folder: Path, doc: dict[str, Any]) -> dict[str, torch.Tensor]:
    weights = folder / doc.get("weights", {}).get("file", WEIGHTS_FILE)
    if not weights.is_file():
        ckpt = folder / CHECKPOINT_FILE
        if ckpt.is_file():
            tensors, meta = load_checkpoint(ckpt)
            warnings.warn(
                f"{folder}: no {WEIGHTS_FILE} (the run did not finish); loaded its last checkpoint "
                f"(epoch {meta.get('epoch')}); `aekit train --resume {folder}` finishes it",
                UserWarning,
                stacklevel=3,
            )
            return {k: v for k, v in tensors.items() if k.startswith("model.")}
        raise ModelFileError(f"{folder} has no {weights.name} (and no checkpoint)")
    expected = doc.get("weights", {}).get("sha256")
    if expected and _sha256(weights) != expected:
        raise ModelFileError(
            f"{weights} does not match {CONFIG_FILE} (sha256 differs): the weights were replaced or "
            "damaged after saving; re-save the model or restore the original file"
        )
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise ModelFileError(f"{weights} is not a readable safetensors file ({err})") from err


def load(path: str | os.PathLike, *, kind: str | None = None) -> Any:
    """Load what :func:`save` (or ``aekit train``) wrote: a model or a task.

    ``kind`` (e.g. ``"model"``, ``"embedder"``) makes loading fail clearly when the folder holds
    something else.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    doc = read_meta(path)
    found = doc.get("kind")
    if kind is not None and found != kind:
        raise ModelFileError(f"{folder} holds a {found!r}, not a {kind!r}")
    tensors = _read_tensors(folder, doc)
    if found == "model":
        return load_weights(model_from_meta(doc, str(folder)), tensors, str(folder))
    if found not in KINDS:
        known = ", ".join(["model", *sorted(KINDS)])
        raise ModelFileError(f"{folder} holds an unknown kind {found!r}; this aekit loads: {known}")
    return KINDS[found]._aekit_from_state(doc, tensors, where=str(folder))
