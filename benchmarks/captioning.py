"""Video to text on generated moving digits: the S2VT-style captioner vs. a frame-bag baseline.

For one-digit and two-digit clips (64x64, 20 frames; training clips from MNIST training digits,
test clips from MNIST test digits, so the test is on unseen handwriting):

* video_captioner: ``VideoCaptioner(preset="frames")`` (stride-2 CNN per frame, LSTM over
  frames, LSTM decoder with attention over the frames; batch 8, word_balance 1), greedy decoding;
* spatial: the captioner with spatial attention (``preset="spatial"``, the default of
  ``VideoCaptioner`` and ``aekit caption train``): each word also attends
  over the positions of every frame's CNN map, and a small GRU reads where the attended digit is
  frame by frame, which binds each digit to its own motion;
* frame_bag: the same CNN and decoder on the mean frame (``preset="frame_bag"``): no temporal
  model, so it cannot tell a motion from its reverse.

The best epoch is picked on a validation split (10% of the training clips), never on the test set.
Reported on the test clips: exact match, BLEU-4 (0-1, as sacrebleu), slot accuracies (digit,
direction, bounce), and CPU training minutes on ``--threads`` threads.

Targets (issue 8): one digit, exact match >= 0.95; two digits, exact match >= 0.80 and
BLEU-4 >= 0.90; the baseline clearly unable to name directions.

    python benchmarks/captioning.py                      # both sets, one thread (about an hour)
    python benchmarks/captioning.py --digits 1 --n-train 4000
    python benchmarks/captioning.py --quick              # 300 clips, 1 epoch: a smoke run
    python benchmarks/captioning.py --digits 2 --models spatial --epochs 12 --name captioning_spatial

Writes benchmarks/results/captioning.json (or ``--name``.json), rewritten after every model (a
stopped run keeps what it did).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("AEKIT_DATA_HOME", "/work/shared/datasets")

#: benchmark model name -> video_captioner preset
PRESETS = {"video_captioner": "frames", "spatial": "spatial", "frame_bag": "frame_bag"}
TARGETS = {1: {"exact_match": 0.95}, 2: {"exact_match": 0.80, "bleu4": 0.90}}
COLUMNS = ["digits", "model", "exact_match", "bleu4", "digit_accuracy", "direction_accuracy",
           "bounce_accuracy", "val_exact_match", "epochs", "train_minutes"]
HEADERS = ["digits", "model", "exact match", "BLEU-4", "digit acc.", "direction acc.", "bounce acc.",
           "val exact", "epochs", "train min"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 300 clips, 1 epoch")
    ap.add_argument("--digits", default="1,2", help="comma list of 1 and/or 2")
    ap.add_argument("--n-train", type=int, default=None, help="training clips per set (default: 12000 / 16000)")
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=None, help="captioner epochs (default: 10)")
    ap.add_argument("--baseline-epochs", type=int, default=None, help="frame-bag epochs (default: as --epochs)")
    ap.add_argument("--models", default="video_captioner,frame_bag",
                    help="comma list of " + ", ".join(PRESETS))
    ap.add_argument("--name", default="captioning", help="results file name (without .json)")
    ap.add_argument("--beam", type=int, default=1, help="beam width of the test predictions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args()

    import torch

    from aekit.tasks.captioning import VideoCaptioner
    from aekit.video import moving_mnist

    torch.set_num_threads(args.threads)
    digit_sets = [int(d) for d in args.digits.split(",") if d.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in PRESETS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    default_n = {1: 12000, 2: 16000}
    epochs = 1 if args.quick else (args.epochs or 10)
    base_epochs = 1 if args.quick else (args.baseline_epochs or epochs)
    out_dir = _common.results_dir(args)
    rows: list[dict] = []
    extra: dict[str, object] = {"histories": {}, "examples": {}, "generation_seconds": {}}

    def payload() -> dict:
        return {
            "benchmark": "captioning", "command": _common.command_line(), "env": _common.env_info(),
            "data": "moving MNIST digits, 64x64, 20 frames; train from MNIST train, test from MNIST test",
            "n_test": args.n_test, "epochs": epochs, "baseline_epochs": base_epochs, "beam": args.beam,
            "targets": {str(k): v for k, v in TARGETS.items()}, "rows": rows, **extra,
        }

    for nd in digit_sets:
        n_train = 300 if args.quick else (args.n_train or default_n[nd])
        n_test = 100 if args.quick else args.n_test
        t0 = time.perf_counter()
        train = moving_mnist("train", n_clips=n_train, n_digits=nd, seed=args.seed)
        test = moving_mnist("test", n_clips=n_test, n_digits=nd, seed=args.seed + 1)
        extra["generation_seconds"][str(nd)] = round(time.perf_counter() - t0, 1)
        print(f"{nd} digit(s): {n_train:,} training and {n_test:,} test clips generated in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        for name in models:
            est = VideoCaptioner(
                preset=PRESETS[name],
                epochs=base_epochs if name == "frame_bag" else epochs,
                threads=args.threads, seed=args.seed, verbose=True,
            )
            t0 = time.perf_counter()
            est.fit(train.frames, train.captions)
            minutes = (time.perf_counter() - t0) / 60
            rep = est.evaluate(test.frames, test.captions, beam=args.beam)
            best = next(r for r in est.history_ if r["epoch"] == est.best_epoch_)
            row = {"digits": nd, "model": name, **rep, "val_exact_match": best.get("val_exact_match"),
                   "epochs": est.n_epochs_, "best_epoch": est.best_epoch_, "train_minutes": minutes,
                   "n_train": n_train, "n_params": sum(p.numel() for p in est.model_.parameters())}
            for k, v in TARGETS[nd].items():
                if name != "frame_bag":
                    row[f"target_{k}"] = v
                    row[f"met_{k}"] = rep[k] >= v
            rows.append(row)
            extra["histories"][f"{nd}:{name}"] = est.history_
            if est.model_.config.spatial_attention:  # where each word looks, on the first test clip
                from aekit.video import write_attention_sheet

                fig = out_dir / "figures" / f"{args.name}_attention_{nd}digit.png"
                fig.parent.mkdir(parents=True, exist_ok=True)
                write_attention_sheet(fig, test.frames[0], *est.attention(test.frames[0]))
                extra["figures"] = {**extra.get("figures", {}), f"{nd}:{name}": str(fig)}
            pred = est.predict(test.frames[:5])
            extra["examples"][f"{nd}:{name}"] = [{"true": t, "predicted": p} for t, p in zip(test.captions[:5], pred)]
            path = _common.write_json(args.name, payload(), out_dir)
            _common.print_table(rows, COLUMNS, HEADERS, title=f"after {name} on {nd} digit(s) -> {path}")
    _common.print_table(rows, COLUMNS, HEADERS, title="Video to text on moving digits (test clips, greedy)")


if __name__ == "__main__":
    main()
