"""Embedder and Denoiser: scikit-learn estimators around any registered autoencoder."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array

from .._utils import seed_everything
from ..data.noise import parse_corruption
from ..errors import ConfigError, DataError, ModelFileError, NotFittedError
from ..models import build_config, load_weights, model_class, model_from_meta, model_meta
from ..training import TrainConfig, Trainer
from ..training.metrics import reconstruct_batches
from .registry import register_kind


def _varies(spread: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Where a feature's spread is real, not float rounding of a constant (those keep scale 1)."""
    return spread > 1e-6 * np.maximum(np.abs(level), 1.0)


class _AutoencoderEstimator(TransformerMixin, BaseEstimator):
    """Shared machinery: validation, scaling, model building, training, save/load state."""

    _default_noise: str | None = None

    def __init__(
        self,
        model: str = "auto",
        *,
        preset: str | None = None,
        latent_dim: int | None = None,
        model_options: dict[str, Any] | None = None,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-3,
        scale: str = "auto",
        binarize: float | None = None,
        noise: str | None = None,
        sparsity: str | None = None,
        val_fraction: float = 0.1,
        patience: int | None = None,
        seed: int = 0,
        device: str = "auto",
        threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.preset = preset
        self.latent_dim = latent_dim
        self.model_options = model_options
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.scale = scale
        self.binarize = binarize
        self.noise = noise
        self.sparsity = sparsity
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed
        self.device = device
        self.threads = threads
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # torch computes in float32
        tags.non_deterministic = False  # one seed controls initialisation, shuffling and noise
        return tags

    # -- input handling ------------------------------------------------------------------------
    def _validate(self, X, *, reset: bool) -> np.ndarray:
        X = check_array(X, dtype=np.float32, allow_nd=True, ensure_all_finite=True,
                        ensure_min_samples=1, input_name="X")
        if X.ndim > 4:
            raise DataError(f"X must be 2-D (n_samples, n_features) or image batches up to 4-D, got {X.ndim}-D")
        if reset:
            self.n_features_in_ = X.shape[1]
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        else:
            if X.shape[1:] != tuple(self.input_shape_):
                if X.ndim == 2 and len(self.input_shape_) == 1:
                    raise ValueError(
                        f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                        f"{self.input_shape_[0]} features as input"
                    )
                raise DataError(
                    f"X has samples of shape {X.shape[1:]} but {type(self).__name__} was fitted on "
                    f"{tuple(self.input_shape_)}"
                )
        return X

    def _fit_scaler(self, X: np.ndarray) -> None:
        mode = self.scale
        if mode not in ("auto", "none", "standard", "minmax"):
            raise ConfigError(f"scale must be 'auto', 'none', 'standard' or 'minmax', got {mode!r}")
        if mode == "auto":
            mode = "none" if (X.min() >= 0 and X.max() <= 1) else "standard"
        axis = 0
        if mode == "standard":
            X64 = X.astype(np.float64)  # float32 sums leave ~1e-9 "spread" on constant features
            center = X64.mean(axis=axis, keepdims=True)[0]
            std = X64.std(axis=axis, keepdims=True)[0]
            self.scale_center_ = center.astype(np.float32)
            self.scale_factor_ = np.where(_varies(std, center), std, 1.0).astype(np.float32)
        elif mode == "minmax":
            lo, hi = X.min(axis=axis, keepdims=True)[0], X.max(axis=axis, keepdims=True)[0]
            self.scale_center_ = lo
            spread = hi.astype(np.float64) - lo
            self.scale_factor_ = np.where(_varies(spread, lo.astype(np.float64)), spread, 1.0).astype(np.float32)
        else:
            self.scale_center_ = np.zeros(X.shape[1:], np.float32)
            self.scale_factor_ = np.ones(X.shape[1:], np.float32)
        self.scale_mode_ = mode

    def _to_model_space(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.scale_center_) / self.scale_factor_
        if self.binarize is not None:
            Z = (Z >= self.binarize).astype(np.float32)
        return np.ascontiguousarray(Z, dtype=np.float32)

    def _from_model_space(self, Z: np.ndarray) -> np.ndarray:
        return (Z * self.scale_factor_ + self.scale_center_).astype(np.float32)

    # -- model -------------------------------------------------------------------------------
    def _resolve_model(self) -> tuple[str, str | None]:
        return ("dense_ae" if self.model == "auto" else self.model), self.preset

    def _build_model(self) -> torch.nn.Module:
        name, preset = self._resolve_model()
        opts = dict(self.model_options or {})
        shape = self.input_shape_
        if name == "conv_ae" and len(shape) == 2:
            shape = (1, *shape)  # (H, W) images: one channel
        opts["input_shape"] = shape
        opts.setdefault("latent_dim", self.latent_dim)
        if self.sparsity is not None:
            opts["sparsity"] = self.sparsity
        fields = model_class(name).Config.__dataclass_fields__
        if "output" in fields and "output" not in opts:
            opts["output"] = "sigmoid" if self.scale_mode_ in ("none", "minmax") else "linear"
        config = build_config(name, preset, **opts)
        with warnings.catch_warnings():
            if self._noise_spec():
                warnings.simplefilter("ignore", UserWarning)  # wide codes are fine for denoising
            return model_class(name)(config)

    def _noise_spec(self) -> str | None:
        return self.noise if self.noise is not None else self._default_noise

    def fit(self, X, y=None):
        """Train the autoencoder on ``X`` (and, for a Denoiser, clean targets ``y``).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features) or (n_samples, [C,] H, W)
        y : ignored by Embedder; clean targets of X's shape for Denoiser (optional)

        Returns
        -------
        self
        """
        X = self._validate(X, reset=True)
        targets = None
        if y is not None and self._uses_targets:
            y = check_array(y, dtype=np.float32, allow_nd=True, ensure_2d=False, input_name="y")
        if y is not None and self._uses_targets and y.ndim == X.ndim:
            # clean targets of X's shape; 1-D label vectors (scikit-learn pipelines) are ignored
            targets = y
            if targets.shape != X.shape:
                raise DataError(f"y (clean targets) must have X's shape {X.shape}, got {targets.shape}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        self._fit_scaler(X if targets is None else targets)
        seed_everything(self.seed)
        model = self._build_model()
        Xm = self._to_model_space(X).reshape(len(X), *model.input_shape)
        Tm = Xm if targets is None else self._to_model_space(targets).reshape(Xm.shape)
        n_val = int(len(X) * self.val_fraction) if len(X) >= 20 else 0
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(X))
        tr, va = order[n_val:], order[:n_val]
        corruption = parse_corruption(self._noise_spec()) if targets is None else None
        config = TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
            device=self.device, threads=self.threads, patience=self.patience,
            progress=None if self.verbose else False,
        )
        trainer = Trainer(config, corruption=corruption)
        train = (torch.from_numpy(Xm[tr]), torch.from_numpy(Tm[tr]))
        val = (torch.from_numpy(Xm[va]), torch.from_numpy(Tm[va])) if n_val else None
        self.history_ = trainer.fit(model, train, val).records
        self.model_ = model.cpu().eval()
        self.code_dim_ = int(model.code_dim)
        return self

    _uses_targets = False

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

    # -- inference -----------------------------------------------------------------------------
    def _model_input(self, X) -> np.ndarray:
        self._check_fitted()
        X = self._validate(X, reset=False)
        return self._to_model_space(X).reshape(len(X), *self.model_.input_shape)

    def transform(self, X) -> np.ndarray:
        """Codes of ``X``: ndarray of shape (n_samples, code_dim)."""
        Xm = self._model_input(X)
        Z = reconstruct_batches(self.model_, Xm, what="encode")
        return Z.reshape(len(Z), -1)

    def inverse_transform(self, Z) -> np.ndarray:
        """Decode codes of shape (n_samples, code_dim) back to the input space."""
        self._check_fitted()
        Z = check_array(Z, dtype=np.float32, input_name="Z")
        if Z.shape[1] != self.code_dim_:
            raise DataError(f"codes must have {self.code_dim_} columns, got {Z.shape[1]}")
        code_shape = self.model_.code_shape
        with torch.inference_mode():
            out = self.model_.activate(self.model_.decode(torch.from_numpy(Z).reshape(len(Z), *code_shape)))
        return self._from_model_space(out.numpy().reshape(len(Z), *self.input_shape_))

    def reconstruct(self, X) -> np.ndarray:
        """Reconstructions of ``X`` in its own space and shape."""
        Xm = self._model_input(X)
        R = reconstruct_batches(self.model_, Xm)
        return self._from_model_space(R.reshape(len(R), *self.input_shape_))

    def reconstruction_error(self, X) -> np.ndarray:
        """Per-sample mean squared reconstruction error in the model's (scaled) space.

        Returns ndarray of shape (n_samples,); higher means the sample is reconstructed worse.
        """
        Xm = self._model_input(X)
        R = reconstruct_batches(self.model_, Xm)
        return ((R - Xm) ** 2).reshape(len(Xm), -1).mean(1)

    def score(self, X, y=None) -> float:
        """Negative mean reconstruction error (higher is better, as scikit-learn expects)."""
        return -float(self.reconstruction_error(X).mean())

    # -- persistence -----------------------------------------------------------------------------
    def _aekit_state(self):
        self._check_fitted()
        meta = model_meta(self.model_)
        meta["params"] = self.get_params()
        meta["fitted"] = {
            "input_shape": list(self.input_shape_),
            "n_features_in": int(self.n_features_in_),
            "scale_mode": self.scale_mode_,
            "code_dim": self.code_dim_,
            "history": self.history_,
        }
        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        tensors["scale.center"] = torch.from_numpy(np.asarray(self.scale_center_, np.float32))
        tensors["scale.factor"] = torch.from_numpy(np.asarray(self.scale_factor_, np.float32))
        return meta, tensors

    @classmethod
    def _aekit_from_state(cls, doc, tensors, *, where: str):
        try:
            est = cls(**doc["params"])
            fitted = doc["fitted"]
            est.input_shape_ = tuple(fitted["input_shape"])
            est.n_features_in_ = fitted["n_features_in"]
            est.scale_mode_ = fitted["scale_mode"]
            est.code_dim_ = fitted["code_dim"]
            est.history_ = fitted.get("history", [])
            est.scale_center_ = tensors["scale.center"].numpy()
            est.scale_factor_ = tensors["scale.factor"].numpy()
        except (KeyError, TypeError) as err:
            raise ModelFileError(f"{where}: aekit.json lacks or mangles {err} for a {cls.__name__}") from err
        est.model_ = load_weights(model_from_meta(doc, where), tensors, where)
        if math.prod(est.model_.input_shape) != math.prod(est.input_shape_):
            raise ModelFileError(f"{where}: the model's input shape does not match the saved input_shape")
        return est


@register_kind("embedder")
class Embedder(_AutoencoderEstimator):
    """Compress data to an autoencoder's code, and back: a non-linear PCA.

    Parameters
    ----------
    model : str, default "auto"
        Registered model name (see ``aekit.list_models()``); "auto" is ``dense_ae``.
    preset : str, optional
        Model preset, e.g. ``"tutorial"`` or ``"hinton2006"``.
    latent_dim : int, optional
        Size of the code (overrides the preset).
    model_options : dict, optional
        Further model config fields (e.g. ``{"hidden": (256, 64)}``).
    epochs, batch_size, lr : training settings (Adam).
    scale : {"auto", "none", "standard", "minmax"}
        ``"auto"`` keeps data already in [0, 1] (sigmoid output, BCE loss) and standardises
        anything else (linear output, MSE loss). The scaling is saved with the model.
    binarize : float, optional
        Threshold pixels (after scaling) to {0, 1}, as the tutorial does.
    noise : str, optional
        Corrupt inputs while training (``"gaussian:0.3"``, ``"mask:0.3"``, ...).
    sparsity : str, optional
        Penalty on the code, ``"l1:1e-4"`` or ``"kl:0.05:1e-3"``.
    val_fraction : float, default 0.1
        Held out of ``fit``'s data for the validation loss (and early stopping).
    patience : int, optional
        Early stopping after this many epochs without validation improvement.
    seed : int, default 0
        Seeds initialisation, shuffling and noise: the same seed gives the same model.

    Attributes
    ----------
    model_ : the trained ``torch.nn.Module``
    history_ : list of dict, one per epoch
    code_dim_ : int
    n_features_in_ : int
    """


@register_kind("denoiser")
class Denoiser(_AutoencoderEstimator):
    """Remove noise: trained on corrupted inputs against clean targets.

    ``fit(X)`` corrupts clean ``X`` with ``noise`` (default ``"seed"``: the tutorial's +0.2 shift
    plus Gaussian σ 0.2, clipped to [0, 1]), fresh each epoch; ``fit(X_noisy, X_clean)`` (``y``
    of X's shape) learns from pairs you have; a 1-D ``y`` (labels in a pipeline) is ignored.
    ``transform(X_noisy)`` returns the cleaned data (same shape).
    Parameters as :class:`Embedder`; the default model is the tutorial's ``conv_ae`` ``"wide"``
    denoiser for images and ``dense_ae`` for 2-D tables.
    """

    _default_noise = "seed"
    _uses_targets = True

    def _resolve_model(self) -> tuple[str, str | None]:
        if self.model != "auto":
            return self.model, self.preset
        if len(self.input_shape_) >= 2:  # images: the tutorial's wide convolutional denoiser
            return "conv_ae", self.preset or "wide"
        return "dense_ae", self.preset

    def transform(self, X) -> np.ndarray:
        """Denoised ``X``: same shape as ``X``."""
        return self.reconstruct(X)

    def inverse_transform(self, Z):  # a denoiser's output lives in input space already
        raise AttributeError("Denoiser has no inverse_transform; transform returns clean data")
