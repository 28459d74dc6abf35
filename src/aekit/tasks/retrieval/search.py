"""ImageSearch: content-based image retrieval by distance between autoencoder codes.

Images are encoded by a trained autoencoder (a run folder, a saved model, an Embedder, or an
``nn.Module``); their codes go into a faiss index (:class:`VectorIndex`): exact search for small
collections, HNSW above ``AUTO_EXACT_MAX`` vectors. With ``metric="hamming"`` the code is
thresholded to bits (semantic hashing: train the model with ``code_activation="sigmoid"`` and
``code_noise`` so its code units saturate) and searched with faiss's binary indexes.

The model travels with the index: ``save``/``aekit.load`` write one folder (``aekit.json`` with
the model config, the preprocessing and a fingerprint of the weights; ``model.safetensors`` with
the weights, the serialised index and integer ids). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError, DataError, ModelFileError
from ...models import load_weights, model_from_meta, model_meta
from ...training.metrics import reconstruct_batches
from ..registry import register_kind
from .index import VectorIndex

METRICS = ("euclidean", "cosine", "hamming")
INDEX_KINDS = ("auto", "exact", "hnsw", "ivfpq")


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the model's parameters and buffers (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def resolve_encoder(encoder: Any) -> tuple[nn.Module, float | None, str | None]:
    """``encoder`` -> (autoencoder module, binarize threshold of its run or None, source path or None)."""
    from ...io import load, read_meta

    if isinstance(encoder, (str, os.PathLike)):
        path = Path(encoder)
        doc = read_meta(path)
        kind = doc.get("kind")
        if kind == "model":
            binarize = (doc.get("run") or {}).get("preprocessing", {}).get("binarize")
            return load(path, kind="model"), binarize, str(path)
        obj = load(path)
        model, binarize, _ = resolve_encoder(obj)
        return model, binarize, str(path)
    if isinstance(encoder, nn.Module):
        if not hasattr(encoder, "encode") or not hasattr(encoder, "input_shape"):
            raise ConfigError("encoder must be an aekit autoencoder (encode() and input_shape), a run or an Embedder")
        return encoder, None, None
    model = getattr(encoder, "model_", None)
    if isinstance(model, nn.Module):
        if getattr(encoder, "scale_mode_", "none") not in ("none",):
            raise ConfigError(
                f"this {type(encoder).__name__} rescales its inputs ({encoder.scale_mode_}); image search "
                "needs images in [0, 1] as the model saw them: fit it with scale='none'"
            )
        return model, getattr(encoder, "binarize", None), None
    raise ConfigError(
        f"encoder must be a run folder, a saved model or Embedder path, an aekit model or an Embedder; "
        f"got {type(encoder).__name__}"
    )


def as_image_batch(
    images: Any, input_shape: tuple[int, ...], *, what: str = "images"
) -> tuple[np.ndarray, list[str] | None]:
    """Images for a model with ``input_shape``: arrays (uint8 or floats in [0, 1]) or files.

    Files (a folder, one image, ``.npy``/``.npz``) are read with :func:`aekit.data.load_images`,
    resized and converted to the model's channels. Arrays must already have the model's size
    (a clear error otherwise). Returns (array (n, *input_shape) float32, names or None).
    """
    from ...data import load_images

    names = None
    shape = tuple(input_shape)
    if isinstance(images, (str, os.PathLike)):
        size = shape[-2:] if len(shape) == 3 else None
        channels = shape[0] if len(shape) == 3 else None
        x, names = load_images(images, size=size, channels=channels)
        root = Path(images).resolve()
        base = root if root.is_dir() else root.parent
        names = [str(base / n) for n in names]  # ids are full paths: unique across folders, findable later
    else:
        x = np.asarray(images)
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise DataError(f"{what} must be a numeric array or a path, got dtype {x.dtype}")
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"no {what} given (an empty array or folder)")
    if np.issubdtype(x.dtype, np.integer) and x.max(initial=0) > 1:
        x = x.astype(np.float32) / 255.0
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{what} contain NaN or infinite values")
    if x.min() < -1e-6 or x.max() > 1 + 1e-6:
        raise DataError(f"{what} must be uint8 or floats in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]")
    per = int(np.prod(shape))
    if x[0].size != per:
        raise DataError(
            f"{what} of shape {x.shape[1:]} do not fit the model's input {shape}: resize them to "
            f"{'x'.join(map(str, shape[-2:]))} (image files and folders are resized automatically)"
        )
    return x.reshape(len(x), *shape), names


@register_kind("image_search")
class ImageSearch:
    """Find the images whose codes lie nearest a query's.

    Parameters
    ----------
    encoder : run folder / saved model path, aekit autoencoder, or fitted Embedder
    metric : {"euclidean", "cosine", "hamming"}
        ``"hamming"`` thresholds the code to bits (0.5 for sigmoid codes, 0 otherwise); the code
        size must be a multiple of 8 bits.
    index : {"auto", "exact", "hnsw", "ivfpq"}
        faiss index type; ``"auto"`` is exact up to ``aekit.tasks.retrieval.index.AUTO_EXACT_MAX``
        vectors and approximate above (see :class:`VectorIndex`).
    batch_size : int
        Images encoded at a time.

    Attributes (after ``fit``)
    --------------------------
    index_ : VectorIndex;  model_ : the encoder;  fingerprint_ : SHA-256 of its weights;
    code_dim_ : values (or bits) per code;  binarize_ : the run's pixel threshold, if any.
    """

    def __init__(self, encoder: Any = None, *, metric: str = "euclidean", index: str = "auto", batch_size: int = 1024):
        self.encoder = encoder
        self.metric = metric
        self.index = index
        self.batch_size = batch_size

    # -- encoding --------------------------------------------------------------------------------
    def _setup(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.index not in INDEX_KINDS:
            raise ConfigError(f"index must be one of {INDEX_KINDS}, got {self.index!r}")
        if self.encoder is None:
            raise ConfigError("ImageSearch needs an encoder: a run folder, a saved model or an aekit autoencoder")
        model, binarize, source = resolve_encoder(self.encoder)
        self.model_ = model.cpu().eval()
        self.binarize_ = binarize
        self.source_ = source
        self.fingerprint_ = model_fingerprint(self.model_)
        code_act = getattr(self.model_.config, "code_activation", "linear")
        self.code_threshold_ = 0.5 if code_act == "sigmoid" else 0.0
        self.code_dim_ = int(self.model_.code_dim)
        if self.metric == "hamming" and self.code_dim_ % 8:
            raise ConfigError(
                f"hamming search packs the code into bytes: the model's code has {self.code_dim_} values, "
                "not a multiple of 8; train a model with latent_dim 32, 64 or 128 (and a sigmoid code)"
            )

    def encode(self, images: Any) -> np.ndarray:
        """Codes of ``images``: float32 (n, code_dim), or uint8 bits (n, code_dim) for hamming."""
        self._check_fitted()
        x, _ = as_image_batch(images, self.model_.input_shape)
        return self._codes(x)

    def _codes(self, x: np.ndarray) -> np.ndarray:
        if self.binarize_ is not None:
            x = (x >= self.binarize_).astype(np.float32)  # the run's own preprocessing, as in training
        z = reconstruct_batches(self.model_, x, batch_size=self.batch_size, what="encode").reshape(len(x), -1)
        if self.metric == "hamming":
            return (z > self.code_threshold_).astype(np.uint8)
        return z.astype(np.float32)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ModelFileError(f"this {type(self).__name__} has no collection yet; call fit(images) first")

    # -- building --------------------------------------------------------------------------------
    def fit(self, images: Any, ids: Sequence | np.ndarray | None = None, *, n: int | None = None) -> ImageSearch:
        """Encode ``images`` and build a new index over them.

        ``images``: an array (uint8 or floats in [0, 1], the model's size), a folder or image file
        (resized and converted to the model's channels), ``.npy``/``.npz``, or a data set name
        (``"mnist"``, ``"fashion-mnist:test"``; the training split by default). ``ids`` default to
        file paths for image files and 0..n-1 otherwise; ``n`` keeps the first n images. Where the
        images came from is recorded (``collections_``) so results can be shown later.
        """
        self._setup()
        self.index_ = VectorIndex(self.code_dim_, metric=self.metric, kind=self.index)
        self.collections_ = []
        return self._add(images, ids, n)

    def add(self, images: Any, ids: Sequence | np.ndarray | None = None, *, n: int | None = None) -> ImageSearch:
        """Add images to the collection (ids must be new; file paths or continuing integers by default)."""
        self._check_fitted()
        return self._add(images, ids, n)

    def _add(self, images: Any, ids: Any, n: int | None) -> ImageSearch:
        from .sources import read_images

        x, auto_ids, _, collection = read_images(images, self.model_.input_shape, n=n)
        before = self.size
        paths = isinstance(auto_ids, list)
        self.index_.add(self._codes(x), ids if ids is not None else (auto_ids if paths else None))
        if collection is not None and ids is None:  # integer ids continue after the collection's
            collection.update(offset=None if paths else before, count=len(x))
            self.collections_ = [*getattr(self, "collections_", []), collection]
        return self

    def images(self, ids: Any) -> np.ndarray:
        """The stored images behind search results ``ids`` (any shape), read back from the data sets
        or files the collection was built from; blank (zeros) where an image is gone."""
        from .sources import collection_images

        self._check_fitted()
        return collection_images(self, ids, self.model_.input_shape)

    def query(self, images: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest images of each query: (ids (n, k), distances (n, k)), nearest first.

        Distances: euclidean (L2), 1 - cosine similarity, or differing bits (hamming).
        """
        self._check_fitted()
        if not (isinstance(k, (int, np.integer)) and k >= 1):
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        x, _ = as_image_batch(images, self.model_.input_shape, what="query images")
        return self.index_.search(self._codes(x), int(k))

    def check_encoder(self, encoder: Any) -> None:
        """Raise ModelFileError if ``encoder`` is not the model this index was built with."""
        self._check_fitted()
        other = model_fingerprint(resolve_encoder(encoder)[0])
        if other != self.fingerprint_:
            raise ModelFileError(
                f"this index was built with another model (fingerprint {self.fingerprint_[:12]}, given "
                f"{other[:12]}); its codes would not be comparable: rebuild the index with `aekit index build`"
            )

    @property
    def size(self) -> int:
        return 0 if not hasattr(self, "index_") else int(self.index_.ntotal)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save model + index + ids to folder ``path`` (atomic; see ``aekit.save``)."""
        from ...io import save

        return save(self, path, overwrite=overwrite)

    def _aekit_state(self):
        self._check_fitted()
        meta = model_meta(self.model_)
        config, arrays = self.index_.to_state()
        meta["params"] = {"metric": self.metric, "index": self.index, "batch_size": self.batch_size}
        meta["fitted"] = {
            "fingerprint": self.fingerprint_,
            "source": self.source_,
            "binarize": self.binarize_,
            "code_threshold": self.code_threshold_,
            "code_dim": self.code_dim_,
            "input_shape": list(self.model_.input_shape),
            "index": config,
            "collections": getattr(self, "collections_", []),  # where the images came from (for figures)
        }
        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        for name, arr in arrays.items():
            tensors[f"index.{name}"] = torch.from_numpy(np.ascontiguousarray(arr))
        return meta, tensors

    @classmethod
    def _aekit_from_state(cls, doc, tensors, *, where: str):
        try:
            est = cls(None, **doc["params"])
            fitted = doc["fitted"]
            est.model_ = load_weights(model_from_meta(doc, where), tensors, where).eval()
            est.fingerprint_ = fitted["fingerprint"]
            est.source_ = fitted.get("source")
            est.binarize_ = fitted.get("binarize")
            est.code_threshold_ = float(fitted["code_threshold"])
            est.code_dim_ = int(fitted["code_dim"])
            est.collections_ = list(fitted.get("collections", []))
            arrays = {k[len("index."):]: v.numpy() for k, v in tensors.items() if k.startswith("index.")}
            est.index_ = VectorIndex.from_state(fitted["index"], arrays)
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{where}: aekit.json lacks or mangles {err} for an ImageSearch") from err
        if model_fingerprint(est.model_) != est.fingerprint_:
            raise ModelFileError(f"{where}: the saved model's weights do not match the index's fingerprint")
        est.encoder = est.source_
        return est
