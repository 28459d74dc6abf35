"""Saveable task kinds: ``aekit.load`` looks classes up here by the ``kind`` in aekit.json."""

from __future__ import annotations

from collections.abc import Callable

#: kind name -> class with ``_aekit_state()`` and ``classmethod _aekit_from_state(doc, tensors, where=)``
KINDS: dict[str, type] = {}


def register_kind(name: str) -> Callable[[type], type]:
    """Class decorator registering a saveable task under ``name``."""

    def deco(cls: type) -> type:
        if name in KINDS:
            raise ValueError(f"task kind {name!r} is registered twice")
        KINDS[name] = cls
        cls._aekit_kind = name
        return cls

    return deco
