"""Where a training step's time goes: per-op self CPU time of the tutorial's three models.

Trains each model with aekit's own Trainer (Adam, BCE, eager mode) under ``torch.profiler`` and
prints the top operators by self CPU time with their share of the step; writes everything
(also the top operators per input shape, i.e. per layer) to benchmarks/results/profile_speed.json.
Models and batch sizes as in the tutorial: dense 784-128-32-2-32-128-784 (batch 256), conv_ae
"tutorial" 16/8 and "wide" 32/64 (batch 128), convs in channels-last fp32 (the fast setting on
CPUs without native bf16). Data: random binary 28x28 images (the timings do not depend on the
pixel values); the denoiser gets noisy inputs clip(x + 0.2 + N(0, 0.2)) and clean targets.

``--variants fast,plain`` also profiles the conv models with aekit's exact CPU rewrites turned
off (``FastSequential.fast = False``: ReLU before max-pool, upsample then conv), for comparison.
The profiler reports wall time per op: on a shared machine other jobs inflate it, so read the
shares, not the absolute times. This is a profile, not a benchmark: nothing here is asserted.

    python benchmarks/profile_speed.py                       # 1 thread, fast variant
    python benchmarks/profile_speed.py --threads 2 --variants fast,plain --top 20
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

# name -> (aekit model, preset, batch size, channels_last, noisy inputs)
MODELS: dict[str, tuple[str, str, int, bool, bool]] = {
    "dense": ("dense_ae", "tutorial", 256, False, False),
    "conv": ("conv_ae", "tutorial", 128, True, False),
    "denoiser": ("conv_ae", "wide", 128, True, True),
}


def _set_fast(model, fast: bool) -> None:
    from aekit.models._fast_ops import FastSequential

    for m in model.modules():
        if isinstance(m, FastSequential):
            m.fast = fast


def profile_model(key: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from aekit.models import create_model
    from aekit.training import TrainConfig, Trainer

    name, preset, batch, channels_last, noisy = MODELS[key]
    g = torch.Generator().manual_seed(args.seed)
    n = batch * args.steps
    clean = (torch.rand(n, 1, 28, 28, generator=g) >= 0.5).float()
    inputs = clean
    if noisy:
        inputs = (clean + 0.2 + 0.2 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    torch.manual_seed(args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the denoiser's overcomplete-code warning
        model = create_model(name, preset)
    _set_fast(model, variant == "fast")
    cfg = TrainConfig(epochs=1, batch_size=batch, progress=False, precision="fp32",
                      channels_last=channels_last, threads=args.threads, seed=args.seed)
    Trainer(cfg).fit(model, (inputs[: batch * args.warmup], clean[: batch * args.warmup]))
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        Trainer(cfg).fit(model, (inputs, clean))
    wall = time.perf_counter() - t0

    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    ops = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)
    top = [
        {
            "op": e.key,
            "self_ms_per_step": e.self_cpu_time_total / 1e3 / args.steps,
            "share": e.self_cpu_time_total / total,
            "calls_per_step": e.count / args.steps,
        }
        for e in ops[: args.top]
    ]
    by_shape = sorted(prof.key_averages(group_by_input_shape=True),
                      key=lambda e: e.self_cpu_time_total, reverse=True)
    top_shapes = [
        {
            "op": e.key,
            "input_shapes": str(e.input_shapes),
            "self_ms_per_step": e.self_cpu_time_total / 1e3 / args.steps,
            "share": e.self_cpu_time_total / total,
        }
        for e in by_shape[: args.top]
    ]
    return {
        "model": key, "aekit_model": name, "preset": preset, "variant": variant,
        "batch_size": batch, "channels_last": channels_last, "threads": args.threads,
        "steps": args.steps, "profiled_ms_per_step": total / 1e3 / args.steps,
        "wall_samples_per_s_under_profiler": n / wall,
        "top_ops": top, "top_ops_by_shape": top_shapes,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="dense,conv,denoiser", help="comma list of " + ",".join(MODELS))
    p.add_argument("--variants", default="fast", help="comma list of fast,plain (conv models)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=20, help="profiled training steps per model")
    p.add_argument("--warmup", type=int, default=10, help="training steps before profiling")
    p.add_argument("--top", type=int, default=15, help="operators to list per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-dir", default=None)
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [m for m in args.models if m not in MODELS] + [v for v in args.variants if v not in ("fast", "plain")]
    if bad:
        p.error(f"unknown model(s)/variant(s): {', '.join(bad)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    results = []
    for key in args.models:
        for variant in args.variants:
            if variant == "plain" and not MODELS[key][3]:
                continue  # the rewrites concern the conv models only
            r = profile_model(key, variant, args)
            results.append(r)
            rows = [{**o, "share": 100 * o["share"]} for o in r["top_ops"]]
            _common.print_table(
                rows, ["op", "self_ms_per_step", "share", "calls_per_step"],
                ["op", "self ms/step", "share %", "calls/step"],
                title=(f"{key} ({r['aekit_model']} {r['preset']}, batch {r['batch_size']}, "
                       f"{'channels_last' if r['channels_last'] else 'NCHW'}, {variant}, "
                       f"{args.threads} thread(s)): {r['profiled_ms_per_step']:.1f} ms/step profiled"),
            )
    payload = {"env": _common.env_info(), "command": _common.command_line(),
               "note": "torch.profiler self CPU time (wall clock per op) under aekit's Trainer; "
                       "shares are the useful part on a shared machine.",
               "results": results}
    path = _common.write_json("profile_speed", payload, args.results_dir)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
