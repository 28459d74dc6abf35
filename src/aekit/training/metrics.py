"""Reconstruction metrics, and PCA with the same code size as the honest baseline."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@torch.inference_mode()
def reconstruct_batches(
    model: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 2048, what: str = "reconstruct"
) -> np.ndarray:
    """Run ``model.reconstruct`` (or ``encode``/``decode`` logits) over ``x`` in large batches."""
    model.eval()
    p = next(model.parameters())
    x = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x.float()
    fns = {"reconstruct": model.reconstruct, "encode": model.encode, "logits": lambda b: model.decode(model.encode(b))}
    fn = fns[what]
    # conv nets run channels-last on CPU, as in training (3.3x the NCHW throughput of conv_ae
    # tutorial at batch 256, benchmarks/onnx_throughput.py); the Trainer leaves models in it too
    channels_last = getattr(model, "prefers_channels_last", False) and p.device.type == "cpu" and x.ndim == 4
    if channels_last:
        model.to(memory_format=torch.channels_last)

    def batch(i: int) -> torch.Tensor:
        b = x[i : i + batch_size].to(p.device)
        return b.contiguous(memory_format=torch.channels_last) if channels_last else b

    outs = [fn(batch(i)).float().cpu().contiguous() for i in range(0, len(x), batch_size)]
    return torch.cat(outs).numpy() if outs else np.zeros((0,), np.float32)


@torch.inference_mode()
def reconstruction_metrics(
    model: nn.Module, x_in: np.ndarray, x_target: np.ndarray | None = None, *, batch_size: int = 2048
) -> dict[str, float]:
    """Test-set errors of ``model``: BCE/pixel (for [0,1] data), MSE/pixel, squared error/image.

    ``sq_err_per_image`` is the squared error summed over an image's pixels, averaged over images
    (Hinton & Salakhutdinov 2006's measure).
    """
    x_target = x_in if x_target is None else x_target
    logits = torch.as_tensor(reconstruct_batches(model, x_in, batch_size=batch_size, what="logits"))
    target = torch.as_tensor(np.asarray(x_target, dtype=np.float32)).reshape(logits.shape)
    recon = model.activate(logits)
    sq = (recon - target).pow(2).flatten(1)
    out = {
        "mse_per_pixel": float(sq.mean()),
        "sq_err_per_image": float(sq.sum(1).mean()),
    }
    if getattr(model.config, "output", "") == "sigmoid" and float(target.min()) >= 0 and float(target.max()) <= 1:
        out["bce_per_pixel"] = float(F.binary_cross_entropy_with_logits(logits, target))
    return out


def pca_baseline(
    x_train: np.ndarray, x_in: np.ndarray, x_target: np.ndarray | None, n_components: int, *, seed: int = 0
) -> dict[str, float]:
    """PCA with ``n_components`` fitted on ``x_train``, reconstructing ``x_in`` against ``x_target``.

    A code at least as wide as the input makes PCA lossless (``lossless`` is then true).
    """
    from sklearn.decomposition import PCA

    x_target = x_in if x_target is None else x_target
    xt = np.asarray(x_train, np.float32).reshape(len(x_train), -1)
    xi = np.asarray(x_in, np.float32).reshape(len(x_in), -1)
    xg = np.asarray(x_target, np.float32).reshape(len(x_target), -1)
    k = int(min(n_components, xt.shape[1], xt.shape[0]))
    pca = PCA(n_components=k, random_state=seed).fit(xt)
    rec = pca.inverse_transform(pca.transform(xi))
    sq = (rec - xg) ** 2
    return {
        "n_components": k,
        "mse_per_pixel": float(sq.mean()),
        "sq_err_per_image": float(sq.sum(1).mean()),
        "lossless": bool(k >= xt.shape[1]),
        "explained_variance": float(pca.explained_variance_ratio_.sum()),
    }


def finite_or_none(v: float) -> float | None:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None
