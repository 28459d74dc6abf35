"""Fine-tune a pretrained encoder on a few labels: a scikit-learn classifier, and the
frozen-code baselines (logistic regression / k-nearest neighbours on the codes)."""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array
from torch import Tensor, nn

from ..._utils import seed_everything
from ...data.noise import parse_corruption
from ...errors import ConfigError, DataError, ModelFileError, NotFittedError, TrainingDivergedError
from ...models import load_weights, model_from_config, model_from_meta, model_meta
from ...models.registry import config_to_dict
from ...training import TrainConfig, Trainer
from ..registry import register_kind
from .stacking import _with_config

#: gradient steps of the default fixed schedule (epochs=None), whatever the number of labels
AUTO_STEPS = 800
#: steps between two records (and progress lines) of the unlabelled phase
SEMI_BLOCK = 100


def _load_encoder(encoder) -> nn.Module:
    """An autoencoder instance, or one loaded from a run / saved-model folder."""
    if isinstance(encoder, nn.Module):
        if not hasattr(encoder, "encode"):
            raise ConfigError(f"encoder must be an aekit autoencoder (with .encode), got {type(encoder).__name__}")
        return encoder
    if isinstance(encoder, (str, Path)):
        from ...io import load  # late: io imports the task registry

        return load(encoder, kind="model")
    raise ConfigError(
        "encoder must be a pretrained aekit autoencoder or the path of a run / saved model folder, "
        f"got {type(encoder).__name__}"
    )


def _model_input(X, input_shape: tuple[int, ...], who: str) -> np.ndarray:
    """``X`` as float32 of shape (n, *input_shape); flat rows of the right length are reshaped."""
    X = check_array(X, dtype=np.float32, allow_nd=True, ensure_all_finite=True, input_name="X")
    want = math.prod(input_shape)
    if math.prod(X.shape[1:]) != want:
        raise DataError(
            f"X has samples of shape {X.shape[1:]} ({math.prod(X.shape[1:])} values) but the {who} "
            f"expects {tuple(input_shape)} ({want} values); use data of the encoder's input size"
        )
    return np.ascontiguousarray(X.reshape(len(X), *input_shape))


def _encoder_parameters(ae: nn.Module) -> list[nn.Parameter]:
    """The parameters that ``ae.encode`` uses (found by a backward pass on a dummy batch)."""
    was = ae.training
    ae.eval()
    ae.zero_grad(set_to_none=True)
    p0 = next(ae.parameters())
    with torch.enable_grad():
        ae.encode(torch.zeros((2, *ae.input_shape), device=p0.device)).float().sum().backward()
    used = [p for p in ae.parameters() if p.grad is not None]
    ae.zero_grad(set_to_none=True)
    ae.train(was)
    return used


class _Standardize(nn.Module):
    """``(z - mean) / std`` with statistics fixed at the start of fine-tuning.

    Autoencoder codes come at any scale (a greedy stack's can have std 0.2); a head on
    standardised codes learns at the same pace whatever the encoder, frozen or not.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, z: Tensor) -> Tensor:
        return (z - self.mean) / self.std


class _ClassifierNet(nn.Module):
    """encoder (the autoencoder's ``encode``) -> standardise -> [dropout] -> head MLP -> logits."""

    def __init__(self, ae: nn.Module, n_classes: int, head_hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.ae = ae
        self.input_shape = tuple(ae.input_shape)
        sizes = [int(ae.code_dim), *head_hidden, n_classes]
        layers: list[nn.Module] = [_Standardize(sizes[0])]
        layers += [nn.Dropout(dropout)] if dropout else []
        for j, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if j < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.head = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.ae.encode(x).flatten(1))  # (B, *input_shape) -> (B, n_classes)

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch
        logits = self(x).float()
        ce = F.cross_entropy(logits, y)
        return {"loss": ce, "accuracy": (logits.argmax(1) == y).float().mean()}


class _FinetuneTrainer(Trainer):
    """The Trainer with AdamW over two parameter groups: the head at ``lr``, the encoder at
    ``lr * encoder_lr_scale``. Frozen parameters get no gradient, so AdamW (weight decay
    included) leaves them exactly as they are."""

    def __init__(self, config: TrainConfig, *, head: list, encoder: list, encoder_lr_scale: float, **kw) -> None:
        super().__init__(config, **kw)
        self._groups = (head, encoder, encoder_lr_scale)

    def _setup(self, model: nn.Module) -> None:
        super()._setup(model)
        head, encoder, scale = self._groups
        cfg = self.config
        groups = [{"params": head, "lr": cfg.lr}, {"params": encoder, "lr": cfg.lr * scale}]
        fused = {"fused": True} if self.device.type in ("cpu", "cuda") else {}
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, **fused)


@register_kind("pretrained_classifier")
class PretrainedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier built on a pretrained autoencoder's encoder, fine-tuned on a few labels.

    The encoder (``encoder.encode``) is copied, a head (``head_hidden`` ReLU layers, then a
    linear layer to the classes) is put on its code, and both are trained with cross-entropy
    (AdamW). The passed encoder itself is never modified.

    Parameters
    ----------
    encoder : autoencoder, str or Path
        A pretrained aekit autoencoder (e.g. ``pretrain(...).model``), or a run / saved folder.
    from_scratch : bool, default False
        Re-initialise the encoder (same architecture, seeded): the random-initialisation baseline.
    head_hidden : tuple of int, default ()
        Hidden widths of the head; () is a linear (softmax) head on the code.
    freeze_encoder : bool, default False
        Keep the encoder's weights fixed (only the head learns) ...
    unfreeze_after : int, optional
        ... until this many epochs have passed; then the whole network is fine-tuned.
    encoder_lr_scale : float, default 0.1
        The encoder learns at ``lr * encoder_lr_scale`` (pretrained features change slowly).
    epochs : int, optional
        Passes over the labelled set. None: a fixed schedule of about 800 gradient steps
        (``AUTO_STEPS``) whatever the number of labels; with 10 labels per class there is no
        validation split to stop early on, so the schedule is fixed, not tuned per run.
    batch_size, lr, weight_decay : AdamW settings (decoupled weight decay).
    dropout : float, default 0.2
        On the code before the head and, for models that have the option (``dense_ae``), on the
        encoder's input and hidden layers while fine-tuning.
    augment : str, optional
        A corruption applied to the labelled inputs, fresh every step (``"shift:2"``: random
        translations of up to 2 pixels; see :func:`aekit.data.parse_corruption`).
    unlabelled_steps : int, default 2000
        Only when ``fit`` gets ``X_unlabelled``: after the supervised schedule, this many steps
        that also learn from the unlabelled images by confident pseudo-labels (FixMatch, Sohn et
        al. 2020): each step the network classifies a batch of clean unlabelled images; those it
        is at least ``threshold`` sure of become targets for a strongly corrupted copy of the same
        images (``strong_augment``), added to the labelled cross-entropy with weight
        ``unlabelled_weight``. The head learns at ``lr / 3`` in this phase, the encoder at
        ``lr * encoder_lr_scale`` (unless frozen).
    unlabelled_ratio : int, default 4
        Unlabelled images per labelled image in each step.
    threshold : float, default 0.95
        Confidence a pseudo-label needs to count.
    unlabelled_weight : float, default 1.0
    strong_augment : str, default "shift:2+mask:0.3"
        The corruption the pseudo-labelled images are shown with.
    seed : int, default 0
        Seeds the head, shuffling, dropout and augmentation (and the encoder with from_scratch).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    model_ : the fine-tuned network (``model_.ae`` the encoder's autoencoder, ``model_.head``)
    n_epochs_ : int
    history_ : list of dict
    n_features_in_ : int
    """

    def __init__(
        self,
        encoder=None,
        *,
        from_scratch: bool = False,
        head_hidden: tuple[int, ...] = (),
        freeze_encoder: bool = False,
        unfreeze_after: int | None = None,
        encoder_lr_scale: float = 0.1,
        epochs: int | None = None,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        dropout: float = 0.2,
        augment: str | None = "shift:2",
        unlabelled_steps: int = 2000,
        unlabelled_ratio: int = 4,
        threshold: float = 0.95,
        unlabelled_weight: float = 1.0,
        strong_augment: str | None = "shift:2+mask:0.3",
        seed: int = 0,
        threads: int | None = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.encoder = encoder
        self.from_scratch = from_scratch
        self.head_hidden = head_hidden
        self.freeze_encoder = freeze_encoder
        self.unfreeze_after = unfreeze_after
        self.encoder_lr_scale = encoder_lr_scale
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.augment = augment
        self.unlabelled_steps = unlabelled_steps
        self.unlabelled_ratio = unlabelled_ratio
        self.threshold = threshold
        self.unlabelled_weight = unlabelled_weight
        self.strong_augment = strong_augment
        self.seed = seed
        self.threads = threads
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (self.encoder_lr_scale > 0 and math.isfinite(self.encoder_lr_scale)):
            raise ConfigError(f"encoder_lr_scale must be > 0, got {self.encoder_lr_scale}")
        if self.unfreeze_after is not None:
            if not self.freeze_encoder:
                raise ConfigError("unfreeze_after needs freeze_encoder=True (there is nothing to unfreeze)")
            if self.unfreeze_after < 1:
                raise ConfigError(f"unfreeze_after must be >= 1 epoch, got {self.unfreeze_after}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1 or None, got {self.epochs}")
        if any(int(h) < 1 for h in self.head_hidden):
            raise ConfigError(f"head_hidden widths must be >= 1, got {self.head_hidden}")
        if int(self.unlabelled_steps) < 1:
            raise ConfigError(f"unlabelled_steps must be >= 1, got {self.unlabelled_steps}")
        if int(self.unlabelled_ratio) < 1:
            raise ConfigError(f"unlabelled_ratio must be >= 1, got {self.unlabelled_ratio}")
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold}")
        if not (self.unlabelled_weight >= 0 and math.isfinite(self.unlabelled_weight)):
            raise ConfigError(f"unlabelled_weight must be >= 0, got {self.unlabelled_weight}")

    def _build_autoencoder(self) -> nn.Module:
        if self.encoder is None:
            raise ConfigError("PretrainedClassifier needs an encoder: a pretrained autoencoder or a run folder")
        ae = copy.deepcopy(_load_encoder(self.encoder)).cpu()
        if self.from_scratch:  # the same architecture, freshly initialised
            seed_everything(self.seed)
            ae = model_from_config(ae.model_name, config_to_dict(ae.config))
        if self.dropout and "dropout" in type(ae.config).__dataclass_fields__:
            ae = _with_config(ae, dropout=float(self.dropout))
        return ae

    def fit(self, X, y, X_unlabelled=None):
        """Fine-tune on labelled ``X`` (n_samples, *input_shape) or flat rows, labels ``y``.

        ``X_unlabelled`` (optional, same sample shape): images without labels to learn from by
        confident pseudo-labels after the supervised schedule (see ``unlabelled_steps``).

        Returns
        -------
        self
        """
        self._check_params()
        ae = self._build_autoencoder()
        Xm = _model_input(X, tuple(ae.input_shape), "encoder")
        Xu = None
        if X_unlabelled is not None:
            if len(X_unlabelled) == 0:
                raise DataError("X_unlabelled is empty; pass unlabelled images or None")
            Xu = _model_input(X_unlabelled, tuple(ae.input_shape), "encoder")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(Xm):
            raise DataError(f"y must be 1-D with one label per sample: X has {len(Xm)} samples, y shape {y.shape}")
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise DataError(f"y holds a single class ({self.classes_[0]!r}); a classifier needs at least 2")
        self.n_features_in_ = int(math.prod(Xm.shape[1:]))
        self.input_shape_ = tuple(int(s) for s in ae.input_shape)
        seed_everything(self.seed)
        net = _ClassifierNet(ae, len(self.classes_), tuple(int(h) for h in self.head_hidden), float(self.dropout))
        with torch.inference_mode():  # the code's statistics on the labelled inputs, before training
            ae.eval()
            z = torch.cat([ae.encode(torch.from_numpy(Xm[i : i + 2048])).flatten(1) for i in range(0, len(Xm), 2048)])
            net.head[0].mean.copy_(z.mean(0))
            net.head[0].std.copy_(z.std(0, correction=0).clamp_min(1e-4 * max(float(z.std()), 1e-6)))
        enc = _encoder_parameters(ae)
        enc_ids = {id(p) for p in enc}
        head = [p for p in net.head.parameters()]
        if self.freeze_encoder:
            for p in enc:
                p.requires_grad_(False)
        for p in ae.parameters():  # decoder weights play no part in classification
            if id(p) not in enc_ids:
                p.requires_grad_(False)
        steps_per_epoch = math.ceil(len(Xm) / self.batch_size)
        epochs = self.epochs or max(1, math.ceil(AUTO_STEPS / steps_per_epoch))

        def unfreeze(trainer, rec) -> None:
            if self.unfreeze_after is not None and rec["epoch"] == self.unfreeze_after:
                for p in enc:
                    p.requires_grad_(True)

        config = TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr, optimizer="adamw",
                             weight_decay=self.weight_decay, seed=self.seed, threads=self.threads,
                             device=self.device, precision="fp32", progress=None if self.verbose else False)
        trainer = _FinetuneTrainer(config, head=head, encoder=enc, encoder_lr_scale=self.encoder_lr_scale,
                                   corruption=parse_corruption(self.augment), callbacks=[unfreeze])
        train = (torch.from_numpy(Xm), torch.from_numpy(y_idx.astype(np.int64)))
        self.history_ = trainer.fit(net, train).records
        if Xu is not None:
            trainable = [p for p in enc if p.requires_grad]
            self.history_ += self._learn_from_unlabelled(net, head, trainable, train, torch.from_numpy(Xu),
                                                         first_epoch=epochs + 1)
        for p in net.parameters():
            p.requires_grad_(True)
        self.model_ = net.cpu().eval()
        self.n_epochs_ = epochs
        return self

    def _learn_from_unlabelled(self, net: _ClassifierNet, head: list, encoder: list,
                               train: tuple[Tensor, Tensor], Xu: Tensor, *, first_epoch: int) -> list[dict]:
        """The pseudo-label phase: ``unlabelled_steps`` steps of labelled cross-entropy plus the
        cross-entropy of strongly corrupted unlabelled images against the network's own confident
        predictions on their clean versions. Returns one record per ``SEMI_BLOCK`` steps."""
        from ...training.progress import make_progress

        device = next(net.parameters()).device  # where the supervised phase left it (threads set there too)
        gen = torch.Generator().manual_seed(self.seed + 7)
        weak, strong = parse_corruption(self.augment), parse_corruption(self.strong_augment)
        groups = [{"params": head, "lr": self.lr / 3}]
        if encoder:
            groups.append({"params": encoder, "lr": self.lr * self.encoder_lr_scale})
        opt = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        Xl, yl = train
        B, Bu = self.batch_size, self.batch_size * int(self.unlabelled_ratio)
        steps = int(self.unlabelled_steps)
        blocks = math.ceil(steps / SEMI_BLOCK)
        records: list[dict] = []
        sums = {"loss": 0.0, "labelled_loss": 0.0, "unlabelled_loss": 0.0, "confident": 0.0}
        n_in_block, t0 = 0, time.perf_counter()
        bar = make_progress(None if self.verbose else False)
        with bar:
            for step in range(steps):
                bl = torch.randint(len(Xl), (min(B, len(Xl)),), generator=gen)
                bu = torch.randint(len(Xu), (Bu,), generator=gen)
                xl = Xl[bl]
                xl = weak(xl, gen) if weak is not None else xl
                xu = Xu[bu]
                xs = strong(xu, gen) if strong is not None else xu
                xl, xu, xs, yb = xl.to(device), xu.to(device), xs.to(device), yl[bl].to(device)
                with torch.no_grad():  # targets: the network's own confident calls on clean images
                    net.eval()
                    conf, pseudo = F.softmax(net(xu).float(), 1).max(1)
                    net.train()
                keep = (conf >= self.threshold).float()
                logits = net(torch.cat([xl, xs])).float()
                sup = F.cross_entropy(logits[: len(xl)], yb)
                unsup = (F.cross_entropy(logits[len(xl):], pseudo, reduction="none") * keep).mean()
                loss = sup + self.unlabelled_weight * unsup
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                lval = float(loss.detach())
                if not math.isfinite(lval):
                    raise TrainingDivergedError(
                        f"the loss became {lval} at unlabelled step {step + 1}; lower lr or unlabelled_weight")
                for k, v in (("loss", lval), ("labelled_loss", float(sup.detach())),
                             ("unlabelled_loss", float(unsup.detach())),
                             ("confident", float(keep.mean()))):
                    sums[k] += v
                n_in_block += 1
                block = step // SEMI_BLOCK + 1
                seconds = time.perf_counter() - t0
                bar.batch(first_epoch + block - 1, first_epoch + blocks - 1, step % SEMI_BLOCK + 1,
                          min(SEMI_BLOCK, steps - (block - 1) * SEMI_BLOCK), sums["loss"] / n_in_block,
                          n_in_block * (len(xl) + 2 * Bu) / max(seconds, 1e-9))
                if n_in_block == SEMI_BLOCK or step == steps - 1:
                    rec = {"epoch": first_epoch + block - 1, "phase": "unlabelled", "step": step + 1,
                           **{f"train_{k}": v / n_in_block for k, v in sums.items()},
                           "samples_per_s": n_in_block * (len(xl) + 2 * Bu) / max(seconds, 1e-9),
                           "seconds": seconds}
                    records.append(rec)
                    bar.epoch_done(rec, first_epoch + blocks - 1)
                    sums = dict.fromkeys(sums, 0.0)
                    n_in_block, t0 = 0, time.perf_counter()
        net.eval()
        return records

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")

    @torch.inference_mode()
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities: ndarray of shape (n_samples, n_classes), columns in ``classes_`` order."""
        self._check_fitted()
        Xm = torch.from_numpy(_model_input(X, self.input_shape_, type(self).__name__))
        self.model_.eval()
        out = [F.softmax(self.model_(Xm[i : i + 2048]).float(), 1) for i in range(0, len(Xm), 2048)]
        return torch.cat(out).numpy()

    def predict(self, X) -> np.ndarray:
        """Most probable class of each sample: ndarray of shape (n_samples,)."""
        self._check_fitted()
        return self.classes_[self.predict_proba(X).argmax(1)]

    @torch.inference_mode()
    def transform(self, X) -> np.ndarray:
        """The fine-tuned encoder's codes: ndarray of shape (n_samples, code_dim)."""
        self._check_fitted()
        Xm = torch.from_numpy(_model_input(X, self.input_shape_, type(self).__name__))
        ae = self.model_.ae.eval()
        return torch.cat([ae.encode(Xm[i : i + 2048]).flatten(1) for i in range(0, len(Xm), 2048)]).numpy()

    # -- persistence (aekit.save / aekit.load) ---------------------------------------------------
    def _aekit_state(self):
        self._check_fitted()
        meta = model_meta(self.model_.ae)
        params = self.get_params()
        enc = params.pop("encoder")
        params["head_hidden"] = list(params["head_hidden"])
        meta["params"] = params
        meta["fitted"] = {
            "encoder_source": str(enc) if isinstance(enc, (str, Path)) else None,
            "classes": self.classes_.tolist(),
            "input_shape": list(self.input_shape_),
            "n_epochs": self.n_epochs_,
            "history": self.history_,
        }
        tensors = {f"model.{k}": v for k, v in self.model_.ae.state_dict().items()}
        tensors.update({f"head.{k}": v for k, v in self.model_.head.state_dict().items()})
        return meta, tensors

    @classmethod
    def _aekit_from_state(cls, doc: dict[str, Any], tensors, *, where: str):
        try:
            params = dict(doc["params"])
            params["head_hidden"] = tuple(params["head_hidden"])
            est = cls(**params)
            fitted = doc["fitted"]
            est.classes_ = np.asarray(fitted["classes"])
            est.input_shape_ = tuple(fitted["input_shape"])
            est.n_epochs_ = fitted["n_epochs"]
            est.history_ = fitted.get("history", [])
        except (KeyError, TypeError) as err:
            raise ModelFileError(f"{where}: aekit.json lacks or mangles {err} for a {cls.__name__}") from err
        ae = load_weights(model_from_meta(doc, where), tensors, where)
        net = _ClassifierNet(ae, len(est.classes_), est.head_hidden, float(est.dropout))
        try:
            net.head.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
        except RuntimeError as err:
            raise ModelFileError(f"{where}: the head's weights do not fit its description ({err})") from err
        est.n_features_in_ = int(math.prod(est.input_shape_))
        est.model_ = net.eval()
        return est


class FrozenEncoder(TransformerMixin, BaseEstimator):
    """The codes of a fixed (never trained) encoder, as a scikit-learn transformer.

    ``make_pipeline(FrozenEncoder(ae), StandardScaler(), LogisticRegression())`` is the
    frozen-code baseline: a linear classifier on what pretraining learnt, nothing fine-tuned.
    """

    def __init__(self, encoder=None) -> None:
        self.encoder = encoder

    def fit(self, X, y=None):
        self.encoder_ = _load_encoder(self.encoder).cpu().eval()
        self.n_features_in_ = int(math.prod(self.encoder_.input_shape))
        return self

    @torch.inference_mode()
    def transform(self, X) -> np.ndarray:
        """Codes: ndarray of shape (n_samples, code_dim)."""
        if not hasattr(self, "encoder_"):
            raise NotFittedError("this FrozenEncoder is not fitted yet; call fit(X) first")
        Xm = torch.from_numpy(_model_input(X, tuple(self.encoder_.input_shape), "encoder"))
        return torch.cat([self.encoder_.encode(Xm[i : i + 2048]).flatten(1)
                          for i in range(0, len(Xm), 2048)]).numpy()


def frozen_code_classifier(encoder, method: str = "logreg", *, seed: int = 0):
    """A scikit-learn pipeline classifying the frozen codes of ``encoder``.

    ``method``: ``"logreg"`` (standardised codes, multinomial logistic regression, C=1) or
    ``"knn"`` (k-nearest neighbours, k=5 weighted by distance, on standardised codes).
    ``encoder=None`` uses the raw pixels (flattened) instead of codes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if method == "logreg":
        clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    elif method == "knn":
        clf = KNeighborsClassifier(n_neighbors=5, weights="distance")
    else:
        raise ConfigError(f"method must be 'logreg' or 'knn', got {method!r}")
    first = FrozenEncoder(encoder) if encoder is not None else FunctionTransformer(_flatten)
    if encoder is None and method == "knn":  # pixels: plain Euclidean distance, no scaling
        return make_pipeline(first, clf)
    return make_pipeline(first, StandardScaler(), clf)


def _flatten(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X.reshape(len(X), -1)
