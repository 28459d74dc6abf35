"""``Segmenter``: train a U-Net on image/mask pairs, label every pixel of new images, evaluate."""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ..._utils import seed_everything
from ...errors import ConfigError, DataError, ModelFileError, NotFittedError
from ...models import create_model, load_weights, model_from_meta, model_meta
from ...training import TrainConfig
from ..registry import register_kind
from .augment import Augment
from .data import SegmentationSet, apply_mapping, infer_mapping, load_pairs, parse_mapping
from .metrics import isbi_pixel_error, segmentation_report
from .tiling import predict_tiled
from .training import CropSampler, SegmentationTrainer, WholeImages


def _class_weights(spec, counts: np.ndarray) -> tuple[float, ...] | None:
    if spec is None:
        return None
    k = len(counts)
    if isinstance(spec, str):
        if spec != "balanced":
            try:
                spec = [float(v) for v in spec.split(",")]
            except ValueError:
                raise ConfigError(f"class_weights must be 'balanced' or numbers like '1,3', got {spec!r}") from None
        else:
            # inverse frequency, normalised so the average pixel weighs 1 (scikit-learn's 'balanced')
            freq = np.maximum(counts, 1) / max(counts.sum(), 1)
            return tuple(float(v) for v in 1.0 / (k * freq))
    w = tuple(float(v) for v in spec)
    if len(w) != k:
        raise ConfigError(f"class_weights needs {k} values (one per class), got {len(w)}")
    return w


@register_kind("segmenter")
class Segmenter(BaseEstimator):
    """Semantic segmentation with a U-Net: every pixel gets a class.

    Trains on random crops (augmented: flips, quarter turns, elastic deformation, the same for
    image and mask) with cross-entropy + Dice loss, and predicts images of any size in
    overlapping, blended tiles with mirrored borders.

    Parameters
    ----------
    preset : str, optional
        ``unet`` preset: ``"small"`` (16 .. 256 channels), ``"ronneberger"`` (the paper's 64 ..
        1024), ``"noskip"`` (no skip connections: the ablation). None: 32 .. 512 channels.
    depth, base_width, batch_norm, dropout, decoder : optional
        Overrides of the preset (see :class:`aekit.models.unet.UNetConfig`); None keeps it.
    mapping : str or dict, optional
        Mask value -> class index, e.g. ``{0: 1, 255: 0}`` or ``"0:1,255:0"`` (ISBI 2012:
        membrane = class 1). None: values 0..K-1 are the classes, and {0, 255} masks map
        255 -> 1. Values outside the mapping are an error naming the file.
    class_names : sequence of str, optional
        Names of the classes in index order (for reports and figures).
    positive_class : int or str, default "minority"
        The class reported on its own (``dice_positive``), drawn in figures and used as the
        boundary class of the Rand error; "minority" takes the rarest class in training.
    class_weights : "balanced", sequence of float or None
        Per-class weights of the cross-entropy ("balanced": inverse pixel frequency).
    dice_weight : float, default 1.0
        Weight of the Dice term (0: cross-entropy only).
    crop_size : int, default 256
        Side of the square training crops (images smaller than this are mirror-padded).
    augment : str, default "flip,rot90,elastic"
        Comma list; ``elastic:SIGMA`` sets the displacement std in pixels (default 10); "none".
    epochs, steps_per_epoch, batch_size, lr, weight_decay : training schedule
        Each epoch is ``steps_per_epoch`` Adam steps on ``batch_size`` crops.
    lr_decay : bool, default True
        Cosine decay of the learning rate to 1% over the epochs.
    val_fraction : float, default 0.0
        Share of the training images held out for validation (whole images).
    patience : int, optional
        Early stopping on the validation loss (needs validation images).
    tile_size, tile_overlap : int
        Prediction window and overlap; images that fit in one window (with ``overlap / 2``
        mirrored margins) are predicted whole. ``tile_size=None``: always whole.
    threshold : float, default 0.5
        Binary models: probability above which a pixel is the positive class (class 1).
    seed, threads, verbose, checkpoint : run control
        ``checkpoint`` is a file the Trainer writes after every epoch; ``fit(..., resume=True)``
        continues from it.

    Attributes
    ----------
    model_ : UNet
    mapping_ : dict[int, int]
    num_classes_ : int
    class_names_ : list of str
    positive_class_ : int
    class_counts_ : ndarray of shape (num_classes,)
        Training pixels per class.
    history_ : list of dict
        One record per epoch (losses, seconds).
    train_seconds_ : float
    """

    def __init__(
        self,
        preset: str | None = None,
        *,
        depth: int | None = None,
        base_width: int | None = None,
        batch_norm: bool | None = None,
        dropout: float | None = None,
        decoder: str | None = None,
        mapping: str | dict | None = None,
        class_names: Sequence[str] | None = None,
        positive_class: int | str = "minority",
        class_weights: str | Sequence[float] | None = None,
        dice_weight: float = 1.0,
        crop_size: int = 256,
        augment: str = "flip,rot90,elastic",
        epochs: int = 20,
        steps_per_epoch: int = 50,
        batch_size: int = 4,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_decay: bool = True,
        val_fraction: float = 0.0,
        patience: int | None = None,
        tile_size: int | None = 1024,
        tile_overlap: int = 128,
        threshold: float = 0.5,
        seed: int = 0,
        threads: int | None = None,
        verbose: bool = False,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        self.preset = preset
        self.depth = depth
        self.base_width = base_width
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.decoder = decoder
        self.mapping = mapping
        self.class_names = class_names
        self.positive_class = positive_class
        self.class_weights = class_weights
        self.dice_weight = dice_weight
        self.crop_size = crop_size
        self.augment = augment
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_decay = lr_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.threshold = threshold
        self.seed = seed
        self.threads = threads
        self.verbose = verbose
        self.checkpoint = checkpoint

    # -- data -------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        checks = [
            (self.crop_size >= 8, f"crop_size must be >= 8, got {self.crop_size}"),
            (self.steps_per_epoch >= 1, f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}"),
            (0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (0.0 < self.threshold < 1.0, f"threshold must be in (0, 1), got {self.threshold}"),
            (self.tile_size is None or self.tile_size >= 16, f"tile_size must be >= 16 or None, got {self.tile_size}"),
            (self.tile_overlap >= 0, f"tile_overlap must be >= 0, got {self.tile_overlap}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        Augment.parse(self.augment)

    def read(self, images, masks=None, *, require_masks: bool = True) -> SegmentationSet:
        """Images (folder or arrays) and masks mapped to classes with this segmenter's mapping.

        A :class:`SegmentationSet` (masks already class maps) is returned as it is.
        """
        if isinstance(images, SegmentationSet):
            return images
        imgs, raw, names, mask_labels = load_pairs(images, masks, require_masks=require_masks)
        mapping = getattr(self, "mapping_", None) or parse_mapping(self.mapping)
        if raw is not None and mapping is None:
            mapping = infer_mapping(raw)
        classes = None if raw is None else [apply_mapping(m, mapping, lab) for m, lab in zip(raw, mask_labels)]
        return SegmentationSet(imgs, classes, names, mapping)

    # -- fit --------------------------------------------------------------------------------------
    def fit(self, images, masks=None, *, val: tuple | None = None, resume: bool = False) -> Segmenter:
        """Train on ``images`` and ``masks``: two folders matched by file name, or arrays /
        lists of arrays ((N, H, W) or (N, C, H, W) images in [0, 1] or uint8; (N, H, W) masks).

        A :class:`SegmentationSet` (from :meth:`read`) may be passed as ``images`` alone.
        ``val``: optional ``(images, masks)`` for validation (else ``val_fraction`` of the
        training images). ``resume=True`` continues from ``checkpoint``. Returns ``self``.
        """
        self._check_params()
        if masks is None and not (isinstance(images, SegmentationSet) and images.masks is not None):
            raise DataError("training needs masks: fit(images, masks)")
        self.__dict__.pop("mapping_", None)  # a refit reads masks with this call's mapping
        data = self.read(images, masks)
        self.mapping_ = data.mapping
        k = max(self.mapping_.values()) + 1
        counts = np.bincount(np.concatenate([m.ravel() for m in data.masks]), minlength=k)[:k]
        names = list(self.class_names) if self.class_names else [str(c) for c in range(k)]
        if len(names) != k:
            raise ConfigError(f"class_names has {len(names)} names but the mapping gives {k} classes")
        self.num_classes_, self.class_names_, self.class_counts_ = k, names, counts
        self.positive_class_ = self._resolve_positive(counts, names)
        self.in_channels_ = data.channels

        rng = np.random.default_rng(self.seed)
        if val is not None:
            val_set = self.read(*val)
            train_set = data
        elif self.val_fraction > 0:
            n_val = max(1, round(len(data) * self.val_fraction))
            if n_val >= len(data):
                raise DataError(f"val_fraction {self.val_fraction} leaves no training images out of {len(data)}")
            order = rng.permutation(len(data))
            val_set, train_set = data.subset(sorted(order[:n_val])), data.subset(sorted(order[n_val:]))
        else:
            val_set, train_set = None, data
        if val_set is not None and val_set.channels != self.in_channels_:
            raise DataError(f"validation images have {val_set.channels} channels, training images {self.in_channels_}")
        self.train_names_ = list(train_set.names)
        self.val_names_ = list(val_set.names) if val_set is not None else []

        seed_everything(self.seed)
        overrides = dict(
            depth=self.depth,
            base_width=self.base_width,
            batch_norm=self.batch_norm,
            dropout=self.dropout,
            decoder=self.decoder,
        )
        self.model_ = create_model(
            "unet",
            self.preset,
            input_shape=(self.in_channels_, self.crop_size, self.crop_size),
            num_classes=k,
            class_weights=_class_weights(self.class_weights, counts),
            dice_weight=float(self.dice_weight),
            **overrides,
        )
        sampler = CropSampler(
            train_set.images,
            train_set.masks,
            crop=self.crop_size,
            samples_per_epoch=self.steps_per_epoch * self.batch_size,
            augment=Augment.parse(self.augment),
        )
        val_d = WholeImages(val_set.images, val_set.masks) if val_set is not None else None
        callbacks = [self._cosine_lr] if self.lr_decay else []
        trainer = SegmentationTrainer(
            TrainConfig(
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                weight_decay=self.weight_decay,
                optimizer="adamw" if self.weight_decay else "adam",
                adam_eps=1e-8,
                seed=self.seed,
                threads=self.threads,
                patience=self.patience,
                progress=self.verbose or False,
                precision="fp32",
            ),
            checkpoint=self.checkpoint,
            callbacks=callbacks,
            metadata={"model_name": "unet", "kind": "segmenter"},
        )
        t0 = time.perf_counter()
        history = trainer.fit(self.model_, sampler, val_d, resume=resume)
        self.train_seconds_ = time.perf_counter() - t0
        self.model_.to("cpu").eval()
        self.history_ = list(history.records)
        self.best_epoch_ = history.best_epoch
        return self

    def _cosine_lr(self, trainer, rec) -> None:
        # set the next epoch's rate: lr * (0.01 + 0.99 * (1 + cos(pi * e / E)) / 2)
        e, total = rec["epoch"], self.epochs
        scale = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(e, total) / total))
        for g in trainer.optimizer.param_groups:
            g["lr"] = self.lr * scale

    def _resolve_positive(self, counts: np.ndarray, names: list[str]) -> int:
        p = self.positive_class
        if p == "minority":
            present = np.where(counts > 0, counts, np.iinfo(np.int64).max)
            return int(np.argmin(present))
        if isinstance(p, str) and not p.isdigit():
            if p not in names:
                raise ConfigError(f"positive_class {p!r} is not a class name; classes: {', '.join(names)}")
            return names.index(p)
        p = int(p)
        if not 0 <= p < len(counts):
            raise ConfigError(f"positive_class must be in 0..{len(counts) - 1}, got {p}")
        return p

    # -- inference --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(images, masks) first")

    def _images(self, images) -> tuple[list[np.ndarray], list[str], bool]:
        """Images as a list of (C, H, W) arrays; ``same`` says whether one array can hold them."""
        if isinstance(images, SegmentationSet):
            imgs, names = images.images, images.names
        else:
            imgs, _, names, _ = load_pairs(images, None)
        for im, n in zip(imgs, names):
            if im.shape[0] != self.in_channels_:
                raise DataError(
                    f"image {n} has {im.shape[0]} channel(s) but the model was trained on {self.in_channels_}"
                )
        same = len({im.shape for im in imgs}) == 1 and not isinstance(images, (list, str, os.PathLike))
        return imgs, names, same

    @torch.inference_mode()
    def _proba_list(self, imgs: list[np.ndarray]) -> list[np.ndarray]:
        self.model_.eval()
        return [
            predict_tiled(
                self.model_, torch.from_numpy(np.ascontiguousarray(im)), tile=self.tile_size, overlap=self.tile_overlap
            ).numpy()
            for im in imgs
        ]

    def predict_proba(self, images):
        """Class probabilities per pixel.

        ``images``: a folder, an array (N, H, W) / (N, C, H, W), or a list of (C, H, W) / (H, W)
        arrays. Returns ndarray of shape (N, num_classes, H, W) for an array input, else a list of
        (num_classes, H, W) arrays (images may differ in size).
        """
        self._check_fitted()
        imgs, _, same = self._images(images)
        out = self._proba_list(imgs)
        return np.stack(out) if same else out

    def _classes(self, proba: np.ndarray) -> np.ndarray:
        if self.num_classes_ == 2:
            return (proba[1] > self.threshold).astype(np.int64)
        return proba.argmax(0).astype(np.int64)

    def predict(self, images):
        """Class map per pixel: ndarray (N, H, W) of class indices for arrays, else a list of (H, W)."""
        self._check_fitted()
        imgs, _, same = self._images(images)
        out = [self._classes(p) for p in self._proba_list(imgs)]
        return np.stack(out) if same else out

    def evaluate(self, images, masks=None, *, rand: bool = True) -> dict[str, Any]:
        """Metrics against ``masks`` (raw values, mapped with the training mapping; or pass a
        :class:`SegmentationSet` from :meth:`read` as ``images``): ``pixel_error``,
        ``rand_error`` (ISBI 2012, boundary = the positive class), ``dice`` and ``iou`` per class
        name, ``dice_positive`` / ``iou_positive``, ``mean_dice``, ``confusion`` and more; for two
        classes also ``isbi_pixel_error`` (the challenge's 1 - maximal F-score of the non-positive
        class over thresholds, see :func:`~aekit.tasks.segmentation.metrics.isbi_pixel_error`)."""
        self._check_fitted()
        data = self.read(images, masks)
        if data.masks is None:
            raise DataError("evaluate needs true masks")
        for im, n in zip(data.images, data.names):
            if im.shape[0] != self.in_channels_:
                raise DataError(
                    f"image {n} has {im.shape[0]} channel(s) but the model was trained on {self.in_channels_}"
                )
        probas = self._proba_list(data.images)
        pred = [self._classes(p) for p in probas]
        rep = segmentation_report(
            data.masks,
            pred,
            self.num_classes_,
            class_names=self.class_names_,
            positive_class=self.positive_class_,
            rand=rand,
        )
        if self.num_classes_ == 2:  # the challenge's own pixel error, from the probabilities
            rep.update(isbi_pixel_error(data.masks, [1.0 - p[self.positive_class_] for p in probas],
                                        boundary_class=self.positive_class_))
        rep["names"] = list(data.names)
        return rep

    def score(self, images, masks) -> float:
        """Dice of the positive class (higher is better)."""
        return self.evaluate(images, masks, rand=False)["dice_positive"]

    # -- persistence ------------------------------------------------------------------------------
    def _aekit_state(self):
        self._check_fitted()
        meta = model_meta(self.model_)
        params = self.get_params()
        params["checkpoint"] = None
        params["mapping"] = None
        if params["class_names"] is not None:
            params["class_names"] = list(params["class_names"])
        if params["class_weights"] is not None and not isinstance(params["class_weights"], str):
            params["class_weights"] = list(params["class_weights"])
        meta["params"] = params
        meta["fitted"] = {
            "mapping": [[int(v), int(c)] for v, c in self.mapping_.items()],
            "num_classes": self.num_classes_,
            "class_names": self.class_names_,
            "positive_class": self.positive_class_,
            "class_counts": [int(c) for c in self.class_counts_],
            "in_channels": self.in_channels_,
            "train_names": self.train_names_,
            "val_names": self.val_names_,
            "history": self.history_,
            "best_epoch": self.best_epoch_,
            "train_seconds": self.train_seconds_,
        }
        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        return meta, tensors

    @classmethod
    def _aekit_from_state(cls, doc: dict[str, Any], tensors, *, where: str):
        try:
            params = dict(doc["params"])
            est = cls(**params)
            f = doc["fitted"]
            est.mapping_ = {int(v): int(c) for v, c in f["mapping"]}
            est.num_classes_ = int(f["num_classes"])
            est.class_names_ = list(f["class_names"])
            est.positive_class_ = int(f["positive_class"])
            est.class_counts_ = np.asarray(f["class_counts"], dtype=np.int64)
            est.in_channels_ = int(f["in_channels"])
            est.train_names_ = list(f.get("train_names", []))
            est.val_names_ = list(f.get("val_names", []))
            est.history_ = list(f.get("history", []))
            est.best_epoch_ = f.get("best_epoch")
            est.train_seconds_ = float(f.get("train_seconds", float("nan")))
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{where}: aekit.json lacks or mangles {err} for a {cls.__name__}") from err
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            est.model_ = load_weights(model_from_meta(doc, where), tensors, where)
        if est.model_.config.num_classes != est.num_classes_:
            raise ModelFileError(
                f"{where}: the model has {est.model_.config.num_classes} classes, aekit.json says {est.num_classes_}"
            )
        return est
