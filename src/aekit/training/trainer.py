"""The training loop: model-agnostic, fast on in-memory tensors, checkpointed, resumable.

Models compute their loss terms (``model.loss(batch) -> dict`` with ``"loss"``); the Trainer
owns device, precision, batching, noise, backward, stepping, early stopping and checkpoints.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._utils import cpu_supports_bf16, resolve_device, retain_freed_memory
from ..errors import ConfigError, DataError, ResumeError, TrainingDivergedError
from . import distributed as ddp
from .checkpoint import load_checkpoint, load_optimizer, optimizer_tensors, save_checkpoint, split_prefix
from .progress import make_progress

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: steps whose losses are read back together on GPUs (one host-device synchronisation); on CPUs
#: every step's loss is read at once (free there), so a NaN stops training before its step
SYNC_EVERY = 32
SYNC_EVERY_CPU = 1
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd" (momentum 0.9)
    adam_eps: float = 1e-7  # Keras' default, for a faithful port of the tutorial
    weight_decay: float = 0.0
    grad_clip: float | None = None  # max global gradient norm
    seed: int = 0  # shuffling, noise and dropout (model init is seeded by the caller)
    threads: int | None = None  # torch intra-op threads; None keeps torch's setting
    device: str = "auto"  # "auto" (CUDA if present) | "cpu" | "cuda"
    precision: str = "auto"  # "fp32" | "bf16" (autocast) | "auto": bf16 for convs on CPUs with bf16
    channels_last: bool | None = None  # None: what the model prefers
    compile: bool = False  # torch.compile the model (slower than eager on small CPU models)
    patience: int | None = None  # early stopping after this many epochs without improvement
    min_delta: float = 0.0
    restore_best: bool = True  # with early stopping: end with the best epoch's weights
    fixed_noise: bool = False  # draw the corrupted inputs once (the tutorial) instead of per epoch
    eval_batch_size: int = 2048
    progress: bool | None = None  # None: a bar on a terminal, plain lines otherwise

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (math.isfinite(self.lr) and 0 < self.lr <= 10, f"lr must be in (0, 10], got {self.lr}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (self.patience is None or self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0, got {self.grad_clip}"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


@dataclass
class History:
    """Per-epoch records (``epoch``, ``train_loss``, ``val_loss``, ``seconds``, ...)."""

    records: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def column(self, key: str) -> list[float]:
        return [r.get(key, float("nan")) for r in self.records]

    def steady_samples_per_s(self) -> float:
        """Training throughput excluding the first epoch (warm-up) when there are several."""
        recs = self.records[1:] if len(self.records) > 1 else self.records
        secs = sum(r["train_seconds"] for r in recs)
        n = sum(r["train_samples"] for r in recs)
        return n / secs if secs > 0 else float("nan")


Data = Tensor | np.ndarray | tuple | torch.utils.data.Dataset


def _as_pair(data: Data | None, name: str) -> tuple[Tensor, Tensor] | torch.utils.data.Dataset | None:
    """Normalise training data to (inputs, targets) tensors, or keep a Dataset as is."""
    if data is None:
        return None
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.TensorDataset):
        return data
    if isinstance(data, torch.utils.data.TensorDataset):
        data = tuple(data.tensors)
    if isinstance(data, (tuple, list)):
        if len(data) == 1:
            data = data[0]
        elif len(data) == 2:
            x, y = (torch.as_tensor(np.asarray(d)) if isinstance(d, np.ndarray) else d for d in data)
            if len(x) != len(y):
                raise DataError(f"{name}: inputs have {len(x)} rows but targets have {len(y)}")
            return _check_tensor(x, name), y if not torch.is_floating_point(y) else _check_tensor(y, name)
        else:
            raise DataError(f"{name}: expected a tensor or an (inputs, targets) pair, got {len(data)} items")
    x = torch.as_tensor(np.ascontiguousarray(data)) if isinstance(data, np.ndarray) else data
    if not torch.is_tensor(x):
        raise DataError(f"{name}: expected a tensor, numpy array or Dataset, got {type(data).__name__}")
    x = _check_tensor(x, name)
    return x, x


class _LazyBatches:
    """A DataLoader batch sampler over ``Trainer._index_batches``: one epoch, drawn lazily."""

    def __init__(self, steps) -> None:
        first = next(steps)
        self.n_steps = first[1]
        self._items = itertools.chain([first], steps)

    def __len__(self) -> int:
        return self.n_steps

    def __iter__(self):
        for _, _, idx in self._items:
            yield idx.tolist()


def _resident(train, fixed, val, device: torch.device, share: float = 0.4):
    """Move in-memory training (and validation) tensors to ``device`` when they take less than
    ``share`` of its free memory; otherwise leave them on the host (batches are copied per step)."""
    tensors = {id(t): t for t in (*train, fixed, *(val if isinstance(val, tuple) else ())) if torch.is_tensor(t)}
    need = sum(t.nbytes for t in tensors.values() if t.device.type != device.type)
    try:
        free = torch.cuda.mem_get_info(device)[0]
    except (RuntimeError, AttributeError):  # pragma: no cover - no CUDA
        return train, fixed, val
    if need == 0 or need > share * free:
        return train, fixed, val
    moved = {k: t.to(device) for k, t in tensors.items()}  # inputs that are the targets stay one tensor

    def mv(t):
        return moved[id(t)] if torch.is_tensor(t) else t

    return tuple(map(mv, train)), mv(fixed), tuple(map(mv, val)) if isinstance(val, tuple) else val


def _loader_workers(data, device: torch.device) -> dict[str, Any]:
    """DataLoader options for a Dataset: batched reads for datasets that offer them, background
    workers when the dataset asks for them (``loader_workers`` attribute), pinned memory for GPUs."""
    opts: dict[str, Any] = {}
    workers = int(getattr(data, "loader_workers", 0) or 0)
    if workers > 0:
        opts.update(num_workers=workers, persistent_workers=False, prefetch_factor=4)
    if hasattr(data, "__getitems__"):  # reads a whole batch at once (aekit.data.streaming)
        from ..data.streaming import stream_collate

        opts["collate_fn"] = stream_collate
    if device.type == "cuda":
        opts["pin_memory"] = True
    return opts


def _check_tensor(x: Tensor, name: str) -> Tensor:
    if x.ndim < 2:
        raise DataError(f"{name}: expected a batch of samples (at least 2-D), got shape {tuple(x.shape)}")
    if len(x) == 0:
        raise DataError(f"{name} is empty: no samples to train or evaluate on")
    x = x.float() if x.dtype != torch.float32 else x
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise DataError(f"{name} holds {bad} NaN/inf values; clean or impute them before training")
    return x


class _LossModule(nn.Module):
    """``forward(batch) = model.loss(batch)``: what DistributedDataParallel wraps, so the
    gradient all-reduce hooks fire for models that define ``loss`` rather than ``forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


def _is_comm_error(err: BaseException) -> bool:
    text = str(err).lower()
    return any(w in text for w in ("gloo", "nccl", "connection", "peer", "timed out", "broken pipe"))


class Trainer:
    """Fit any aekit model: ``Trainer(TrainConfig(epochs=10)).fit(model, train, val)``.

    Parameters
    ----------
    config : TrainConfig
    corruption : callable, optional
        ``corruption(x, generator) -> x_noisy`` applied to the inputs of each batch (fresh noise
        per epoch unless ``config.fixed_noise``); targets stay clean. See :mod:`aekit.data.noise`.
    checkpoint : path, optional
        File to checkpoint into after every epoch (and at the start), atomically.
    callbacks : sequence of callables ``cb(trainer, record)`` called after every epoch; one may
        set ``trainer.should_stop = True`` to end training after this epoch (recorded as an early stop).
    """

    _sync_every = 1  # set by _setup (SYNC_EVERY_CPU / SYNC_EVERY)
    _index_device = torch.device("cpu")  # where batch indices go: the data's device

    def __init__(
        self,
        config: TrainConfig | None = None,
        *,
        corruption: Callable[[Tensor, torch.Generator | None], Tensor] | None = None,
        checkpoint: str | os.PathLike | None = None,
        callbacks: Sequence[Callable[[Trainer, dict], None]] = (),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.config = config or TrainConfig()
        self.corruption = corruption
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.callbacks = list(callbacks)
        self.metadata = dict(metadata or {})  # stored in checkpoints (model name/config, data)
        # set for real by fit(); these defaults let evaluate() run on its own
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.channels_last = False
        self.rank, self.world = 0, 1
        self._ddp: nn.Module | None = None

    # -- setup -------------------------------------------------------------------------------
    def _setup(self, model: nn.Module) -> None:
        cfg = self.config
        self.rank, self.world = ddp.rank(), ddp.world_size()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif self.world > 1:  # N processes on one machine share its cores
            torch.set_num_threads(ddp.default_threads())
        self.device = resolve_device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", ddp.local_rank() % torch.cuda.device_count())
        self.channels_last = (
            getattr(model, "prefers_channels_last", False) if cfg.channels_last is None else cfg.channels_last
        )
        prec = cfg.precision
        if prec == "auto":
            if self.device.type == "cuda":
                prec = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                # bf16 autocast pays off for convolutions on CPUs with native bf16 (see
                # shared/reference/performance.md); dense models stay in fp32 there.
                prec = "bf16" if (self.channels_last and cpu_supports_bf16()) else "fp32"
        self.precision = prec
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.compile:
            model.compile()
        self._ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # rank 0's initial weights are broadcast to every process here
            self._ddp = DistributedDataParallel(
                _LossModule(model), device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if self.device.type == "cpu":
            retain_freed_memory()  # no page faults on every step's activations (glibc)
        params = [p for p in model.parameters() if p.requires_grad]
        # one fused kernel for all parameters: +15-20% samples/s for the dense models on CPU
        fused = {"fused": True} if self.device.type in ("cpu", "cuda") else {}
        if cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(
                params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, **fused
            )
        elif cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(
                params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, **fused
            )
        else:
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda") if prec == "fp16" and self.device.type == "cuda" else None
        self._sync_every = SYNC_EVERY_CPU if self.device.type == "cpu" else SYNC_EVERY
        self.gen = torch.Generator().manual_seed(cfg.seed)  # shuffling and training noise
        # one process: the same generator draws the noise; several: the permutation must stay
        # identical on every rank, so each rank draws its noise from its own generator
        self.local_gen = self.gen if self.world == 1 else torch.Generator()
        torch.manual_seed(cfg.seed + 1 + 7919 * self.rank)  # dropout and other global draws inside the model

    def _loss(self, model: nn.Module, batch) -> dict[str, Tensor]:
        """``model.loss(batch)``, through DistributedDataParallel when training on several processes."""
        if self._ddp is not None and model.training and torch.is_grad_enabled():
            return self._ddp(batch)
        return model.loss(batch)

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def _to_device(self, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, model: nn.Module, train: Data, val: Data | None = None, *, resume: bool = False) -> History:
        """Train ``model`` on ``train`` (validating on ``val``); returns the :class:`History`.

        ``train``/``val``: a tensor or array (inputs = targets), an ``(inputs, targets)`` pair,
        or a ``torch.utils.data.Dataset`` yielding ``x`` or ``(x, y)`` (streamed in batches).
        ``resume=True`` continues from ``checkpoint`` when it exists.
        """
        cfg = self.config
        train_d = _as_pair(train, "training data")
        val_d = _as_pair(val, "validation data")
        self._setup(model)
        self.model = model
        self.history = History()
        self._check_shapes(model, train_d, "training data")
        self._check_shapes(model, val_d, "validation data")
        data_shape = list(self._sample_shape(train_d))
        start_epoch, best, best_state, bad_epochs = 1, math.inf, None, 0

        fixed_inputs = None
        if self.corruption is not None and cfg.fixed_noise and isinstance(train_d, tuple):
            # the tutorial draws one noisy copy before training and reuses it every epoch
            fixed_inputs = self.corruption(train_d[1], torch.Generator().manual_seed(cfg.seed + 2))
        if self.device.type == "cuda" and isinstance(train_d, tuple):
            # in-memory data that fits on the GPU moves there once: no gather and copy per batch
            train_d, fixed_inputs, val_d = _resident(train_d, fixed_inputs, val_d, self.device)

        if resume and self.checkpoint is not None and self.checkpoint.exists():
            # a finished or early-stopped run restores to start_epoch > epochs: nothing to train
            start_epoch, best, best_state, bad_epochs = self._restore(model, data_shape)
        elif self.checkpoint is not None:
            self._save(model, epoch=0, data_shape=data_shape, best=best, best_state=None, bad_epochs=0)

        bar = make_progress(cfg.progress if self.rank == 0 else False)
        try:
            self._loop(model, train_d, val_d, fixed_inputs, data_shape, bar, start_epoch, best, best_state, bad_epochs)
        except RuntimeError as err:
            if self.world > 1 and _is_comm_error(err):
                raise ddp.peer_failure(err) from err
            raise
        finally:
            self._ddp = None
        if cfg.patience and cfg.restore_best and self._best_state is not None:
            model.load_state_dict(self._best_state)
        model.eval()
        return self.history

    def _loop(self, model, train_d, val_d, fixed_inputs, data_shape, bar, start_epoch, best, best_state, bad_epochs):
        cfg = self.config
        self._best_state = best_state
        with bar:
            for epoch in range(start_epoch, cfg.epochs + 1):
                if self.world > 1:  # per-rank noise, reproducible on resume with the same world size
                    self.local_gen.manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + self.rank)
                rec = self._train_epoch(model, train_d, fixed_inputs, epoch, bar)
                if val_d is not None:
                    val_terms = self.evaluate(model, val_d, noise_seed=cfg.seed + 3)
                    rec.update({f"val_{k}": v for k, v in val_terms.items()})
                monitor = rec.get("val_loss", rec["train_loss"])
                if monitor < best - cfg.min_delta:
                    best, bad_epochs, self.history.best_epoch = monitor, 0, epoch
                    if cfg.patience:
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                        self._best_state = best_state
                else:
                    bad_epochs += 1
                rec["seconds"] = time.perf_counter() - rec.pop("_t0")
                self.history.records.append(rec)
                bar.epoch_done(rec, cfg.epochs)
                stop = bool(cfg.patience and bad_epochs >= cfg.patience)
                self.should_stop = False
                for cb in self.callbacks:  # before the checkpoint, so e.g. lr changes are saved
                    cb(self, rec)
                stop = stop or bool(self.should_stop)  # a callback may end training (as Keras' stop_training)
                if self.checkpoint is not None:
                    self._save(model, epoch, data_shape, best, best_state, bad_epochs, stopped=stop)
                if stop:
                    self.history.stopped_early = True
                    break

    def _train_epoch(self, model, train_d, fixed_inputs, epoch, bar) -> dict:
        cfg = self.config
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        n_seen = 0
        # on a GPU, reading the loss back every step stalls the pipeline: the loss terms of up to
        # `sync_every` steps are read (and checked for NaN) in one transfer instead
        sync_every = self._sync_every
        pending: list[tuple[int, int, dict[str, Tensor]]] = []

        def diverged(lval: float, step: int) -> TrainingDivergedError:
            where = f" (last good checkpoint kept in {self.checkpoint})" if self.checkpoint else ""
            return TrainingDivergedError(
                f"the loss became {lval} at epoch {epoch}, batch {step + 1}{where}; "
                "lower the learning rate (--lr), set grad_clip, or check the data for extreme values"
            )

        def flush(n_steps: int) -> None:
            nonlocal n_seen
            keys = list(pending[0][2])
            rows = torch.stack([torch.stack([t[k].float().reshape(()) for k in keys]) for _, _, t in pending])
            for (stp, b, _), row in zip(pending, rows.cpu().tolist(), strict=True):
                terms_v = dict(zip(keys, row, strict=True))
                if not math.isfinite(terms_v["loss"]):
                    raise diverged(terms_v["loss"], stp)
                n_seen += b
                for k, v in terms_v.items():
                    sums[k] = sums.get(k, 0.0) + v * b
            last = pending[-1][0]
            pending.clear()
            bar.batch(epoch, cfg.epochs, last + 1, n_steps, sums["loss"] / n_seen,
                      n_seen * self.world / (time.perf_counter() - t0))

        for step, n_steps, (xb, yb) in self._batches(train_d, fixed_inputs):
            with self._autocast():
                terms = self._loss(model, (xb, yb))
            loss = terms["loss"]
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if sync_every == 1:
                lval = float(loss.detach())
                if not math.isfinite(lval):
                    raise diverged(lval, step)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            b = len(xb)
            if sync_every > 1:
                pending.append((step, b, {k: v.detach() for k, v in terms.items()}))
                if len(pending) >= sync_every or step + 1 == n_steps:
                    flush(n_steps)
                continue
            n_seen += b
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + (lval if k == "loss" else float(v.detach())) * b
            bar.batch(epoch, cfg.epochs, step + 1, n_steps, sums["loss"] / n_seen,
                      n_seen * self.world / (time.perf_counter() - t0))  # all processes, about
        if self.world > 1:  # the epoch's record covers every process's samples
            keys = sorted(sums)
            tot = ddp.all_reduce_sum([sums[k] for k in keys] + [n_seen])
            sums, n_seen = dict(zip(keys, tot[:-1], strict=True)), int(tot[-1])
        train_seconds = time.perf_counter() - t0
        rec: dict[str, Any] = {"epoch": epoch}
        rec.update({f"train_{k}": v / max(n_seen, 1) for k, v in sums.items()})
        rec.update(
            train_seconds=train_seconds,
            train_samples=n_seen,
            samples_per_s=n_seen / train_seconds if train_seconds > 0 else float("nan"),
            lr=self.optimizer.param_groups[0]["lr"],
            _t0=t0,
        )
        return rec

    def _batches(self, data, fixed_inputs):
        """Yield ``(step, n_steps, (inputs, targets))`` on the device, noise applied."""
        if isinstance(data, tuple):
            x, y = data
            n = len(x)
            src = fixed_inputs if fixed_inputs is not None else x
            self._index_device = x.device  # data resident on a GPU are gathered there
            steps = self._index_batches(n)
            for step, n_steps, idx in steps:
                yb = y[idx]
                xb = yb if src is y else src[idx]  # autoencoders: inputs are targets, gather once
                if self.corruption is not None and fixed_inputs is None:
                    xb = self.corruption(xb, self.local_gen)
                yield step, n_steps, (self._to_device(xb), self._to_device(yb))
        else:
            self._index_device = torch.device("cpu")
            batches = _LazyBatches(self._index_batches(len(data)))  # no list of N ints for huge data
            loader = torch.utils.data.DataLoader(
                data, batch_sampler=batches, **_loader_workers(data, self.device)
            )
            n_steps = len(batches)
            for step, item in enumerate(loader):
                xb, yb = (item if isinstance(item, (tuple, list)) and len(item) == 2 else (item, item))
                if self.corruption is not None:
                    xb = self.corruption(yb.float(), self.local_gen)
                yield step, n_steps, (self._to_device(xb.float()), self._to_device(yb))

    def _index_batches(self, n: int):
        """Yield ``(step, n_steps, indices)``: a shuffled pass over ``n`` samples in global batches of
        ``batch_size``, each cut to this process's shard (rows ``rank::world``) when distributed.

        The permutation comes from the shared generator, so it is the same on every process; a
        last batch with fewer samples than processes is skipped (every process must step).
        """
        bs = self.config.batch_size
        perm = torch.randperm(n, generator=self.gen)
        n_steps = math.ceil(n / bs)
        if self.world > 1 and n % bs and n % bs < self.world:
            n_steps -= 1
        if n_steps < 1:
            raise DataError(
                f"{n} training samples cannot be shared among {self.world} processes; "
                "use fewer processes (--nproc_per_node) or more data"
            )
        for step in range(n_steps):
            idx = perm[step * bs : (step + 1) * bs]
            if self.world > 1:
                idx = idx[self.rank :: self.world]
            yield step, n_steps, idx.to(self._index_device, non_blocking=True)

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, data: Data, *, noise_seed: int = 0) -> dict[str, float]:
        """Mean loss terms over ``data`` (noise, if any, drawn from a fixed seed)."""
        data = _as_pair(data, "evaluation data") if not isinstance(data, tuple) else data
        self.device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        gen = torch.Generator().manual_seed(noise_seed)
        sums: dict[str, float] = {}
        n = 0
        world, rank = (ddp.world_size(), ddp.rank()) if self._ddp is not None else (1, 0)
        ebs = self.config.eval_batch_size
        if isinstance(data, tuple):
            x, y = data
            if world > 1:  # each process evaluates its slice; the sums are added up below
                lo, hi = len(x) * rank // world, len(x) * (rank + 1) // world
                x, y = x[lo:hi], y[lo:hi]
            chunks = ((x[i : i + ebs], y[i : i + ebs]) for i in range(0, len(x), ebs))
        else:
            loader = torch.utils.data.DataLoader(data, batch_size=ebs, **_loader_workers(data, self.device))
            chunks = ((it if isinstance(it, (tuple, list)) else (it, it)) for it in loader)
        for xb, yb in chunks:
            if self.corruption is not None:
                xb = self.corruption(yb, gen)
            with self._autocast():
                terms = model.loss((self._to_device(xb), self._to_device(yb)))
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
            n += len(xb)
        model.train(was_training)
        if world > 1:
            keys = sorted(self._eval_keys(model, data) if not sums else sums)
            tot = ddp.all_reduce_sum([sums.get(k, 0.0) for k in keys] + [n])
            sums, n = dict(zip(keys, tot[:-1], strict=True)), tot[-1]
        return {k: v / n for k, v in sums.items()}

    def _eval_keys(self, model, data) -> list[str]:
        """Loss term names, for a process whose evaluation slice was empty (tiny validation sets)."""
        x, y = data
        with self._autocast():
            return list(model.loss((self._to_device(x[:1]), self._to_device(y[:1]))).keys())

    # -- shapes, checkpoints -----------------------------------------------------------------
    @staticmethod
    def _sample_shape(data) -> tuple[int, ...]:
        if isinstance(data, tuple):
            return tuple(data[0].shape[1:])
        item = data[0]
        x = item[0] if isinstance(item, (tuple, list)) else item
        return tuple(torch.as_tensor(x).shape)

    def _check_shapes(self, model, data, name) -> None:
        if data is None:
            return
        want = getattr(model, "input_shape", None)
        got = self._sample_shape(data)
        if want is not None and math.prod(got) != math.prod(want):
            raise DataError(
                f"{name} has samples of shape {got} but the model expects {tuple(want)}; "
                "build the model with input_shape matching the data"
            )

    def _save(self, model, epoch, data_shape, best, best_state, bad_epochs, stopped=False) -> None:
        if self.rank != 0:  # distributed: rank 0 writes the checkpoint
            return
        tensors = {f"model.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
        if best_state is not None:
            tensors.update({f"best.{k}": v.detach().cpu() for k, v in best_state.items()})
        opt_t, opt_meta = optimizer_tensors(self.optimizer)
        tensors.update(opt_t)
        tensors["rng.shuffle"] = self.gen.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {
            **self.metadata,
            "epoch": epoch,
            "epochs": self.config.epochs,
            "data_shape": data_shape,
            "best": best if math.isfinite(best) else None,
            "best_epoch": self.history.best_epoch,
            "bad_epochs": bad_epochs,
            "stopped_early": stopped,
            "history": self.history.records,
            "optimizer": opt_meta,
            "train_config": asdict(self.config),
        }
        save_checkpoint(self.checkpoint, tensors, meta)

    def _restore(self, model, data_shape):
        tensors, meta = load_checkpoint(self.checkpoint)
        if list(meta.get("data_shape", [])) != list(data_shape):
            raise ResumeError(
                f"cannot resume: the checkpoint was trained on samples of shape {tuple(meta.get('data_shape', []))} "
                f"but this data has shape {tuple(data_shape)}; use the same data set (and preprocessing)"
            )
        try:
            model.load_state_dict(split_prefix(tensors, "model"))
            load_optimizer(self.optimizer, tensors, meta["optimizer"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise ResumeError(f"checkpoint {self.checkpoint} does not match this model: {err}") from err
        # optimizer moments come back contiguous; give them their parameters' memory layout
        # (channels-last for convs), or the fused Adam step drifts from the uninterrupted run (~1e-3)
        for group in self.optimizer.param_groups:
            for prm in group["params"]:
                state = self.optimizer.state.get(prm, {})
                for key, t in state.items():
                    if torch.is_tensor(t) and t.shape == prm.shape and t.stride() != prm.stride():
                        state[key] = torch.empty_like(prm).copy_(t)
        self.gen.set_state(tensors["rng.shuffle"])
        torch.set_rng_state(tensors["rng.torch"])
        self.history.records = list(meta.get("history", []))
        self.history.best_epoch = meta.get("best_epoch")
        best_state = split_prefix(tensors, "best") or None
        best = meta["best"] if meta.get("best") is not None else math.inf
        if meta.get("stopped_early"):
            self.history.stopped_early = True
            return self.config.epochs + 1, best, best_state, meta.get("bad_epochs", 0)
        return int(meta["epoch"]) + 1, best, best_state, meta.get("bad_epochs", 0)
