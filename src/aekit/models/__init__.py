"""The autoencoder family: ``create_model(name, preset, **overrides)``, ``list_models()``."""

from . import conv, dense  # noqa: F401  (registers the models)
from .base import AEOutput, Autoencoder, Sparsity
from .conv import ConvAE, ConvAEConfig
from .dense import DenseAE, DenseAEConfig
from .registry import (
    build_config,
    config_to_dict,
    create_model,
    list_models,
    list_presets,
    load_weights,
    model_class,
    model_description,
    model_from_config,
    model_from_meta,
    model_meta,
    register_model,
)

__all__ = [
    "AEOutput", "Autoencoder", "ConvAE", "ConvAEConfig", "DenseAE", "DenseAEConfig", "Sparsity",
    "build_config", "config_to_dict", "create_model", "list_models", "list_presets", "model_class",
    "model_description", "model_from_config", "model_from_meta", "model_meta", "load_weights",
    "register_model",
]
