"""How close aekit's training loop comes to this CPU's matmul and convolution peaks.

Measured, in one run so that the ratios see the same machine load:

1. The matmul peak: ``torch.mm`` of two float32 2048x2048 matrices (2 * 2048^3 FLOPs), best of
   ``--reps`` timings, at each thread count (``--threads``, default 1 and 2). It is measured again
   after each thread count's training runs; the higher of the two measurements is the peak used.
2. FLOPs per training sample of each dense model (the tutorial's 784-128-32-2-32-128-784 and
   Hinton & Salakhutdinov's 784-1000-500-250-30-250-500-1000-784):
   ``6 * sum(fan_in * fan_out)`` over the Linear layers: the forward pass is one matmul of
   ``2 * fan_in * fan_out`` FLOPs per layer and sample, the backward pass two (input gradient and
   weight gradient). Biases, activations, the loss and the optimiser are not counted (they are
   memory-bound and are overhead here); the first layer's input gradient, which is not computed,
   is counted (its share is given as ``flops_first_layer_dx_share``).
3. Training throughput of ``aekit.Trainer`` (Adam 1e-3, BCE, the model's defaults) on MNIST at
   batch sizes 128, 256 and 1024: steady samples/s (epochs after the first), and
   ``fraction of peak = samples/s * FLOPs/sample / peak``.
4. For the hinton2006 model: the same step in a bare loop (no Trainer), alone and with the changes
   a faster trainer could make (fused Adam, foreach Adam, the BCE as one fused reduction, no
   per-step ``float(loss)``), and the real Trainer as is and with ``Adam(fused=True)`` swapped in
   (a subclass), all side by side in this process, in interleaved rounds; and a torch.profiler table of the
   Trainer's step showing where the time goes (skip with ``--no-profile``); both at
   ``--bare-threads`` threads (default: the last of ``--threads``).
5. The conv models (``conv_ae`` presets ``tutorial`` and ``wide``, and the denoiser: ``wide``
   trained on noisy inputs ``clip(x + 0.2 + N(0, 0.2), 0, 1)`` drawn once, as the tutorial did):
   a convolution peak, ``F.conv2d`` forward of a channels-last (32, 64, 64, 64) batch with a
   64 -> 64 3x3 kernel, "same" padding (``--conv-peak``; 2 * 32*64*64 * 64*64*9 = 9.66 GFLOP a
   call), best of ``--reps``, in float32 and in bfloat16, before and after each thread count's
   runs like the matmul peak; FLOPs per training sample from forward hooks on the model's
   Conv2d/ConvTranspose2d/Linear layers over one sample (2 * MACs forward, x3 for forward and
   backward, as for the dense models; biases, activations, max-pooling, upsampling, the loss and
   the optimiser not counted); the FLOPs the fast CPU path really asks oneDNN for
   (``torch.utils.flop_counter`` over one fwd+bwd: the sub-pixel/transposed rewrites of
   upsample + conv and the skipped first-layer input gradient make it 5-22% fewer) as a second
   figure; and the Trainer's steady samples/s on MNIST at batch 128 (``--conv-batch-sizes``) with
   its default precision and memory format (bf16 autocast and channels-last on CPUs with
   AVX512-BF16), as a fraction of the float32 peak and of the peak of the precision used.
6. The tutorial models (dense, conv, denoiser, as ``reference_keras.py`` sets them up, batch 256,
   128, 128) against Keras 3 on TensorFlow in the same run: each side a fresh process on the same
   arrays (``--keras-n-train`` images, ``--keras-epochs`` epochs, ``--keras-threads`` threads),
   one right after the other; the ratio ours / Keras of steady samples/s. Needs the Keras venv
   benchmarks/.venv-keras (made by reference_keras.py; skipped with a note when absent, or with
   ``--no-keras``).

The target (issue "Scale and speed"): hinton2006 at 60% or more of the matmul peak; the JSON's
``target`` section says at which threads/batch sizes it is met, gives the default batch 128
figures, and the tutorial models' ratios against Keras from the same run.

    python benchmarks/roofline.py                 # full: 16,384 images, threads 1 and 2 (~6 min idle)
    python benchmarks/roofline.py --threads 2 --n-train 20000
    python benchmarks/roofline.py --no-keras --conv-models ""   # the dense part alone (~1.5 min)
    python benchmarks/roofline.py --quick         # smoke run, about a minute

Writes benchmarks/results/roofline.json.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("AEKIT_DATA_HOME", "/work/shared/datasets")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import aekit  # noqa: E402
from aekit.data import load_dataset, parse_corruption  # noqa: E402

MODELS: dict[str, dict[str, Any]] = {
    # name -> create_model arguments (hinton2006 with the ELU units and linear code hinton2006.py trains)
    "tutorial_dense": dict(name="dense_ae", preset="tutorial"),
    "hinton2006": dict(name="dense_ae", preset="hinton2006", activation="elu", code_activation="linear"),
}
CONV_MODELS: dict[str, dict[str, Any]] = {
    # name -> create_model arguments; the denoiser is the wide model fed noisy inputs (NOISY)
    "tutorial_conv": dict(name="conv_ae", preset="tutorial"),
    "wide": dict(name="conv_ae", preset="wide"),
    "denoiser": dict(name="conv_ae", preset="wide"),
}
NOISY = {"denoiser": "seed"}  # clip(x + 0.2 + N(0, 0.2), 0, 1), drawn once (fixed_noise), as the tutorial
TARGET_FRACTION = 0.6  # for hinton2006, of the float32 matmul peak
DEFAULT_BATCH = 128  # the Trainer's default batch size, reported beside the best
CONV_PEAK = (32, 64, 64, 3)  # batch, channels in = out, height = width, kernel of the conv peak
KERAS_MODELS = ("dense", "conv", "denoiser")  # reference_keras.py's set-ups


def build(model_key: str, seed: int = 0) -> torch.nn.Module:
    spec = dict(MODELS.get(model_key) or CONV_MODELS[model_key])
    name, preset = spec.pop("name"), spec.pop("preset")
    aekit.seed_everything(seed)
    with warnings.catch_warnings():  # the wide model's 3136-value code is overcomplete by design
        warnings.simplefilter("ignore", UserWarning)
        return aekit.create_model(name, preset, input_shape=(1, 28, 28), **spec)


def linear_layers(model: torch.nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]


def flops_per_sample(model: torch.nn.Module) -> dict[str, Any]:
    layers = linear_layers(model)
    macs = sum(a * b for a, b in layers)
    first = layers[0][0] * layers[0][1]
    return {
        "linear_layers": [f"{a}x{b}" for a, b in layers],
        "sum_in_out": macs,
        "forward_flops": 2 * macs,
        "train_flops_per_sample": 6 * macs,
        "flops_first_layer_dx_share": round(2 * first / (6 * macs), 4),
        "params": sum(p.numel() for p in model.parameters()),
    }


def matmul_peak(threads: int, reps: int, n: int = 2048) -> dict[str, Any]:
    """Best-of-``reps`` float32 torch.mm GFLOP/s at ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        times.append(time.perf_counter() - t)
    flops = 2 * n**3
    return {
        "threads": threads,
        "n": n,
        "reps": reps,
        "best_gflops": flops / min(times) / 1e9,
        "median_gflops": flops / float(np.median(times)) / 1e9,
    }


def conv_peak(threads: int, reps: int, dtype: torch.dtype = torch.float32,
              shape: tuple[int, int, int, int] = CONV_PEAK) -> dict[str, Any]:
    """Best-of-``reps`` GFLOP/s of a channels-last ``F.conv2d`` forward (C -> C, k x k, "same")."""
    torch.set_num_threads(threads)
    b, c, hw, k = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, hw, hw, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, k, k, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
    times = []
    with torch.no_grad():
        F.conv2d(x, w, padding=k // 2)  # warm-up (oneDNN primitive creation)
        for _ in range(reps):
            t = time.perf_counter()
            F.conv2d(x, w, padding=k // 2)
            times.append(time.perf_counter() - t)
    flops = 2 * b * hw * hw * c * c * k * k
    return {
        "threads": threads,
        "dtype": str(dtype).replace("torch.", ""),
        "shape": f"x ({b}, {c}, {hw}, {hw}) channels-last, w ({c}, {c}, {k}, {k}), padding {k // 2}",
        "gflop_per_call": flops / 1e9,
        "reps": reps,
        "best_gflops": flops / min(times) / 1e9,
        "median_gflops": flops / float(np.median(times)) / 1e9,
    }


def conv_flops_per_sample(model: nn.Module) -> dict[str, Any]:
    """FLOPs per training sample of a conv model, from forward hooks over one sample.

    Conv2d: ``out.numel() * C_in/groups * k*k`` MACs; ConvTranspose2d: ``in.numel() * C_out/groups
    * k*k``; Linear: ``out.numel() * in_features``. Forward = 2 * MACs, training = 3 x forward.
    With hooks attached the model runs its plain layer sequence (FastSequential steps aside), so
    these are the model's nominal FLOPs; ``executed_train_flops_per_sample`` counts what the fast
    CPU path computes instead.
    """
    layers: list[dict[str, Any]] = []

    def hook(mod, inputs, out):
        x = inputs[0]
        if isinstance(mod, nn.Linear):
            macs, what = out.numel() * mod.in_features, f"{mod.in_features}->{mod.out_features}"
        elif isinstance(mod, nn.ConvTranspose2d):
            macs = x.numel() * mod.out_channels // mod.groups * math.prod(mod.kernel_size)
            what = f"{mod.in_channels}->{mod.out_channels} {mod.kernel_size[0]}x{mod.kernel_size[1]}T"
        else:
            macs = out.numel() * mod.in_channels // mod.groups * math.prod(mod.kernel_size)
            what = f"{mod.in_channels}->{mod.out_channels} {mod.kernel_size[0]}x{mod.kernel_size[1]}"
        layers.append({"layer": type(mod).__name__, "shape": f"{what} @{'x'.join(map(str, out.shape[2:]))}",
                       "macs": int(macs)})

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *model.input_shape))  # (1, C, H, W)
    finally:
        for h in handles:
            h.remove()
    macs = sum(r["macs"] for r in layers)
    return {
        "layers": layers,
        "macs": macs,
        "forward_flops": 2 * macs,
        "train_flops_per_sample": 6 * macs,
        "flops_first_layer_dx_share": round(2 * layers[0]["macs"] / (6 * macs), 4),
        "executed_train_flops_per_sample": executed_flops_per_sample(model),
        "params": sum(p.numel() for p in model.parameters()),
    }


def executed_flops_per_sample(model: nn.Module, n: int = 8) -> float:
    """FLOPs that one fwd+bwd of the loss really asks for per sample (torch.utils.flop_counter), on
    the fast CPU path in channels-last float32: convolutions, their backward, and matmuls."""
    from torch.utils.flop_counter import FlopCounterMode

    cl = getattr(model, "prefers_channels_last", False)
    if cl:
        model.to(memory_format=torch.channels_last)
    model.train()
    x = torch.rand(n, *model.input_shape)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False)
    with counter:
        model.loss((x, x))["loss"].backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / n


def trainer_throughput(model_key: str, x: torch.Tensor, batch_size: int, threads: int, epochs: int,
                       seed: int) -> dict[str, Any]:
    model = build(model_key, seed)
    noisy = NOISY.get(model_key)
    cfg = aekit.TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, seed=seed, threads=threads,
                            progress=False, fixed_noise=bool(noisy))
    trainer = aekit.Trainer(cfg, corruption=parse_corruption(noisy) if noisy else None)
    t = time.perf_counter()
    hist = trainer.fit(model, x)
    wall = time.perf_counter() - t
    return {
        "samples_per_s": hist.steady_samples_per_s(),
        "per_epoch_samples_per_s": [r["samples_per_s"] for r in hist.records],
        "train_loss_last": hist.records[-1]["train_loss"],
        "precision": trainer.precision,
        "channels_last": bool(trainer.channels_last),
        "wall_s": wall,
    }


# -- the bare loop and its variants (hinton2006) ------------------------------------------------
def _bce_fused(model, xb):
    logits = model.decode(model.encode(xb))
    return F.binary_cross_entropy_with_logits(logits, xb)


VARIANTS: dict[str, dict[str, Any]] = {
    # the Trainer's step before commit 2a90dfb: model.loss (element-wise BCE then .mean()), Adam
    # defaults (single-tensor for-loop on CPU), zero_grad(set_to_none), float(loss) each step
    "bare loop, Adam() default": dict(adam={}, fused_loss=False, sync=True),
    "+ Adam(foreach=True)": dict(adam={"foreach": True}, fused_loss=False, sync=True),
    "+ Adam(fused=True)": dict(adam={"fused": True}, fused_loss=False, sync=True),
    "+ fused BCE mean": dict(adam={}, fused_loss=True, sync=True),
    "fused Adam + fused BCE": dict(adam={"fused": True}, fused_loss=True, sync=True),
    "fused Adam + fused BCE, no float(loss)": dict(adam={"fused": True}, fused_loss=True, sync=False),
    # the real Trainer, as is (fused Adam on CPU since 2a90dfb) and with Adam(fused=True) forced by a
    # subclass (the same thing now; it was the proposed change before)
    "aekit.Trainer, as is": dict(trainer=True, fused=False),
    "aekit.Trainer, Adam(fused=True) forced": dict(trainer=True, fused=True),
}


class FusedAdamTrainer(aekit.Trainer):
    """The Trainer with Adam(fused=True) forced (same maths, one kernel per tensor)."""

    def _setup(self, model):
        super()._setup(model)
        cfg = self.config
        if cfg.optimizer == "adam":
            params = [p for p in model.parameters() if p.requires_grad]
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
                                              fused=True)


def trainer_loop(model_key: str, x: torch.Tensor, batch_size: int, threads: int, steps: int, fused: bool,
                 seed: int) -> float:
    """Steady samples/s of the real Trainer (2 epochs of ``steps`` batches; the second is timed)."""
    model = build(model_key, seed)
    cfg = aekit.TrainConfig(epochs=2, batch_size=batch_size, seed=seed, threads=threads, progress=False)
    cls = FusedAdamTrainer if fused else aekit.Trainer
    return cls(cfg).fit(model, x[: batch_size * steps]).steady_samples_per_s()


def bare_loop(model_key: str, x: torch.Tensor, batch_size: int, threads: int, steps: int,
              variant: dict[str, Any], seed: int) -> float:
    """Samples/s of ``steps`` optimizer steps on shuffled batches of ``x`` (after 5 warm-up steps)."""
    torch.set_num_threads(threads)
    model = build(model_key, seed)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7, **variant["adam"])
    gen = torch.Generator().manual_seed(seed)
    n = len(x)
    t0 = None
    for i in range(steps + 5):
        if i == 5:
            t0 = time.perf_counter()
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        xb = x[idx]
        loss = _bce_fused(model, xb) if variant["fused_loss"] else model.loss((xb, xb))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if variant["sync"]:
            float(loss.detach())
        opt.step()
    return steps * batch_size / (time.perf_counter() - t0)


def profile_trainer_step(model_key: str, x: torch.Tensor, batch_size: int, threads: int, seed: int,
                         steps: int = 40, n_rows: int = 18) -> dict[str, Any]:
    """torch.profiler over one short Trainer epoch; the top ops by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    model = build(model_key, seed)
    n = min(len(x), batch_size * steps)
    cfg = aekit.TrainConfig(epochs=1, batch_size=batch_size, seed=seed, threads=threads, progress=False)
    aekit.Trainer(cfg).fit(model, x[:n])  # warm-up (allocations, oneDNN/MKL kernels)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        aekit.Trainer(cfg).fit(model, x[:n])
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = []
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:n_rows]:
        rows.append({
            "op": e.key,
            "calls": e.count,
            "self_ms": e.self_cpu_time_total / 1e3,
            "self_share": e.self_cpu_time_total / total if total else float("nan"),
        })

    def self_ms(*names):
        return sum(e.self_cpu_time_total for e in events if e.key in names) / 1e3

    def total_ms(pred):
        return sum(e.cpu_time_total for e in events if pred(e.key)) / 1e3

    # approximate attribution (wall-clock CPU time of this thread): matmuls by self time, the
    # optimizer and the loss by their enclosing ranges, the rest by self time of named ops
    groups = {
        "matmul (mm/addmm, fwd+bwd)": self_ms("aten::mm", "aten::addmm"),
        "Adam step (whole)": total_ms(lambda k: k.startswith("Optimizer.step#")),
        "zero_grad": total_ms(lambda k: k.startswith("Optimizer.zero_grad#")),
        "BCE loss fwd+bwd": total_ms(lambda k: k in ("aten::binary_cross_entropy_with_logits",
                                                     "autograd::engine::evaluate_function: "
                                                     "BinaryCrossEntropyWithLogitsBackward0",
                                                     "autograd::engine::evaluate_function: MeanBackward0",
                                                     "aten::mean")),
        "activations fwd+bwd": self_ms("aten::relu", "aten::clamp_min", "aten::elu", "aten::threshold_backward",
                                       "aten::elu_backward"),
        "aten::sum (bias grads)": self_ms("aten::sum"),
        "batch gather x[idx]": self_ms("aten::index", "aten::index_select"),
    }
    total_ms_all = total / 1e3
    by_group = {g: v / total_ms_all for g, v in groups.items()}
    by_group["other"] = 1 - sum(by_group.values())
    return {"batch_size": batch_size, "threads": threads, "steps": math.ceil(n / batch_size),
            "self_cpu_total_ms": total / 1e3, "top_ops": rows, "share_by_group": by_group}


# -- the tutorial models against Keras, same run -------------------------------------------------
def keras_comparison(args: argparse.Namespace, models: list[str]) -> dict[str, Any]:
    """Steady samples/s of aekit (reference_keras.py's torch worker, precision "auto") and Keras
    (its Keras worker) on the same arrays, each a fresh process, one right after the other."""
    import reference_keras as rk

    ns = argparse.Namespace(keras_python=args.keras_python, no_install=True)
    try:
        python, version = rk.ensure_keras_python(ns)
    except SystemExit as err:
        return {"skipped": f"no Keras: {err}", "rows": [], "runs": []}
    threads = [int(t) for t in str(args.keras_threads).split(",")]
    data_ns = argparse.Namespace(n_train=args.keras_n_train, n_test=args.keras_n_test, data_seed=0,
                                 mnist_dir=None, fashion_dir=None)
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aekit-roofline-keras-") as tmp:
        tmp_dir = Path(tmp)
        data_info: dict[str, Any] = {}
        for ds in sorted({rk.MODELS[m][2] for m in models}):
            try:
                data_info.update(rk.prepare_data(data_ns, {ds}, tmp_dir))
            except SystemExit as err:
                notes.append(f"{ds}: {err}")
        i = 0
        for m in models:
            _, _, ds, batch = rk.MODELS[m]
            if ds not in data_info:
                notes.append(f"{m}: skipped, no {ds} data")
                continue
            for t in threads:
                best: dict[str, dict[str, Any]] = {}
                for rep in range(args.keras_repeats):
                    jobs = ["keras", "aekit"] if i % 2 == 0 else ["aekit", "keras"]  # alternate who goes first
                    i += 1
                    for fw in jobs:
                        out = tmp_dir / f"{m}-{t}-{rep}-{fw}.json"
                        common = ["--model", m, "--data", str(tmp_dir / ds), "--epochs", str(args.keras_epochs),
                                  "--batch-size", str(batch), "--threads", str(t), "--seed", str(args.seed),
                                  "--out", str(out)]
                        if fw == "keras":
                            cmd = [str(python), str(rk.KERAS_WORKER), *common]
                        else:
                            cmd = [sys.executable, str(Path(rk.__file__).resolve()), "--worker", "torch",
                                   "--precision", "auto", *common]
                        try:
                            r = rk._run_worker(cmd, t, out, f"{m} threads={t} {fw}")
                        except SystemExit as err:
                            notes.append(f"{m} threads={t} {fw}: {err}")
                            continue
                        r["steady_samples_per_s"] = rk.steady_samples_per_s(r["history"], r["n_train"])
                        r["repeat"] = rep
                        runs.append({k: v for k, v in r.items() if k != "env"})
                        if fw not in best or r["steady_samples_per_s"] > best[fw]["steady_samples_per_s"]:
                            best[fw] = r
                        print(f"  keras comparison: {m} threads={t} {fw}: "
                              f"{r['steady_samples_per_s']:.0f} samples/s", flush=True)
                if len(best) < 2:
                    continue
                ours, keras = best["aekit"], best["keras"]
                rows.append({
                    "model": m, "threads": t, "batch_size": batch, "epochs": args.keras_epochs,
                    "n_train": ours["n_train"], "ours_precision": ours.get("resolved_precision"),
                    "ours_channels_last": ours.get("channels_last"),
                    "ours_samples_per_s": ours["steady_samples_per_s"],
                    "keras_samples_per_s": keras["steady_samples_per_s"],
                    "ratio": ours["steady_samples_per_s"] / keras["steady_samples_per_s"],
                    "ours_test_bce": ours["history"][-1]["val_loss"],
                    "keras_test_bce": keras["history"][-1]["val_loss"],
                })
    return {"keras": version, "data": data_info, "target_ratio": rk.TARGET_RATIO, "rows": rows, "runs": runs,
            "notes": notes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--batch-sizes", default="128,256,1024")
    ap.add_argument("--models", default="tutorial_dense,hinton2006")
    ap.add_argument("--epochs", type=int, default=3, help="Trainer epochs per measurement; "
                    "the first is excluded when there are several (default 3)")
    ap.add_argument("--n-train", type=int, default=16384, help="use this many MNIST training images (default "
                    "16384; 0: all 60,000)")
    ap.add_argument("--reps", type=int, default=8, help="torch.mm timings per peak measurement")
    ap.add_argument("--bare-steps", type=int, default=60, help="steps per bare-loop variant (0: skip)")
    ap.add_argument("--bare-batch", type=int, default=256)
    ap.add_argument("--bare-threads", type=int, default=None, help="threads for the bare loop and the profile")
    ap.add_argument("--bare-rounds", type=int, default=3, help="interleaved rounds of the bare-loop variants "
                    "(the best of each is kept)")
    ap.add_argument("--profile-steps", type=int, default=40)
    ap.add_argument("--no-profile", action="store_true", help="skip the torch.profiler table")
    ap.add_argument("--conv-models", default="tutorial_conv,wide,denoiser",
                    help="conv models to measure against the conv peak ('' to skip)")
    ap.add_argument("--conv-batch-sizes", default=str(DEFAULT_BATCH))
    ap.add_argument("--conv-peak", default=",".join(map(str, CONV_PEAK)),
                    help="batch,channels,size,kernel of the conv peak (default %(default)s)")
    ap.add_argument("--keras-models", default=",".join(KERAS_MODELS),
                    help="tutorial models to time against Keras in this run ('' to skip)")
    ap.add_argument("--no-keras", action="store_true", help="skip the Keras comparison")
    ap.add_argument("--keras-threads", default="1", help="comma-separated thread counts for the Keras comparison")
    ap.add_argument("--keras-epochs", type=int, default=3, help="epochs per Keras-comparison run (first excluded)")
    ap.add_argument("--keras-n-train", type=int, default=16384)
    ap.add_argument("--keras-n-test", type=int, default=1000, help="validation images (not timed)")
    ap.add_argument("--keras-repeats", type=int, default=1, help="runs per side; the best is kept")
    ap.add_argument("--keras-python", default=None, help="a Python with tensorflow + keras "
                    "(default benchmarks/.venv-keras)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2k images, the first thread count, 1 epoch "
                    "(Keras comparison: the conv model alone, 2,048 images, 2 epochs)")
    ap.add_argument("--out", default="roofline", help="results/<OUT>.json (default roofline)")
    ap.add_argument("--results-dir", default=None, help="folder for the JSON (default benchmarks/results; "
                    "with --quick a temporary folder, so that smoke runs keep the real results)")
    args = ap.parse_args(argv)

    threads_list = [int(t) for t in args.threads.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    model_keys = [m for m in args.models.split(",") if m]
    conv_keys = [m for m in args.conv_models.split(",") if m]
    conv_batch_sizes = [int(b) for b in args.conv_batch_sizes.split(",")]
    keras_models = [] if args.no_keras else [m for m in args.keras_models.split(",") if m]
    conv_shape = tuple(int(v) for v in args.conv_peak.split(","))
    bad = [m for m in model_keys if m not in MODELS] + [m for m in conv_keys if m not in CONV_MODELS]
    bad += [m for m in keras_models if m not in KERAS_MODELS]
    if bad or len(conv_shape) != 4:
        ap.error(f"unknown model(s) {bad} (dense: {list(MODELS)}, conv: {list(CONV_MODELS)}, keras: "
                 f"{list(KERAS_MODELS)}) or --conv-peak not batch,channels,size,kernel")
    if args.quick:
        threads_list = threads_list[:1]
        args.n_train = min(args.n_train or 2048, 2048)
        args.epochs, args.reps, args.bare_steps, args.bare_rounds, args.profile_steps = 1, 3, 4, 1, 4
        args.keras_epochs, args.keras_n_train, args.keras_n_test, args.keras_repeats = 2, 2048, 512, 1
        args.keras_threads = str(args.keras_threads).split(",")[0]
        keras_models = ["conv"] if "conv" in keras_models else keras_models[:1]  # a Keras process starts in ~10 s
    bare_threads = args.bare_threads or threads_list[-1]
    t_start = time.perf_counter()
    env = _common.env_info()
    native_bf16 = bool({"avx512_bf16", "amx_bf16"} & set(_common.cpu_flags()))

    ds = load_dataset("mnist", download=False)
    x = torch.from_numpy(np.ascontiguousarray(ds.x_train))
    if args.n_train:
        x = x[: args.n_train]
    # grayscale [0, 1] (as hinton2006.py trains); the throughput does not depend on the values

    flops = {k: flops_per_sample(build(k)) for k in model_keys}
    conv_flops = {k: conv_flops_per_sample(build(k)) for k in conv_keys}
    peaks: dict[int, list[dict[str, Any]]] = {}
    cpeaks: dict[int, dict[str, list[dict[str, Any]]]] = {}  # threads -> dtype -> [before, after]
    rows: list[dict[str, Any]] = []
    conv_rows: list[dict[str, Any]] = []
    for th in threads_list:
        peaks[th] = [matmul_peak(th, args.reps)]
        if conv_keys:
            cpeaks[th] = {d: [conv_peak(th, args.reps, getattr(torch, d), conv_shape)]
                          for d in ("float32", "bfloat16")}
        pending = []
        for key in model_keys:
            for bs in batch_sizes:
                r = trainer_throughput(key, x, bs, th, args.epochs, args.seed)
                pending.append({"model": key, "threads": th, "batch_size": bs, **r})
                print(f"  {key} threads={th} batch={bs}: {r['samples_per_s']:.0f} samples/s", flush=True)
        conv_pending = []
        for key in conv_keys:
            for bs in conv_batch_sizes:
                r = trainer_throughput(key, x, bs, th, args.epochs, args.seed)
                conv_pending.append({"model": key, "threads": th, "batch_size": bs, **r})
                print(f"  {key} threads={th} batch={bs} ({r['precision']}, channels_last={r['channels_last']}): "
                      f"{r['samples_per_s']:.0f} samples/s", flush=True)
        peaks[th].append(matmul_peak(th, args.reps))
        peak = max(p["best_gflops"] for p in peaks[th])
        for r in pending:
            achieved = r["samples_per_s"] * flops[r["model"]]["train_flops_per_sample"] / 1e9
            r.update(achieved_gflops=achieved, peak_gflops=peak, fraction_of_peak=achieved / peak)
            rows.append(r)
        if conv_keys:
            for d, pl in cpeaks[th].items():
                pl.append(conv_peak(th, args.reps, getattr(torch, d), conv_shape))
            cpeak = {d: max(p["best_gflops"] for p in pl) for d, pl in cpeaks[th].items()}
            for r in conv_pending:
                f = conv_flops[r["model"]]
                achieved = r["samples_per_s"] * f["train_flops_per_sample"] / 1e9
                used = cpeak["bfloat16" if r["precision"] == "bf16" else "float32"]
                r.update(achieved_gflops=achieved, conv_peak_fp32_gflops=cpeak["float32"],
                         conv_peak_bf16_gflops=cpeak["bfloat16"], fraction_of_fp32_peak=achieved / cpeak["float32"],
                         peak_used_gflops=used, fraction_of_peak_used=achieved / used,
                         executed_gflops=r["samples_per_s"] * f["executed_train_flops_per_sample"] / 1e9)
                r["executed_fraction_of_peak_used"] = r["executed_gflops"] / used
                conv_rows.append(r)

    peak_rows = [{"threads": th, "before_gflops": p[0]["best_gflops"], "after_gflops": p[1]["best_gflops"],
                  "median_before": p[0]["median_gflops"], "peak_used": max(q["best_gflops"] for q in p)}
                 for th, p in peaks.items()]
    _common.print_table(peak_rows, ["threads", "before_gflops", "after_gflops", "median_before", "peak_used"],
                        ["threads", "mm best GFLOP/s (before)", "(after)", "median (before)", "peak used"],
                        title="float32 torch.mm 2048x2048 peak")
    frows = [{"model": k, **{kk: v for kk, v in f.items() if kk != "linear_layers"}} for k, f in flops.items()]
    _common.print_table(frows, ["model", "params", "sum_in_out", "train_flops_per_sample",
                                "flops_first_layer_dx_share"],
                        ["model", "params", "sum(in*out)", "FLOPs/sample = 6*sum", "first-layer dX share"],
                        title="FLOPs per training sample (forward 2*sum(in*out), backward 2x forward)")
    _common.print_table(rows, ["model", "threads", "batch_size", "samples_per_s", "achieved_gflops",
                               "peak_gflops", "fraction_of_peak"],
                        ["model", "threads", "batch", "samples/s (steady)", "GFLOP/s", "peak", "fraction"],
                        title="aekit Trainer vs matmul peak")
    if conv_keys:
        cp_rows = [{"threads": th, "dtype": d, "before_gflops": pl[0]["best_gflops"],
                    "after_gflops": pl[1]["best_gflops"], "median_before": pl[0]["median_gflops"],
                    "peak_used": max(q["best_gflops"] for q in pl)}
                   for th, by in cpeaks.items() for d, pl in by.items()]
        b, c, hw, k = conv_shape
        _common.print_table(cp_rows, ["threads", "dtype", "before_gflops", "after_gflops", "median_before",
                                      "peak_used"],
                            ["threads", "dtype", "conv best GFLOP/s (before)", "(after)", "median (before)",
                             "peak used"],
                            title=f"conv2d forward peak: channels-last ({b}, {c}, {hw}, {hw}), {c}->{c} {k}x{k}, "
                                  "same padding")
        cf_rows = [{"model": kk, "params": f["params"], "macs": f["macs"],
                    "train_flops_per_sample": f["train_flops_per_sample"],
                    "executed": f["executed_train_flops_per_sample"],
                    "flops_first_layer_dx_share": f["flops_first_layer_dx_share"],
                    "layers": ", ".join(r["shape"] for r in f["layers"])} for kk, f in conv_flops.items()]
        _common.print_table(cf_rows, ["model", "params", "macs", "train_flops_per_sample", "executed",
                                      "flops_first_layer_dx_share", "layers"],
                            ["model", "params", "MACs fwd", "FLOPs/sample = 6*MACs", "executed (fast path)",
                             "first-layer dX share", "layers (C_in->C_out k x k @ output H x W)"],
                            title="conv models: FLOPs per training sample (forward hooks on one sample)")
        _common.print_table(conv_rows, ["model", "threads", "batch_size", "precision", "samples_per_s",
                                        "achieved_gflops", "conv_peak_fp32_gflops", "fraction_of_fp32_peak",
                                        "peak_used_gflops", "fraction_of_peak_used",
                                        "executed_fraction_of_peak_used"],
                            ["model", "threads", "batch", "precision", "samples/s (steady)", "GFLOP/s",
                             "fp32 conv peak", "fraction fp32", "peak of precision used", "fraction",
                             "fraction (executed FLOPs)"],
                            title="aekit Trainer vs conv peak (Trainer defaults: precision, channels-last)")
        if not native_bf16:
            print("note: this CPU has no native bf16 (AVX512-BF16 or AMX): oneDNN emulates bf16, hence the low "
                  "bf16 peak, and the Trainer's precision='auto' stays fp32 here")

    bare_rows: list[dict[str, Any]] = []
    if args.bare_steps and "hinton2006" in model_keys:
        th = bare_threads
        for rnd in range(args.bare_rounds):  # interleaved rounds; the best of each is kept
            for name, var in VARIANTS.items():
                if var.get("trainer"):
                    sps = trainer_loop("hinton2006", x, args.bare_batch, th, args.bare_steps, var["fused"],
                                       args.seed + rnd)
                else:
                    sps = bare_loop("hinton2006", x, args.bare_batch, th, args.bare_steps, var, args.seed + rnd)
                prev = next((b for b in bare_rows if b["variant"] == name), None)
                if prev is None:
                    bare_rows.append({"variant": name, "samples_per_s": sps, "rounds": [sps]})
                else:
                    prev["rounds"].append(sps)
                    prev["samples_per_s"] = max(prev["rounds"])
        base = bare_rows[0]["samples_per_s"]
        peak = max(p["best_gflops"] for p in peaks[th]) if th in peaks else matmul_peak(th, args.reps)["best_gflops"]
        f = flops["hinton2006"]["train_flops_per_sample"]
        for b in bare_rows:
            b.update(vs_bare=b["samples_per_s"] / base, fraction_of_peak=b["samples_per_s"] * f / 1e9 / peak,
                     threads=th, batch_size=args.bare_batch)
        _common.print_table(bare_rows, ["variant", "samples_per_s", "vs_bare", "fraction_of_peak"],
                            [f"variant (hinton2006, batch {args.bare_batch}, {th} threads)",
                             f"samples/s (best of {args.bare_rounds})", "x bare", "fraction of peak"],
                            title="bare training step and proposed changes, side by side")

    prof = None
    if not args.no_profile and "hinton2006" in model_keys:
        prof = profile_trainer_step("hinton2006", x, args.bare_batch, bare_threads, args.seed,
                                    steps=args.profile_steps)
        _common.print_table(prof["top_ops"], ["op", "calls", "self_ms", "self_share"],
                            title=f"torch.profiler: Trainer, hinton2006, batch {prof['batch_size']}, "
                                  f"{prof['threads']} threads, {prof['steps']} steps (top ops by self CPU)")
        _common.print_table([{"group": g, "share": s} for g, s in prof["share_by_group"].items()],
                            ["group", "share"], title="self CPU time by group")

    keras = None
    if keras_models:
        print(f"\nKeras comparison ({', '.join(keras_models)}; threads {args.keras_threads}, "
              f"{args.keras_n_train} images, {args.keras_epochs} epochs) ...", flush=True)
        keras = keras_comparison(args, keras_models)
        if keras.get("skipped"):
            print(f"  {keras['skipped']}")
        else:
            _common.print_table(keras["rows"], ["model", "threads", "batch_size", "ours_precision",
                                                "ours_samples_per_s", "keras_samples_per_s", "ratio",
                                                "ours_test_bce", "keras_test_bce"],
                                ["model", "threads", "batch", "ours prec", "ours samples/s", "keras samples/s",
                                 "ratio", f"ours test BCE@{args.keras_epochs}",
                                 f"keras test BCE@{args.keras_epochs}"],
                                title=f"tutorial models vs Keras ({keras['keras']}), same run, "
                                      f"{args.keras_n_train} images, steady epochs of {args.keras_epochs}")
            for note in keras["notes"]:
                print(f"  note: {note}")

    hin = [r for r in rows if r["model"] == "hinton2006"]
    best = max(hin, key=lambda r: r["fraction_of_peak"]) if hin else None
    met_at = [{"threads": r["threads"], "batch_size": r["batch_size"], "fraction_of_peak": r["fraction_of_peak"]}
              for r in hin if r["fraction_of_peak"] >= TARGET_FRACTION]
    at_default = {str(r["threads"]): r["fraction_of_peak"] for r in hin if r["batch_size"] == DEFAULT_BATCH}
    keras_ratio = {f"{r['model']}@{r['threads']}t": r["ratio"] for r in (keras or {}).get("rows", [])}
    target = {"model": "hinton2006", "fraction_of_peak": TARGET_FRACTION,
              "best_measured": best["fraction_of_peak"] if best else None,
              "best_at": {"threads": best["threads"], "batch_size": best["batch_size"]} if best else None,
              "met": bool(best and best["fraction_of_peak"] >= TARGET_FRACTION),
              "met_at": met_at,
              "default_batch_size": DEFAULT_BATCH,
              "at_default_batch_by_threads": at_default,
              "met_at_default_batch": bool(at_default) and all(v >= TARGET_FRACTION for v in at_default.values()),
              "tutorial_vs_keras_ratio_same_run": keras_ratio,
              "conv_fraction_of_peak_used": {f"{r['model']}@{r['threads']}t/b{r['batch_size']}":
                                             r["fraction_of_peak_used"] for r in conv_rows}}
    if hin:
        print(f"\ntarget: hinton2006 >= {TARGET_FRACTION:.0%} of the matmul peak: best "
              f"{target['best_measured']:.1%} (threads {best['threads']}, batch {best['batch_size']}), "
              f"met at {[(m['threads'], m['batch_size']) for m in met_at]}; at batch {DEFAULT_BATCH}: "
              + ", ".join(f"{t} thread(s) {v:.1%}" for t, v in at_default.items()))
    if keras_ratio:
        print("tutorial models vs Keras (same run): "
              + ", ".join(f"{k} {v:.2f}x" for k, v in keras_ratio.items()))
    wall = time.perf_counter() - t_start
    payload = {
        "benchmark": "roofline",
        "command": _common.command_line(),
        "env": env,
        "quick": args.quick,
        "measured": ("float32 torch.mm 2048x2048 peak (best of reps); FLOPs/sample = 6*sum(in*out) over "
                     "Linear layers; aekit.Trainer steady samples/s on MNIST at each batch size and thread "
                     "count; fraction of peak = samples/s * FLOPs/sample / peak at the same thread count"),
        "flops_formula": "6 * sum(fan_in * fan_out) per sample: forward 2*in*out per layer, backward 2x "
                         "forward (dX and dW); biases, activations, loss and optimizer not counted",
        "settings": {"threads": threads_list, "batch_sizes": batch_sizes, "epochs": args.epochs,
                     "n_train": len(x), "reps": args.reps, "bare_steps": args.bare_steps,
                     "bare_batch": args.bare_batch, "bare_threads": bare_threads, "bare_rounds": args.bare_rounds,
                     "profile_steps": args.profile_steps, "seed": args.seed},
        "matmul_peak": {str(k): v for k, v in peaks.items()},
        "flops_per_sample": flops,
        "trainer": rows,
        "bare_loop_variants": bare_rows,
        "profile": prof,
        "conv_measured": (f"F.conv2d forward peak, channels-last {conv_shape} (batch, channels, size, kernel), "
                          "float32 and bfloat16, best of reps, before and after each thread count's runs; "
                          "conv models' FLOPs/sample = 6 * MACs of Conv2d/ConvTranspose2d/Linear layers (forward "
                          "hooks on one sample; biases, activations, pooling, upsampling, loss and optimizer not "
                          "counted); Trainer steady samples/s on MNIST with its default precision and memory "
                          "format; fraction = samples/s * FLOPs/sample / conv peak (float32, and of the precision "
                          "the Trainer used); 'executed' FLOPs: torch.utils.flop_counter over one fwd+bwd of the "
                          "fast CPU path"),
        "conv_settings": {"models": conv_keys, "batch_sizes": conv_batch_sizes, "peak_shape": list(conv_shape),
                          "data": "the MNIST images above, grayscale in [0, 1] (the denoiser too)",
                          "cpu_native_bf16": native_bf16,
                          "denoiser_noise": "seed: clip(x + 0.2 + N(0, 0.2), 0, 1), drawn once (fixed_noise)"},
        "conv_peak": {str(th): by for th, by in cpeaks.items()},
        "conv_flops_per_sample": conv_flops,
        "conv_trainer": conv_rows,
        "keras_comparison": None if keras is None else {
            **{k: v for k, v in keras.items() if k != "runs"},
            "settings": {"models": keras_models, "threads": args.keras_threads, "epochs": args.keras_epochs,
                         "n_train": args.keras_n_train, "n_test": args.keras_n_test,
                         "repeats": args.keras_repeats, "ours_precision": "auto"},
            "runs": keras["runs"]},
        "target": target,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "wall_s": wall,
    }
    path = _common.write_json(args.out, payload, _common.results_dir(args))
    print(f"\nwall time {wall:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
