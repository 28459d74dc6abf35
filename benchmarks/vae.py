"""VAE on dynamically binarised MNIST: test ELBO and importance-weighted NLL, in nats.

The protocol of Burda, Grosse & Salakhutdinov (2016) and of pythae's benchmark: train on the 60,000
MNIST training images with *dynamic binarisation* (a fresh binary image x ~ Bernoulli(grey levels)
at every step: ``vae`` with ``binarize=True``), test on the 10,000 test images binarised once,
stochastically, with a fixed seed (``aekit.tasks.generative.stochastic_binarize``, seed 0), and
report the negative importance-weighted bound with K samples (K=5000 in the literature) as the
test NLL. References: pythae's VAE reaches 89.78 nats (the reference number is 89.9); IWAE-style
training (k=50 samples in the objective) about 86.8.

The model (defaults): ``vae`` preset ``binarized``: a 784-512-256-(z 32) MLP encoder with ReLU, its
mirror as a Bernoulli decoder (1.09M parameters), beta = 1 with the KL weight warmed up linearly
over ``--warmup-epochs``; Adam (lr 1e-3, batch 128) with a per-epoch cosine decay of the learning
rate to ``--lr * --lr-min-factor``; one torch thread. No validation split (the literature trains on
all 60,000); the test ELBO (one posterior draw, closed-form KL) is printed every ``--eval-every``
epochs to show convergence -- it selects nothing.

    python benchmarks/vae.py                 # the full run: 150 epochs, K=2000 (~30 min on one shared core)
    python benchmarks/vae.py --k 5000        # the literature's K (2.5x the NLL time)
    python benchmarks/vae.py --quick         # smoke run, < 1 minute

K defaults to 2000 to fit a 35-minute CPU budget; ``--k-check`` (5000) is also run on the first
``--k-check-n`` (500) test images to show how much the larger K lowers the NLL.

Writes benchmarks/results/vae.json and figures in benchmarks/results/figures/: vae_samples.png,
vae_interpolation.png, and from a 2-D-latent VAE (``--epochs-2d`` epochs) vae_manifold.png and
vae_latent.png.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("AEKIT_DATA_HOME", "/work/shared/datasets")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import aekit  # noqa: E402
from aekit.data import load_dataset  # noqa: E402
from aekit.tasks.generative import (  # noqa: E402
    TEST_BINARIZATION_SEED,
    elbo,
    evaluate_likelihood,
    latent_grid,
    likelihood_bounds,
    stochastic_binarize,
)

PYTHAE_VAE = 89.78  # pythae's reproduction of the VAE on dynamically binarised MNIST (nats)
REFERENCE_VAE = 89.9  # the target: the reference number pythae reproduces
IWAE_TRAINED = 86.8  # IWAE-style training (Burda et al. 2016, k=50)


def cosine_lr(lr0: float, min_factor: float, epochs: int):
    """Trainer callback: epoch e (1..E) trains at lr_min + (lr0 - lr_min) (1 + cos(pi (e-1)/(E-1))) / 2."""
    lr_min = lr0 * min_factor

    def cb(trainer, rec):
        frac = rec["epoch"] / max(1, epochs - 1)  # the lr of the *next* epoch
        lr = lr_min + 0.5 * (lr0 - lr_min) * (1 + math.cos(math.pi * min(1.0, frac)))
        for g in trainer.optimizer.param_groups:
            g["lr"] = lr

    return cb


def train_vae(x_train: np.ndarray, x_test_bin: np.ndarray, *, preset: str, latent_dim: int | None, epochs: int,
              args, label: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A ``vae`` (``preset``) trained with dynamic binarisation on ``x_train`` (grey levels)."""
    aekit.seed_everything(args.seed)
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    overrides = dict(kl_warmup=int(args.warmup_epochs * steps_per_epoch), binarize=True)
    if latent_dim is not None:
        overrides["latent_dim"] = latent_dim
    if args.hidden and preset != "2d":
        overrides["hidden"] = tuple(args.hidden)
    model = aekit.create_model("vae", preset, input_shape=tuple(x_train.shape[1:]), **overrides)
    cfg = aekit.TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            threads=args.threads, progress=False)
    t0 = time.perf_counter()
    history: list[dict[str, Any]] = []

    def log(trainer, rec):
        row = {k: rec.get(k) for k in ("epoch", "train_loss", "train_neg_elbo", "train_kl", "lr", "samples_per_s")}
        row["elapsed_s"] = time.perf_counter() - t0
        if args.eval_every and (rec["epoch"] % args.eval_every == 0 or rec["epoch"] == epochs):
            row["test_elbo_k1"] = float(elbo(model, x_test_bin, seed=1).mean())
            model.train()
        history.append(row)
        extra = f"  test ELBO {row['test_elbo_k1']:.2f}" if "test_elbo_k1" in row else ""
        print(f"  [{label}] epoch {rec['epoch']:3d}: train -ELBO {rec['train_neg_elbo']:.2f} "
              f"(KL {rec['train_kl']:.2f}, loss {rec['train_loss']:.2f})  lr {rec['lr']:.1e}  "
              f"{rec['samples_per_s']:.0f} samples/s{extra}", flush=True)

    callbacks = [log]  # logs the lr the epoch used, then the schedule sets the next one
    if args.schedule == "cosine":
        callbacks.append(cosine_lr(args.lr, args.lr_min_factor, epochs))
    hist = aekit.Trainer(cfg, callbacks=callbacks).fit(model, torch.from_numpy(x_train))
    info = {
        "label": label, "preset": preset, "epochs": epochs, "batch_size": args.batch_size, "lr": args.lr,
        "schedule": args.schedule, "lr_min_factor": args.lr_min_factor, "warmup_epochs": args.warmup_epochs,
        "config": aekit.models.config_to_dict(model.config),
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": time.perf_counter() - t0, "samples_per_s": hist.steady_samples_per_s(),
        "history": history,
    }
    return model.eval(), info


def figures(model, model2d, x_test_bin: np.ndarray, y_test: np.ndarray, fig_dir: Path, seed: int) -> list[str]:
    from aekit.viz import latent_map
    from aekit.viz.generative import interpolation_figure, manifold_map, sample_grid

    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = [sample_grid(model.sample(64, generator=torch.Generator().manual_seed(seed)).numpy(),
                         fig_dir / "vae_samples.png", title="VAE samples (decoder means), dynamically binarised MNIST")]
    # one test image of each digit 0..4 -> one of the digit 5..9
    first = [int(np.flatnonzero(y_test == d)[0]) for d in range(10)]
    rows = []
    for a, b in zip(first[:5], first[5:]):
        rows.append((f"{a} -> {b}", x_test_bin[a], model.interpolate(x_test_bin[a], x_test_bin[b], 8).numpy(),
                     x_test_bin[b]))
    paths.append(interpolation_figure(rows, fig_dir / "vae_interpolation.png",
                                      title="Decoded posterior means on the line between two test images"))
    if model2d is not None:
        z1, z2, Z = latent_grid(20)
        paths.append(manifold_map(model2d.decode_latents(torch.from_numpy(Z)).numpy(), fig_dir / "vae_manifold.png",
                                  z1=z1, z2=z2, title="2-D VAE: decoded latent grid (90% of the prior)"))
        with torch.inference_mode():
            codes = model2d.encode(torch.from_numpy(x_test_bin)).numpy()
        paths.append(latent_map(codes, fig_dir / "vae_latent.png", labels=y_test,
                                title="2-D VAE: posterior means of the test images"))
    return [str(p) for p in paths]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", choices=["cosine", "none"], default="cosine")
    ap.add_argument("--lr-min-factor", type=float, default=0.01, help="final lr = lr * this (cosine)")
    ap.add_argument("--warmup-epochs", type=float, default=10, help="KL weight 0 -> 1 over this many epochs")
    ap.add_argument("--latent-dim", type=int, default=None, help="default: the preset's (32)")
    ap.add_argument("--hidden", type=int, nargs="*", default=None, help="encoder widths (default: 512 256)")
    ap.add_argument("--k", type=int, default=2000, help="importance samples per test image for the NLL (papers: 5000)")
    ap.add_argument("--n-test", type=int, default=None, help="score only the first N test images")
    ap.add_argument("--k-check", type=int, default=5000, help="when > --k: also this K on --k-check-n images")
    ap.add_argument("--k-check-n", type=int, default=500, help="test images for the --k-check comparison (0: off)")
    ap.add_argument("--eval-every", type=int, default=10, help="print the test ELBO every N epochs (0: never)")
    ap.add_argument("--epochs-2d", type=int, default=10, help="epochs of the 2-D VAE for the manifold figure (0: none)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-figures", dest="figures", action="store_false")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5,000 training images, 2 epochs, K=20 on 500")
    ap.add_argument("--results-dir", default=None, help="default benchmarks/results (a temp folder with --quick)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.epochs, args.k, args.n_test, args.epochs_2d, args.eval_every = 2, 20, 500, 1, 1
        args.k_check, args.k_check_n = 50, 100
    out_dir = _common.results_dir(args)
    load_at_start = [round(v, 2) for v in os.getloadavg()]

    ds = load_dataset("mnist")
    x_train = np.ascontiguousarray(ds.x_train[:5000] if args.quick else ds.x_train)
    x_test = ds.x_test[: args.n_test] if args.n_test else ds.x_test
    y_test = ds.y_test[: len(x_test)]
    x_test_bin = stochastic_binarize(x_test, seed=TEST_BINARIZATION_SEED)
    print(f"MNIST: {len(x_train):,} training images (dynamically binarised), {len(x_test):,} test images "
          f"(binarised once, seed {TEST_BINARIZATION_SEED}); {args.threads} torch thread(s)", flush=True)

    model, info = train_vae(x_train, x_test_bin, preset="binarized", latent_dim=args.latent_dim,
                            epochs=args.epochs, args=args, label="vae")
    print(f"trained in {info['train_seconds'] / 60:.1f} min; estimating the NLL with K={args.k} ...", flush=True)
    t_last = [time.perf_counter()]

    def progress(done, total):
        if time.perf_counter() - t_last[0] > 60 or done == total:
            t_last[0] = time.perf_counter()
            print(f"  NLL: {done:,}/{total:,} test images", flush=True)

    res = evaluate_likelihood(model, x_test_bin, k=args.k, binarize=None, progress=progress)
    elbo_closed = float(elbo(model, x_test_bin, n_samples=10, seed=2).mean())
    k_check = None
    if args.k_check_n and args.k_check > args.k:
        # how much a larger K would lower the NLL: both Ks on the same first test images
        sub = x_test_bin[: args.k_check_n]
        t1 = time.perf_counter()
        nll_k = -float(likelihood_bounds(model, sub, k=args.k, seed=7)[1].mean())
        nll_big = -float(likelihood_bounds(model, sub, k=args.k_check, seed=8)[1].mean())
        k_check = {"n": len(sub), "k": args.k, "nll_k": nll_k, "k_big": args.k_check, "nll_k_big": nll_big,
                   "difference": nll_big - nll_k, "seconds": time.perf_counter() - t1}
        print(f"first {len(sub)} test images: NLL {nll_k:.2f} with K={args.k}, {nll_big:.2f} with "
              f"K={args.k_check} ({nll_big - nll_k:+.2f})", flush=True)
    row = {
        "model": f"aekit vae {'-'.join(str(h) for h in info['config']['hidden'])}-z{info['config']['latent_dim']}",
        "neg_elbo": -res["elbo"], "nll": res["nll"], "nll_se": res["nll_std_err"], "k": res["k"],
        "n_test": res["n"], "epochs": info["epochs"], "train_min": info["train_seconds"] / 60,
        "eval_min": res["seconds"] / 60, "params": info["params"],
    }
    rows = [
        row,
        {"model": "pythae VAE (reported)", "nll": PYTHAE_VAE, "k": 5000},
        {"model": "reference VAE (target)", "nll": REFERENCE_VAE, "k": 5000},
        {"model": "IWAE-style training (reported)", "nll": IWAE_TRAINED, "k": 5000},
    ]
    model2d, info2d = None, None
    paths: list[str] = []
    if args.figures:
        if args.epochs_2d:
            model2d, info2d = train_vae(x_train, x_test_bin, preset="2d", latent_dim=None, epochs=args.epochs_2d,
                                        args=argparse.Namespace(**{**vars(args), "eval_every": 0}), label="vae-2d")
        fig_dir = out_dir / "figures"
        paths = figures(model, model2d, x_test_bin, y_test, fig_dir, args.seed)

    met = res["nll"] <= REFERENCE_VAE and not args.quick and res["k"] >= 1000 and res["n"] == 10000
    _common.print_table(
        rows, ["model", "neg_elbo", "nll", "nll_se", "k", "n_test", "epochs", "train_min", "eval_min"],
        ["model", "-ELBO (nats)", "NLL (nats)", "± s.e.", "K", "test images", "epochs", "train min", "NLL min"],
        title=f"Dynamically binarised MNIST, test NLL = -IWAE bound with K={args.k} "
              f"(CPU: {_common.cpu_model()}, {args.threads} thread(s))",
    )
    print(f"\ntarget {REFERENCE_VAE} nats: {'met' if met else 'NOT met'} (NLL {res['nll']:.2f} ± "
          f"{res['nll_std_err']:.2f}, -ELBO {-res['elbo']:.2f}; closed-form-KL -ELBO {-elbo_closed:.2f})")
    payload = {
        "benchmark": "vae", "command": _common.command_line(), "env": _common.env_info(),
        "protocol": {
            "train": "MNIST 60,000 training images, dynamic binarisation (fresh Bernoulli draw each step)",
            "test": f"MNIST test images binarised once: torch.bernoulli, Generator seed {TEST_BINARIZATION_SEED}",
            "nll": "minus the mean importance-weighted bound log mean_k p(x,z_k)/q(z_k|x), K draws per image",
            "elbo": "mean of the same K log-weights (Monte Carlo KL); elbo_closed_kl: 10 draws, closed-form KL",
        },
        "args": vars(args), "train": info, "train_2d": info2d,
        "result": {**res, "neg_elbo": -res["elbo"], "elbo_closed_kl": elbo_closed}, "k_check": k_check,
        "load_average_at_start": load_at_start,
        "references": {"pythae_vae": PYTHAE_VAE, "reference_vae": REFERENCE_VAE, "iwae_trained": IWAE_TRAINED},
        "target_nats": REFERENCE_VAE, "target_met": met, "table": rows, "figures": paths,
    }
    path = _common.write_json("vae", payload, out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
