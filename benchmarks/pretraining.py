"""Pretraining with autoencoders on MNIST and Fashion-MNIST: does it help with 100 / 1,000 labels?

For each data set, two autoencoders are pretrained ONCE on the 60,000 training images without
their labels, and reused for every label count and seed:

* greedy: ``dense_ae`` preset ``hinton2006`` (784-1000-500-250-30, ELU, linear code), each layer
  trained as a one-hidden-layer autoencoder on the codes of the layer below (``--greedy-epochs``
  per layer, Adam 1e-3, batch 128) with an L1 penalty ``l1:3e-5`` on every hidden layer's units
  (the 784 -> 1000 layer is over-complete), then stacked;
* end_to_end: the same network trained at once as a denoiser of ``shift:2+mask:0.3`` (random
  translations of up to 2 pixels, then 30% of the pixels zeroed), ``--e2e-epochs`` epochs.

Then, for 100 and 1,000 labels and seeds 0..4, labelled examples are drawn class-balanced from the
training set (``draw_labelled``, seed = the seed) and every method sees the same draw:

* scratch: the same 784-1000-500-250-30 encoder + head from random initialisation;
* greedy / end_to_end: the pretrained encoder + head, whole network fine-tuned;
* NAME+logreg, NAME+knn: logistic regression / 5-NN on the frozen codes (standardised);
* pixels+knn: 5-NN on the raw pixels;
* scratch+pseudo, end_to_end+pseudo (``--pseudo-label``): scratch / end_to_end as above, then
  2,000 more steps that also learn from the training images not drawn as labelled: each step
  the network classifies 256 clean unlabelled images, and those it is >= 95% sure of become
  targets for copies corrupted by ``shift:2+mask:0.3`` (FixMatch-style pseudo-labels; head lr
  1e-3, encoder 3e-4). Scratch+pseudo separates what pretraining adds from what the unlabelled
  images add through pseudo-labels.

Fine-tuning (identical for scratch and pretrained): a linear softmax head on the standardised
30-d code, AdamW (lr 3e-3 for the head, 3e-4 for the encoder, weight decay 1e-4), batch 64,
dropout 0.2 on the encoder's input/hidden layers and the code, the labelled images shifted by up
to 2 pixels each step, and a FIXED schedule of about 800 steps whatever the label count (with 10
labels per class there is no validation split to stop early on, so nothing is tuned per run).

Published reference points (MNIST test error, 100 / 1000 labels): supervised MLP 25.8% / 8.7%,
pseudo-label 10.5% / 3.5% (Lee 2013). Targets: pretraining beats random initialisation by >= 10
points of accuracy at 100 labels on MNIST; <= 10% error at 100 labels and <= 3.5% at 1000.

    python benchmarks/pretraining.py            # full run, about 80 min on one thread
    python benchmarks/pretraining.py --quick    # 5k pretraining images, 1 epoch, 2 seeds: ~2 min

Writes benchmarks/results/pretraining.json and benchmarks/results/figures/pretraining_<set>.png;
pretraining runs are kept in --work (default runs/bench-pretraining) and reused when finished.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("AEKIT_DATA_HOME", "/work/shared/datasets")

REFERENCES = {"MLP (supervised)": {100: 1 - 0.258, 1000: 1 - 0.087}, "pseudo-label": {100: 1 - 0.105, 1000: 1 - 0.035}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (~2 min)")
    ap.add_argument("--datasets", default="mnist,fashion-mnist")
    ap.add_argument("--labels", default="100,1000")
    ap.add_argument("--seeds", type=int, default=None, help="default 5 (2 with --quick)")
    ap.add_argument("--greedy-epochs", type=int, default=3, help="epochs per layer")
    ap.add_argument("--e2e-epochs", type=int, default=5)
    ap.add_argument("--pseudo-label", default="scratch,end_to_end",
                    help="methods also run with pseudo-labels on the unlabelled images ('none': skip)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="folder for the pretraining runs")
    ap.add_argument("--results-dir", type=Path, default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from aekit.cli.pretrain import PretrainSpec, compare_run, parse_pseudo

    seeds = args.seeds or (2 if args.quick else 5)
    pseudo = parse_pseudo(args.pseudo_label)
    labels = [int(v) for v in args.labels.split(",")]
    n_train = 5000 if args.quick else None
    ge, ee = (1, 1) if args.quick else (args.greedy_epochs, args.e2e_epochs)
    work = args.work or Path("runs") / ("bench-pretraining-quick" if args.quick else "bench-pretraining")
    if args.quick and work.exists():
        shutil.rmtree(work)
    out_dir = _common.results_dir(args)
    t_all = time.perf_counter()
    payload = {"env": _common.env_info(), "command": _common.command_line(), "quick": args.quick,
               "labels": labels, "seeds": seeds, "references_mnist": REFERENCES, "datasets": {}}
    for name in args.datasets.split(","):
        print(f"\n== {name} ==", flush=True)
        common = dict(dataset=name, preset="hinton2006", threads=args.threads, n_train=n_train)
        strategies = {
            "greedy": PretrainSpec(strategy="greedy", sparsity="l1:3e-5", epochs=ge, **common),
            "end_to_end": PretrainSpec(strategy="end_to_end", denoise="shift:2+mask:0.3", epochs=ee, **common),
        }

        def show(r):
            print(f"  {r['method']:<20} {r['n_labels']:>5} labels seed {r['seed']}: "
                  f"{100 * r['test_accuracy']:.2f}% ({r['seconds']:.1f} s)", flush=True)

        res = compare_run(name, work / name, labels=labels, seeds=seeds, strategies=strategies,
                          classifier_options={"threads": args.threads,
                                              **({"unlabelled_steps": 100} if args.quick else {})},
                          progress=False, on_result=show, pseudo_label=pseudo)
        if name == "mnist":
            from aekit.viz.filters import accuracy_vs_labels

            accuracy_vs_labels(res["summary"], work / name / "accuracy_vs_labels.png", references=REFERENCES,
                               title=f"MNIST: test accuracy against labels ({seeds} seeds, mean ± std)")
        fig_dir = out_dir / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / name / "accuracy_vs_labels.png", fig_dir / f"pretraining_{name}.png")
        if (work / name / "greedy" / "filters.png").is_file():
            shutil.copyfile(work / name / "greedy" / "filters.png", fig_dir / f"pretraining_filters_{name}.png")
        payload["datasets"][name] = res
        rows = []
        by = {(s["method"], s["n_labels"]): s for s in res["summary"]}
        for m in dict.fromkeys(s["method"] for s in res["summary"]):
            row = {"method": m}
            for n in labels:
                s = by[m, n]
                row[f"{n}"] = f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"
            rows.append(row)
        _common.print_table(rows, ["method", *map(str, labels)],
                            ["method", *(f"{n:,} labels: accuracy %" for n in labels)],
                            title=f"{name}: test accuracy, mean ± std over {seeds} seeds")
        for k, p in res["pretraining"].items():
            layers = ", ".join(f"L{s['layer']} mean {s['mean_activation']:.3f} dead {100 * s['dead_fraction']:.0f}%"
                               for s in p.get("layers") or [])
            print(f"  pretraining {k}: {p.get('seconds') or 0:.0f} s; {layers}")
    payload["seconds"] = time.perf_counter() - t_all
    if "mnist" in payload["datasets"]:
        by = {(s["method"], s["n_labels"]): s["mean"] for s in payload["datasets"]["mnist"]["summary"]}
        finetuned = ("greedy", "end_to_end", "greedy+pseudo", "end_to_end+pseudo")
        checks = {}
        if (("scratch", 100) in by):
            best_m, best100 = max(((m, by.get((m, 100), 0)) for m in finetuned), key=lambda t: t[1])
            checks["best_pretrained_method_100"] = best_m
            checks["gain_over_scratch_100_points"] = 100 * (best100 - by["scratch", 100])
            checks["gain_target_met"] = checks["gain_over_scratch_100_points"] >= 10
            if ("scratch+pseudo", 100) in by and ("end_to_end+pseudo", 100) in by:
                # what pretraining adds when both sides learn from the unlabelled images
                checks["pseudo_gain_over_scratch_pseudo_100_points"] = 100 * (
                    by["end_to_end+pseudo", 100] - by["scratch+pseudo", 100])
            checks["best_error_100"] = 1 - max(v for (m, n), v in by.items() if n == 100)
            checks["error_100_target_met"] = checks["best_error_100"] <= 0.10
        if any(n == 1000 for _, n in by):
            checks["best_error_1000"] = 1 - max(v for (m, n), v in by.items() if n == 1000)
            checks["error_1000_target_met"] = checks["best_error_1000"] <= 0.035
        payload["targets_mnist"] = checks
        print("\nMNIST targets:", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in checks.items()})
    path = _common.write_json("pretraining", payload, out_dir)
    print(f"\n{payload['seconds'] / 60:.1f} min in all; results: {path}")


if __name__ == "__main__":
    main()
