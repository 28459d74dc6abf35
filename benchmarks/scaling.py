"""Data-parallel scaling on this machine: one process against two (torchrun, gloo) for the
hinton2006 model (dense_ae preset hinton2006, 784-1000-500-250-30) on MNIST.

Every configuration runs the user's command, ``aekit train --model dense_ae --preset hinton2006
--dataset mnist --binarize 0.5 --epochs E --batch-size B``, in a fresh run folder:

- ``1 process x 1 thread``  (the baseline of the efficiency),
- ``1 process x 2 threads`` (the same two cores used by threads instead of processes), with
  OpenMP threads waiting passively (``OMP_WAIT_POLICY=PASSIVE``) and spinning (``ACTIVE``),
- ``2 processes x 1 thread`` under ``torchrun --standalone --nproc_per_node 2``.

Reported per configuration: steady training samples/s (epochs after the first, from the run's
metrics.json), the final training and validation losses, and wall seconds. Scaling efficiency =
samples/s of 2 processes / (2 x samples/s of 1 process x 1 thread). The global batch is the same
in every configuration (each process takes its half of every batch), so the losses must agree up
to floating-point summation order: the check is ``|loss_2p / loss_1p - 1| <= --loss-tol``.
Configurations run in interleaved rounds (``--rounds``) and the best samples/s of each is kept, to
see through the other jobs on a shared machine.

    python benchmarks/scaling.py                 # 3 epochs x 2 rounds, about 6 minutes on 2 cores
    python benchmarks/scaling.py --quick         # smoke run on 4,000 images, < 1 minute

Writes benchmarks/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("AEKIT_DATA_HOME", "/work/shared/datasets")

CONFIGS = {
    "1 process x 1 thread": dict(procs=1, threads=1),
    "1 process x 2 threads": dict(procs=1, threads=2),
    # OpenMP threads that always spin (ACTIVE) vs sleep (PASSIVE, what aekit picks on a busy machine);
    # on 10,000 images: spinning threads can crawl for many minutes on a busy machine
    "1 process x 2 threads, spinning": dict(procs=1, threads=2, omp_wait="ACTIVE", n_train=10_000),
    "2 processes x 1 thread": dict(procs=2, threads=1),
}


def run_config(name: str, cfg: dict[str, int], args, work: Path, round_: int) -> dict[str, Any]:
    out = work / f"{name.replace(' ', '_')}-{round_}"
    shutil.rmtree(out, ignore_errors=True)
    train = ["train", "--model", "dense_ae", "--preset", "hinton2006", "--dataset", "mnist", "--binarize", "0.5",
             "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--threads", str(cfg["threads"]),
             "--out", str(out), "--quiet"]
    n_train = min(filter(None, (args.n_train, cfg.get("n_train")))) if (args.n_train or cfg.get("n_train")) else None
    if n_train:
        train += ["--n-train", str(n_train)]
    if cfg["procs"] == 1:
        cmd = [sys.executable, "-m", "aekit", *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(cfg["procs"]),
               "-m", "aekit", *train]
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]), OMP_WAIT_POLICY=cfg.get("omp_wait", "PASSIVE"))
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{name} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {
        "config": name, "procs": cfg["procs"], "threads": cfg["threads"],
        "omp_wait_policy": cfg.get("omp_wait", "PASSIVE"), "n_train": n_train, "round": round_,
        "samples_per_s": m["train_samples_per_s"],
        "final_train_loss": m["final_train_loss"],
        "final_val_loss": m["final_val_loss"],
        "test_sq_err_per_image": m["test_sq_err_per_image"],
        "processes_recorded": m.get("processes"),
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is warm-up)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-train", type=int, default=None, help="training images (default all 60,000)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best samples/s is kept")
    p.add_argument("--loss-tol", type=float, default=0.01, help="allowed relative loss difference")
    p.add_argument("--quick", action="store_true", help="smoke run: 4,000 images, 2 epochs, 1 round")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.n_train, args.epochs, args.rounds = args.n_train or 4000, 2, 1
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="aekit-scaling-"))
    runs: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            for name, cfg in CONFIGS.items():
                row = run_config(name, cfg, args, work, r)
                runs.append(row)
                print(f"round {r}: {name:<24} {row['samples_per_s']:>9,.0f} samples/s  "
                      f"loss {row['final_train_loss']:.5f}  ({row['wall_s']:.0f} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best = {}
    for row in runs:
        if row["config"] not in best or row["samples_per_s"] > best[row["config"]]["samples_per_s"]:
            best[row["config"]] = row
    base = best["1 process x 1 thread"]
    two = best["2 processes x 1 thread"]
    rows = []
    for name in CONFIGS:
        b = best[name]
        same_data = b["n_train"] == base["n_train"]
        rows.append({**b, "speedup": b["samples_per_s"] / base["samples_per_s"],
                     "efficiency": b["samples_per_s"] / (base["samples_per_s"] * b["procs"] * b["threads"]),
                     "loss_ratio": b["final_train_loss"] / base["final_train_loss"] if same_data else None})
        if not same_data:  # losses after fewer images are not comparable
            rows[-1].update(final_train_loss=None, final_val_loss=None, test_sq_err_per_image=None)
    _common.print_table(
        rows, ["config", "samples_per_s", "speedup", "efficiency", "final_train_loss", "final_val_loss",
               "test_sq_err_per_image", "wall_s"],
        ["configuration", "samples/s", "speed-up", "efficiency", "train loss", "val loss", "test sq. err", "wall s"],
        title=f"hinton2006 on MNIST, {args.epochs} epochs, global batch {args.batch_size} (best of {args.rounds})",
    )
    loss_rel = abs(two["final_train_loss"] / base["final_train_loss"] - 1)
    val_rel = abs(two["final_val_loss"] / base["final_val_loss"] - 1)
    eff = two["samples_per_s"] / (2 * base["samples_per_s"])
    print(f"\nscaling efficiency (2 processes vs 1 x 1 thread): {eff:.2f}; "
          f"loss difference {loss_rel:.2e} (train), {val_rel:.2e} (val), tolerance {args.loss_tol}")
    payload = {
        "benchmark": "scaling", "command": _common.command_line(), "env": _common.env_info(), "quick": args.quick,
        "settings": {"epochs": args.epochs, "batch_size": args.batch_size, "n_train": args.n_train,
                     "rounds": args.rounds, "loss_tol": args.loss_tol},
        "runs": runs, "best": rows,
        "scaling_efficiency": eff,
        "loss_rel_diff": {"train": loss_rel, "val": val_rel},
        "equal_loss_within_tolerance": bool(loss_rel <= args.loss_tol and val_rel <= args.loss_tol),
        "load_average_end": os.getloadavg(),
        "wall_s": time.perf_counter() - t_start,
    }
    path = _common.write_json("scaling", payload, _common.results_dir(args))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
