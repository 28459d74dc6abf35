"""The tutorial's three autoencoders, trained as the tutorial trained them, against its logs and PCA.

Models (exact tutorial set-ups, see shared/reference/tutorial.md):

* ``dense``: 784-128-32-2-32-128-784 (ReLU code) on binarised MNIST, batch 256;
* ``conv``: conv 16/8 + max-pool (7x7x8 = 392 code) on binarised MNIST, batch 128;
* ``denoiser``: the wide conv 32/64 model (7x7x64 = 3136 code) on binarised Fashion-MNIST, batch 128,
  inputs ``clip(x + 0.2 + N(0, 0.2), 0, 1)`` drawn once before training (``fixed_noise=True``),
  targets the clean images.

All with Adam(1e-3, eps 1e-7), BCE from logits, validation on the (noisy -> clean) test set every
epoch, as the tutorial did. Reported per model: test BCE/pixel at the epochs the tutorial logged
(dense 0.1897, conv 0.0234, denoiser 0.0348 at epoch 10; dense 0.1712 at 94 and conv 0.0196 at 19
when ``--epochs-*`` reach them), steady samples/s, seconds per epoch, and the test squared error
per image against PCA with the same code size (PCA fitted on the clean binarised training images;
a code of 784 or more values makes PCA lossless: it returns its input, so for the denoiser it is the
"do nothing" baseline; PCA-64, a smaller code, is given as well: projecting onto it does not remove
the +0.2 shift, so it is no better).

    python benchmarks/tutorial.py                                    # 10 epochs each
    python benchmarks/tutorial.py --epochs-dense 94 --epochs-conv 19 # the tutorial's later points
    python benchmarks/tutorial.py --quick                            # smoke run, < 1 minute

Writes benchmarks/results/tutorial.json and loss curves in benchmarks/results/figures/.
"""

from __future__ import annotations

import argparse
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
from aekit.data import binarize, corrupt_numpy, load_dataset, parse_corruption  # noqa: E402
from aekit.training import pca_baseline, reconstruction_metrics  # noqa: E402
from aekit.viz import loss_curves  # noqa: E402

# name -> (model, preset, dataset, batch size, noisy inputs)
MODELS: dict[str, tuple[str, str, str, int, bool]] = {
    "dense": ("dense_ae", "tutorial", "mnist", 256, False),
    "conv": ("conv_ae", "tutorial", "mnist", 128, False),
    "denoiser": ("conv_ae", "wide", "fashion-mnist", 128, True),
}
# The tutorial's printed logs (tf.keras 2.1.6 on TF 1.10, one unseeded run each): epoch -> BCE/pixel.
TUTORIAL_VAL: dict[str, dict[int, float]] = {
    "dense": {1: 0.2291, 2: 0.2149, 3: 0.2077, 5: 0.1983, 10: 0.1897, 20: 0.1814, 30: 0.1765,
              50: 0.1731, 75: 0.1713, 94: 0.1712},
    "conv": {1: 0.0550, 2: 0.0419, 3: 0.0361, 5: 0.0304, 10: 0.0234, 12: 0.0221, 19: 0.0196},
    "denoiser": {1: 0.1097, 2: 0.0874, 3: 0.0692, 5: 0.0516, 10: 0.0348, 12: 0.0308},
}
TUTORIAL_TRAIN: dict[str, dict[int, float]] = {
    "dense": {1: 0.2775, 2: 0.2225, 3: 0.2120, 5: 0.2002, 10: 0.1900, 20: 0.1801, 30: 0.1738,
              50: 0.1677, 75: 0.1640, 94: 0.1624},
    "conv": {1: 0.1296, 2: 0.0484, 3: 0.0396, 5: 0.0322, 10: 0.0245, 12: 0.0229, 19: 0.0202},
    "denoiser": {1: 0.1545, 2: 0.0966, 3: 0.0772, 5: 0.0543, 10: 0.0355, 12: 0.0312},
}
# The tutorial's seconds per epoch after the first (unknown hardware)
TUTORIAL_SECONDS = {"dense": 2.0, "conv": 4.0, "denoiser": 4.5}
NOISE = "seed"  # clip(x + 0.2 + N(0, 0.2), 0, 1)
DENOISE_PCA_K = 64  # a smaller PCA code for the denoiser: projection onto it removes noise


def subsample(n: int | None, total: int, seed: int) -> np.ndarray:
    if n is None or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def run_model(key: str, epochs: int, args: argparse.Namespace, data_cache: dict, out_dir: Path) -> dict[str, Any]:
    model_name, preset, dataset, batch_size, noisy = MODELS[key]
    if dataset not in data_cache:
        ds = load_dataset(dataset, download=False)
        itr = subsample(args.n_train, len(ds.x_train), args.seed)
        ite = subsample(args.n_test, len(ds.x_test), args.seed + 1)
        # the tutorial binarises both splits at 0.5 (train and test)
        data_cache[dataset] = (binarize(ds.x_train[itr], 0.5), binarize(ds.x_test[ite], 0.5))
    x_train, x_test = data_cache[dataset]

    aekit.seed_everything(args.seed)
    with _quiet_overcomplete():
        model = aekit.create_model(model_name, preset, input_shape=(1, 28, 28))
    n_params = sum(p.numel() for p in model.parameters())
    cfg = aekit.TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, seed=args.seed,
                            threads=args.threads, precision=args.precision, fixed_noise=noisy,
                            progress=False)
    corruption = parse_corruption(NOISE) if noisy else None
    trainer = aekit.Trainer(cfg, corruption=corruption)

    def log(tr, rec):
        print(f"  {key} epoch {rec['epoch']:3d}: train {rec['train_loss']:.4f} val {rec['val_loss']:.4f} "
              f"({rec['seconds']:.1f} s, {rec['samples_per_s']:.0f} samples/s)", flush=True)

    trainer.callbacks.append(log)
    t0 = time.perf_counter()
    hist = trainer.fit(model, torch.from_numpy(x_train), torch.from_numpy(x_test))
    train_wall = time.perf_counter() - t0

    # final test metrics; the denoiser's test inputs are one noisy copy of the clean test set
    x_in = corrupt_numpy(x_test, NOISE, seed=args.seed + 3) if noisy else x_test
    metrics = reconstruction_metrics(model, x_in, x_test)
    code_dim = int(model.code_dim)
    pca = pca_baseline(x_train, x_in, x_test, code_dim, seed=args.seed)
    pca_rows = [{"what": f"PCA-{pca['n_components']}" + (" (lossless)" if pca["lossless"] else ""),
                 "code": code_dim, **pca}]
    if noisy:
        small = pca_baseline(x_train, x_in, x_test, DENOISE_PCA_K, seed=args.seed)
        pca_rows.append({"what": f"PCA-{small['n_components']} (smaller code)", "code": DENOISE_PCA_K, **small})
        ident = float(((x_in - x_test) ** 2).reshape(len(x_test), -1).sum(1).mean())
        pca_rows.append({"what": "noisy input as is", "code": None, "sq_err_per_image": ident})

    recs = hist.records
    val = {int(r["epoch"]): r["val_loss"] for r in recs}
    compare = [{"epoch": e, "ours": val[e], "tutorial": ref, "diff": val[e] - ref}
               for e, ref in TUTORIAL_VAL[key].items() if e in val]
    steady = recs[1:] if len(recs) > 1 else recs
    out = {
        "model": model_name, "preset": preset, "dataset": dataset, "binarised": True,
        "noise": NOISE if noisy else None, "fixed_noise": noisy, "batch_size": batch_size,
        "params": n_params, "code_dim": code_dim, "epochs": epochs,
        "n_train": len(x_train), "n_test": len(x_test),
        "precision": trainer.precision, "channels_last": trainer.channels_last,
        "history": [{k: v for k, v in r.items()} for r in recs],
        "compare_tutorial_val": compare,
        "samples_per_s": hist.steady_samples_per_s(),
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in steady])),
        "train_seconds_per_epoch": float(np.mean([r["train_seconds"] for r in steady])),
        "first_epoch_seconds": recs[0]["seconds"],
        "tutorial_seconds_per_epoch": TUTORIAL_SECONDS[key],
        "train_wall_s": train_wall,
        "test": metrics,
        "pca": pca_rows,
    }
    if not args.no_figures:
        fig_dir = out_dir / "figures"
        ref = {"tutorial val": sorted(TUTORIAL_VAL[key].items()),
               "tutorial train": sorted(TUTORIAL_TRAIN[key].items())}
        if epochs < max(TUTORIAL_VAL[key]):  # keep the axis on the epochs trained
            ref = {k: [p for p in v if p[0] <= epochs] or v[:1] for k, v in ref.items()}
        path = loss_curves(recs, fig_dir / f"tutorial_{key}.png", reference=ref,
                                     title=f"tutorial {key}: {model_name}/{preset}, batch {batch_size}")
        root = _common.REPO_ROOT
        out["figure"] = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    return out


class _quiet_overcomplete:
    """The wide denoiser's 3136-value code is overcomplete by design (the tutorial's model)."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.filterwarnings("ignore", message=".*is not smaller than the input.*")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="dense,conv,denoiser", help="comma-separated subset")
    ap.add_argument("--epochs", type=int, default=10, help="epochs for every model (default 10)")
    ap.add_argument("--epochs-dense", type=int, default=None, help="override for dense (94: the last logged)")
    ap.add_argument("--epochs-conv", type=int, default=None, help="override for conv (19: the last logged)")
    ap.add_argument("--epochs-denoiser", type=int, default=None, help="override for the denoiser (12)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--n-train", type=int, default=None, help="random subset of the training images")
    ap.add_argument("--n-test", type=int, default=None, help="random subset of the test images")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="TrainConfig precision (auto = fp32 on CPUs without native bf16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000/500 images, 2 epochs")
    ap.add_argument("--out", default="tutorial", help="results/<OUT>.json (default tutorial)")
    ap.add_argument("--results-dir", default=None, help="folder for the JSON (default benchmarks/results; "
                    "with --quick a temporary folder, so that smoke runs keep the real results)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_train = min(args.n_train or 1000, 1000)
        args.n_test = min(args.n_test or 500, 500)
        args.epochs = 2
        args.epochs_dense = args.epochs_conv = args.epochs_denoiser = None
    keys = [k for k in args.models.split(",") if k]
    unknown = set(keys) - set(MODELS)
    if unknown:
        ap.error(f"unknown model(s) {sorted(unknown)}; choose from {list(MODELS)}")
    epochs = {k: getattr(args, f"epochs_{k}") or args.epochs for k in keys}

    t_start = time.perf_counter()
    env = _common.env_info()
    results: dict[str, Any] = {}
    cache: dict = {}
    for k in keys:
        print(f"{k}: {MODELS[k][0]}/{MODELS[k][1]} on {MODELS[k][2]}, {epochs[k]} epochs", flush=True)
        results[k] = run_model(k, epochs[k], args, cache, _common.results_dir(args))
    wall = time.perf_counter() - t_start

    summary = []
    for k, r in results.items():
        at10 = next((c for c in r["compare_tutorial_val"] if c["epoch"] == 10), None)
        last = r["compare_tutorial_val"][-1] if r["compare_tutorial_val"] else None
        summary.append({
            "model": k, "params": r["params"], "batch": r["batch_size"], "epochs": r["epochs"],
            "val10": at10["ours"] if at10 else None, "tut10": at10["tutorial"] if at10 else None,
            "last_ep": last["epoch"] if last else None, "val_last": last["ours"] if last else None,
            "tut_last": last["tutorial"] if last else None,
            "sps": r["samples_per_s"], "s_ep": r["seconds_per_epoch"], "tut_s_ep": r["tutorial_seconds_per_epoch"],
            "wall": r["train_wall_s"],
        })
    _common.print_table(summary, ["model", "params", "batch", "epochs", "val10", "tut10", "last_ep", "val_last",
                                  "tut_last", "sps", "s_ep", "tut_s_ep", "wall"],
                        ["model", "params", "batch", "epochs", "test BCE @10", "tutorial @10",
                         "last logged ep", "test BCE there", "tutorial there", "samples/s",
                         "s/epoch", "tutorial s/epoch", "train wall s"],
                        title=f"tutorial models vs the tutorial's logs ({args.threads} threads)")
    for k, r in results.items():
        rows = [{"epoch": c["epoch"], "ours": c["ours"], "tutorial": c["tutorial"], "diff": c["diff"]}
                for c in r["compare_tutorial_val"]]
        if rows:
            _common.print_table(rows, ["epoch", "ours", "tutorial", "diff"],
                                ["epoch", "test BCE/pixel (ours)", "tutorial", "ours - tutorial"],
                                title=f"{k}: validation BCE at the tutorial's logged epochs")
    pca_rows = []
    for k, r in results.items():
        pca_rows.append({"model": k, "what": f"{k} AE (code {r['code_dim']})", "sq": r["test"]["sq_err_per_image"],
                         "bce": r["test"].get("bce_per_pixel")})
        for p in r["pca"]:
            pca_rows.append({"model": k, "what": p["what"], "sq": p["sq_err_per_image"],
                             "ev": p.get("explained_variance")})
    _common.print_table(pca_rows, ["model", "what", "sq", "bce", "ev"],
                        ["model", "reconstruction", "test sq. error / image", "test BCE/pixel",
                         "PCA explained var."],
                        title="autoencoder vs PCA with the same code size (binarised test images; "
                              "denoiser: noisy in, clean target)")

    payload = {
        "benchmark": "tutorial",
        "command": _common.command_line(),
        "env": env,
        "quick": args.quick,
        "measured": ("each tutorial model trained as the tutorial did (Adam 1e-3 eps 1e-7, BCE, binarised "
                     "data, tutorial batch sizes, validation on the test set every epoch); test BCE/pixel "
                     "per epoch against the tutorial's logged values; steady samples/s (first epoch "
                     "excluded); seconds per epoch incl. validation; test squared error per image against "
                     "PCA with the same code size (capped at 784 = lossless)"),
        "settings": {"threads": args.threads, "epochs": epochs, "n_train": args.n_train, "n_test": args.n_test,
                     "precision": args.precision, "seed": args.seed},
        "tutorial_val_log": TUTORIAL_VAL,
        "summary": summary,
        "models": results,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "wall_s": wall,
    }
    path = _common.write_json(args.out, payload, _common.results_dir(args))
    print(f"\nwall time {wall:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
