"""Where a training step's time goes: per-op self CPU time of the tutorial's three models.

Trains each model with aekit's own Trainer (Adam, BCE, eager mode) for four short epochs: a
warm-up, one timed without the profiler, one under ``torch.profiler`` (top operators by self CPU
time, with their share of the step) and one with input shapes recorded (the top operators per
layer). Prints the first table; writes both to benchmarks/results/profile_speed.json.
Models and batch sizes as in the tutorial: dense 784-128-32-2-32-128-784 (batch 256), conv_ae
"tutorial" 16/8 and "wide" 32/64 (batch 128), convs in channels-last fp32 (the fast setting on
CPUs without native bf16). Data: random binary 28x28 images (the timings do not depend on the
pixel values); the denoiser gets noisy inputs clip(x + 0.2 + N(0, 0.2)) and clean targets.

``--variants fast,plain`` also profiles the conv models with aekit's exact CPU rewrites turned
off (``FastSequential.fast = False``: ReLU before max-pool, upsample then conv), for comparison.
The profiler reports wall time per op and adds a fixed cost to each op (steps take about
1.5-2x longer under it, which inflates the small ops' shares); on a shared machine other jobs
inflate all of it, so read the shares and the order, not the absolute times. A profile, not a
benchmark: nothing is asserted, and the samples/s printed are from one short epoch.

    python benchmarks/profile_speed.py                       # 1 thread, fast variant
    python benchmarks/profile_speed.py --threads 2 --variants fast,plain --top 20
"""

from __future__ import annotations

import argparse
import sys
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

    # one fit, 4 epochs of `steps` steps: 1 warm-up, 2 unprofiled (the real speed), 3 profiled
    # by operator, 4 profiled with input shapes (costlier bookkeeping, so kept apart)
    profs = {3: profile(activities=[ProfilerActivity.CPU]),
             4: profile(activities=[ProfilerActivity.CPU], record_shapes=True)}

    def switch(trainer, record) -> None:
        done, nxt = profs.get(record["epoch"]), profs.get(record["epoch"] + 1)
        if done is not None:
            done.stop()
        if nxt is not None:
            nxt.start()

    cfg = TrainConfig(epochs=4, batch_size=batch, progress=False, precision="fp32",
                      channels_last=channels_last, threads=args.threads, seed=args.seed)
    hist = Trainer(cfg, callbacks=[switch]).fit(model, (inputs, clean))
    plain_ms = hist[1]["train_seconds"] * 1e3 / args.steps
    profiled_ms = hist[2]["train_seconds"] * 1e3 / args.steps

    events = profs[3].key_averages()
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
    by_shape = profs[4].key_averages(group_by_input_shape=True)
    total_s = sum(e.self_cpu_time_total for e in by_shape) or 1.0
    top_shapes = [
        {
            "op": e.key,
            "input_shapes": str(e.input_shapes),
            "self_ms_per_step": e.self_cpu_time_total / 1e3 / args.steps,
            "share": e.self_cpu_time_total / total_s,
        }
        for e in sorted(by_shape, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]
    ]
    return {
        "model": key, "aekit_model": name, "preset": preset, "variant": variant,
        "batch_size": batch, "channels_last": channels_last, "threads": args.threads,
        "steps": args.steps, "ms_per_step": plain_ms, "samples_per_s": 1e3 * batch / plain_ms,
        "ms_per_step_under_profiler": profiled_ms,
        "top_ops": top, "top_ops_by_shape": top_shapes,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="dense,conv,denoiser", help="comma list of " + ",".join(MODELS))
    p.add_argument("--variants", default="fast", help="comma list of fast,plain (conv models)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=24, help="training steps per epoch (4 epochs)")
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
                       f"{args.threads} thread(s)): {r['ms_per_step']:.1f} ms/step "
                       f"({r['samples_per_s']:.0f} samples/s), {r['ms_per_step_under_profiler']:.1f} "
                       "under the profiler"),
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
