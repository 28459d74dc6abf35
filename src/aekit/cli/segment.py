"""``aekit segment train|predict|evaluate``: U-Net segmentation of image folders."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .._utils import atomic_path, is_worker_process, write_json
from ..errors import ConfigError, ModelFileError, ResumeError, RunExistsError
from ..io.persistence import CHECKPOINT_FILE, read_meta, write_dir
from ..tasks.segmentation import Segmenter
from ..viz.figures import loss_curves
from ..viz.segmentation import segmentation_figure
from .runs import _write_history

segment_app = typer.Typer(
    no_args_is_help=True,
    help="Segmentation: train a U-Net on image/mask folders, predict masks, evaluate.",
)
RUN_FILE = "segment_run.json"  # the options of a run, written first, for --resume


def _split(s: str | None) -> list[str] | None:
    return [p.strip() for p in s.split(",") if p.strip()] if s else None


def _write_masks(out: Path, names: list[str], masks: list[np.ndarray], mapping: dict[int, int]) -> list[Path]:
    """Class maps -> PNGs holding the original mask values (the first value of each class)."""
    from PIL import Image

    inverse: dict[int, int] = {}
    for v, c in sorted(mapping.items()):
        inverse.setdefault(c, v)
    lut = np.array([inverse.get(c, c) for c in range(max(inverse) + 1)], dtype=np.int64)
    paths = []
    for n, m in zip(names, masks):
        vals = lut[m]
        img = Image.fromarray(vals.astype(np.uint8)) if vals.max() <= 255 else Image.fromarray(vals.astype(np.uint16))
        p = out / f"{n}.png"
        with atomic_path(p) as tmp:
            img.save(tmp, format="PNG")
        paths.append(p)
    return paths


def _load_segmenter(run: Path) -> Segmenter:
    from ..io import load

    doc = read_meta(run)
    if doc.get("kind") != "segmenter":
        raise ModelFileError(
            f"{run} holds a {doc.get('kind')!r}, not a segmenter; train one with `aekit segment train`"
        )
    return load(run)


def _summary(rep: dict[str, Any]) -> str:
    pos = rep["positive_class"]
    parts = [f"pixel error {rep['pixel_error']:.4f}"]
    if "isbi_pixel_error" in rep:
        parts.append(f"ISBI pixel error (1 - max F-score) {rep['isbi_pixel_error']:.4f}")
    if "rand_error" in rep:
        parts.append(f"Rand error {rep['rand_error']:.4f}")
    parts.append(f"Dice {pos} {rep['dice_positive']:.4f}, IoU {pos} {rep['iou_positive']:.4f}")
    parts.append("Dice per class " + ", ".join(f"{k} {v:.3f}" for k, v in rep["dice"].items()))
    return "; ".join(parts)


@segment_app.command("train")
def train_cmd(
    images: Path = typer.Option(None, "--images", help="folder of training images"),
    masks: Path = typer.Option(None, "--masks", help="folder of masks, matched to images by file name"),
    out: Path = typer.Option(None, "--out", help="run folder to create"),
    val_fraction: float = typer.Option(0.2, help="share of the images held out for validation (whole images)"),
    mapping: str | None = typer.Option(
        None, help="mask value -> class, e.g. 0:1,255:0 (default: 0..K-1; 0/255 -> 0/1)"
    ),
    classes: str | None = typer.Option(None, help="class names in index order, e.g. cell,membrane"),
    positive_class: str = typer.Option("minority", help="class reported alone and used by the Rand error"),
    preset: str | None = typer.Option(
        None, help="unet preset: small | ronneberger | noskip (default: 32..512 channels)"
    ),
    depth: int | None = typer.Option(None, help="number of 2x2 poolings"),
    base_width: int | None = typer.Option(None, help="channels at full resolution"),
    decoder: str | None = typer.Option(None, help="transpose | upsample"),
    dropout: float | None = typer.Option(None, help="dropout at the bottleneck"),
    batch_norm: bool | None = typer.Option(None, "--batch-norm/--no-batch-norm"),
    crop: int = typer.Option(256, help="side of the square training crops"),
    batch_size: int = typer.Option(4, min=1),
    steps_per_epoch: int = typer.Option(50, min=1),
    epochs: int = typer.Option(20, min=1),
    lr: float = typer.Option(1e-3),
    class_weights: str | None = typer.Option(None, help="balanced, or one weight per class: 1,3"),
    dice_weight: float = typer.Option(1.0, help="weight of the Dice loss term (0: cross-entropy only)"),
    augment: str = typer.Option("flip,rot90,elastic", help="comma list of flip, rot90, elastic[:SIGMA]; or none"),
    patience: int | None = typer.Option(None, help="early stopping on the validation loss"),
    tile: int = typer.Option(1024, help="prediction window (larger images are tiled)"),
    overlap: int = typer.Option(128, help="overlap of the prediction windows"),
    seed: int = typer.Option(0),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's choice)"),
    overwrite: bool = typer.Option(False, help="replace an existing run folder"),
    resume: Path | None = typer.Option(
        None, "--resume", help="finish an interrupted run folder (--epochs N extends it)"
    ),
    quiet: bool = typer.Option(False, help="no progress output"),
) -> None:
    """Train a U-Net on image/mask pairs.

    Writes OUT/aekit.json, model.safetensors, metrics.json (validation images), history.csv,
    loss.png and validation.png; OUT/checkpoint.safetensors lets --resume finish a killed run.
    """
    from .main import console

    if resume is not None:
        out = resume
        run_file = out / RUN_FILE
        if not run_file.is_file() or not (out / CHECKPOINT_FILE).is_file():
            raise ResumeError(f"{out} is not an interrupted segmentation run (no {RUN_FILE} and {CHECKPOINT_FILE})")
        saved = json.loads(run_file.read_text())
        params = dict(saved["params"])
        params["epochs"] = epochs if epochs != 20 else params["epochs"]  # --epochs N extends the run
        images = images or Path(saved["images"])
        masks = masks or Path(saved["masks"])
    else:
        if images is None or masks is None or out is None:
            raise ConfigError("segment train needs --images DIR --masks DIR --out RUN (or --resume RUN)")
        if out.exists() and not overwrite and not is_worker_process():  # distributed: rank 0 checks
            raise RunExistsError(f"run folder {out} already exists; pass --overwrite, --resume {out}, or another --out")
        params = dict(
            preset=preset,
            depth=depth,
            base_width=base_width,
            decoder=decoder,
            dropout=dropout,
            batch_norm=batch_norm,
            mapping=mapping,
            class_names=_split(classes),
            positive_class=int(positive_class) if positive_class.isdigit() else positive_class,
            class_weights=class_weights,
            dice_weight=dice_weight,
            crop_size=crop,
            augment=augment,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            batch_size=batch_size,
            lr=lr,
            val_fraction=val_fraction,
            patience=patience,
            tile_size=tile,
            tile_overlap=overlap,
            seed=seed,
        )
    seg = Segmenter(**params, threads=threads, verbose=not quiet, checkpoint=out / CHECKPOINT_FILE)
    seg._check_params()
    data = seg.read(images, masks)  # every file is checked before anything on disk changes
    if resume is None and not is_worker_process():
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        write_json(out / RUN_FILE, {"params": params, "images": str(images), "masks": str(masks)})
    t0 = time.perf_counter()
    seg.fit(images, masks, resume=resume is not None)
    metrics: dict[str, Any] = {
        "train_seconds": round(time.perf_counter() - t0, 2),
        "epochs": len(seg.history_),
        "train_images": len(seg.train_names_),
        "val_images": len(seg.val_names_),
    }
    if seg.val_names_:
        idx = [data.names.index(n) for n in seg.val_names_]
        val = data.subset(idx)
        rep = seg.evaluate(val)
        metrics.update(rep)
        pred = seg.predict(val.images)
        segmentation_figure(
            val.images[:4],
            list(pred)[:4],
            out / "validation.png",
            true_masks=val.masks[:4],
            num_classes=seg.num_classes_,
            positive_class=seg.positive_class_,
            class_names=seg.class_names_,
            names=val.names[:4],
            title=f"{out.name}: validation images",
        )
        console.print(f"validation ({len(idx)} images): {_summary(rep)}", highlight=False)
    write_json(out / "metrics.json", metrics)
    _write_history(out / "history.csv", seg.history_)
    loss_curves(seg.history_, out / "loss.png", title=f"{out.name}: loss")
    write_dir(out, seg)  # aekit.json last: a folder with it is a finished run
    console.print(
        f"trained unet ({sum(p.numel() for p in seg.model_.parameters()):,} parameters, {len(seg.history_)} epochs) "
        f"in {metrics['train_seconds']:.0f} s -> [bold]{out}[/bold]",
        highlight=False,
    )


@segment_app.command("predict")
def predict_cmd(
    run: Path = typer.Argument(..., help="run folder from `aekit segment train` (or a saved Segmenter)"),
    images: Path = typer.Option(..., "--images", help="folder of images to segment"),
    out: Path = typer.Option(..., "--out", help="folder for the masks (PNG, mask values as in training) and figures"),
    masks: Path | None = typer.Option(None, "--masks", help="true masks: the figures then highlight the errors"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="one overlay figure per image in OUT/figures"),
    overwrite: bool = typer.Option(False, help="write into an existing non-empty folder"),
) -> None:
    """Segment every image in a folder: OUT/<name>.png masks plus OUT/figures/<name>.png overlays."""
    from .main import console

    seg = _load_segmenter(run)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise RunExistsError(f"{out} exists and is not empty; pass --overwrite or choose another --out")
    data = seg.read(images, masks, require_masks=True) if masks is not None else seg.read(images)
    t0 = time.perf_counter()
    pred = seg.predict(data.images)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    _write_masks(out, data.names, list(pred), seg.mapping_)
    if figures:
        for i, n in enumerate(data.names):
            segmentation_figure(
                [data.images[i]],
                [pred[i]],
                out / "figures" / f"{n}.png",
                true_masks=[data.masks[i]] if data.masks is not None else None,
                num_classes=seg.num_classes_,
                positive_class=seg.positive_class_,
                class_names=seg.class_names_,
                names=[n],
            )
    console.print(
        f"segmented {len(data.names)} image(s) in {seconds:.1f} s -> [bold]{out}[/bold]"
        + (f" (figures in {out / 'figures'})" if figures else ""),
        highlight=False,
    )


@segment_app.command("evaluate")
def evaluate_cmd(
    run: Path = typer.Argument(..., help="run folder from `aekit segment train` (or a saved Segmenter)"),
    images: Path = typer.Option(..., "--images", help="folder of images"),
    masks: Path = typer.Option(..., "--masks", help="folder of their true masks"),
    out: Path = typer.Option(..., "--out", help="metrics JSON: pixel_error, rand_error, dice, iou, ..."),
    figure: Path | None = typer.Option(None, help="figure of the first images with errors highlighted (.png)"),
) -> None:
    """Score a segmenter on labelled images (pixel error, ISBI Rand error, Dice and IoU per class)."""
    from .main import console

    seg = _load_segmenter(run)
    if out.suffix.lower() != ".json":
        raise ConfigError(f"--out must be a .json file, got {out}")
    data = seg.read(images, masks)
    rep = seg.evaluate(data)
    rep["names"] = list(data.names)
    write_json(out, rep)
    if figure is not None:
        pred = seg.predict(data.images[:4])
        segmentation_figure(
            data.images[:4],
            list(pred),
            figure,
            true_masks=data.masks[:4],
            num_classes=seg.num_classes_,
            positive_class=seg.positive_class_,
            class_names=seg.class_names_,
            names=data.names[:4],
        )
    console.print(f"{len(data.names)} image(s): {_summary(rep)}", highlight=False)
    console.print(f"metrics: [bold]{out}[/bold]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``segment train|predict|evaluate`` to the ``aekit`` app."""
    app.add_typer(segment_app, name="segment")
