"""Persistence: ``save(obj, path)`` / ``load(path)`` as safetensors + JSON (never pickle)."""

from .persistence import load, read_meta, save, write_dir

__all__ = ["load", "read_meta", "save", "write_dir"]
