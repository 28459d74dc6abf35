"""Training-step cost of the video captioners, side by side in one process.

Times one forward + backward pass (teacher forcing, the loss of ``VideoCaptionNet.loss``) on a
batch of random 20-frame 64x64 clips and 22-word captions, for the default captioner (attention
over frames), the ``spatial`` preset (attention over positions within frames) and the frame bag.
Models are timed in interleaved rounds so that a busy machine slows them alike; the best round
is reported, with the ratio to the default captioner.

    python benchmarks/captioning_speed.py                 # batch 8, one thread
    python benchmarks/captioning_speed.py --batch-size 32 --threads 2

Writes benchmarks/results/captioning_speed.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from captioning import PRESETS  # noqa: E402  (benchmark model name -> video_captioner preset)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5, help="steps per round")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 1 step")
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args()

    import torch

    from aekit.models import create_model

    torch.set_num_threads(args.threads)
    rounds, steps = (2, 1) if args.quick else (args.rounds, args.steps)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, 20, 64, 64, generator=gen)
    ids = torch.randint(4, 40, (args.batch_size, 22), generator=gen)
    models = {name: create_model("video_captioner", preset, vocab_size=40) for name, preset in PRESETS.items()}

    def step(model) -> None:
        model.zero_grad(set_to_none=True)
        model.loss((x, ids))["loss"].backward()

    for model in models.values():  # warm-up: first calls pick kernels
        for _ in range(2):
            step(model)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step(model)
            times[name].append((time.perf_counter() - t0) / steps)
    base = min(times["video_captioner"])
    rows = [{
        "model": name, "params": sum(p.numel() for p in models[name].parameters()),
        "ms_per_step": 1000 * min(t), "median_ms": 1000 * sorted(t)[len(t) // 2],
        "clips_per_s": args.batch_size / min(t), "vs_default": min(t) / base,
    } for name, t in times.items()]
    payload = {"benchmark": "captioning_speed", "command": _common.command_line(), "env": _common.env_info(),
               "batch_size": args.batch_size, "threads": args.threads, "rounds": rounds, "steps": steps,
               "rows": rows, "times_s": times}
    path = _common.write_json("captioning_speed", payload, _common.results_dir(args))
    _common.print_table(rows, ["model", "params", "ms_per_step", "median_ms", "clips_per_s", "vs_default"],
                        ["model", "params", "ms/step (best)", "ms/step (median)", "clips/s", "x default"],
                        title=f"forward + backward, batch {args.batch_size}, {args.threads} thread(s) -> {path}")


if __name__ == "__main__":
    main()
