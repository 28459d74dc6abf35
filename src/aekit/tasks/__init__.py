"""Applications with scikit-learn APIs, each saveable with ``aekit.save``."""

from .embedder import Denoiser, Embedder

__all__ = ["Denoiser", "Embedder"]
