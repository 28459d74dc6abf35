"""aekit against the tutorial's framework: its three models in Keras 3 on TensorFlow (CPU).

Both sides train the same models (dense 784-128-32-2-32-128-784 on binarised MNIST, batch 256;
conv 16/8 on binarised MNIST, batch 128; wide conv 32/64 denoiser on binarised Fashion-MNIST with
fixed noisy inputs clip(clean + 0.2 + N(0, 0.2)), batch 128) with Adam(1e-3, eps 1e-7) and BCE,
on the same arrays, with the same thread counts. Each run is a separate process; for every
(model, threads) the aekit and Keras runs follow each other, so both see the same machine load.
The full default run took 20 minutes on the shared 2-core machine (less when it is idle).

Reported: steady-state training samples/s (first epoch excluded when there are several), the ratio
ours / Keras, and the test BCE per pixel of both after the same number of epochs.
Target (issue): ratio >= 1.5 on every tutorial model, with equal or lower test loss.

The Keras side runs in its own virtual environment, benchmarks/.venv-keras, created on first use
(`pip install tensorflow-cpu keras`, about 1.6 GB); `--keras-python` points at another one.

    python benchmarks/reference_keras.py                      # 3 epochs, threads 1 and 2
    python benchmarks/reference_keras.py --omp-wait-policy passive   # on a busy shared machine
    python benchmarks/reference_keras.py --epochs 10 --threads 2 --precision fp32,auto
    python benchmarks/reference_keras.py --models conv --seeds 0,1,2 --repeats 2  # firmer numbers
    python benchmarks/reference_keras.py --n-train 2000 --n-test 500 --epochs 2   # smoke run

Writes benchmarks/results/reference_keras.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
KERAS_WORKER = BENCH_DIR / "_keras_worker.py"
DEFAULT_KERAS_VENV = BENCH_DIR / ".venv-keras"

# name -> (aekit model name, preset, dataset, batch size), as in the tutorial.
MODELS: dict[str, tuple[str, str, str, int]] = {
    "dense": ("dense_ae", "tutorial", "mnist", 256),
    "conv": ("conv_ae", "tutorial", "mnist", 128),
    "denoiser": ("conv_ae", "wide", "fashion_noisy", 128),
}

# Validation BCE per pixel printed in the tutorial's logs (tf.keras 2.1.6, TF 1.10, one unseeded
# run each), by epoch; a rough yardstick only.
TUTORIAL_VAL_LOSS: dict[str, dict[int, float]] = {
    "dense": {1: 0.2291, 2: 0.2149, 3: 0.2077, 5: 0.1983, 10: 0.1897, 20: 0.1814, 30: 0.1765,
              50: 0.1731, 75: 0.1713, 94: 0.1712},
    "conv": {1: 0.0550, 2: 0.0419, 3: 0.0361, 5: 0.0304, 10: 0.0234, 12: 0.0221, 19: 0.0196},
    "denoiser": {1: 0.1097, 2: 0.0874, 3: 0.0692, 5: 0.0516, 10: 0.0348, 12: 0.0308},
}

NOISE_SHIFT, NOISE_STD = 0.2, 0.2
TARGET_RATIO = 1.5

NOTE = (
    "Measured on a shared 2-core machine where other jobs may run at the same time. For each "
    "(model, threads, seed, repeat) the aekit and Keras runs are separate processes started one "
    "right after the other (their order rotates between configurations), so compare ratios within "
    "one run of this script rather than absolute samples/s across runs; each run records the load "
    "average before and after it. 2-thread runs suffer most from other jobs (PyTorch's OpenMP "
    "threads spin-wait for a core that is busy; TensorFlow's thread pool degrades more gently), "
    "so --repeats N (best of N per side) gives firmer 2-thread ratios. Samples/s count training "
    "only (no evaluation), steady state (first epoch excluded when epochs > 1). Test loss is BCE "
    "per pixel on the test set after the last epoch; one seed is within seed-to-seed spread "
    "(several percent after few epochs), so use --seeds for firmer loss comparisons."
)


# ----------------------------------------------------------------------------------------------
# data


def _find_dir(explicit: str | None, names: list[str], files: list[str]) -> Path | None:
    """The first candidate folder holding all `files`."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    home = os.environ.get("AEKIT_DATA_HOME")
    for name in names:
        if home:
            candidates.append(Path(home) / name)
        candidates.append(_common.REPO_ROOT.parent / "shared" / "datasets" / name)
        candidates.append(Path("/usr/share/datasets") / name)
    for c in candidates:
        if all((c / f).is_file() for f in files):
            return c
    return None


IDX_FILES = ["train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"]


def load_idx_images(folder: Path, split: str):
    """uint8 images of shape (N, 28, 28) from a gzipped IDX file (`split`: 'train' or 't10k')."""
    import numpy as np

    with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "rb") as fh:
        raw = fh.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)


def binarise(x):
    """The tutorial's preprocessing: /255, then pixels >= 0.5 -> 1, else 0; float32 (N,1,28,28)."""
    import numpy as np

    return ((x.astype(np.float32) / 255.0) >= 0.5).astype(np.float32)[:, None, :, :]


def add_noise(clean, rng):
    """The tutorial's corruption: clip(clean + 0.2 + N(0, 0.2), 0, 1), float32."""
    import numpy as np

    x = clean + NOISE_SHIFT + rng.normal(0.0, NOISE_STD, size=clean.shape)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def prepare_data(args: argparse.Namespace, datasets: set[str], out_dir: Path) -> dict[str, Any]:
    """Write each needed dataset as .npy files under out_dir/<dataset>/; return a description."""
    import numpy as np

    info: dict[str, Any] = {}
    sources = {
        "mnist": ("mnist", args.mnist_dir, ["mnist"],
                  "the MNIST IDX files (shared/datasets/mnist)"),
        "fashion_noisy": ("fashion-mnist", args.fashion_dir, ["fashion-mnist"],
                          "Fashion-MNIST (apt-get install -y dataset-fashion-mnist)"),
    }
    for ds in sorted(datasets):
        label, explicit, names, hint = sources[ds]
        folder = _find_dir(explicit, names, IDX_FILES)
        if folder is None:
            raise SystemExit(f"{label}: IDX files not found; need {hint}, or pass --"
                             f"{'mnist' if ds == 'mnist' else 'fashion'}-dir")
        train = binarise(load_idx_images(folder, "train"))
        test = binarise(load_idx_images(folder, "t10k"))
        if args.n_train:
            train = train[: args.n_train]
        if args.n_test:
            test = test[: args.n_test]
        d = out_dir / ds
        d.mkdir(parents=True)
        if ds == "fashion_noisy":
            # Drawn once before training (the same noisy copy every epoch), as in the tutorial.
            rng = np.random.default_rng(args.data_seed)
            np.save(d / "x_train_in.npy", add_noise(train, rng))
            np.save(d / "x_train_target.npy", train)
            np.save(d / "x_test_in.npy", add_noise(test, rng))
            np.save(d / "x_test_target.npy", test)
        else:
            np.save(d / "x_train_in.npy", train)
            np.save(d / "x_test_in.npy", test)
        info[ds] = {"source": str(folder), "n_train": len(train), "n_test": len(test)}
    return info


# ----------------------------------------------------------------------------------------------
# the aekit side (runs in a subprocess: `reference_keras.py --worker torch ...`)


def _load_pair(folder: Path, split: str):
    import numpy as np
    import torch

    x_in = torch.from_numpy(np.load(folder / f"x_{split}_in.npy"))
    target = folder / f"x_{split}_target.npy"
    if target.is_file():
        return x_in, torch.from_numpy(np.load(target))
    return x_in  # a single tensor: input == target


def torch_worker(args: argparse.Namespace) -> int:
    """Train one aekit model with the Trainer and write the same JSON as the Keras worker."""
    import torch

    import aekit
    from aekit.models import create_model
    from aekit.training import TrainConfig, Trainer

    torch.set_num_threads(args.threads)
    name, preset, _, _ = MODELS[args.model]
    data = Path(args.data)
    train, test = _load_pair(data, "train"), _load_pair(data, "test")
    n_train = len(train[0] if isinstance(train, tuple) else train)
    n_test = len(test[0] if isinstance(test, tuple) else test)

    torch.manual_seed(args.seed)  # the Trainer leaves model initialisation to the caller
    model = create_model(name, preset=preset, input_shape=(1, 28, 28))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, adam_eps=1e-7,
                      seed=args.seed, threads=args.threads, progress=False,
                      precision=args.precision)
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    history = trainer.fit(model, train, val=test)
    wall = time.perf_counter() - t0

    epochs = []
    for r in history:
        sec = float(r["train_seconds"])  # training only; r["seconds"] includes validation
        epochs.append({"epoch": int(r["epoch"]), "train_loss": float(r["train_loss"]),
                       "val_loss": float(r["val_loss"]), "seconds": sec,
                       "samples_per_s": float(r["train_samples"]) / sec})
    result = {
        "framework": "aekit",
        "model": args.model,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "precision": args.precision,
        "resolved_precision": str(trainer.precision),
        "channels_last": bool(trainer.channels_last),
        "n_train": n_train,
        "n_test": n_test,
        "n_params": sum(p.numel() for p in model.parameters()),
        "history": epochs,
        "wall_seconds": wall,
        "env": {"torch": torch.__version__, "aekit": getattr(aekit, "__version__", None),
                "torch_threads": torch.get_num_threads(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability()},
    }
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


# ----------------------------------------------------------------------------------------------
# the Keras environment


def _keras_works(python: Path) -> str | None:
    """'tensorflow X / keras Y' when `python` imports both, else None."""
    if not python.is_file():
        return None
    code = "import tensorflow as tf, keras; print(tf.__version__, keras.__version__)"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                             timeout=300, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    tf_v, keras_v = out.stdout.split()[-2:]
    return f"tensorflow {tf_v} / keras {keras_v}"


def ensure_keras_python(args: argparse.Namespace) -> tuple[Path, str]:
    """A Python that has TensorFlow + Keras 3 (creating benchmarks/.venv-keras if needed), and
    its 'tensorflow X / keras Y' versions."""
    if args.keras_python:
        python = Path(args.keras_python)
        version = _keras_works(python)
        if not version:
            raise SystemExit(f"--keras-python {python}: cannot import tensorflow and keras")
        return python, version
    venv = DEFAULT_KERAS_VENV
    python = venv / "bin" / "python"
    version = _keras_works(python)
    if version:
        return python, version
    if args.no_install:
        raise SystemExit(f"{venv} has no working TensorFlow/Keras and --no-install was given")
    print(f"creating {venv} (TensorFlow CPU + Keras 3, about 1.6 GB; once) ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run(["python3", "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    # tensorflow-cpu avoids the CUDA wheels; fall back to tensorflow where it is not published.
    for tf_pkg in ("tensorflow-cpu>=2.16", "tensorflow>=2.16"):
        if subprocess.run([*pip, tf_pkg, "keras>=3"]).returncode == 0:
            break
    else:
        raise SystemExit(f"could not install TensorFlow into {venv}")
    version = _keras_works(python)
    if not version:
        raise SystemExit(f"{venv}: TensorFlow installed but does not import")
    print(f"  {version} installed in {time.perf_counter() - t0:.0f} s", flush=True)
    return python, version


# ----------------------------------------------------------------------------------------------
# orchestration


def _run_worker(cmd: list[str], threads: int, out: Path, label: str,
                omp_wait_policy: str = "inherit") -> dict[str, Any]:
    env = dict(os.environ)
    if omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = omp_wait_policy.upper()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS"):
        env[var] = str(threads)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONUNBUFFERED"] = "1"
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not out.is_file():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"{label}: worker failed (exit {proc.returncode})")
    result = json.loads(out.read_text(encoding="utf-8"))
    result["process_seconds"] = time.perf_counter() - t0
    return result


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def steady_samples_per_s(history: list[dict[str, Any]], n_train: int) -> float:
    """Samples/s over all epochs but the first (which includes warm-up), or epoch 1 alone."""
    rows = history[1:] if len(history) > 1 else history
    return n_train * len(rows) / sum(r["seconds"] for r in rows)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _speed_and_loss(runs: list[dict[str, Any]]) -> tuple[float, float]:
    """Samples/s (best of the repeats of a seed, then the mean over seeds) and final test loss
    (mean over all runs)."""
    seeds = sorted({r["seed"] for r in runs})
    sps = _mean([max(r["steady_samples_per_s"] for r in runs if r["seed"] == s) for s in seeds])
    return sps, _mean([r["history"][-1]["val_loss"] for r in runs])


def summarise(runs: list[dict[str, Any]], models: list[str], threads: list[int],
              precisions: list[str], epochs: int) -> list[dict[str, Any]]:
    """One table row per (model, threads, aekit precision), seeds averaged."""
    rows = []
    for m in models:
        for t in threads:
            keras_runs = [r for r in runs if r["framework"] == "keras"
                          and r["model"] == m and r["threads"] == t]
            if not keras_runs:
                continue
            k_sps, k_loss = _speed_and_loss(keras_runs)
            for p in precisions:
                ours = [r for r in runs if r["framework"] == "aekit" and r["model"] == m
                        and r["threads"] == t and r["precision"] == p]
                if not ours:
                    continue
                o_sps, o_loss = _speed_and_loss(ours)
                ratio = o_sps / k_sps
                rows.append({
                    "model": m, "threads": t, "precision": p, "batch_size": MODELS[m][3],
                    "epochs": epochs, "runs": len(ours),
                    "resolved_precision": sorted({r["resolved_precision"] for r in ours}),
                    "ours_samples_per_s": o_sps, "keras_samples_per_s": k_sps,
                    "ratio": ratio,
                    "ours_test_bce": o_loss, "keras_test_bce": k_loss,
                    "tutorial_val_bce": TUTORIAL_VAL_LOSS[m].get(epochs),
                    "speed_target_met": ratio >= TARGET_RATIO,
                    "loss_target_met": o_loss <= k_loss,
                })
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    p.add_argument("--models", default="dense,conv,denoiser",
                   help="comma list of dense, conv, denoiser (default all three)")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--precision", default="auto",
                   help="comma list of aekit precisions: fp32, bf16, auto (default auto)")
    p.add_argument("--seeds", default="0", help="comma list of training seeds (default 0)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per seed; samples/s is the best of them (default 1)")
    p.add_argument("--omp-wait-policy", choices=["inherit", "passive", "active"],
                   default="inherit",
                   help="OMP_WAIT_POLICY for both sides' workers (default: leave the environment "
                        "as is); 'passive' keeps PyTorch's 2-thread runs from collapsing when "
                        "other processes compete for the cores")
    p.add_argument("--n-train", type=int, default=0, help="use the first N training images")
    p.add_argument("--n-test", type=int, default=0, help="use the first N test images")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the fixed noisy copy")
    p.add_argument("--mnist-dir", help="folder with the MNIST IDX .gz files")
    p.add_argument("--fashion-dir", help="folder with the Fashion-MNIST IDX .gz files")
    p.add_argument("--keras-python", help="a Python with tensorflow + keras (skips the venv)")
    p.add_argument("--no-install", action="store_true", help="never create the Keras venv")
    p.add_argument("--output", default="reference_keras",
                   help="JSON name under benchmarks/results/ (default reference_keras)")
    # internal: run one aekit training in this process
    p.add_argument("--worker", choices=["torch"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.threads = int(args.threads)
        return args
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        p.error(f"unknown model(s) {bad}; choose from {list(MODELS)}")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.precision = [x.strip() for x in args.precision.split(",") if x.strip()]
    bad = [x for x in args.precision if x not in ("fp32", "bf16", "auto")]
    if bad:
        p.error(f"unknown precision(s) {bad}; choose from fp32, bf16, auto")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if args.epochs < 1:
        p.error("--epochs must be >= 1")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker == "torch":
        return torch_worker(args)

    keras_python, keras_version = ensure_keras_python(args)
    env = _common.env_info()
    print(f"CPU: {env['cpu']} ({env['cpu_count']} cores, flags {env['cpu_flags']}); "
          f"torch {env['torch']}; {keras_version}", flush=True)

    runs: list[dict[str, Any]] = []
    settings: dict[str, Any] = {
        "epochs": args.epochs, "models": args.models, "threads": args.threads,
        "precisions": args.precision, "seeds": args.seeds, "repeats": args.repeats,
        "data_seed": args.data_seed, "omp_wait_policy": args.omp_wait_policy,
        "batch_sizes": {m: MODELS[m][3] for m in args.models},
        "optimizer": "Adam(lr=1e-3, eps=1e-7)", "loss": "binary cross-entropy per pixel",
        "noise": f"clip(clean + {NOISE_SHIFT} + N(0, {NOISE_STD}), 0, 1), drawn once",
    }
    t_all = time.perf_counter()

    def save(complete: bool) -> tuple[Path, list[dict[str, Any]]]:
        # rewritten after every run, so an interrupted benchmark keeps what it measured
        rows = summarise(runs, args.models, args.threads, args.precision, args.epochs)
        payload = {
            "benchmark": "reference_keras",
            "command": _common.command_line(),
            "date_utc": env["date_utc"],
            "complete": complete,
            "note": NOTE,
            "target": {"ratio_at_least": TARGET_RATIO,
                       "test_loss": "ours <= keras at equal epochs"},
            "settings": settings,
            "env": {"aekit_side": env,
                    "keras_side": next((r["env"] for r in runs if r["framework"] == "keras"),
                                       {"versions": keras_version})},
            "total_seconds": time.perf_counter() - t_all,
            "results": rows,
            "runs": runs,
        }
        return _common.write_json(args.output, payload), rows

    configs = [(m, t, s, rep) for m in args.models for t in args.threads for s in args.seeds
               for rep in range(args.repeats)]
    n_runs = len(configs) * (1 + len(args.precision))
    with tempfile.TemporaryDirectory(prefix="aekit-refkeras-") as tmp:
        tmp_dir = Path(tmp)
        settings["data"] = prepare_data(args, {MODELS[m][2] for m in args.models}, tmp_dir)
        k = 0
        for i, (m, t, s, rep) in enumerate(configs):
            _, _, ds, batch = MODELS[m]
            # Rotate the order between configurations so neither side always runs first.
            jobs = [("keras", None)] + [("aekit", p) for p in args.precision]
            shift = i % len(jobs)
            jobs = jobs[shift:] + jobs[:shift]
            for fw, prec in jobs:
                k += 1
                out = tmp_dir / f"{m}-{t}-{s}-{rep}-{fw}-{prec}.json"
                common = ["--model", m, "--data", str(tmp_dir / ds), "--epochs", str(args.epochs),
                          "--batch-size", str(batch), "--threads", str(t), "--seed", str(s),
                          "--out", str(out)]
                if fw == "keras":
                    cmd = [str(keras_python), str(KERAS_WORKER), *common]
                else:
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "torch",
                           "--precision", prec, *common]
                label = f"{m} threads={t} seed={s} {fw}{'/' + prec if prec else ''}"
                if args.repeats > 1:
                    label += f" repeat={rep + 1}"
                load_before = _load_average()
                r = _run_worker(cmd, t, out, label, args.omp_wait_policy)
                r["repeat"] = rep
                r["load_average_before"] = load_before
                r["load_average_after"] = _load_average()
                r["steady_samples_per_s"] = steady_samples_per_s(r["history"], r["n_train"])
                runs.append(r)
                save(complete=False)
                last = r["history"][-1]
                print(f"[{k}/{n_runs}] {label}: {r['steady_samples_per_s']:,.0f} samples/s, "
                      f"test BCE {last['val_loss']:.4f} at epoch {last['epoch']} "
                      f"({r['process_seconds']:.0f} s, load {load_before[0] if load_before else '?'}"
                      f" before)", flush=True)

    path, rows = save(complete=True)
    cols = ["model", "threads", "precision", "ours_samples_per_s", "keras_samples_per_s", "ratio",
            "ours_test_bce", "keras_test_bce", "tutorial_val_bce", "speed_target_met",
            "loss_target_met"]
    heads = ["model", "threads", "ours prec", "ours samples/s", "keras samples/s", "ratio",
             f"ours test BCE@{args.epochs}", f"keras test BCE@{args.epochs}",
             f"tutorial val@{args.epochs}", f"ratio>={TARGET_RATIO}", "loss<=keras"]
    _common.print_table(rows, cols, heads,
                        title=f"aekit vs Keras 3 ({keras_version}), {args.epochs} epochs, "
                              f"seeds {args.seeds}, n_train {runs[0]['n_train']}")
    print(f"\nwrote {path.relative_to(_common.REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
