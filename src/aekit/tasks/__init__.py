"""Applications with scikit-learn APIs, each saveable with ``aekit.save``."""

from .anomaly import AnomalyDetector, SeriesAnomalyDetector
from .captioning import VideoCaptioner
from .embedder import Denoiser, Embedder
from .pretraining import (
    FrozenEncoder,
    PretrainedClassifier,
    PretrainResult,
    compare_pretraining,
    draw_labelled,
    frozen_code_classifier,
    pretrain,
)
from .retrieval import ImageSearch
from .segmentation import Segmenter
from .text import SentimentRAE, TextAutoencoder, TreeNode

__all__ = [
    "AnomalyDetector", "Denoiser", "Embedder", "FrozenEncoder", "ImageSearch", "PretrainResult",
    "PretrainedClassifier", "Segmenter", "SentimentRAE", "SeriesAnomalyDetector", "TextAutoencoder", "TreeNode",
    "VideoCaptioner",
    "compare_pretraining", "draw_labelled",
    "frozen_code_classifier", "pretrain",
]
