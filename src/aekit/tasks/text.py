"""Sentence autoencoders as scikit-learn estimators: ``TextAutoencoder`` (seq2seq) and
``SentimentRAE`` (Socher et al.'s semi-supervised recursive autoencoder)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from torch import Tensor

from .._utils import seed_everything
from ..errors import ConfigError, DataError, ModelFileError, NotFittedError
from ..models import create_model, load_weights, model_from_meta, model_meta
from ..text import PAD, SPECIALS, UNK, Vocabulary, check_not_empty, encode_batch, tokenize, truncate
from ..training import TrainConfig, Trainer
from .registry import register_kind

#: sentences per inference batch (sorted by length, so padding stays small)
EVAL_BATCH = 512


# -- shared helpers ------------------------------------------------------------------------------
def _tokens(sentences, who: str) -> list[list[str]]:
    """Sentences (an iterable of str) -> token lists; refuses a bare str, non-strings and empties."""
    if isinstance(sentences, (str, bytes)):
        raise DataError(f"{who}: expected a list of sentences, got a single string; wrap it in a list")
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()
    try:
        sentences = list(sentences)
    except TypeError:
        raise DataError(f"{who}: expected a list of sentences, got {type(sentences).__name__}") from None
    bad = [i for i, s in enumerate(sentences) if not isinstance(s, str)]
    if bad:
        raise DataError(
            f"{who}: sentence {bad[0]} is a {type(sentences[bad[0]]).__name__}, not a str "
            f"({len(bad)} such item(s)); decode bytes first"
        )
    toks = [tokenize(s) for s in sentences]
    check_not_empty(toks, who=who)
    return toks


class _BucketTrainer(Trainer):
    """The Trainer with length-bucketed batches: sentences of similar length share a batch.

    A batch costs as much as its longest sentence (RNN steps, tree merges); sorting by length
    (random tie-breaks) and shuffling the order of the batches keeps the padding small: about
    3x faster than random batches on MR for the recursive autoencoder.
    """

    def _batches(self, data, fixed_inputs):
        if not isinstance(data, tuple):
            yield from super()._batches(data, fixed_inputs)
            return
        x, y = data
        bs = self.config.batch_size
        lengths = (x != PAD).sum(1).float()
        order = torch.argsort(lengths + torch.rand(len(x), generator=self.gen))
        chunks = [order[i : i + bs] for i in range(0, len(order), bs)]
        n_steps = len(chunks)
        for step, c in enumerate(torch.randperm(n_steps, generator=self.gen).tolist()):
            idx = chunks[c]
            xb = x[idx]
            yb = xb if y is x else y[idx]
            yield step, n_steps, (self._to_device(xb), self._to_device(yb))


class _TextEstimator(BaseEstimator):
    """Shared by the text tasks: vocabulary, ids, training and fitted checks."""

    _model_name = ""

    def _check_common(self) -> None:
        if int(self.max_len) < 1:
            raise ConfigError(f"max_len must be >= 1, got {self.max_len}")
        if int(self.min_count) < 1:
            raise ConfigError(f"min_count must be >= 1, got {self.min_count}")
        if not 0 <= float(self.val_fraction) < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.patience is not None and not self.val_fraction:
            raise ConfigError("patience (early stopping) needs a validation share: val_fraction > 0")

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _ids(self, toks: Sequence[Sequence[str]], who: str, *, pad_to: int | None = None) -> Tensor:
        toks = truncate(toks, int(self.max_len), who=who)
        return encode_batch(self.vocab_, toks, pad_to=pad_to)

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation indices (a seeded shuffle; no validation when val_fraction=0)."""
        perm = np.random.default_rng(self.seed).permutation(n)
        n_val = int(round(n * float(self.val_fraction)))
        if self.val_fraction and not 1 <= n_val < n:
            raise DataError(f"val_fraction={self.val_fraction} of {n} sentences leaves no training or validation set")
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    def _train(self, model, train, val, *, seed: int | None = None) -> None:
        cfg = TrainConfig(
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            # decoupled decay: with Adam's L2 form, word vectors absent from a batch would see a
            # gradient of pure decay, which Adam's normalisation turns into full-size steps
            optimizer="adamw",
            weight_decay=float(self.weight_decay),
            grad_clip=self.grad_clip,
            patience=self.patience,
            seed=int(self.seed if seed is None else seed),
            threads=self.threads,
            device=self.device,
            precision="fp32",
            progress=None if self.verbose else False,
        )
        trainer = _BucketTrainer(cfg)
        history = trainer.fit(model, train, val)
        self.history_ = [dict(r) for r in history.records]
        self.n_epochs_ = len(history)
        model.cpu().eval()

    def _in_batches(self, ids: Tensor, fn) -> list:
        """``fn(batch)`` over length-sorted batches of ``ids``; results back in input order."""
        order = torch.argsort((ids != PAD).sum(1), stable=True)
        out: list = [None] * len(ids)
        for i in range(0, len(ids), EVAL_BATCH):
            idx = order[i : i + EVAL_BATCH]
            for j, r in zip(idx.tolist(), fn(ids[idx])):
                out[j] = r
        return out

    def _fitted_meta(self) -> dict[str, Any]:
        return {"vocabulary": self.vocab_.to_json(), "n_epochs": self.n_epochs_, "history": self.history_}

    def _restore_common(self, doc: dict[str, Any], tensors, where: str) -> None:
        fitted = doc["fitted"]
        self.vocab_ = Vocabulary.from_json(fitted["vocabulary"], where=where)
        self.n_epochs_ = fitted.get("n_epochs", 0)
        self.history_ = fitted.get("history", [])
        self.model_ = load_weights(model_from_meta(doc, where), tensors, where)
        if self.model_.config.vocab_size != len(self.vocab_):
            raise ModelFileError(
                f"{where}: the vocabulary has {len(self.vocab_)} tokens but the model {self.model_.config.vocab_size}"
            )


def _params_for_json(est: BaseEstimator) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in est.get_params().items()}


# -- seq2seq -------------------------------------------------------------------------------------
@register_kind("text_autoencoder")
class TextAutoencoder(TransformerMixin, _TextEstimator):
    """A seq2seq autoencoder of sentences: fixed-size codes, and text decoded back from them.

    Parameters
    ----------
    preset : str, optional
        A ``seq2seq_ae`` preset (``small``, ``lstm``, ``scheduled``); the options below override it.
    cell, embed_dim, hidden, num_layers, latent_dim, teacher_forcing, word_dropout
        Model options (see :class:`aekit.models.text.Seq2SeqAEConfig`); None keeps the
        preset's or the default value. ``teacher_forcing < 1`` is scheduled sampling.
    max_len : int, default 50
        Tokens per sentence; longer sentences are truncated with a warning.
    min_count : int, default 1
        Words seen fewer times in the training sentences become ``<unk>``.
    max_vocab : int, optional
        At most this many tokens (the most frequent).
    epochs, batch_size, lr, weight_decay, grad_clip, patience, val_fraction
        Training (Adam; length-bucketed batches). ``val_fraction`` of the sentences is held out
        for validation (and early stopping with ``patience``).
    beam : int, default 1
        Beam width of :meth:`reconstruct` and :meth:`evaluate` (1: greedy decoding).
    seed, threads, device, verbose

    Attributes
    ----------
    vocab_ : Vocabulary
    model_ : Seq2SeqAE
    history_ : list of dict
    n_epochs_ : int
    """

    _model_name = "seq2seq_ae"

    def __init__(
        self,
        *,
        preset: str | None = None,
        cell: str | None = None,
        embed_dim: int | None = None,
        hidden: int | None = None,
        num_layers: int | None = None,
        latent_dim: int | None = None,
        teacher_forcing: float | None = None,
        word_dropout: float | None = None,
        max_len: int = 50,
        min_count: int = 1,
        max_vocab: int | None = None,
        epochs: int = 10,
        batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        grad_clip: float | None = 5.0,
        patience: int | None = None,
        val_fraction: float = 0.0,
        beam: int = 1,
        seed: int = 0,
        threads: int | None = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.preset = preset
        self.cell = cell
        self.embed_dim = embed_dim
        self.hidden = hidden
        self.num_layers = num_layers
        self.latent_dim = latent_dim
        self.teacher_forcing = teacher_forcing
        self.word_dropout = word_dropout
        self.max_len = max_len
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.patience = patience
        self.val_fraction = val_fraction
        self.beam = beam
        self.seed = seed
        self.threads = threads
        self.device = device
        self.verbose = verbose

    def fit(self, sentences, y=None) -> TextAutoencoder:
        """Learn the vocabulary and the autoencoder from ``sentences`` (a list of str)."""
        self._check_common()
        if int(self.beam) < 1:
            raise ConfigError(f"beam must be >= 1, got {self.beam}")
        toks = _tokens(sentences, "TextAutoencoder.fit")
        train_idx, val_idx = self._split(len(toks))
        self.vocab_ = Vocabulary.build(
            [toks[i] for i in train_idx], min_count=int(self.min_count), max_size=self.max_vocab
        )
        seed_everything(int(self.seed))
        model = create_model(
            "seq2seq_ae", self.preset, input_shape=(int(self.max_len),), vocab_size=len(self.vocab_),
            cell=self.cell, embed_dim=self.embed_dim, hidden=self.hidden, num_layers=self.num_layers,
            latent_dim=self.latent_dim, teacher_forcing=self.teacher_forcing, word_dropout=self.word_dropout,
        )
        ids = self._ids(toks, "TextAutoencoder.fit", pad_to=int(self.max_len)).float()
        val = ids[torch.from_numpy(val_idx)] if len(val_idx) else None
        self._train(model, ids[torch.from_numpy(train_idx)], val)
        self.model_ = model
        return self

    @torch.inference_mode()
    def transform(self, sentences) -> np.ndarray:
        """Sentence codes: ndarray of shape (n_sentences, latent_dim)."""
        self._check_fitted()
        ids = self._ids(_tokens(sentences, "TextAutoencoder.transform"), "TextAutoencoder.transform")
        rows = self._in_batches(ids, lambda b: self.model_.encode(b).numpy())
        return np.stack(rows).astype(np.float32)

    @torch.inference_mode()
    def _decoded(self, ids: Tensor, beam: int) -> list[list[int]]:
        def run(b: Tensor) -> list[list[int]]:
            out = self.model_.reconstruct(b, beam=beam)
            return [[int(t) for t in row if t != PAD] for row in out]

        return self._in_batches(ids, run)

    def reconstruct(self, sentences, beam: int | None = None) -> list[str]:
        """Each sentence encoded and decoded back: tokens joined by spaces (unknown words as <unk>)."""
        self._check_fitted()
        ids = self._ids(_tokens(sentences, "TextAutoencoder.reconstruct"), "TextAutoencoder.reconstruct")
        return [" ".join(self.vocab_.decode(r)) for r in self._decoded(ids, int(beam or self.beam))]

    def evaluate(self, sentences, beam: int | None = None) -> dict[str, float]:
        """Reconstruction of (held-out) sentences from their codes, decoded without teacher forcing.

        Returns ``token_accuracy`` (share of the input's token positions decoded as the same id;
        positions the decoder left out count as wrong, extra tokens are not counted),
        ``exact_match`` (share of sentences decoded exactly, length included),
        ``unknown_rate`` (share of input tokens outside the vocabulary) and ``n_sentences``.
        """
        self._check_fitted()
        toks = _tokens(sentences, "TextAutoencoder.evaluate")
        ids = self._ids(toks, "TextAutoencoder.evaluate")
        decoded = self._decoded(ids, int(beam or self.beam))
        right = total = exact = 0
        for row, dec in zip(ids.tolist(), decoded):
            ref = [t for t in row if t != PAD]
            total += len(ref)
            right += sum(a == b for a, b in zip(ref, dec))
            exact += ref == dec
        return {
            "token_accuracy": right / total,
            "exact_match": exact / len(ids),
            "unknown_rate": self.vocab_.unknown_rate(toks),
            "n_sentences": len(ids),
        }

    def score(self, sentences, y=None) -> float:
        """Token accuracy of the reconstructions (see :meth:`evaluate`)."""
        return self.evaluate(sentences)["token_accuracy"]

    def _aekit_state(self):
        self._check_fitted()
        meta = model_meta(self.model_)
        meta["params"] = _params_for_json(self)
        meta["fitted"] = self._fitted_meta()
        return meta, {f"model.{k}": v for k, v in self.model_.state_dict().items()}

    @classmethod
    def _aekit_from_state(cls, doc: dict[str, Any], tensors, *, where: str):
        try:
            est = cls(**doc["params"])
            est._restore_common(doc, tensors, where)
        except (KeyError, TypeError) as err:
            raise ModelFileError(f"{where}: aekit.json lacks or mangles {err} for a {cls.__name__}") from err
        return est


# -- recursive autoencoder -------------------------------------------------------------------------
@dataclass(frozen=True)
class TreeNode:
    """A node of a sentence's greedy tree: its words, its sentiment, its children."""

    words: tuple[str, ...]
    proba: tuple[float, ...]  # the node softmax, in ``classes_`` order
    label: Any  # the most probable class
    children: tuple[TreeNode, ...] = ()
    recon_error: float | None = None  # of the merge that made this node (None for a word)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "label": _plain(self.label), "proba": list(self.proba)}
        if self.children:
            out["recon_error"] = self.recon_error
            out["children"] = [c.to_dict() for c in self.children]
        return out

    def bracketed(self) -> str:
        """The tree in brackets: ``((a b) c)``."""
        return self.words[0] if not self.children else "(" + " ".join(c.bracketed() for c in self.children) + ")"

    def lines(self, prefix: str = "", last: bool = True, root: bool = True) -> list[str]:
        p = max(self.proba)
        head = f"{self.label} {p:.2f}  {self.text}"
        out = [head if root else f"{prefix}{'└── ' if last else '├── '}{head}"]
        inner = prefix if root else prefix + ("    " if last else "│   ")
        for i, c in enumerate(self.children):
            out += c.lines(inner, i == len(self.children) - 1, False)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


@register_kind("sentiment_rae")
class SentimentRAE(ClassifierMixin, _TextEstimator):
    """Semi-supervised recursive autoencoder for sentence sentiment (Socher et al., EMNLP 2011).

    Each sentence is merged pairwise into a greedy binary tree (at every step the adjacent pair
    that the autoencoder reconstructs best); every node has a softmax over the classes; training
    minimises ``alpha`` x reconstruction + ``(1 - alpha)`` x cross-entropy over all nodes.
    A sentence is then represented by its top node and the average of all its nodes, and a
    logistic regression on that representation (standardised) predicts its class.

    With ``n_models > 1`` the estimator is an ensemble of that many recursive autoencoders, each
    trained from its own random initial word vectors (seeds ``seed``, ``seed + 1``, ...) with its
    own logistic regression; the class probabilities are averaged.

    Parameters
    ----------
    embed_dim : int, default 50
        Size of word and node vectors (random initial word vectors).
    alpha : float, default 0.2
        Weight of the reconstruction error against the cross-entropy.
    weighted, normalize, leaf_labels, init_std, word_dropout
        Model options (see :class:`aekit.models.text.RecursiveAEConfig`).
    C : float, default 0.01
        Inverse regularisation strength of the final logistic regression. Strong: the RAE has
        seen the training sentences and their labels, so their representations separate the
        classes better than new sentences' do (on MR, 5-fold CV inside a training fold:
        C=0.01 gives +0.3 points over C=1 for one RAE).
    n_models : int, default 1
        Recursive autoencoders in the ensemble (training time grows linearly). On MR, 5-fold CV
        inside a training fold: +0.6 points with 2, +1.0 with 5, +1.2 with 8 (``benchmarks/text.py``
        uses 8).
    cross_fit : bool, default False
        Fit each member's logistic regression on sentences that member did not train on. The
        training sentences are split into ``max(n_models, 5)`` stratified chunks (seeded); member
        ``m`` trains its recursive autoencoder on all chunks but chunk ``m`` and its logistic
        regression on chunk ``m`` only. The RAE's own softmax fits its training sentences, so
        their representations separate the classes better than those of new sentences; held-out
        representations look like the test sentences' do. Words seen fewer than ``min_count``
        times in a member's training chunks are ``<unk>`` to it (in training and after), as if it
        had built its own vocabulary. Each RAE sees ``1 - 1/max(n_models, 5)`` of the training
        sentences. On MR (3 of 5 inner folds inside the first training fold, 8 members, 4
        epochs, C=0.01): 0.7705 against 0.7592 without cross-fitting (+1.1 to +1.3 points on
        each inner fold); one cross-fitted member alone is no better than one plain RAE (0.753
        both), so the gain comes with the ensemble. There, 3 epochs scored 0.7712 and C from
        0.003 to 0.1 the same within half a point; member-wise ``<unk>`` for rare words (rather
        than only for unseen ones) +0.5 points. ``benchmarks/text.py`` uses it.
    max_len : int, default 100
        Tokens per sentence; longer sentences are truncated with a warning.
    min_count : int, default 2
        Words seen fewer times in training become ``<unk>`` (which thereby gets trained too).
    max_vocab : int, optional
    epochs, batch_size, lr, weight_decay, grad_clip, patience, val_fraction
        Training (AdamW, decoupled weight decay; length-bucketed batches, each O(longest
        sentence) batched merge steps). The defaults were chosen on a validation split of MR's
        first training fold: the model overfits after 3-4 epochs (training accuracy > 0.9);
        ``word_dropout`` 0.2 or 0.4, ``alpha`` 0.1, ``embed_dim`` 100 and batches of 128 did not
        help there.
    seed, threads, device, verbose

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    vocab_ : Vocabulary
    models_ : list of RecursiveAE
        The ``n_models`` members of the ensemble.
    model_ : RecursiveAE
        The first member (``tree`` draws its trees).
    coef_ : ndarray of shape (n_models, n_classes or 1, 2 * embed_dim)
        Each member's logistic regression weights on its standardised representation.
    intercept_ : ndarray of shape (n_models, n_classes or 1)
    feature_mean_, feature_scale_ : ndarray of shape (n_models, 2 * embed_dim)
        The standardisation of each member's representation.
    history_ : list of dict
        Training records per epoch (with a ``member`` index when ``n_models > 1``).
    """

    _model_name = "recursive_ae"

    def __init__(
        self,
        *,
        embed_dim: int = 50,
        alpha: float = 0.2,
        weighted: bool = True,
        normalize: bool = True,
        leaf_labels: bool = True,
        init_std: float = 0.05,
        word_dropout: float = 0.0,
        C: float = 0.01,
        n_models: int = 1,
        cross_fit: bool = False,
        max_len: int = 100,
        min_count: int = 2,
        max_vocab: int | None = None,
        epochs: int = 4,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 0.3,
        grad_clip: float | None = 5.0,
        patience: int | None = None,
        val_fraction: float = 0.0,
        seed: int = 0,
        threads: int | None = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.embed_dim = embed_dim
        self.alpha = alpha
        self.weighted = weighted
        self.normalize = normalize
        self.leaf_labels = leaf_labels
        self.init_std = init_std
        self.word_dropout = word_dropout
        self.C = C
        self.n_models = n_models
        self.cross_fit = cross_fit
        self.max_len = max_len
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.threads = threads
        self.device = device
        self.verbose = verbose

    def fit(self, sentences, y) -> SentimentRAE:
        """Learn vocabulary, recursive autoencoder(s) and classifier(s) from sentences and their labels."""
        from sklearn.linear_model import LogisticRegression

        self._check_common()
        if not (self.C > 0 and math.isfinite(self.C)):
            raise ConfigError(f"C must be > 0, got {self.C}")
        if int(self.n_models) < 1:
            raise ConfigError(f"n_models must be >= 1, got {self.n_models}")
        toks = _tokens(sentences, "SentimentRAE.fit")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(toks):
            raise DataError(
                f"SentimentRAE.fit: {len(toks)} sentences but labels of shape {y.shape}; give one label per sentence"
            )
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise DataError(
                f"SentimentRAE.fit: the labels hold one class only ({self.classes_[0]!r}); need two or more")
        train_idx, val_idx = self._split(len(toks))
        self.vocab_ = Vocabulary.build(
            [toks[i] for i in train_idx], min_count=int(self.min_count), max_size=self.max_vocab
        )
        ids = self._ids(toks, "SentimentRAE.fit", pad_to=int(self.max_len)).float()
        yt = torch.from_numpy(y_idx.astype(np.int64))
        va = torch.from_numpy(val_idx)
        chunks = self._chunks(y_idx[train_idx]) if self.cross_fit else None
        models, histories, n_epochs, clf_parts = [], [], [], []
        for member in range(int(self.n_models)):
            if chunks is None:
                fit_idx, clf_idx = train_idx, train_idx
            else:  # cross-fitted: the RAE without chunk `member`, the classifier on it
                fit_idx, clf_idx = train_idx[chunks != member], train_idx[chunks == member]
            tr = torch.from_numpy(fit_idx)
            known = None if chunks is None else self._known_words(ids[tr])
            seed_everything(int(self.seed) + member)  # each member starts from its own random word vectors
            model = create_model(
                "recursive_ae", input_shape=(int(self.max_len),), vocab_size=len(self.vocab_),
                embed_dim=int(self.embed_dim), n_classes=len(self.classes_), alpha=float(self.alpha),
                weighted=bool(self.weighted), normalize=bool(self.normalize), leaf_labels=bool(self.leaf_labels),
                init_std=float(self.init_std), word_dropout=float(self.word_dropout),
            )
            x_fit = ids[tr] if known is None else torch.where(known[ids[tr].long()], ids[tr], float(UNK))
            self._train(model, (x_fit, yt[tr]), (ids[va], yt[va]) if len(va) else None, seed=int(self.seed) + member)
            if known is not None:  # words the member trained as <unk> read as <unk> afterwards too
                with torch.no_grad():
                    model.embed.weight[~known] = model.embed.weight[UNK].clone()
            models.append(model)
            histories += [{"member": member, **r} for r in self.history_] if self.n_models > 1 else self.history_
            n_epochs.append(self.n_epochs_)
            # the member's classifier: logistic regression on [top node; mean node], standardised
            feats = self._member_features(model, ids[torch.from_numpy(clf_idx)])
            mean, scale = feats.mean(0), feats.std(0) + 1e-6
            clf = LogisticRegression(C=float(self.C), max_iter=2000)
            clf.fit((feats - mean) / scale, y_idx[clf_idx])
            clf_parts.append((clf.coef_, clf.intercept_, mean, scale))
        self.models_, self.model_ = models, models[0]
        self.history_, self.n_epochs_ = histories, n_epochs[0]
        for i, name in enumerate(("coef_", "intercept_", "feature_mean_", "feature_scale_")):
            setattr(self, name, np.stack([part[i] for part in clf_parts]).astype(np.float64))
        self.n_features_in_ = self.coef_.shape[-1]
        return self

    def _chunks(self, y_idx: np.ndarray) -> np.ndarray:
        """Cross-fitting: the chunk (0 .. max(n_models, 5) - 1) of each training sentence, stratified."""
        from sklearn.model_selection import StratifiedKFold

        k = max(int(self.n_models), 5)
        if np.bincount(y_idx).min() < k:
            raise DataError(f"SentimentRAE.fit: cross_fit needs at least {k} training sentences of each class")
        chunk = np.empty(len(y_idx), dtype=np.int64)
        folds = StratifiedKFold(k, shuffle=True, random_state=int(self.seed)).split(np.zeros(len(y_idx)), y_idx)
        for c, (_, idx) in enumerate(folds):
            chunk[idx] = c
        return chunk

    def _known_words(self, ids: Tensor) -> Tensor:
        """Cross-fitting: which vocabulary ids a member knows, bool (vocab_size,): the special tokens and
        the words seen ``min_count`` times or more in its training sentences ``ids``; the others are
        ``<unk>`` to it, as if it had built its vocabulary from those sentences alone."""
        counts = torch.bincount(ids.long().flatten(), minlength=len(self.vocab_))
        known = counts >= int(self.min_count)
        known[: len(SPECIALS)] = True
        return known

    @torch.inference_mode()
    def _member_features(self, model, ids: Tensor) -> np.ndarray:
        return np.stack(self._in_batches(ids, lambda b: model.encode(b).double().numpy()))

    def _sentence_ids(self, sentences, who: str) -> Tensor:
        self._check_fitted()
        return self._ids(_tokens(sentences, f"SentimentRAE.{who}"), f"SentimentRAE.{who}")

    def transform(self, sentences) -> np.ndarray:
        """Sentence representations [top node; mean of all nodes], the members' side by side:
        ndarray of shape (n, n_models * 2 * embed_dim)."""
        ids = self._sentence_ids(sentences, "transform")
        return np.concatenate([self._member_features(m, ids) for m in self.models_], 1).astype(np.float32)

    def _member_scores(self, ids: Tensor) -> np.ndarray:
        """Each member's logistic-regression scores: shape (n_models, n, n_classes or 1)."""
        out = []
        for i, m in enumerate(self.models_):
            z = (self._member_features(m, ids) - self.feature_mean_[i]) / self.feature_scale_[i]
            out.append(z @ self.coef_[i].T + self.intercept_[i])
        return np.stack(out)

    @staticmethod
    def _proba(scores: np.ndarray) -> np.ndarray:
        """Scores (..., n, 1 or k) -> class probabilities (..., n, k)."""
        if scores.shape[-1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-scores))
            return np.concatenate([1 - p1, p1], -1)
        e = np.exp(scores - scores.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def decision_function(self, sentences) -> np.ndarray:
        """Scores: shape (n,) for two classes (positive: ``classes_[1]``), else (n, k).

        One model: its logistic-regression scores. An ensemble: the log-odds (two classes) or the
        log-probabilities (more) of the averaged probabilities.
        """
        scores = self._member_scores(self._sentence_ids(sentences, "decision_function"))
        if len(scores) == 1:
            s = scores[0]
        else:
            p = self._proba(scores).mean(0).clip(1e-12, 1.0)
            s = np.log(p[:, 1:]) - np.log(p[:, :1]) if p.shape[1] == 2 else np.log(p)
        return s[:, 0] if s.shape[1] == 1 else s

    def member_proba(self, sentences) -> np.ndarray:
        """Each member's class probabilities: ndarray of shape (n_models, n_sentences, n_classes)."""
        return self._proba(self._member_scores(self._sentence_ids(sentences, "member_proba")))

    def predict_proba(self, sentences) -> np.ndarray:
        """Class probabilities (averaged over the members): ndarray of shape (n_sentences, n_classes),
        columns in ``classes_`` order."""
        return self._proba(self._member_scores(self._sentence_ids(sentences, "predict_proba"))).mean(0)

    def predict(self, sentences) -> np.ndarray:
        """The most probable class of each sentence: ndarray of shape (n_sentences,)."""
        proba = self.predict_proba(sentences)
        return self.classes_[proba.argmax(1)]

    @torch.inference_mode()
    def tree(self, sentence: str) -> TreeNode:
        """The greedy tree of one sentence with each node's sentiment (the model's node softmax;
        the first member's in an ensemble).

        ``print(rae.tree("a gorgeous , witty film"))`` draws it; ``.bracketed()`` gives
        ``((a gorgeous) ((, witty) film))``-style brackets; ``.to_dict()`` a JSON-ready form.
        """
        self._check_fitted()
        if not isinstance(sentence, str):
            raise DataError(f"SentimentRAE.tree takes one sentence (a str), got {type(sentence).__name__}")
        toks = truncate(_tokens([sentence], "SentimentRAE.tree"), int(self.max_len), who="SentimentRAE.tree")[0]
        ids = encode_batch(self.vocab_, [toks])
        f = self.model_.build_trees(ids)
        probs_leaf = torch.softmax(self.model_.label(f.leaves[0]), -1).tolist()
        probs_node = torch.softmax(self.model_.label(f.nodes[0]), -1).tolist() if f.nodes.shape[1] else []

        def make(words, proba, children=(), err=None) -> TreeNode:
            p = tuple(float(v) for v in proba)
            return TreeNode(tuple(words), p, _plain(self.classes_[int(np.argmax(p))]), tuple(children), err)

        seq = [make([w], probs_leaf[i]) for i, w in enumerate(toks)]
        for s in range(len(toks) - 1):
            k = int(f.positions[0, s])
            a, b = seq[k], seq[k + 1]
            seq[k : k + 2] = [make(a.words + b.words, probs_node[s], (a, b), float(f.recon[0, s]))]
        return seq[0]

    # -- persistence --------------------------------------------------------------------------------
    _CLASSIFIER = ("coef_", "intercept_", "feature_mean_", "feature_scale_")

    def _aekit_state(self):
        self._check_fitted()
        meta = model_meta(self.model_)
        meta["params"] = _params_for_json(self)
        meta["fitted"] = {**self._fitted_meta(), "classes": self.classes_.tolist()}
        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        for i, m in enumerate(self.models_[1:], 1):
            tensors.update({f"member{i}.{k}": v for k, v in m.state_dict().items()})
        for name in self._CLASSIFIER:
            tensors[f"classifier.{name}"] = torch.from_numpy(np.ascontiguousarray(getattr(self, name)))
        return meta, tensors

    @classmethod
    def _aekit_from_state(cls, doc: dict[str, Any], tensors, *, where: str):
        try:
            est = cls(**doc["params"])
            est._restore_common(doc, tensors, where)
            est.classes_ = np.asarray(doc["fitted"]["classes"])
            n = int(est.n_models)
            est.models_ = [est.model_]
            for i in range(1, n):
                prefix = f"member{i}."
                member = {"model." + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
                est.models_.append(load_weights(model_from_meta(doc, where), member, where))
            for name, ndim in zip(cls._CLASSIFIER, (3, 2, 2, 2)):
                arr = tensors[f"classifier.{name}"].numpy().astype(np.float64)
                setattr(est, name, arr[None] if arr.ndim == ndim - 1 else arr)  # files of one model, pre-ensemble
        except (KeyError, TypeError) as err:
            raise ModelFileError(
                f"{where}: aekit.json or the weights lack or mangle {err} for a {cls.__name__}") from err
        if est.coef_.shape[0] != len(est.models_):
            raise ModelFileError(f"{where}: {est.coef_.shape[0]} classifiers for {len(est.models_)} models")
        est.n_features_in_ = est.coef_.shape[-1]
        if len(est.classes_) != est.model_.config.n_classes:
            raise ModelFileError(
                f"{where}: {len(est.classes_)} classes but the model has {est.model_.config.n_classes}")
        return est

__all__ = ["SentimentRAE", "TextAutoencoder", "TreeNode"]
