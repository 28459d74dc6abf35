"""Applications with scikit-learn APIs, each saveable with ``aekit.save``."""

from .anomaly import AnomalyDetector, SeriesAnomalyDetector
from .embedder import Denoiser, Embedder
from .retrieval import ImageSearch

__all__ = ["AnomalyDetector", "Denoiser", "Embedder", "ImageSearch", "SeriesAnomalyDetector"]
