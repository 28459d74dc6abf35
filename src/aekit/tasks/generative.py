"""Log-likelihood estimates for VAEs, in nats: the ELBO and the importance-weighted bound.

For a sample x and K draws z_i ~ q(z|x), with weights w_i = p(x, z_i) / q(z_i|x):

- the ELBO is E_q[log w] = E_q[log p(x|z)] - KL(q(z|x) || p(z)) (:func:`elbo` computes the KL in
  closed form; :func:`likelihood_bounds` also returns the mean of the K log-weights);
- the importance-weighted bound (Burda, Grosse & Salakhutdinov 2016) is
  log (1/K) sum_i w_i: at least the ELBO in expectation, tightening towards log p(x) as K grows.
  Papers report it with K = 5000 as the "test NLL" (its negation).

Binarised MNIST. The likelihood of a Bernoulli decoder is defined for binary images. The usual
benchmark (Salakhutdinov & Murray 2008; Burda et al. 2016) binarises *stochastically*: every pixel
is on with probability equal to its grey level. Training draws a fresh binary image every step
(``VAE(binarize=True)``: dynamic binarisation); the test set is binarised once, with a fixed seed,
by :func:`stochastic_binarize` (``torch.bernoulli`` on a ``torch.Generator`` seeded
:data:`TEST_BINARIZATION_SEED`, over the test images in their file order), so every model is
scored on the same binary images. Thresholding at 0.5 instead gives another, much easier data
set whose numbers are not comparable with the literature's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError

TEST_BINARIZATION_SEED = 0
"""Seed of the one-off stochastic binarisation of a test set (see the module docstring)."""

MAX_ROWS = 4096
"""Decoder rows (images x importance samples) evaluated at once: bounds the memory of a chunk."""


def stochastic_binarize(x: Any, *, seed: int = TEST_BINARIZATION_SEED) -> np.ndarray:
    """Binary images with each pixel on with probability equal to its value in [0, 1].

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...), values in [0, 1]
    seed : int
        Seeds the ``torch.Generator`` of the draw, so the same data give the same binary images.

    Returns
    -------
    ndarray of x's shape, float32 values in {0, 1}
    """
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if t.numel() and (not torch.isfinite(t).all() or float(t.min()) < 0 or float(t.max()) > 1):
        raise DataError("stochastic binarisation needs values in [0, 1] (pixel intensities as probabilities)")
    return torch.bernoulli(t, generator=torch.Generator().manual_seed(int(seed))).numpy()


def is_binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def _check_model(model: nn.Module) -> None:
    if not hasattr(model, "log_weights") or not hasattr(model, "kl_divergence"):
        raise ConfigError(
            f"log-likelihood estimates need a VAE (a model with an encoder distribution q(z|x)); "
            f"{getattr(model, 'model_name', type(model).__name__)!r} is a deterministic autoencoder: "
            "train --model vae or beta_vae"
        )


def _check_k(k: Any) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(
            f"k (importance samples per test image) must be an integer >= 1, got {k!r}; k=1 is the "
            "ELBO, larger k a tighter bound (the literature reports k=5000)"
        )
    return int(k)


def _as_input(model: nn.Module, x: Any) -> torch.Tensor:
    arr = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32)
    shape = tuple(model.input_shape)
    if arr.ndim == 0 or len(arr) == 0:
        raise DataError("no samples to evaluate: x is empty")
    if math.prod(arr.shape[1:]) != math.prod(shape):
        raise DataError(f"x has samples of shape {arr.shape[1:]} but the model expects {shape}")
    if not np.isfinite(arr).all():
        raise DataError("x holds NaN or inf values")
    if getattr(model, "likelihood", "") == "bernoulli" and (arr.min() < 0 or arr.max() > 1):
        raise DataError("a Bernoulli decoder scores values in [0, 1] (binary images); x has values outside")
    return torch.from_numpy(np.ascontiguousarray(arr.reshape(len(arr), *shape)))


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def elbo(model: nn.Module, x: Any, *, n_samples: int = 1, seed: int = 0, batch_size: int = 1024) -> np.ndarray:
    """The ELBO of each sample, in nats: ``E_q[log p(x|z)]`` (``n_samples`` draws) minus the KL in closed form.

    Parameters
    ----------
    model : a VAE (``vae``, ``beta_vae``)
    x : ndarray of shape (n_samples, *model.input_shape)
    n_samples : int, default 1
        Posterior draws averaged for the reconstruction term.
    seed : int, default 0
        Seeds the draws: the same call gives the same numbers.

    Returns
    -------
    ndarray of shape (n_samples,), float64: lower bounds on log p(x) (negative numbers).
    """
    _check_model(model)
    n_samples = _check_k(n_samples)
    xt = _as_input(model, x)
    was_training = model.training
    model.eval()
    dev = _device(model)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    out = []
    for i in range(0, len(xt), batch_size):
        xb = xt[i : i + batch_size].to(dev)
        mean, logvar = model.posterior(xb)
        rec = torch.zeros(len(xb), device=dev, dtype=torch.float64)
        for _ in range(n_samples):
            z = model.reparameterize(mean, logvar, gen)
            rec += model.log_likelihood(model.decode(z), xb).double()
        out.append((rec / n_samples - model.kl_divergence(mean, logvar).double()).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


@torch.inference_mode()
def likelihood_bounds(
    model: nn.Module,
    x: Any,
    *,
    k: int = 5000,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ELBO and importance-weighted bound from the same ``k`` posterior draws, in nats.

    Parameters
    ----------
    model : a VAE (``vae``, ``beta_vae``)
    x : ndarray of shape (n_samples, *model.input_shape)
        Binary images for a Bernoulli decoder (see :func:`stochastic_binarize`).
    k : int, default 5000
        Importance samples per image. ``k=1`` gives the ELBO (Monte Carlo KL).
    seed : int, default 0
        Seeds the draws: the same call gives the same numbers.
    max_rows : int
        Decoder rows (images x samples) per chunk; the draws are batched over images and ``k``
        and combined with a running ``logsumexp``.
    progress : callable ``progress(done, total)``, optional
        Called after each batch of images.

    Returns
    -------
    elbo : ndarray of shape (n_samples,), float64
        Mean of the ``k`` log-weights: an unbiased ELBO estimate (KL by Monte Carlo).
    log_px : ndarray of shape (n_samples,), float64
        ``logsumexp(log w) - log k``: the IWAE bound on log p(x); ``-log_px.mean()`` is the NLL.
    """
    _check_model(model)
    k = _check_k(k)
    if not isinstance(max_rows, int) or max_rows < 1:
        raise ConfigError(f"max_rows must be an integer >= 1, got {max_rows!r}")
    xt = _as_input(model, x)
    was_training = model.training
    model.eval()
    dev = _device(model)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    kc = min(k, max_rows)  # draws per chunk
    bs = max(1, max_rows // kc)  # images per chunk
    elbos, bounds = [], []
    for i in range(0, len(xt), bs):
        xb = xt[i : i + bs].to(dev)
        lse = torch.full((len(xb),), -math.inf, device=dev, dtype=torch.float64)
        total = torch.zeros(len(xb), device=dev, dtype=torch.float64)
        for j in range(0, k, kc):
            lw = model.log_weights(xb, min(kc, k - j), gen).double()  # (B, kc)
            lse = torch.logaddexp(lse, torch.logsumexp(lw, 1))
            total += lw.sum(1)
        elbos.append((total / k).cpu())
        bounds.append((lse - math.log(k)).cpu())
        if progress is not None:
            progress(min(i + bs, len(xt)), len(xt))
    model.train(was_training)
    return torch.cat(elbos).numpy(), torch.cat(bounds).numpy()


def iwae_bound(model: nn.Module, x: Any, *, k: int = 5000, seed: int = 0, max_rows: int = MAX_ROWS) -> np.ndarray:
    """The importance-weighted bound on log p(x) of each sample with ``k`` draws (nats), shape (n_samples,)."""
    return likelihood_bounds(model, x, k=k, seed=seed, max_rows=max_rows)[1]


def latent_grid(n: int = 20, *, coverage: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grid of 2-D latent values for the manifold map (Kingma & Welling 2014, fig. 4).

    ``n`` values per axis, evenly spaced in probability over the central ``coverage`` of the
    standard normal prior and mapped through its inverse CDF.

    Returns
    -------
    z1, z2 : ndarray of shape (n,), increasing
    Z : ndarray of shape (n * n, 2), float32; row ``i * n + j`` is ``(z1[j], z2[i])``
    """
    if not isinstance(n, int) or n < 2:
        raise ConfigError(f"the grid needs n >= 2 values per axis, got {n!r}")
    if not 0 < coverage < 1:
        raise ConfigError(f"coverage must be in (0, 1), got {coverage}")
    lo = (1 - coverage) / 2
    vals = torch.special.ndtri(torch.linspace(lo, 1 - lo, n, dtype=torch.float64)).numpy()
    zz2, zz1 = np.meshgrid(vals, vals, indexing="ij")
    return vals.copy(), vals.copy(), np.stack([zz1.ravel(), zz2.ravel()], 1).astype(np.float32)


def evaluate_likelihood(
    model: nn.Module,
    x: Any,
    *,
    k: int = 5000,
    binarize: str | None = "auto",
    seed: int = 0,
    binarize_seed: int = TEST_BINARIZATION_SEED,
    max_rows: int = MAX_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Test ELBO and NLL of a VAE on ``x``, in nats per sample (the numbers papers report).

    Parameters
    ----------
    model : a VAE
    x : ndarray of shape (n_samples, *model.input_shape)
    k : int, default 5000
        Importance samples per image for the NLL (Burda et al. 2016 use 5000).
    binarize : {"auto", "stochastic", None}, default "auto"
        ``"auto"``: a Bernoulli decoder on non-binary data in [0, 1] scores
        :func:`stochastic_binarize` (x, seed ``binarize_seed``) -- binarised MNIST as in the
        literature; binary data and Gaussian decoders are scored as given. ``"stochastic"``:
        always binarise; None: never.

    Returns
    -------
    dict with ``elbo`` (mean ELBO, a lower bound on log p(x): negative), ``nll`` (minus the mean
    IWAE bound: positive), their standard errors over the samples, ``k``, ``n``, ``binarized``
    (how the data were binarised) and ``seconds``.
    """
    _check_model(model)
    k = _check_k(k)
    if binarize not in ("auto", "stochastic", None):
        raise ConfigError(f"binarize must be 'auto', 'stochastic' or None, got {binarize!r}")
    arr = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32)
    how = "as given"
    bern = getattr(model, "likelihood", "") == "bernoulli"
    if binarize == "stochastic" or (binarize == "auto" and bern and arr.size and not is_binary(arr)):
        arr = stochastic_binarize(arr, seed=binarize_seed)
        how = f"stochastic (seed {binarize_seed})"
    elif bern and arr.size and is_binary(arr):
        how = "binary already"
    t0 = time.perf_counter()
    e, b = likelihood_bounds(model, arr, k=k, seed=seed, max_rows=max_rows, progress=progress)
    n = len(e)

    def se(v: np.ndarray) -> float:  # standard error of the mean over the test samples
        return float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    return {
        "elbo": float(e.mean()),
        "nll": float(-b.mean()),
        "elbo_std_err": se(e),
        "nll_std_err": se(b),
        "k": k,
        "n": n,
        "binarized": how,
        "seconds": time.perf_counter() - t0,
    }
