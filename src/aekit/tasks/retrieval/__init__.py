"""Content-based image retrieval in an autoencoder's latent space (float or binary codes).

``ImageSearch`` encodes images with a trained autoencoder and searches their codes with a faiss
index (:class:`VectorIndex`: exact, HNSW or IVF-PQ; binary indexes for Hamming distance);
:mod:`.metrics` has precision@k and mAP with label agreement as relevance.
"""

from .index import VectorIndex
from .search import ImageSearch, model_fingerprint

__all__ = ["ImageSearch", "VectorIndex", "model_fingerprint"]
