"""Training: the Trainer loop, its config, checkpoints and evaluation metrics."""

from .checkpoint import load_checkpoint, save_checkpoint
from .metrics import pca_baseline, reconstruction_metrics
from .trainer import History, TrainConfig, Trainer

__all__ = [
    "History", "TrainConfig", "Trainer", "load_checkpoint", "pca_baseline",
    "reconstruction_metrics", "save_checkpoint",
]
