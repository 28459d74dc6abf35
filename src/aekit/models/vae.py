"""Variational autoencoders (Kingma & Welling 2014) and the beta-VAE (Higgins et al. 2017).

A Gaussian encoder q(z|x) = N(mean, diag(exp(logvar))), the reparameterisation
z = mean + exp(logvar / 2) * eps, a standard normal prior p(z), and a Bernoulli decoder (logits,
for data in [0, 1]) or a Gaussian one (mean = the activated output, a fixed or learnt std). The
loss is the negative ELBO per sample in nats, ``recon + beta * kl``, with the KL weight ramped
linearly from 0 over ``kl_warmup`` training steps (Sonderby et al. 2016). ``encode`` returns the
posterior mean, so a VAE's code is deterministic and the retrieval and anomaly tasks use it as
they use any autoencoder's code.

The log-likelihood estimators (ELBO, importance-weighted bound with K samples) live in
:mod:`aekit.tasks.generative`; the model supplies :meth:`VAE.log_weights`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, DataError, NotFittedError
from .base import Autoencoder, make_activation
from .registry import register_model

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True, kw_only=True)
class VAEConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)  # (C, H, W) images or (D,) feature vectors
    arch: str = "dense"  # "dense" (MLP) | "conv" (stride-2 convolutions, (C, H, W) inputs only)
    hidden: tuple[int, ...] = (512, 256)  # dense: encoder widths; the decoder mirrors them
    channels: tuple[int, ...] = (32, 64)  # conv: widths of the 4x4 stride-2 convs; mirrored
    latent_dim: int = 32  # size of z
    activation: str = "relu"  # hidden layers
    output: str = "sigmoid"  # "sigmoid": data in [0, 1]; "linear": unbounded (standardised) data
    loss: str = "auto"  # "bce": Bernoulli decoder; "mse": Gaussian; "auto": bce for sigmoid output
    obs_std: float | None = None  # Gaussian decoder: fixed std, or None to learn one per element
    beta: float = 1.0  # weight of the KL term; 1 is the VAE, > 1 a beta-VAE
    kl_warmup: int = 0  # training steps over which the KL weight grows linearly from 0 to beta
    binarize: bool = False  # Bernoulli decoder: train on a fresh binary draw x ~ Bernoulli(pixels) each step

    #: the Autoencoder base reads a sparsity spec; a VAE's code is regularised by its KL term
    sparsity = ""

    def __post_init__(self) -> None:
        if not isinstance(self.latent_dim, int) or isinstance(self.latent_dim, bool) or self.latent_dim < 1:
            raise ConfigError(
                f"latent_dim must be an integer >= 1 (the number of latent Gaussian units), got "
                f"{self.latent_dim!r}; e.g. latent_dim=2 for a latent space you can plot"
            )
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta >= 0):
            raise ConfigError(
                f"beta (the weight of the KL term) must be a finite number >= 0, got {self.beta!r}; "
                "beta=1 is the plain VAE, beta>1 a beta-VAE"
            )
        if not isinstance(self.kl_warmup, int) or self.kl_warmup < 0:
            raise ConfigError(f"kl_warmup must be a number of training steps >= 0, got {self.kl_warmup!r}")
        if self.arch not in ("dense", "conv"):
            raise ConfigError(f"arch must be 'dense' or 'conv', got {self.arch!r}")
        if self.arch == "conv":
            if len(self.input_shape) != 3:
                raise ConfigError(f"arch='conv' needs input_shape (C, H, W), got {tuple(self.input_shape)}")
            if not self.channels or any(int(c) < 1 for c in self.channels):
                raise ConfigError(f"channels must be one or more positive widths, got {self.channels}")
        if any(int(h) < 1 for h in self.hidden):
            raise ConfigError(f"hidden sizes must be >= 1, got {self.hidden}")
        if self.obs_std is not None and not (math.isfinite(self.obs_std) and self.obs_std > 0):
            raise ConfigError(f"obs_std must be a standard deviation > 0 (or None to learn it), got {self.obs_std}")
        if self.binarize and (self.output != "sigmoid" or self.loss == "mse"):
            raise ConfigError(
                "binarize=True draws binary pixels for a Bernoulli decoder: it needs output='sigmoid' and "
                "loss 'auto' or 'bce'"
            )


@dataclass(frozen=True)
class VAEOutput:
    """A forward pass: decoder logits for one posterior sample, the sample, and q(z|x)."""

    logits: Tensor  # (B, *input_shape)
    z: Tensor  # (B, latent_dim), reparameterised sample
    mean: Tensor  # (B, latent_dim)
    logvar: Tensor  # (B, latent_dim)


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, in nats: (B, L) -> (B,)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def _presets(**extra) -> dict[str, dict]:
    return {
        # MLP 784-512-256-(z 32): 1.06M parameters at 28x28
        "dense": dict(arch="dense", hidden=(512, 256), latent_dim=32, **extra),
        # 4x4 stride-2 convs 32, 64 (28 -> 14 -> 7), transposed convs back
        "conv": dict(arch="conv", channels=(32, 64), latent_dim=32, **extra),
        # a 2-D latent space: manifold maps and scatter plots without a projection
        "2d": dict(arch="dense", hidden=(512, 256), latent_dim=2, **extra),
    }


@register_model(
    "vae",
    presets={
        **_presets(),
        # benchmarks/vae.py's recipe: dynamically binarised MNIST, KL warm-up over ~10 epochs
        "binarized": dict(arch="dense", hidden=(512, 256), latent_dim=32, binarize=True, kl_warmup=4000),
    },
)
class VAE(Autoencoder):
    """Variational autoencoder: Gaussian encoder, Bernoulli or Gaussian decoder, KL to N(0, I)."""

    Config = VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        self.likelihood = "bernoulli" if self.recon_kind == "bce" else "gaussian"
        L = int(config.latent_dim)
        act = config.activation
        make_activation(act)  # fail early on an unknown name
        if config.arch == "dense":
            sizes = [math.prod(self.input_shape), *(int(h) for h in config.hidden)]
            enc: list[nn.Module] = [nn.Flatten()]
            for a, b in zip(sizes[:-1], sizes[1:]):
                enc += [nn.Linear(a, b), make_activation(act)]
            self.encoder = nn.Sequential(*enc)
            self.to_stats = nn.Linear(sizes[-1], 2 * L)
            rev = sizes[::-1]  # (h_k, ..., h_1, D); no hidden layers: a linear decoder
            dec: list[nn.Module] = [nn.Linear(L, rev[0])]
            for a, b in zip(rev[:-1], rev[1:]):
                dec += [make_activation(act), nn.Linear(a, b)]
            self.decoder = nn.Sequential(*dec)
            self.padded_hw = None
        else:
            c_in, h, w = self.input_shape
            ch = [int(c) for c in config.channels]
            f = 2 ** len(ch)
            # inputs are zero-padded up to a multiple of 2^depth and outputs cropped back
            self.padded_hw = (math.ceil(h / f) * f, math.ceil(w / f) * f)
            enc = []
            for a, b in zip([c_in, *ch[:-1]], ch):
                enc += [nn.Conv2d(a, b, 4, stride=2, padding=1), make_activation(act)]  # halves H, W
            self.fmap = (ch[-1], self.padded_hw[0] // f, self.padded_hw[1] // f)
            self.encoder = nn.Sequential(*enc, nn.Flatten())
            self.to_stats = nn.Linear(math.prod(self.fmap), 2 * L)
            dec = [nn.Linear(L, math.prod(self.fmap)), make_activation(act), nn.Unflatten(1, self.fmap)]
            widths = ch[::-1] + [c_in]  # e.g. (32, 64) -> [64, 32, C]
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
                dec.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))  # doubles H, W
                if i < len(widths) - 2:
                    dec.append(make_activation(act))
            self.decoder = nn.Sequential(*dec)
        if self.likelihood == "gaussian" and config.obs_std is None:
            self.log_std = nn.Parameter(torch.zeros(self.input_shape))  # learnt per element
        else:
            self.log_std = None
        # optimiser steps taken (drives the KL warm-up; 0 means the model was never trained)
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))

    # -- encoder / decoder ------------------------------------------------------------------
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x): (B, *input_shape) -> 2 x (B, latent_dim)."""
        if self.padded_hw is not None:
            _, h, w = self.input_shape
            ph, pw = self.padded_hw
            if (ph, pw) != (h, w):
                x = F.pad(x, (0, pw - w, 0, ph - h))
        else:
            x = x.reshape(x.shape[0], -1)
        stats = self.to_stats(self.encoder(x))  # (B, 2L)
        mean, logvar = stats.chunk(2, dim=-1)
        return mean, logvar

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean (deterministic): (B, *input_shape) -> (B, latent_dim)."""
        return self.posterior(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Decoder logits (Bernoulli) or pre-activation means (Gaussian): (B, L) -> (B, *input_shape)."""
        out = self.decoder(z)
        if self.padded_hw is not None:
            _, h, w = self.input_shape
            return out[:, :, :h, :w]
        return out.reshape(z.shape[0], *self.input_shape)

    @staticmethod
    def reparameterize(mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """z = mean + std * eps with eps ~ N(0, I): a sample with gradients to mean and logvar."""
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + (0.5 * logvar).exp() * eps

    def forward(self, x: Tensor) -> VAEOutput:
        mean, logvar = self.posterior(x)
        z = self.reparameterize(mean, logvar)
        return VAEOutput(logits=self.decode(z), z=z, mean=mean, logvar=logvar)

    # -- densities --------------------------------------------------------------------------
    def log_likelihood(self, logits: Tensor, target: Tensor) -> Tensor:
        """log p(x|z) in nats, summed over each sample's elements: (..., *input_shape) -> (...).

        ``target`` has the shape of ``logits`` or broadcasts to it (e.g. (B, 1, *input_shape)
        against the (B, k, *input_shape) logits of k posterior draws).
        """
        logits = logits.float()
        target = target.float()
        n = len(self.input_shape)
        if target.shape != logits.shape and target.numel() == logits.numel():
            target = target.reshape(logits.shape)
        if self.likelihood == "bernoulli":
            if target.shape == logits.shape:
                ll = -F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            elif target.ndim == logits.ndim and target.shape[-n - 1] == 1:
                # (B, k, *S) against (B, 1, *S): the same quantity, sum_d x_d l_d - softplus(l_d), with
                # the targets broadcast over the k draws (not copied) and their dot product one matmul
                lf, tf = logits.flatten(-n), target.flatten(-n)  # (..., k, D), (..., 1, D)
                return torch.matmul(lf, tf.transpose(-1, -2)).squeeze(-1) - F.softplus(lf).sum(-1)
            else:
                ll = target * logits - F.softplus(logits)
        else:
            mean = self.activate(logits)
            if self.log_std is not None:
                log_std = self.log_std.float().clamp(-7.0, 7.0)  # keeps exp() finite in fp32
            else:
                log_std = torch.full((), math.log(self.config.obs_std), device=logits.device)
            ll = -0.5 * ((target - mean) * torch.exp(-log_std)).pow(2) - log_std - 0.5 * LOG_2PI
        return ll.sum(dim=tuple(range(-n, 0)))

    def kl_divergence(self, mean: Tensor, logvar: Tensor) -> Tensor:
        """KL(q(z|x) || p(z)) in closed form, per sample in nats: -> (B,)."""
        return gaussian_kl(mean.float(), logvar.float())

    @property
    def kl_weight(self) -> float:
        """The KL weight of the next training step: beta, ramped up over ``kl_warmup`` steps."""
        beta, warm = float(self.config.beta), int(self.config.kl_warmup)
        if not warm:
            return beta
        return beta * min(1.0, (int(self.train_steps) + 1) / warm)

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Negative ELBO per sample (nats): ``recon`` (-log p(x|z)), ``kl``, ``loss`` (weighted)."""
        inputs, targets = batch
        training = self.training and torch.is_grad_enabled()
        if self.config.binarize and training:
            # dynamic binarisation: a fresh binary image per step (pixel intensity = P(on))
            same = inputs is targets or (inputs.shape == targets.shape and torch.equal(inputs, targets))
            targets = torch.bernoulli(targets.float().clamp(0, 1))
            inputs = targets if same else inputs
        mean, logvar = self.posterior(inputs)
        z = self.reparameterize(mean, logvar)
        recon = -self.log_likelihood(self.decode(z), targets)  # (B,)
        kl = self.kl_divergence(mean, logvar)  # (B,)
        weight = self.kl_weight if training else float(self.config.beta)
        if training:
            self.train_steps += 1
        recon_m, kl_m = recon.mean(), kl.mean()
        return {"recon": recon_m, "kl": kl_m, "neg_elbo": recon_m + kl_m, "loss": recon_m + weight * kl_m}

    def log_weights(self, x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """Importance log-weights log p(x, z_i) - log q(z_i|x) for ``k`` draws z_i ~ q(z|x): -> (B, k).

        ``logsumexp(w, 1) - log k`` is the IWAE bound (Burda et al. 2016) on log p(x); its mean over
        the draws is the ELBO (with a Monte Carlo KL).
        """
        mean, logvar = self.posterior(x)  # (B, L)
        B, L = mean.shape
        eps = torch.randn((B, k, L), generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean.unsqueeze(1) + (0.5 * logvar).exp().unsqueeze(1) * eps  # (B, k, L)
        log_q = -0.5 * (eps.pow(2) + logvar.unsqueeze(1) + LOG_2PI).sum(-1)  # (B, k)
        log_p_z = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)  # (B, k)
        logits = self.decode(z.reshape(B * k, L)).reshape(B, k, *self.input_shape)
        target = x.reshape(B, 1, *self.input_shape)
        return self.log_likelihood(logits, target) + log_p_z - log_q  # (B, k)

    # -- generation -------------------------------------------------------------------------
    def _check_trained(self, what: str) -> None:
        if int(self.train_steps) == 0:
            raise NotFittedError(
                f"cannot {what}: this {self.model_name} has not been trained (0 training steps), so it "
                "would only produce noise; train it first (aekit.Trainer(...).fit(model, data) or "
                "`aekit train --model vae`) or load a trained one with aekit.load(RUN)"
            )

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` images: z ~ N(0, I), decoded to the decoder's mean (pixel probabilities).

        Returns a tensor of shape (n, *input_shape) in data space.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"n (how many samples to draw) must be an integer >= 1, got {n!r}")
        self._check_trained("sample")
        p = next(self.parameters())
        z = torch.randn((n, int(self.config.latent_dim)), generator=generator).to(p.device, p.dtype)
        return self.activate(self.decode(z))

    @torch.no_grad()
    def decode_latents(self, z: Tensor) -> Tensor:
        """Decode latent values to images in data space: (n, latent_dim) -> (n, *input_shape)."""
        p = next(self.parameters())
        z = torch.as_tensor(z, dtype=p.dtype, device=p.device)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise DataError(f"latent values must have shape (n, {self.config.latent_dim}), got {tuple(z.shape)}")
        return self.activate(self.decode(z))

    @torch.no_grad()
    def interpolate(self, a: Tensor, b: Tensor, steps: int = 10) -> Tensor:
        """Decode ``steps`` points on the line between the posterior means of images ``a`` and ``b``.

        ``a`` and ``b`` have shape ``input_shape`` (or (1, *input_shape)); returns a tensor of
        shape (steps, *input_shape) in data space, from (the decoding of) ``a`` to ``b``.
        """
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
            raise ConfigError(f"steps must be an integer >= 2 (both ends included), got {steps!r}")
        self._check_trained("interpolate")
        p = next(self.parameters())
        ends = []
        for name, img in (("a", a), ("b", b)):
            t = torch.as_tensor(img, dtype=p.dtype, device=p.device)
            if t.shape == self.input_shape:
                t = t.unsqueeze(0)
            if tuple(t.shape) != (1, *self.input_shape):
                raise DataError(
                    f"interpolate: {name} must be one sample of shape {self.input_shape}, got {tuple(t.shape)}"
                )
            ends.append(self.encode(t))
        w = torch.linspace(0, 1, steps, device=p.device, dtype=p.dtype).unsqueeze(1)  # (steps, 1)
        z = (1 - w) * ends[0] + w * ends[1]  # (steps, L)
        return self.activate(self.decode(z))

    @torch.no_grad()
    def anomaly_score(self, x: Tensor, *, n_samples: int = 4, seed: int = 0) -> Tensor:
        """Negative ELBO per sample in nats (KL in closed form, ``n_samples`` draws for the
        reconstruction term): *higher = more anomalous*. Shape (B,).

        The draws are the same ``n_samples`` standard-normal vectors for every sample (from
        ``seed``), so a sample's score does not depend on the batch it is scored in, nor on its
        position there.
        """
        gen = torch.Generator().manual_seed(seed)
        mean, logvar = self.posterior(x)
        eps = torch.randn((n_samples, mean.shape[1]), generator=gen).to(mean.device, mean.dtype)
        std = (0.5 * logvar).exp()
        rec = torch.zeros(len(x), device=x.device)
        for k in range(n_samples):
            rec -= self.log_likelihood(self.decode(mean + std * eps[k]), x)
        return rec / n_samples + self.kl_divergence(mean, logvar)


@dataclass(frozen=True, kw_only=True)
class BetaVAEConfig(VAEConfig):
    beta: float = 4.0  # > 1 trades reconstruction for a more factorised (disentangled) code


@register_model("beta_vae", presets=_presets())
class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017): a VAE whose KL term weighs beta (default 4)."""

    Config = BetaVAEConfig
