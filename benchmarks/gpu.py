"""Training throughput on a GPU: the tutorial models and hinton2006, eager vs torch.compile, by precision.

Models (as benchmarks/tutorial.py and roofline.py build them): ``dense`` (dense_ae tutorial,
784-128-32-2-32-128-784), ``conv`` (conv_ae tutorial, 16/8), ``denoiser`` (conv_ae wide, 32/64,
inputs ``clip(x + 0.2 + N(0, 0.2), 0, 1)`` drawn once, targets clean, as the tutorial), and
``hinton2006`` (dense_ae hinton2006, 784-1000-500-250-30-..., ELU units, linear code). Each trained
with ``aekit.Trainer`` (Adam 1e-3, BCE) on MNIST in the grid {eager, torch.compile} x {fp32, bf16,
fp16 (CUDA only)} x batch sizes {128, 1024}.

Reported per configuration: steady samples/s (the epochs after the first: at least ``--epochs``
in all, more until they add up to ``--min-seconds`` of training, so that fast configurations are
not timed over a few milliseconds; the Trainer has no stop hook, so an epoch callback raises to end
the run), the first epoch's extra time over a steady epoch (for torch.compile: the compile time;
for eager: warm-up), peak GPU memory (``torch.cuda.max_memory_allocated``, with and without the
resident data set), the resolved precision and memory format. The training set is cut to a multiple of
1024 images (59,392 of MNIST's 60,000) so that every batch has the same shape and torch.compile
never recompiles for a short last batch. ``torch._dynamo.reset()`` runs before every compiled
configuration (fresh compile each time; the on-disk Inductor cache may still shorten later ones).

The data sit on the GPU by default (``--data-on device``): indexing then runs there, and the
numbers are the training step's, not the host-to-device copy's. On CUDA, eager fp32 is also timed
with the data on the host (skip with ``--no-host-check``): what passing a CPU tensor or numpy
array to ``Trainer.fit`` gives (a gather on the CPU and a copy per batch).

The Trainer reads the loss back (``float(loss)``) after every step to check that it is finite: a
host-device synchronisation per step, part of what is measured.

MNIST comes from ``$AEKIT_DATA_HOME/mnist`` (or ``--data-home``); when absent the run goes on with
uniform random images of the same shape and says so (throughput does not depend on the values).
A GPU machine without network needs the four IDX files copied into the checkout it receives,
e.g. ``.gpu-data/mnist/`` with ``--data-home .gpu-data``.

A whole default run is sized to fit in about 7 minutes on an H100 (``--minutes``, default 7):
eager configurations first, then the compiled ones (bf16, fp32, fp16), and a configuration whose
expected time would overrun the budget is skipped and listed as such. Progress lines are printed,
and the JSON is rewritten after every configuration, so an interrupted run keeps what it measured.

    python benchmarks/gpu.py                                  # CUDA: the whole grid, <= ~7 min
    python benchmarks/gpu.py --modes eager --minutes 3        # eager only
    python benchmarks/gpu.py --models conv,denoiser --batch-sizes 1024 --precisions bf16
    python benchmarks/gpu.py --data-home .gpu-data --results-dir "$OUT"   # on a lent machine
    python benchmarks/gpu.py --device cpu --quick             # smoke test without a GPU (~1 min)

Writes benchmarks/results/gpu.json from a CUDA run. A CPU run writes gpu_cpu_smoke.json (never
gpu.json); ``--quick`` writes to a temporary folder unless ``--results-dir`` is given.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

try:  # the GPU machine runs a plain python3 with torch but without aekit installed
    import aekit  # noqa: F401
except ImportError:
    sys.path.insert(0, str(_common.REPO_ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import aekit  # noqa: E402
from aekit.data import load_dataset, parse_corruption  # noqa: E402

MODELS: dict[str, dict[str, Any]] = {
    # name -> create_model arguments (hinton2006 as roofline.py and hinton2006.py build it)
    "dense": dict(name="dense_ae", preset="tutorial"),
    "conv": dict(name="conv_ae", preset="tutorial"),
    "denoiser": dict(name="conv_ae", preset="wide"),
    "hinton2006": dict(name="dense_ae", preset="hinton2006", activation="elu", code_activation="linear"),
}
NOISY = {"denoiser": "seed"}  # clip(x + 0.2 + N(0, 0.2), 0, 1), drawn once before training
N_TRAIN = 59392  # 58 * 1024: a multiple of every default batch size (no short last batch)
COMPILE_ORDER = ("bf16", "fp32", "fp16")  # compiled configurations run in this order of precision


class _Timed(Exception):
    """Raised by an epoch callback once enough steady epochs are timed (the Trainer has no stop hook)."""


def stop_when_timed(min_epochs: int, min_steady_s: float):
    """A Trainer callback ending training after ``min_epochs`` epochs once the epochs after the first
    add up to ``min_steady_s`` seconds of training (so fast configurations are not timed on 50 ms)."""

    def callback(trainer, record) -> None:
        recs = trainer.history.records
        if len(recs) >= min_epochs and sum(r["train_seconds"] for r in recs[1:]) >= min_steady_s:
            raise _Timed

    return callback


def build(key: str, seed: int) -> torch.nn.Module:
    spec = dict(MODELS[key])
    name, preset = spec.pop("name"), spec.pop("preset")
    aekit.seed_everything(seed)
    with warnings.catch_warnings():  # the wide model's 3136-value code is overcomplete by design
        warnings.simplefilter("ignore", UserWarning)
        return aekit.create_model(name, preset, input_shape=(1, 28, 28), **spec)


def load_images(n: int, data_home: str | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """``n`` MNIST training images, float32 in [0, 1], shape (n, 1, 28, 28); random ones if MNIST is absent."""
    try:
        ds = load_dataset("mnist", download=False, data_home=data_home)
        x = torch.from_numpy(np.ascontiguousarray(ds.x_train[:n]))
        return x, {"source": "mnist", "data_home": data_home or os.environ.get("AEKIT_DATA_HOME"),
                   "n_train": len(x), "values": "grayscale in [0, 1]"}
    except Exception as err:  # noqa: BLE001 - any failure to find MNIST falls back, loudly
        first = str(err).splitlines()[0]
        print(f"NOTE: MNIST not found ({first}); using uniform random images of the same shape instead. "
              "Throughput does not depend on the values, losses do.", flush=True)
        x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        return x, {"source": "random (MNIST not found)", "error": first, "n_train": n,
                   "values": "uniform in [0, 1]"}


def gpu_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if device.type != "cuda":
        return info
    props = torch.cuda.get_device_properties(device)
    info.update(name=torch.cuda.get_device_name(device), capability=f"{props.major}.{props.minor}",
                total_memory_gib=props.total_memory / 2**30, multiprocessors=props.multi_processor_count,
                cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported())
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        if out.returncode == 0:
            info["nvidia_smi"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def run_config(key: str, mode: str, precision: str, batch_size: int, data_on: str, x: torch.Tensor,
               x_noisy: torch.Tensor | None, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """Train one configuration; its steady samples/s, first-epoch overhead and peak memory."""
    cuda = device.type == "cuda"
    if mode == "compile":
        torch._dynamo.reset()  # a fresh compile; also keeps clear of the recompile limit
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    target = x.to(device) if data_on == "device" else x
    inputs = x_noisy.to(device) if (x_noisy is not None and data_on == "device") else x_noisy
    data_bytes = 0
    if data_on == "device" and device.type != "cpu":
        data_bytes = target.numel() * target.element_size() * (2 if inputs is not None else 1)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    model = build(key, args.seed)
    cl = {"auto": None, "on": True, "off": False}[args.channels_last]
    cfg = aekit.TrainConfig(epochs=args.max_epochs, batch_size=batch_size, lr=1e-3, seed=args.seed, device=str(device),
                            precision=precision, compile=mode == "compile", channels_last=cl, threads=args.threads,
                            progress=False)
    trainer = aekit.Trainer(cfg, callbacks=[stop_when_timed(args.epochs, args.min_seconds)])
    t0 = time.perf_counter()
    try:
        trainer.fit(model, (inputs, target) if inputs is not None else target)
    except _Timed:
        pass
    hist = trainer.history
    if cuda:
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    recs = hist.records
    steady = recs[1:] if len(recs) > 1 else recs
    steady_epoch_s = sum(r["train_seconds"] for r in steady) / len(steady)
    first = recs[0]["train_seconds"]
    row = {
        "samples_per_s": hist.steady_samples_per_s(),
        "per_epoch_samples_per_s": [r["samples_per_s"] for r in recs],
        "first_epoch_s": first,
        "steady_epoch_s": steady_epoch_s,
        # the first epoch's extra time: compile (torch.compile) or warm-up (eager: allocator, kernels)
        "first_epoch_overhead_s": first - steady_epoch_s if len(recs) > 1 else None,
        "train_loss_last": recs[-1]["train_loss"],
        "epochs": len(recs),
        "resolved_precision": trainer.precision,
        "channels_last": bool(trainer.channels_last),
        "steps_per_epoch": len(target) // batch_size + bool(len(target) % batch_size),
        "data_bytes_on_device": data_bytes,
        "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        "peak_memory_excl_data_mib": (torch.cuda.max_memory_allocated(device) - data_bytes) / 2**20 if cuda else None,
        "wall_s": wall,
    }
    del model, trainer, target, inputs
    return row


def plan(args: argparse.Namespace, cuda: bool) -> list[dict[str, Any]]:
    """The configurations in run order: eager, host-data checks, then compiled (by COMPILE_ORDER)."""
    configs = []
    if "eager" in args.modes:
        for key in args.models:
            for bs in args.batch_sizes:
                for prec in args.precisions:
                    configs.append(dict(model=key, mode="eager", precision=prec, batch_size=bs, data_on=args.data_on))
    if cuda and args.host_check and args.data_on == "device" and "eager" in args.modes:
        for key in args.models:
            for bs in args.batch_sizes:
                configs.append(dict(model=key, mode="eager", precision="fp32", batch_size=bs, data_on="host"))
    if "compile" in args.modes:
        precs = [p for p in COMPILE_ORDER if p in args.precisions] + [p for p in args.precisions
                                                                       if p not in COMPILE_ORDER]
        compiled = [dict(model=key, mode="compile", precision=prec, batch_size=bs, data_on=args.data_on)
                    for prec in precs for key in args.models for bs in args.batch_sizes]
        if args.compile_limit is not None:
            compiled = compiled[: args.compile_limit]
        configs += compiled
    return configs


def pivot(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """samples/s by (model, batch) x (mode, precision), device-resident data only."""
    cols: list[str] = []
    table: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        if r.get("data_on") != "device" or r.get("samples_per_s") is None:
            continue
        col = f"{r['mode']} {r['precision']}"
        if col not in cols:
            cols.append(col)
        table.setdefault((r["model"], r["batch_size"]), {"model": r["model"], "batch": r["batch_size"]})[col] = (
            r["samples_per_s"])
    return list(table.values()), cols


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (CUDA if present), cuda, cuda:N or cpu")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of %(default)s")
    ap.add_argument("--modes", default="eager,compile", help="eager and/or compile")
    ap.add_argument("--precisions", default=None,
                    help="comma-separated fp32, bf16, fp16 (default fp32,bf16,fp16 on CUDA, fp32,bf16 on CPU)")
    ap.add_argument("--batch-sizes", default="128,1024")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per configuration at least; the first is "
                    "excluded from samples/s and gives the compile time (default 3)")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="more epochs (up to --max-epochs) until the "
                    "steady epochs add up to this many seconds (default 2)")
    ap.add_argument("--max-epochs", type=int, default=20)
    ap.add_argument("--cold-cache", action="store_true", help="a fresh, empty TorchInductor cache folder, so "
                    "compile times are cold even on a machine that compiled these models before")
    ap.add_argument("--n-train", type=int, default=N_TRAIN, help=f"training images (default {N_TRAIN:,})")
    ap.add_argument("--minutes", type=float, default=7.0, help="time budget: configurations expected to end "
                    "after it are skipped (default 7)")
    ap.add_argument("--data-on", choices=["device", "host"], default="device",
                    help="where the training tensors live (default: on the device)")
    ap.add_argument("--no-host-check", dest="host_check", action="store_false",
                    help="skip the eager fp32 runs with the data on the host (CUDA only)")
    ap.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                    help="auto: what the model prefers (the Trainer's default; conv models: on)")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    ap.add_argument("--compile-limit", type=int, default=None, help="run at most this many compiled configurations")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--data-home", default=None, help="folder holding mnist/ (default $AEKIT_DATA_HOME)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,024 images, 2 epochs, one compiled "
                    "configuration")
    ap.add_argument("--out", default=None, help="results/<OUT>.json (default gpu on CUDA, gpu_cpu_smoke on CPU)")
    ap.add_argument("--results-dir", default=None, help="folder for the JSON (default benchmarks/results; "
                    "with --quick a temporary folder)")
    args = ap.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.modes = [m for m in args.modes.split(",") if m]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    bad = [m for m in args.models if m not in MODELS] + [m for m in args.modes if m not in ("eager", "compile")]
    if bad:
        ap.error(f"unknown model(s)/mode(s) {bad}; models: {list(MODELS)}, modes: eager, compile")
    if args.precisions is not None:
        args.precisions = [p for p in args.precisions.split(",") if p]
        if any(p not in ("fp32", "bf16", "fp16") for p in args.precisions):
            ap.error("--precisions: choose from fp32, bf16, fp16")
    if args.epochs < 1:
        ap.error("--epochs must be >= 1")
    if args.quick:
        args.n_train, args.epochs, args.min_seconds = min(args.n_train, 1024), 2, 0.0
        if args.compile_limit is None:
            args.compile_limit = 1
    args.max_epochs = max(args.max_epochs, args.epochs)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data_home:
        os.environ["AEKIT_DATA_HOME"] = args.data_home
    else:
        os.environ.setdefault("AEKIT_DATA_HOME", str(_common.REPO_ROOT.parent / "shared" / "datasets"))
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: no CUDA GPU is visible to torch {torch.__version__}")
    cuda = device.type == "cuda"
    if args.precisions is None:
        args.precisions = ["fp32", "bf16", "fp16"] if cuda else ["fp32", "bf16"]
    if not cuda and "fp16" in args.precisions:
        print("NOTE: fp16 (autocast + GradScaler) is a CUDA option; dropped on CPU", flush=True)
        args.precisions = [p for p in args.precisions if p != "fp16"]
    out_name = args.out or ("gpu" if cuda else "gpu_cpu_smoke")
    if out_name == "gpu" and not cuda:
        raise SystemExit("refusing to write gpu.json from a CPU run; pass --out another name")
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cold_cache:
        import tempfile

        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="aekit-inductor-")

    t_start = time.perf_counter()
    budget_s = args.minutes * 60
    env = _common.env_info()
    gpu = gpu_info(device)
    print(f"device {device}: {gpu.get('name', _common.cpu_model())}; torch {torch.__version__}, CUDA "
          f"{torch.version.cuda}, cuDNN {gpu.get('cudnn')}; budget {args.minutes:g} min", flush=True)

    x, data_info = load_images(args.n_train, os.environ.get("AEKIT_DATA_HOME"))
    x_noisy = None
    if "denoiser" in args.models:  # the tutorial's fixed noisy copy (Trainer fixed_noise does the same)
        x_noisy = parse_corruption(NOISY["denoiser"])(x, torch.Generator().manual_seed(args.seed + 2))
    configs = plan(args, cuda)
    if cuda:  # CUDA context and cuBLAS start-up outside the first configuration's timing
        a = torch.ones(256, 256, device=device)
        (a @ a).sum().item()
    print(f"{len(configs)} configurations, {args.epochs}+ epochs of {len(x):,} images each (at least "
          f"{args.min_seconds:g} s of steady epochs)", flush=True)

    rows: list[dict[str, Any]] = []

    def save(complete: bool):
        payload = {
            "benchmark": "gpu",
            "command": _common.command_line(),
            "complete": complete,
            "env": env,
            "gpu": gpu,
            "data": data_info,
            "measured": ("aekit.Trainer steady samples/s (epochs after the first), first-epoch overhead over a "
                         "steady epoch (compile time for torch.compile), torch.cuda.max_memory_allocated (data "
                         "included when it sits on the device); Adam 1e-3, BCE; fresh model per configuration"),
            "settings": {"device": str(device), "models": args.models, "modes": args.modes,
                         "precisions": args.precisions, "batch_sizes": args.batch_sizes, "epochs": args.epochs,
                         "min_steady_seconds": args.min_seconds, "max_epochs": args.max_epochs,
                         "inductor_cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default"),
                         "n_train": len(x), "data_on": args.data_on, "host_check": args.host_check,
                         "channels_last": args.channels_last, "cudnn_benchmark": args.cudnn_benchmark,
                         "compile": "model.compile() (torch.compile, default mode) via TrainConfig(compile=True); "
                                    "torch._dynamo.reset() before each",
                         "minutes": args.minutes, "seed": args.seed,
                         "denoiser_noise": "clip(x + 0.2 + N(0, 0.2), 0, 1), drawn once"},
            "results": rows,
            "wall_s": time.perf_counter() - t_start,
        }
        return _common.write_json(out_name, payload, _common.results_dir(args))

    estimates: dict[str, list[float]] = {"eager": [], "compile": []}
    for i, c in enumerate(configs, 1):
        elapsed = time.perf_counter() - t_start
        past = estimates[c["mode"]]
        guess = max(past[-3:]) if past else (10.0 if c["mode"] == "eager" else 60.0)  # the slowest of the last 3
        label = (f"[{i}/{len(configs)}] {c['model']} {c['mode']} {c['precision']} batch {c['batch_size']}"
                 + (" (data on host)" if c["data_on"] == "host" else ""))
        row: dict[str, Any] = dict(c)
        if elapsed + guess > budget_s:
            row.update(status="skipped: time budget", samples_per_s=None)
            print(f"{label}: skipped (elapsed {elapsed:.0f} s + expected {guess:.0f} s > budget {budget_s:.0f} s)",
                  flush=True)
            rows.append(row)
            continue
        try:
            r = run_config(c["model"], c["mode"], c["precision"], c["batch_size"], c["data_on"], x, x_noisy,
                           device, args)
            row.update(status="ok", **r)
            past.append(r["wall_s"])
            over = r["first_epoch_overhead_s"]
            mem = f", peak {r['peak_memory_mib']:,.0f} MiB" if r["peak_memory_mib"] is not None else ""
            print(f"{label}: {r['samples_per_s']:,.0f} samples/s, first-epoch overhead "
                  f"{'-' if over is None else f'{over:.1f} s'}{mem} ({r['resolved_precision']}, "
                  f"channels_last={r['channels_last']}; {r['wall_s']:.1f} s, elapsed "
                  f"{time.perf_counter() - t_start:.0f} s)", flush=True)
        except Exception as err:  # noqa: BLE001 - one failing configuration must not end the run
            row.update(status=f"error: {type(err).__name__}: {str(err).splitlines()[0][:300]}", samples_per_s=None)
            past.append(time.perf_counter() - t_start - elapsed)
            print(f"{label}: {row['status']}", flush=True)
        rows.append(row)
        save(complete=False)

    base = {(r["model"], r["batch_size"]): r["samples_per_s"] for r in rows
            if r["mode"] == "eager" and r["precision"] == "fp32" and r["data_on"] == args.data_on
            and r.get("samples_per_s")}
    for r in rows:
        b = base.get((r["model"], r["batch_size"]))
        r["vs_eager_fp32"] = r["samples_per_s"] / b if (b and r.get("samples_per_s")) else None
    _common.print_table(rows, ["model", "mode", "precision", "batch_size", "data_on", "samples_per_s", "vs_eager_fp32",
                               "first_epoch_overhead_s", "peak_memory_mib", "peak_memory_excl_data_mib",
                               "channels_last", "status"],
                        ["model", "mode", "precision", "batch", "data", "samples/s (steady)", "x eager fp32",
                         "1st-epoch overhead s (compile)", "peak MiB", "peak MiB w/o data", "channels-last",
                         "status"],
                        title=f"aekit.Trainer on {gpu.get('name', device)}: {len(x):,} images, {args.epochs}+ epochs")
    prow, pcols = pivot(rows)
    if prow:
        _common.print_table(prow, ["model", "batch", *pcols], ["model", "batch", *pcols],
                            title="samples/s by mode and precision (data on the device)")
    path = save(complete=True)
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
