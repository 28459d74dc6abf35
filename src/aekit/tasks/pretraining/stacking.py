"""Unsupervised pretraining of an autoencoder: greedy layer-wise stacking or end to end.

Greedy (Bengio et al. 2007; Vincent et al. 2010): layer ``i`` of a ``dense_ae`` is trained as
a one-hidden-layer autoencoder on the codes of layer ``i - 1`` (the images for the first), with
an optional sparsity penalty on its hidden units, and its weights are copied into the stacked
model's encoder layer ``i`` and the mirrored decoder layer. End to end: the whole autoencoder is
trained at once by the Trainer, optionally as a denoiser.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..._utils import seed_everything
from ...data.noise import parse_corruption
from ...errors import ConfigError, DataError
from ...models import build_config, model_class, model_from_config
from ...models.dense import DenseAE, DenseAEConfig
from ...models.registry import config_to_dict
from ...training import TrainConfig, Trainer

STRATEGIES = ("greedy", "end_to_end")


@dataclass(frozen=True)
class PretrainResult:
    """What :func:`pretrain` returns.

    ``model`` is the pretrained autoencoder; ``history`` maps each stage (``"layer1"``, ... or
    ``"end_to_end"``) to its per-epoch records; ``layer_stats`` holds, per encoder layer, the
    mean activation and the fraction of dead units on (a sample of) the training data.
    """

    model: nn.Module
    strategy: str
    history: dict[str, list[dict[str, Any]]]
    layer_stats: list[dict[str, Any]]
    seconds: float


def _as_model(model, sample_shape: tuple[int, ...]) -> nn.Module:
    """A model instance: kept as is, or a ``dense_ae`` preset name sized to the data."""
    if isinstance(model, nn.Module):
        return model
    if not isinstance(model, str):
        raise ConfigError(f"model must be an aekit autoencoder or a dense_ae preset name, got {type(model).__name__}")
    name, _, preset = model.partition(":") if ":" in model else ("dense_ae", "", model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return model_class(name)(build_config(name, preset or None, input_shape=tuple(sample_shape)))


def _with_config(model: nn.Module, **changes) -> nn.Module:
    """The same model (same weights) rebuilt with some config fields changed."""
    cfg = dataclasses.replace(model.config, **changes)
    new = model_from_config(model.model_name, config_to_dict(cfg))
    new.load_state_dict(model.state_dict())
    return new


def _check_data(model: nn.Module, X) -> np.ndarray:
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    if X.ndim < 2 or len(X) == 0:
        raise DataError(f"X must be a batch of samples, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise DataError("X holds NaN/inf values; clean them before pretraining")
    if math.prod(X.shape[1:]) != math.prod(model.input_shape):
        raise DataError(
            f"X has samples of shape {X.shape[1:]} ({math.prod(X.shape[1:])} values) but the model expects "
            f"{tuple(model.input_shape)} ({math.prod(model.input_shape)} values)"
        )
    return X.reshape(len(X), *model.input_shape)


@torch.inference_mode()
def layer_codes(model: nn.Module, X, *, batch_size: int = 2048) -> list[np.ndarray]:
    """Each encoder layer's activations for ``X`` (a ``dense_ae``; other models: the code only).

    Returns a list of ndarrays of shape (n_samples, width_i), first layer first.
    """
    model.eval()
    x = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if not isinstance(model, DenseAE):
        z = torch.cat([model.encode(x[i : i + batch_size]).flatten(1) for i in range(0, len(x), batch_size)])
        return [z.numpy()]
    outs: list[list[Tensor]] = [[] for _ in model.enc]
    for i in range(0, len(x), batch_size):
        h = x[i : i + batch_size].reshape(min(batch_size, len(x) - i), -1)  # (B, *shape) -> (B, D)
        for j, layer in enumerate(model.enc):
            h = layer(h)
            h = model.code_act(h) if j == len(model.enc) - 1 else model.act(h)
            outs[j].append(h)
    return [torch.cat(o).numpy() for o in outs]


def activation_stats(codes: list[np.ndarray], activations: list[str] | None = None,
                     *, active: float = 0.01) -> list[dict[str, Any]]:
    """Per layer: width, mean activation, share of active values, and the dead-unit fraction.

    A unit is *dead* when it does not vary on the data (std below 1e-4) or, for activations
    with a floor (ReLU, ELU, sigmoid, ...), never exceeds ``active``: it never fires. Linear and
    tanh units are dead only when constant. ``activations`` names each layer's activation.
    """
    stats = []
    for i, a in enumerate(codes):
        act = activations[i] if activations else "relu"
        dead = a.std(0) < 1e-4
        if act not in ("linear", "tanh"):
            dead |= a.max(0) <= active
        stats.append({
            "layer": i + 1,
            "units": int(a.shape[1]),
            "activation": act,
            "mean_activation": float(a.mean()),
            "mean_abs_activation": float(np.abs(a).mean()),
            "fraction_active": float((a > active).mean()),  # share of (sample, unit) values that fire
            "dead_fraction": float(dead.mean()),
        })
    return stats


def _activations(model: nn.Module) -> list[str] | None:
    cfg = model.config
    if isinstance(model, DenseAE):
        return [cfg.activation] * len(cfg.hidden) + [cfg.code_activation]
    return [getattr(cfg, "code_activation", "relu")]


def _train_config(epochs, batch_size, lr, seed, threads, device, progress) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, threads=threads,
                       device=device, progress=progress)


def pretrain(
    model: nn.Module | str,
    X,
    *,
    strategy: str = "greedy",
    sparsity: str | None = None,
    denoise: str | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int | None = None,
    device: str = "auto",
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = False,
    stats_samples: int = 10000,
) -> PretrainResult:
    """Pretrain an autoencoder on unlabelled data.

    Parameters
    ----------
    model : autoencoder or str
        An aekit autoencoder (``dense_ae`` for ``"greedy"``; any model for ``"end_to_end"``),
        or a ``dense_ae`` preset name such as ``"hinton2006"`` (784-1000-500-250-30), sized to X.
        It is trained in place and returned in the result.
    X : ndarray of shape (n_samples, *input_shape)
        Unlabelled training data (images in [0, 1] for a sigmoid output).
    strategy : {"greedy", "end_to_end"}
        ``"greedy"``: each layer trained as a one-hidden-layer autoencoder on the codes of the
        layer below, then stacked (encoder and mirrored decoder; tied models share the weights).
        ``"end_to_end"``: the whole autoencoder at once.
    sparsity : str, optional
        ``"l1:W"`` or ``"kl:RHO:W"``. Greedy: on every hidden layer's units (not the final code),
        so an over-complete first layer (784 -> 1000) cannot simply copy its input. End to end:
        on the code. None keeps the model's own setting.
    denoise : str, optional
        Input corruption (``"mask:0.3"``, ``"shift:2+mask:0.3"``, ...), fresh each epoch. Greedy
        applies it to the first layer's inputs (the images) only.
    epochs : int
        Epochs per layer (greedy) or in all (end to end).
    checkpoint_dir : path, optional
        Checkpoint every stage there after each epoch; with ``resume=True`` finished stages are
        restored and an interrupted one continues exactly.
    stats_samples : int
        Training samples used for the activation statistics.

    Returns
    -------
    PretrainResult
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    model = _as_model(model, np.shape(X)[1:])
    X = _check_data(model, X)
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckdir is not None:
        ckdir.mkdir(parents=True, exist_ok=True)
    parse_corruption(denoise)  # a bad spec fails before any training
    t0 = time.perf_counter()
    if strategy == "greedy":
        if not isinstance(model, DenseAE):
            raise ConfigError(
                f"greedy layer-wise pretraining stacks dense layers; {model.model_name} is not a dense_ae "
                "(use strategy='end_to_end')"
            )
        history = _greedy(model, X, sparsity=sparsity, denoise=denoise, epochs=epochs, batch_size=batch_size,
                          lr=lr, seed=seed, threads=threads, device=device, ckdir=ckdir, resume=resume,
                          progress=progress)
        trained = model
    else:
        trained = model if sparsity is None else _with_config(model, sparsity=sparsity)
        trainer = Trainer(
            _train_config(epochs, batch_size, lr, seed, threads, device, progress),
            corruption=parse_corruption(denoise),
            checkpoint=ckdir / "end_to_end.safetensors" if ckdir is not None else None,
            metadata={"model_name": trained.model_name, "stage": "end_to_end"},
        )
        history = {"end_to_end": trainer.fit(trained, torch.from_numpy(X), resume=resume).records}
        trained.cpu()
        if trained is not model:  # keep the caller's instance in step with the result
            model.load_state_dict(trained.state_dict())
    seconds = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    sample = X[np.sort(rng.choice(len(X), min(stats_samples, len(X)), replace=False))]
    stats = activation_stats(layer_codes(trained, sample), _activations(trained))
    return PretrainResult(model=trained.eval(), strategy=strategy, history=history, layer_stats=stats,
                          seconds=seconds)


def _greedy(model: DenseAE, X: np.ndarray, *, sparsity, denoise, epochs, batch_size, lr, seed, threads, device,
            ckdir, resume, progress) -> dict[str, list[dict]]:
    cfg: DenseAEConfig = model.config
    sizes = [model.input_dim, *cfg.hidden, cfg.latent_dim]
    n = len(model.enc)
    sparsity = cfg.sparsity if sparsity is None else sparsity
    history: dict[str, list[dict]] = {}
    h = torch.from_numpy(X)  # (N, *input_shape), then (N, width of the layer below)
    for i in range(n):
        last = i == n - 1
        layer_cfg = DenseAEConfig(
            input_shape=tuple(model.input_shape) if i == 0 else (sizes[i],),
            hidden=(),
            latent_dim=sizes[i + 1],
            code_activation=cfg.code_activation if last else cfg.activation,
            # the first layer reconstructs the data as the stacked model does; deeper ones
            # reconstruct real-valued codes (squared error)
            output=cfg.output if i == 0 else "linear",
            loss=cfg.loss if i == 0 else "auto",
            tied=cfg.tied,
            sparsity="" if last else (sparsity or ""),
        )
        seed_everything(seed + i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # over-complete layers are the point here
            one = DenseAE(layer_cfg)
        trainer = Trainer(
            _train_config(epochs, batch_size, lr, seed + i, threads, device, progress),
            corruption=parse_corruption(denoise) if i == 0 else None,
            checkpoint=ckdir / f"layer{i + 1}.safetensors" if ckdir is not None else None,
            metadata={"model_name": "dense_ae", "stage": f"layer{i + 1}", "sizes": sizes[i : i + 2]},
        )
        history[f"layer{i + 1}"] = trainer.fit(one, h, resume=resume).records
        one.cpu().eval()
        _copy_layer(one, model, i)
        h = torch.from_numpy(layer_codes(one, h)[0])  # (N, sizes[i + 1])
    return history


@torch.no_grad()
def _copy_layer(one: DenseAE, stacked: DenseAE, i: int) -> None:
    """Put one-layer autoencoder ``one`` into encoder layer ``i`` of ``stacked`` and its mirror."""
    n = len(stacked.enc)
    if one.enc[0].weight.shape != stacked.enc[i].weight.shape:
        raise AssertionError(f"layer {i + 1}: {tuple(one.enc[0].weight.shape)} vs {tuple(stacked.enc[i].weight.shape)}")
    stacked.enc[i].load_state_dict(one.enc[0].state_dict())
    if stacked.dec is None:  # tied: the decoder reuses enc[i].weight transposed; only its bias is own
        stacked.dec_bias[n - 1 - i].copy_(one.dec_bias[0])
    else:
        stacked.dec[n - 1 - i].load_state_dict(one.dec[0].state_dict())
