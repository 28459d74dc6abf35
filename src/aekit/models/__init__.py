"""The autoencoder family: ``create_model(name, preset, **overrides)``, ``list_models()``."""

from . import captioner, conv, dense, sequence, text, unet, vae  # noqa: F401  (registers the models)
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
from .sequence import Conv1dAE, Conv1dAEConfig, RecurrentAE, RecurrentAEConfig
from .vae import VAE, BetaVAE, BetaVAEConfig, VAEConfig, VAEOutput

__all__ = [
    "AEOutput", "Autoencoder", "BetaVAE", "BetaVAEConfig", "Conv1dAE", "Conv1dAEConfig", "ConvAE", "ConvAEConfig",
    "DenseAE", "DenseAEConfig",
    "RecurrentAE", "RecurrentAEConfig", "Sparsity", "VAE", "VAEConfig", "VAEOutput",
    "build_config", "config_to_dict", "create_model", "list_models", "list_presets", "model_class",
    "model_description", "model_from_config", "model_from_meta", "model_meta", "load_weights",
    "register_model",
]
