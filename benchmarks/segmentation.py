"""Segmentation benchmark: ISBI 2012 membranes, 5-fold cross-validation, U-Net vs its no-skip ablation.

The 30 labelled 512x512 slices of ../shared/datasets/isbi2012_membrane are split into 5 folds of
6 consecutive slices (neighbouring slices look alike, so consecutive blocks are the honest
split); each fold trains on the other 24 and is scored on its 6 held-out slices: pixel error
(share of misclassified pixels at threshold 0.5), the ISBI challenge's pixel error (1 - the
maximal F-score of the cell pixels over thresholds 0, 0.1, ..., 1, as its Fiji script computes
it), ISBI Rand error (threshold 0.5), Dice and IoU of the membrane class, and CPU training
minutes. Each fold's trained model is saved to --keep (default runs/bench-segmentation), so other
metrics can be computed later without training again.
U-Net (preset ``small`` unless --base-width) and the same network without skip connections
(preset ``noskip``) are trained with identical settings side by side.

Reference: Ronneberger et al. (2015) report pixel error 0.0611 and Rand error 0.0382 on the
challenge's hidden test set: the challenge's definitions (best threshold), on other slices; compare
them with our ``isbi_pixel_error``, not with the share of misclassified pixels.

    python benchmarks/segmentation.py --quick                      # 1 fold, ~1 min per model
    python benchmarks/segmentation.py --minutes-per-fold 25        # the full run
    python benchmarks/segmentation.py --folds 5 --epochs 40 --steps-per-epoch 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "isbi2012_membrane" / "train"
REFERENCE = {"pixel_error": 0.0611, "rand_error": 0.0382}
TARGET = {"pixel_error": 0.06, "dice_membrane": 0.80, "minutes_per_fold": 30}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 fold, crops of 128, ~1 min per model")
    ap.add_argument(
        "--folds", type=int, default=None, help="how many of the 5 folds to run (default 5; 1 with --quick)"
    )
    ap.add_argument(
        "--minutes-per-fold",
        type=float,
        default=None,
        help="training budget per model and fold: epochs are sized from a measured step time",
    )
    ap.add_argument("--epochs", type=int, default=None, help="fixed epochs instead of a time budget")
    ap.add_argument("--steps-per-epoch", type=int, default=50)
    ap.add_argument("--crop", type=int, default=None, help="training crop side (default 256; 128 with --quick)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--base-width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--augment", default="flip,rot90,elastic")
    ap.add_argument("--models", default="unet,noskip")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results-dir", default=None)
    ap.add_argument("--keep", type=Path, default=Path("runs/bench-segmentation"),
                    help="folder for each fold's trained model (MODEL-foldK)")
    args = ap.parse_args()

    import numpy as np
    import torch

    import aekit
    from aekit.tasks.segmentation import Segmenter
    from aekit.viz.segmentation import segmentation_figure

    if args.threads:
        torch.set_num_threads(args.threads)
    folds = args.folds or (1 if args.quick else 5)
    crop = args.crop or (128 if args.quick else 256)
    budget = (
        args.minutes_per_fold
        if args.minutes_per_fold is not None
        else (1.0 if args.quick and not args.epochs else None)
    )
    if budget is None and args.epochs is None:
        budget = 25.0
    out_dir = _common.results_dir(args)
    fig_dir = out_dir / "figures"

    probe = Segmenter(mapping="0:1,255:0", class_names=("cell", "membrane"))
    data = probe.read(DATA / "image", DATA / "label")
    order = sorted(range(len(data)), key=lambda i: int(data.names[i]))
    blocks = [order[k * 6 : (k + 1) * 6] for k in range(5)]
    print(
        f"ISBI 2012: {len(data)} slices {data.images[0].shape[1:]}, membrane "
        f"{np.mean([m.mean() for m in data.masks]):.1%} of pixels; folds of 6 consecutive slices"
    )

    common = dict(
        mapping="0:1,255:0",
        class_names=("cell", "membrane"),
        positive_class="membrane",
        depth=args.depth,
        base_width=args.base_width,
        crop_size=crop,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        lr=args.lr,
        augment=args.augment,
        seed=args.seed,
        threads=args.threads,
        tile_size=1024,
        tile_overlap=128,
    )
    rows, per_fold = [], []
    presets = {"unet": None, "noskip": "noskip"}
    for k in range(folds):
        for name in args.models.split(","):
            preset = presets[name]
            held = blocks[k]
            train = data.subset([i for i in order if i not in held])
            test = data.subset(held)
            kw = dict(common, preset=preset)
            epochs = args.epochs
            step_s = None
            if epochs is None:
                # seconds per step, measured (a short throwaway fit; its first epoch is warm-up)
                probe_fit = Segmenter(**{**kw, "epochs": 2, "steps_per_epoch": 4}).fit(train)
                step_s = probe_fit.history_[1]["train_seconds"] / 4
                epochs = max(1, int(budget * 60 / step_s / args.steps_per_epoch))
            seg = Segmenter(**kw, epochs=epochs).fit(train)
            aekit.save(seg, args.keep / f"{name}-fold{k}", overwrite=True)
            rep = seg.evaluate(test)
            minutes = seg.train_seconds_ / 60
            rec = {
                "model": name,
                "fold": k,
                "held_out": test.names,
                "epochs": epochs,
                "steps": epochs * args.steps_per_epoch,
                "step_seconds_measured": step_s,
                "train_minutes": minutes,
                "pixel_error": rep["pixel_error"],
                "isbi_pixel_error": rep["isbi_pixel_error"],
                "isbi_threshold": rep["isbi_threshold"],
                "rand_error": rep["rand_error"],
                "dice_membrane": rep["dice"]["membrane"],
                "iou_membrane": rep["iou"]["membrane"],
                "dice_cell": rep["dice"]["cell"],
                "rand_error_per_image": rep["rand_error_per_image"],
                "params": sum(p.numel() for p in seg.model_.parameters()),
                "final_train_loss": seg.history_[-1]["train_loss"],
            }
            per_fold.append(rec)
            print(
                f"  {name} fold {k}: {epochs} epochs x {args.steps_per_epoch} steps in {minutes:.1f} min: "
                f"pixel error {rec['pixel_error']:.4f} (ISBI {rec['isbi_pixel_error']:.4f}), "
                f"Rand error {rec['rand_error']:.4f}, "
                f"Dice membrane {rec['dice_membrane']:.4f}",
                flush=True,
            )
            if k == 0:
                pred = seg.predict(test.images[:2])
                segmentation_figure(
                    test.images[:2],
                    list(pred),
                    fig_dir / f"segmentation_isbi_{name}.png",
                    true_masks=test.masks[:2],
                    positive_class=1,
                    class_names=("cell", "membrane"),
                    names=[f"slice {n}" for n in test.names[:2]],
                    title=f"ISBI 2012, fold 0 held-out slices: {name}",
                )
            # after every fold and model: what has been measured so far survives an interruption
            _common.write_json("segmentation_partial", {"command": _common.command_line(), "per_fold": per_fold},
                               out_dir)
    for name in args.models.split(","):
        fr = [r for r in per_fold if r["model"] == name]
        row = {"model": name, "params": fr[0]["params"], "folds": len(fr)}
        for key in ("pixel_error", "isbi_pixel_error", "rand_error", "dice_membrane", "iou_membrane",
                    "train_minutes"):
            vals = np.array([r[key] for r in fr])
            row[key] = float(vals.mean())
            row[key + "_std"] = float(vals.std())
        rows.append(row)

    cols = ["model", "params", "folds", "pixel_error", "isbi_pixel_error", "rand_error", "dice_membrane",
            "iou_membrane", "train_minutes"]
    _common.print_table(
        rows,
        cols,
        ["model", "params", "folds", "pixel error", "ISBI pixel error", "Rand error", "Dice membrane",
         "IoU membrane", "train min/fold"],
        title=f"ISBI 2012 membranes, held-out slices (mean over folds); crops {crop}, "
        f"base width {args.base_width}, depth {args.depth}",
    )
    print(
        f"reference (Ronneberger et al. 2015, hidden test set): pixel error {REFERENCE['pixel_error']}, "
        f"Rand error {REFERENCE['rand_error']} (the challenge's definitions); target: pixel error <= "
        f"{TARGET['pixel_error']}, "
        f"Dice membrane >= {TARGET['dice_membrane']}, <= {TARGET['minutes_per_fold']} min per fold"
    )
    by = {r["model"]: r for r in rows}
    checks = {}
    if "unet" in by:
        u = by["unet"]
        checks = {
            "pixel_error": u["pixel_error"] <= TARGET["pixel_error"],
            "isbi_pixel_error": u["isbi_pixel_error"] <= TARGET["pixel_error"],
            "dice_membrane": u["dice_membrane"] >= TARGET["dice_membrane"],
            "minutes_per_fold": u["train_minutes"] <= TARGET["minutes_per_fold"],
        }
        if "noskip" in by:
            checks["ablation_worse_pixel_error"] = by["noskip"]["pixel_error"] > u["pixel_error"]
            checks["ablation_worse_dice"] = by["noskip"]["dice_membrane"] < u["dice_membrane"]
    print("targets met:", checks)
    payload = {
        "benchmark": "segmentation",
        "command": _common.command_line(),
        "env": _common.env_info(),
        "settings": {
            **{k: v for k, v in common.items() if k not in ("class_names",)},
            "folds": folds,
            "minutes_per_fold": budget,
            "epochs": args.epochs,
            "quick": args.quick,
        },
        "reference": REFERENCE,
        "target": TARGET,
        "targets_met": checks,
        "summary": rows,
        "per_fold": per_fold,
    }
    path = _common.write_json("segmentation", payload, out_dir)
    print(f"results: {path}; figures: {fig_dir}")


if __name__ == "__main__":
    main()
