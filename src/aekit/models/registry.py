"""Models by name: ``@register_model`` on a config-built class, presets as named overrides.

Saved files store ``model_name`` + the config as JSON, so ``aekit.load`` rebuilds any model
without an if/elif chain.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import warnings
from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import ConfigError, ModelFileError, UnknownNameError

_MODELS: dict[str, type[nn.Module]] = {}
_PRESETS: dict[str, dict[str, dict[str, Any]]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, *, presets: dict[str, dict[str, Any]] | None = None) -> Callable:
    """Class decorator: register ``cls`` (which has a ``Config`` dataclass) under ``name``."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
            raise TypeError(f"{cls.__name__} needs a dataclass attribute 'Config'")
        _MODELS[name] = cls
        _PRESETS[name] = dict(presets or {})
        _DESCRIPTIONS[name] = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        cls.model_name = name
        return cls

    return deco


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob ``pattern``, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def list_presets(name: str) -> list[str]:
    """Preset names of model ``name``."""
    return sorted(_PRESETS[_check_name(name)])


def model_description(name: str) -> str:
    return _DESCRIPTIONS[_check_name(name)]


def model_class(name: str) -> type[nn.Module]:
    return _MODELS[_check_name(name)]


def _check_name(name: str) -> str:
    if name not in _MODELS:
        raise UnknownNameError(
            f"unknown model {name!r}; registered models: {', '.join(list_models()) or '(none)'}"
        )
    return name


def build_config(name: str, preset: str | None = None, **overrides: Any):
    """The frozen config of model ``name``: defaults, then ``preset``, then ``overrides``.

    Overrides whose value is ``None`` are ignored (so CLI flags left unset keep the preset).
    """
    cls = model_class(name)
    values: dict[str, Any] = {}
    if preset:
        if preset not in _PRESETS[name]:
            known = ", ".join(list_presets(name)) or "(none)"
            raise UnknownNameError(f"model {name!r} has no preset {preset!r}; presets: {known}")
        values.update(_PRESETS[name][preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(fields))}"
        )
    try:
        return cls.Config(**values)
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"bad options for model {name!r}: {err}") from err


def create_model(name: str, preset: str | None = None, **overrides: Any) -> nn.Module:
    """Build model ``name`` (optionally from ``preset``), e.g. ``create_model("conv_ae", "wide")``."""
    config = build_config(name, preset, **overrides)
    return model_class(name)(config)


def model_from_config(name: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild a model from the JSON form of its config (lists become tuples)."""
    cls = model_class(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ConfigError(f"saved config of {name!r} has unknown field(s): {', '.join(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    with warnings.catch_warnings():
        # the over-complete-code warning belongs to design time, not to loading a saved model
        warnings.filterwarnings("ignore", message=".*not smaller than the input", category=UserWarning)
        return cls(cls.Config(**values))


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def model_meta(model: nn.Module) -> dict[str, Any]:
    """The JSON that rebuilds ``model``: its registered name and config."""
    name = getattr(model, "model_name", None)
    if not name or name not in _MODELS or not hasattr(model, "config"):
        raise ConfigError(f"{type(model).__name__} is not a registered aekit model; cannot save it")
    return {"model_name": name, "model_config": config_to_dict(model.config)}


def model_from_meta(doc: dict[str, Any], where: str) -> nn.Module:
    """Rebuild the model described by saved JSON, with errors that name the file."""
    try:
        return model_from_config(doc["model_name"], doc["model_config"])
    except UnknownNameError as err:
        raise ModelFileError(f"{where}: {err}") from err
    except KeyError as err:
        raise ModelFileError(f"{where}: aekit.json lacks the field {err}") from err
    except (ConfigError, TypeError, ValueError, AttributeError) as err:
        raise ModelFileError(f"{where}: aekit.json holds an invalid model config ({err})") from err


def load_weights(model: nn.Module, tensors: dict[str, Any], where: str) -> nn.Module:
    """Load the ``model.``-prefixed tensors into ``model``; a mismatch is a clear error."""
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        msg = " ".join(str(err).split())[:300]
        raise ModelFileError(
            f"{where}: the weights do not fit the model described in aekit.json ({msg}); "
            "was aekit.json edited, or the weights copied from another model?"
        ) from err
    return model.eval()
