"""Pretraining with autoencoders: learn from unlabelled data, fine-tune with a few labels.

``pretrain`` trains an autoencoder greedily layer by layer (sparse) or end to end (denoising);
``PretrainedClassifier`` puts a head on its encoder and fine-tunes on the labelled examples;
``draw_labelled`` draws those reproducibly; ``compare_pretraining`` measures whether it helps.
"""

from .classifier import AUTO_STEPS, FrozenEncoder, PretrainedClassifier, frozen_code_classifier
from .compare import METHODS, compare_pretraining, summarise
from .labels import draw_labelled
from .stacking import STRATEGIES, PretrainResult, activation_stats, layer_codes, pretrain

__all__ = [
    "AUTO_STEPS", "METHODS", "STRATEGIES", "FrozenEncoder", "PretrainResult", "PretrainedClassifier",
    "activation_stats", "compare_pretraining", "draw_labelled", "frozen_code_classifier", "layer_codes",
    "pretrain", "summarise",
]
