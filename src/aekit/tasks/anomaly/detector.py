"""AnomalyDetector: rows of a table, images or fixed-length vectors, scored by reconstruction error.

Sign convention (scikit-learn's, see STYLE.md): ``score_samples`` is *higher for normal* samples,
``decision_function = score_samples - offset_`` is negative for outliers, ``predict`` returns
1 (inlier) / -1 (outlier). ``anomaly_score`` is the plain reconstruction error: *higher = more
anomalous*, the direction ROC-AUC and PyOD use.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import OutlierMixin

from ..._utils import seed_everything
from ...data.noise import parse_corruption
from ...errors import ConfigError, DataError, ModelFileError
from ...models import build_config, model_class
from ...training import TrainConfig, Trainer
from ...training.metrics import reconstruct_batches
from ..embedder import _AutoencoderEstimator
from ..registry import register_kind
from .thresholds import Threshold, fit_threshold, parse_threshold

#: short model names a user may give, with the registered model and fixed options they mean
MODEL_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "dense": ("dense_ae", {}),
    "conv": ("conv_ae", {}),
    "conv1d": ("conv1d_ae", {}),
    "lstm": ("lstm_ae", {"cell": "lstm"}),
    "gru": ("lstm_ae", {"cell": "gru"}),
}
SEQUENCE_MODELS = ("conv1d_ae", "lstm_ae")
ERRORS = ("mse", "normalized", "mahalanobis")


def resolve_model_name(name: str) -> tuple[str, dict[str, Any]]:
    """``"dense"`` -> ``("dense_ae", {})``, ``"gru"`` -> ``("lstm_ae", {"cell": "gru"})``; registered names pass."""
    if name in MODEL_ALIASES:
        return MODEL_ALIASES[name]
    model_class(name)  # UnknownNameError listing the registered models
    return name, {}


def auto_dense_shape(n_features: int) -> tuple[tuple[int, ...], int]:
    """Default hidden widths and code size of the dense detector for ``n_features`` inputs.

    A bottleneck well below the input width (about a quarter of it, 2 to 32 units) so the network
    must model the features' joint structure instead of copying them; hidden widths between.
    """
    d = int(n_features)
    latent = int(min(32, max(2, round(d / 4))))
    h1 = int(min(128, max(16, 2 * d)))
    h2 = int(max(latent * 2, min(64, h1 // 2)))
    return (h1, h2), latent


def check_threshold_params(threshold: str | None, contamination: float | None) -> str:
    """The threshold spec to use: ``contamination`` (if given) wins over ``threshold``."""
    if contamination is not None:
        if not (isinstance(contamination, (int, float)) and 0 < contamination < 0.5):
            raise ConfigError(f"contamination must be a number in (0, 0.5), got {contamination!r}")
        return f"contamination:{contamination}"
    if not isinstance(threshold, str) or not threshold:
        raise ConfigError(
            f"threshold must be a spec string such as 'fpr:0.01' (a false-alarm budget), 'f1', "
            f"'contamination:0.05', 'quantile:0.99', 'std:1' or 'value:3.5', got {threshold!r}"
        )
    return threshold


def check_labels(y, n: int, *, strict: bool = True) -> np.ndarray | None:
    """Anomaly labels of length ``n`` as 0 (normal) / 1 (anomalous); None passes through.

    Accepts 0/1 or booleans (1/True = anomalous, the ODDS/PyOD convention) and scikit-learn's
    outlier convention -1 (outlier) / 1 (inlier). Labels of one value only carry no information
    and are ignored. Anything else is an error when ``strict``; otherwise (a scikit-learn
    pipeline handing class labels to ``fit``) it is ignored with a warning.
    """
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"y must be one 0/1 label per sample ({n}), got shape {y.shape}")
    values = set(np.unique(y).tolist()) if y.dtype != object else {str(v) for v in y}
    if len(values) <= 1:
        return None
    if y.dtype == bool or values <= {0, 1}:
        return y.astype(np.int64)
    if values <= {-1, 1}:
        return (y == -1).astype(np.int64)
    msg = (
        f"y must hold anomaly labels, 0 (normal) / 1 (anomalous) or -1 (outlier) / 1 (inlier); got values "
        f"such as {sorted(map(str, values))[:5]}"
    )
    if strict:
        raise DataError(msg)
    warnings.warn(msg + "; ignoring y", UserWarning, stacklevel=3)
    return None


def build_detector_model(
    name: str,
    shape: tuple[int, ...],
    *,
    fixed: dict[str, Any] | None = None,
    preset: str | None = None,
    hidden=None,
    latent_dim: int | None = None,
    model_options: dict[str, Any] | None = None,
    sparsity: str | None = None,
    output: str = "linear",
    quiet_overcomplete: bool = False,
) -> torch.nn.Module:
    """Build registered model ``name`` for inputs of ``shape`` with the detectors' defaults.

    Dense and conv1d models get a bottleneck sized from the input (:func:`auto_dense_shape`)
    unless ``latent_dim``/``hidden``/a preset say otherwise; the loss is the squared error the
    detectors score with.
    """
    opts = {**(fixed or {}), **(model_options or {})}
    opts["input_shape"] = tuple(int(v) for v in shape)
    fields = model_class(name).Config.__dataclass_fields__
    auto_hidden, auto_latent = auto_dense_shape(math.prod(shape))
    if name == "dense_ae" and preset is None:
        opts.setdefault("hidden", tuple(hidden) if hidden is not None else auto_hidden)
        opts.setdefault("latent_dim", latent_dim if latent_dim is not None else auto_latent)
        opts.setdefault("code_activation", "linear")
    else:
        if hidden is not None and "hidden" in fields:
            opts.setdefault("hidden", hidden if isinstance(hidden, int) else tuple(hidden))
        if latent_dim is not None:
            opts.setdefault("latent_dim", latent_dim)
        elif name == "conv1d_ae" and preset is None:
            opts.setdefault("latent_dim", auto_latent)  # a bottleneck, not a wide feature map
    if sparsity is not None:
        opts["sparsity"] = sparsity
    if "output" in fields:
        opts.setdefault("output", output)
    if "loss" in fields:
        # the score is a squared error, so train what we score -- except a conv net with a sigmoid
        # output: under MSE on mostly-black images it saturates to an all-black output (MNIST, 600
        # steps: 79 squared error per image, mean output 7e-5) where cross-entropy keeps its gradient
        # (8 per image); see tests/test_anomaly_detector.py::test_image_detector_does_not_collapse
        sigmoid_conv = name == "conv_ae" and opts.get("output") == "sigmoid"
        opts.setdefault("loss", "bce" if sigmoid_conv else "mse")
    config = build_config(name, preset, **opts)
    with warnings.catch_warnings():
        if quiet_overcomplete:
            warnings.simplefilter("ignore", UserWarning)
        return model_class(name)(config)


def _too_few_for(spec: str, n: int, min_tail: int = 10) -> bool:
    """Whether ``n`` normal samples are too few to read an ``fpr:Q`` budget off empirically."""
    method, value = parse_threshold(spec)
    return method == "fpr" and value is not None and n * value < min_tail


class _ThresholdMixin:
    """Threshold calibration and the scikit-learn outlier API on top of ``anomaly_score``."""

    def _set_threshold(self, th: Threshold) -> None:
        self.threshold_ = th
        self.offset_ = -float(th.value)

    def score_samples(self, X, **kw) -> np.ndarray:
        """Normality: the negated anomaly score (*higher = more normal*, scikit-learn's convention)."""
        return -self.anomaly_score(X, **kw)

    def decision_function(self, X, **kw) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for anomalies, positive for normal samples."""
        return self.score_samples(X, **kw) - self.offset_

    def predict(self, X, **kw) -> np.ndarray:
        """1 for normal samples, -1 for anomalies (score above the calibrated threshold)."""
        return np.where(self.anomaly_score(X, **kw) > self.threshold_.value, -1, 1)

    def fit_predict(self, X, y=None, **kw) -> np.ndarray:
        return self.fit(X, y, **kw).predict(X)


@register_kind("anomaly_detector")
class AnomalyDetector(_ThresholdMixin, OutlierMixin, _AutoencoderEstimator):
    """Find samples an autoencoder trained on (mostly) normal data cannot reconstruct.

    Works on rows of a table ``(n, d)``, fixed-length signals ``(n, T)`` and images
    ``(n, [C,] H, W)``. Features are standardised on the training data (saved with the model);
    the anomaly score of a sample is its mean squared reconstruction error in that space.

    Parameters
    ----------
    model : str, default "auto"
        ``"dense"`` (the default for tables and vectors), ``"conv"`` (the default for images),
        ``"conv1d"``, ``"lstm"``, ``"gru"`` (a vector of length T read as a T-step sequence), or
        any registered model name.
    hidden, latent_dim : network size for dense models (default: :func:`auto_dense_shape`).
    threshold : str, default "fpr:0.01"
        How the alarm threshold is chosen, on data held out of training (``val_fraction``):
        ``"fpr:Q"`` a false-alarm budget (at most a fraction Q of normal samples flagged;
        an extreme-value tail fit when Q is below what the held-out data resolves),
        ``"f1"`` (needs labelled anomalies: ``fit(X, y)``), ``"quantile:P"``, ``"std:K"``
        (mean + K standard deviations), ``"value:V"``.
    contamination : float, optional
        The known fraction of anomalies in ``X``; flags that fraction of the training data
        (overrides ``threshold``).
    error : {"mahalanobis", "normalized", "mse"}, default "mahalanobis"
        How a sample's reconstruction becomes its score. ``"mse"``: mean squared error.
        ``"normalized"``: each feature's squared error divided by its mean on the training data
        (features the model reconstructs poorly for everyone weigh less). ``"mahalanobis"``:
        the normalised error plus the code's Mahalanobis distance from the training codes — far
        *from* the learnt manifold or far *along* it, the split probabilistic PCA's likelihood
        makes (benchmarks/odds.py: the largest single gain on the ODDS sets).
    noise : str, default "mask:0.3"
        Corrupt training inputs (a denoising autoencoder): ``"mask:0.3"`` zeroes 30% of the
        (standardised) features — sets them to the training mean — so the network must learn how
        features relate instead of copying them; None trains a plain autoencoder.
    epochs : int or "auto"
        ``"auto"``: enough passes for about ``steps`` (default 1,000) optimiser steps (at least
        10, at most 300). On ODDS 1,000 steps scored as well as 3,000 in a third of the time.
    val_fraction : float, default 0.2
        Share of the normal training samples held out for calibration and early stopping. When
        the held-out part is too small to read an ``fpr:Q`` budget off it (fewer than 10 / Q
        samples), the training samples join the calibration (``threshold_.details`` says so).
    Other parameters as :class:`aekit.Embedder`.

    ``fit(X, y=None)``: with 0/1 labels ``y`` (1 = anomalous), training uses only the normal
    samples and the labelled anomalies join the held-out calibration data (needed for "f1").

    Attributes
    ----------
    threshold_ : Threshold (method, value, spec, details)
    offset_ : float, ``-threshold_.value`` (scikit-learn's convention)
    model_, history_, n_features_in_ : as for :class:`aekit.Embedder`
    """

    def __init__(
        self,
        model: str = "auto",
        *,
        preset: str | None = None,
        hidden: tuple[int, ...] | None = None,
        latent_dim: int | None = None,
        model_options: dict[str, Any] | None = None,
        epochs: int | str = "auto",
        steps: int = 1000,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scale: str = "auto",
        noise: str | None = "mask:0.3",
        sparsity: str | None = None,
        error: str = "mahalanobis",
        threshold: str = "fpr:0.01",
        contamination: float | None = None,
        val_fraction: float = 0.2,
        patience: int | None = None,
        seed: int = 0,
        device: str = "auto",
        threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.preset = preset
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.model_options = model_options
        self.epochs = epochs
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.scale = scale
        self.noise = noise
        self.sparsity = sparsity
        self.error = error
        self.threshold = threshold
        self.contamination = contamination
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed
        self.device = device
        self.threads = threads
        self.verbose = verbose

    binarize = None  # the Embedder machinery reads it; detectors never binarise

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "outlier_detector"
        return tags

    # -- model ---------------------------------------------------------------------------------
    def _resolve_model(self) -> tuple[str, str | None]:
        if self.model == "auto":
            return ("conv_ae" if len(self.input_shape_) >= 2 else "dense_ae"), self.preset
        return resolve_model_name(self.model)[0], self.preset

    def _build_model(self) -> torch.nn.Module:
        name, preset = self._resolve_model()
        fixed = resolve_model_name(self.model)[1] if self.model != "auto" else {}
        shape = tuple(self.input_shape_)
        if name in SEQUENCE_MODELS:
            if len(shape) != 1:
                raise ConfigError(f"model {self.model!r} reads vectors as sequences; X must be 2-D (n, T), got {shape}")
            shape = (shape[0], 1)  # a length-T vector is T steps of one channel
        elif name == "conv_ae":
            if len(shape) == 1:
                raise ConfigError("model 'conv' needs images (n, [C,] H, W); use 'dense' or 'conv1d' for tables")
            if len(shape) == 2:
                shape = (1, *shape)
        return build_detector_model(
            name, shape, fixed=fixed, preset=preset, hidden=self.hidden, latent_dim=self.latent_dim,
            model_options=self.model_options, sparsity=self.sparsity,
            output="sigmoid" if self.scale_mode_ in ("none", "minmax") else "linear",
            quiet_overcomplete=bool(self.noise),
        )

    def _noise_spec(self) -> str | None:
        return self.noise

    def _epochs_for(self, n_train: int) -> int:
        if self.epochs == "auto":
            if not (isinstance(self.steps, int) and self.steps >= 1):
                raise ConfigError(f"steps must be a positive integer, got {self.steps!r}")
            per_epoch = max(1, math.ceil(n_train / self.batch_size))
            return int(min(300, max(10, math.ceil(self.steps / per_epoch))))
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ConfigError(f"epochs must be a positive integer or 'auto', got {self.epochs!r}")
        return self.epochs

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Train on ``X`` (mostly normal), then calibrate the threshold on held-out samples.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), (n_samples, T) or (n_samples, [C,] H, W)
        y : ndarray of shape (n_samples,), optional
            0/1 labels (1 = anomalous). Labelled anomalies are kept out of training and used
            for calibration (required for ``threshold="f1"``).

        Returns
        -------
        self
        """
        if self.error not in ERRORS:
            raise ConfigError(f"error must be one of {ERRORS}, got {self.error!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        spec = check_threshold_params(self.threshold, self.contamination)
        X = self._validate(X, reset=True)
        labels = check_labels(y, len(X), strict=False)
        if labels is not None and labels.mean() > 0.5:
            warnings.warn(
                f"{labels.mean():.0%} of the labelled training samples are anomalous; the detector "
                "learns what is normal from the rest, which may be too few",
                UserWarning,
                stacklevel=2,
            )
        normal = np.flatnonzero(labels == 0) if labels is not None else np.arange(len(X))
        if len(normal) < 2:
            raise DataError(f"fit needs at least 2 normal samples; got n_samples = {len(normal)}")
        rng = np.random.default_rng(self.seed)
        normal = rng.permutation(normal)
        n_val = int(round(len(normal) * self.val_fraction)) if len(normal) >= 10 else 0
        val_idx, tr_idx = normal[:n_val], normal[n_val:]
        self._fit_scaler(X[tr_idx])
        seed_everything(self.seed)
        model = self._build_model()
        Xm = self._to_model_space(X).reshape(len(X), *model.input_shape)
        config = TrainConfig(
            epochs=self._epochs_for(len(tr_idx)), batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, optimizer="adamw" if self.weight_decay else "adam",
            seed=self.seed, device=self.device, threads=self.threads, patience=self.patience,
            progress=None if self.verbose else False,
        )
        trainer = Trainer(config, corruption=parse_corruption(self.noise))
        train = (torch.from_numpy(Xm[tr_idx]),) * 2
        val = (torch.from_numpy(Xm[val_idx]),) * 2 if n_val else None
        self.history_ = trainer.fit(model, train, val).records
        self.model_ = model.cpu().eval()
        self.code_dim_ = int(model.code_dim)

        if self.error in ("normalized", "mahalanobis"):
            err = self._errors(Xm[tr_idx])
            self.feature_error_scale_ = np.maximum(err.mean(0), 1e-12 + 1e-6 * err.mean()).astype(np.float32)
        if self.error == "mahalanobis":
            Z = reconstruct_batches(self.model_, Xm[tr_idx], what="encode").reshape(len(tr_idx), -1)
            Z = Z.astype(np.float64)
            center = Z.mean(0)
            cov = np.cov(Z, rowvar=False).reshape(Z.shape[1], Z.shape[1])
            cov += np.eye(len(cov)) * (1e-6 * max(np.trace(cov) / len(cov), 1e-12))
            self.code_center_ = center.astype(np.float32)
            self.code_precision_ = np.linalg.pinv(cov, hermitian=True).astype(np.float32)
        # calibration: held-out normals (+ labelled anomalies); training data if nothing was held out
        anomalies = np.flatnonzero(labels == 1) if labels is not None else np.zeros(0, np.int64)
        if spec.startswith("contamination"):
            cal_idx, cal_on = np.arange(len(X)), "all training samples"
        elif n_val and not _too_few_for(spec, n_val):
            cal_idx, cal_on = np.concatenate([val_idx, anomalies]), "held-out samples"
        elif n_val:
            # a budget finer than the held-out part resolves: its tail is a guess from a few
            # points (ECG5000: thresholds swung 3x between folds); add the training samples
            cal_idx = np.concatenate([val_idx, tr_idx, anomalies])
            cal_on = "held-out and training samples (too few held out for this budget)"
        else:
            cal_idx = np.concatenate([tr_idx, anomalies])
            cal_on = "training samples (too few to hold any out)"
        scores = self._score_model_space(Xm)  # every sample once: calibration and the training check
        cal_labels = labels[cal_idx] if labels is not None else None
        th = fit_threshold(spec, scores[cal_idx], labels=cal_labels)
        self._set_threshold(Threshold(th.method, th.value, th.spec, {**th.details, "calibrated_on": cal_on}))
        self._warn_if_many_flagged(scores[tr_idx])
        return self

    def _warn_if_many_flagged(self, train_scores: np.ndarray) -> None:
        rate = float((train_scores > self.threshold_.value).mean())
        self.train_flag_rate_ = rate
        th = self.threshold_
        budget = th.details.get("target_fpr") if th.method in ("fpr", "alarms_per_day") else None
        if budget is not None and rate > max(10 * float(budget), 0.1):
            warnings.warn(
                f"{rate:.1%} of the training samples score above the threshold (budget {budget:g}): the "
                "training data may be mostly anomalous or too varied for this model; check it, or pass "
                "labels y to keep known anomalies out of training",
                UserWarning,
                stacklevel=3,
            )

    def calibrate(self, X, y=None, *, threshold: str | None = None):
        """Re-choose the threshold on new data without retraining (e.g. a fresh normal period).

        ``threshold`` defaults to the detector's own spec. Returns self.
        """
        self._check_fitted()
        spec = threshold or check_threshold_params(self.threshold, self.contamination)
        X = self._validate(X, reset=False)
        labels = check_labels(y, len(X))
        th = fit_threshold(spec, self.anomaly_score(X), labels=labels)
        self._set_threshold(Threshold(th.method, th.value, th.spec, {**th.details, "calibrated_on": "calibrate()"}))
        return self

    # -- scoring -------------------------------------------------------------------------------
    def _errors(self, Xm: np.ndarray) -> np.ndarray:
        """Squared error per element in model space, flattened: (n, n_elements)."""
        R = reconstruct_batches(self.model_, Xm)
        return ((R - Xm) ** 2).reshape(len(Xm), -1)

    def _score_model_space(self, Xm: np.ndarray) -> np.ndarray:
        own = getattr(self.model_, "anomaly_score", None)
        if callable(own):  # a model that scores samples itself, e.g. a VAE: its negative ELBO (nats)
            with torch.inference_mode():
                parts = [own(torch.from_numpy(Xm[i : i + 2048])).double().numpy() for i in range(0, len(Xm), 2048)]
            return np.concatenate(parts) if parts else np.zeros(0)
        err = self._errors(Xm)
        if self.error == "mse":
            return err.mean(1).astype(np.float64)
        err = err / self.feature_error_scale_.reshape(1, -1)
        if self.error == "normalized":
            return err.mean(1).astype(np.float64)
        # mahalanobis: distance from the learnt manifold (normalised residual) plus distance along
        # it (the code's Mahalanobis distance), as probabilistic PCA's likelihood splits them
        Z = reconstruct_batches(self.model_, Xm, what="encode").reshape(len(Xm), -1).astype(np.float64)
        D = Z - self.code_center_
        along = np.einsum("ij,jk,ik->i", D, self.code_precision_.astype(np.float64), D)
        return (err.sum(1).astype(np.float64) + along) / (err.shape[1] + Z.shape[1])

    def anomaly_score(self, X) -> np.ndarray:
        """Reconstruction error per sample (a model's own score if it has one: a VAE's negative ELBO),
        shape (n_samples,): *higher = more anomalous*."""
        return self._score_model_space(self._model_input(X))

    def explain(self, X) -> np.ndarray:
        """Each feature's share of a sample's reconstruction error.

        Returns an array of X's shape whose entries are >= 0 and sum to 1 per sample (uniform
        for a sample reconstructed perfectly): which features, pixels or time steps the model
        could not reproduce.
        """
        Xm = self._model_input(X)
        err = self._errors(Xm).astype(np.float64)
        if self.error != "mse":
            err = err / self.feature_error_scale_.reshape(1, -1)
        total = err.sum(1, keepdims=True)
        share = np.where(total > 0, err / np.where(total > 0, total, 1), 1.0 / err.shape[1])
        return share.reshape(len(Xm), *self.input_shape_)

    def transform(self, X) -> np.ndarray:
        """Codes of ``X`` (as :class:`aekit.Embedder`)."""
        return super().transform(X)

    def score(self, X, y=None) -> float:  # noqa: D102 - scikit-learn's "higher is better"
        return float(self.score_samples(X).mean())

    # -- persistence ---------------------------------------------------------------------------
    def _aekit_state(self):
        meta, tensors = super()._aekit_state()
        meta["fitted"]["threshold"] = self.threshold_.to_dict()
        meta["fitted"]["train_flag_rate"] = getattr(self, "train_flag_rate_", None)
        if self.error != "mse":
            tensors["score.feature_scale"] = torch.from_numpy(self.feature_error_scale_)
        if self.error == "mahalanobis":
            tensors["score.code_center"] = torch.from_numpy(self.code_center_)
            tensors["score.code_precision"] = torch.from_numpy(self.code_precision_)
        return meta, tensors

    @classmethod
    def _aekit_from_state(cls, doc, tensors, *, where: str):
        est = super()._aekit_from_state(doc, tensors, where=where)
        try:
            est._set_threshold(Threshold.from_dict(doc["fitted"]["threshold"]))
            est.train_flag_rate_ = doc["fitted"].get("train_flag_rate")
            if est.error != "mse":
                est.feature_error_scale_ = tensors["score.feature_scale"].numpy()
            if est.error == "mahalanobis":
                est.code_center_ = tensors["score.code_center"].numpy()
                est.code_precision_ = tensors["score.code_precision"].numpy()
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{where}: aekit.json lacks or mangles the threshold ({err})") from err
        return est

