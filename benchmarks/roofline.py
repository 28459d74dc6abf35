"""How close aekit's training loop comes to this CPU's float32 matmul peak on the dense models.

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

    python benchmarks/roofline.py                 # full: 16,384 images, threads 1 and 2
    python benchmarks/roofline.py --threads 2 --n-train 20000
    python benchmarks/roofline.py --quick         # smoke run, < 1 minute

Writes benchmarks/results/roofline.json.
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
import torch.nn.functional as F  # noqa: E402

import aekit  # noqa: E402
from aekit.data import load_dataset  # noqa: E402

MODELS: dict[str, dict[str, Any]] = {
    # name -> create_model arguments (hinton2006 with the ELU units and linear code hinton2006.py trains)
    "tutorial_dense": dict(name="dense_ae", preset="tutorial"),
    "hinton2006": dict(name="dense_ae", preset="hinton2006", activation="elu", code_activation="linear"),
}
TARGET_FRACTION = 0.5  # for hinton2006


def build(model_key: str, seed: int = 0) -> torch.nn.Module:
    spec = dict(MODELS[model_key])
    name, preset = spec.pop("name"), spec.pop("preset")
    aekit.seed_everything(seed)
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


def trainer_throughput(model_key: str, x: torch.Tensor, batch_size: int, threads: int, epochs: int,
                       seed: int) -> dict[str, Any]:
    model = build(model_key, seed)
    cfg = aekit.TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, seed=seed, threads=threads,
                            progress=False)
    t = time.perf_counter()
    hist = aekit.Trainer(cfg).fit(model, x)
    wall = time.perf_counter() - t
    return {
        "samples_per_s": hist.steady_samples_per_s(),
        "per_epoch_samples_per_s": [r["samples_per_s"] for r in hist.records],
        "train_loss_last": hist.records[-1]["train_loss"],
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
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2k images, the first thread count, 1 epoch")
    ap.add_argument("--out", default="roofline", help="results/<OUT>.json (default roofline)")
    ap.add_argument("--results-dir", default=None, help="folder for the JSON (default benchmarks/results; "
                    "with --quick a temporary folder, so that smoke runs keep the real results)")
    args = ap.parse_args(argv)

    threads_list = [int(t) for t in args.threads.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    model_keys = [m for m in args.models.split(",") if m]
    if args.quick:
        threads_list = threads_list[:1]
        args.n_train = min(args.n_train or 2048, 2048)
        args.epochs, args.reps, args.bare_steps, args.bare_rounds, args.profile_steps = 1, 3, 4, 1, 4
    bare_threads = args.bare_threads or threads_list[-1]
    t_start = time.perf_counter()
    env = _common.env_info()

    ds = load_dataset("mnist", download=False)
    x = torch.from_numpy(np.ascontiguousarray(ds.x_train))
    if args.n_train:
        x = x[: args.n_train]
    # grayscale [0, 1] (as hinton2006.py trains); the throughput does not depend on the values

    flops = {k: flops_per_sample(build(k)) for k in model_keys}
    peaks: dict[int, list[dict[str, Any]]] = {}
    rows: list[dict[str, Any]] = []
    for th in threads_list:
        peaks[th] = [matmul_peak(th, args.reps)]
        pending = []
        for key in model_keys:
            for bs in batch_sizes:
                r = trainer_throughput(key, x, bs, th, args.epochs, args.seed)
                pending.append({"model": key, "threads": th, "batch_size": bs, **r})
                print(f"  {key} threads={th} batch={bs}: {r['samples_per_s']:.0f} samples/s", flush=True)
        peaks[th].append(matmul_peak(th, args.reps))
        peak = max(p["best_gflops"] for p in peaks[th])
        for r in pending:
            achieved = r["samples_per_s"] * flops[r["model"]]["train_flops_per_sample"] / 1e9
            r.update(achieved_gflops=achieved, peak_gflops=peak, fraction_of_peak=achieved / peak)
            rows.append(r)

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

    hin = [r for r in rows if r["model"] == "hinton2006"]
    best = max(hin, key=lambda r: r["fraction_of_peak"]) if hin else None
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
        "target": {"model": "hinton2006", "fraction_of_peak": TARGET_FRACTION,
                   "best_measured": best["fraction_of_peak"] if best else None,
                   "best_at": {"threads": best["threads"], "batch_size": best["batch_size"]} if best else None,
                   "met": bool(best and best["fraction_of_peak"] >= TARGET_FRACTION)},
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "wall_s": wall,
    }
    path = _common.write_json(args.out, payload, _common.results_dir(args))
    print(f"\nwall time {wall:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
