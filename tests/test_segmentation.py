"""Segmentation: the U-Net, paired augmentation, tiled prediction, metrics (hand-computed cases),
image/mask folders and their errors, the Segmenter (fit, save/load, resume) and the CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

import aekit
from aekit.errors import ConfigError, DataError, NotFittedError
from aekit.models import create_model, list_presets
from aekit.models.unet import mirror_pad
from aekit.tasks.segmentation import (
    Augment,
    Segmenter,
    adapted_rand_error,
    confusion_matrix,
    dice,
    dihedral,
    elastic,
    iou,
    pixel_error,
    predict_tiled,
    rand_error,
    regions,
    segmentation_loss,
)

TINY = dict(
    depth=2,
    base_width=4,
    crop_size=32,
    batch_size=4,
    steps_per_epoch=8,
    augment="flip,rot90",
    tile_size=64,
    tile_overlap=16,
    threads=1,
)


def blobs(n: int, h: int = 48, w: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright disks (class 1) on a darker, noisy background: images (n, 1, h, w), masks (n, h, w)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    masks = np.zeros((n, h, w), np.int64)
    for i in range(n):
        for _ in range(3):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 9)
            masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
    imgs = np.clip(0.3 + 0.4 * masks + rng.normal(0, 0.05, masks.shape), 0, 1).astype(np.float32)[:, None]
    return imgs, masks


def write_pairs(tmp_path, imgs, masks, *, mask_scale=255):
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    for i, (x, m) in enumerate(zip(imgs, masks)):
        Image.fromarray((x[0] * 255).astype(np.uint8)).save(tmp_path / "img" / f"{i}.png")
        Image.fromarray((m * mask_scale).astype(np.uint8)).save(tmp_path / "msk" / f"{i}.png")
    return tmp_path / "img", tmp_path / "msk"


# -- the model --------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", [None, *list_presets("unet")])
def test_every_preset_forward_backward(preset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = create_model("unet", preset, input_shape=(1, 8, 8), base_width=2)
    x = torch.rand(4, 1, 8, 8)
    out = model(x)
    assert out.logits.shape == x.shape and torch.isfinite(out.logits).all()
    assert model.config.output == "sigmoid"
    terms = model.loss((x, x))  # soft float targets, as the registry-wide test passes them
    assert set(terms) >= {"loss", "recon", "dice"}
    terms["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert model.encode(x).shape[1:] == model.code_shape


@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
def test_unet_takes_odd_sizes_channels_and_classes(decoder):
    model = create_model("unet", input_shape=(3, 64, 64), num_classes=4, depth=3, base_width=4, decoder=decoder).eval()
    for h, w in [(37, 53), (1, 1), (17, 100)]:
        x = torch.rand(2, 3, h, w)
        logits = model(x).logits
        assert logits.shape == (2, 4, h, w)
        p = model.predict_proba(x)
        assert torch.allclose(p.sum(1), torch.ones(2, h, w), atol=1e-5)
    y = torch.randint(4, (2, 37, 53))
    model.train()
    terms = model.loss((torch.rand(2, 3, 37, 53), y))
    assert torch.isfinite(terms["loss"])
    with pytest.raises(DataError, match="expects images of shape"):
        model(torch.rand(2, 1, 16, 16))


def test_noskip_ablation_is_an_autoencoder_with_a_pixel_head():
    skip = create_model("unet", input_shape=(1, 32, 32), depth=2, base_width=4)
    noskip = create_model("unet", "noskip", input_shape=(1, 32, 32), depth=2, base_width=4)
    assert sum(p.numel() for p in noskip.parameters()) < sum(p.numel() for p in skip.parameters())
    x = torch.rand(2, 1, 32, 32)
    assert noskip.decode(noskip.encode(x)).shape == (2, 1, 32, 32)  # the code alone decodes
    with pytest.raises(ConfigError, match="skip features"):
        skip.decode(skip.encode(x))
    with pytest.raises(ConfigError, match="class_weights"):
        create_model("unet", class_weights=(1.0, 2.0, 3.0))


def test_mirror_pad_matches_numpy_reflect_for_any_size():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    got = mirror_pad(x, 2, 1, 3, 2)[0, 0].numpy()
    assert np.array_equal(got, np.pad(x[0, 0].numpy(), ((2, 1), (3, 2)), mode="reflect"))
    big = mirror_pad(x, 7, 7, 9, 9)[0, 0].numpy()  # pads longer than the image reflect again
    assert np.array_equal(big, np.pad(x[0, 0].numpy(), ((7, 7), (9, 9)), mode="reflect"))


def test_loss_terms_dice_and_class_weights():
    y = torch.zeros(1, 8, 8, dtype=torch.long)
    y[0, 2:5, 2:5] = 1
    perfect = y[:, None].float() * 40 - 20  # logits far on the right side
    ce, d = segmentation_loss(perfect, y, None, 2)
    assert ce < 1e-6 and d < 1e-3
    wrong = -perfect
    _, d_wrong = segmentation_loss(wrong, y, None, 2)
    assert d_wrong > 0.9
    flat = torch.zeros(1, 1, 8, 8)  # p = 0.5 everywhere: CE = log 2 whatever the weights
    ce_w, _ = segmentation_loss(flat, y, torch.tensor([1.0, 5.0]), 2)
    assert abs(float(ce_w) - np.log(2)) < 1e-6
    half = torch.full((1, 1, 8, 8), -2.0)  # predicts background: errors only on the 9 positives
    ce1, _ = segmentation_loss(half, y, None, 2)
    ce5, _ = segmentation_loss(half, y, torch.tensor([1.0, 5.0]), 2)
    assert ce5 > ce1  # up-weighting the rare class makes missing it cost more


# -- augmentation -------------------------------------------------------------------------------------
def test_flips_and_turns_move_image_and_mask_together():
    imgs, masks = blobs(6, 32, 32)
    x, y = torch.from_numpy(imgs), torch.from_numpy(masks)
    gen = torch.Generator().manual_seed(1)
    xa, ya = dihedral(x, y, gen)
    assert torch.equal((xa[:, 0] > 0.5).long(), ya)
    assert not torch.equal(xa, x)  # something moved
    xb, yb = dihedral(x, y, torch.Generator().manual_seed(1))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # the generator decides


def test_elastic_deformation_moves_image_and_mask_together():
    _, masks = blobs(4, 64, 64)
    y = torch.from_numpy(masks)
    x = y[:, None].float()  # the image is the mask itself: after warping they must still agree
    xa, ya = elastic(x, y, torch.Generator().manual_seed(0), sigma=6.0)
    assert ya.dtype == torch.long and set(ya.unique().tolist()) <= {0, 1}
    agree = ((xa[:, 0] > 0.5).long() == ya).float().mean()
    assert agree > 0.98  # differences only on the blobs' rims (bilinear vs nearest)
    assert (ya != y).float().mean() > 0.01  # the masks did deform
    assert Augment.parse("flip,elastic:4") == Augment(True, False, True, sigma=4.0)
    with pytest.raises(ConfigError, match="unknown augmentation"):
        Augment.parse("flip,zoom")


# -- tiled prediction ----------------------------------------------------------------------------------
@pytest.mark.parametrize("depth,tile,overlap,tol", [(1, 48, 32, 1e-5), (2, 128, 96, 1e-4), (2, 96, 64, 0.05)])
def test_tiled_prediction_equals_whole_image_prediction(depth, tile, overlap, tol):
    model = create_model("unet", input_shape=(1, 32, 32), depth=depth, base_width=4).eval()
    with torch.no_grad():  # give the net some contrast, so that differences would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(0.3)
    img = torch.rand(1, 101, 77)
    whole = predict_tiled(model, img, tile=None, overlap=overlap)
    tiled = predict_tiled(model, img, tile=tile, overlap=overlap)
    assert whole.shape == tiled.shape == (2, 101, 77)
    assert float(whole[1].std()) > 0.1
    # exact (float rounding) once the windows' dead borders (overlap / 4) cover the receptive
    # field; close otherwise
    assert float((whole - tiled).abs().max()) < tol
    with pytest.raises(ConfigError, match="stride"):
        predict_tiled(model, img, tile=32, overlap=32)


# -- metrics (hand-computed) ----------------------------------------------------------------------------
def test_dice_iou_pixel_error_by_hand():
    true = np.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    pred = np.array([[1, 0, 0, 0], [1, 1, 1, 0]])
    # class 1: TP 2, FP 2, FN 1; class 0: TP 3, FP 1, FN 2
    assert confusion_matrix(true, pred, 2).tolist() == [[3, 2], [1, 2]]
    assert np.allclose(dice(true, pred, 2), [6 / 9, 4 / 7])
    assert np.allclose(iou(true, pred, 2), [3 / 6, 2 / 5])
    assert pixel_error(true, pred) == 3 / 8
    assert dice(np.zeros((2, 2)), np.zeros((2, 2)), 2)[1] == 1.0  # absent in both: agreement


def test_isbi_pixel_error_by_hand():
    """1 - the best F-score of the non-boundary (cell) pixels over thresholds 0, 0.1, ..., 1,
    pooled over the images, as the challenge's Fiji script computes it."""
    from aekit.tasks.segmentation.metrics import isbi_pixel_error

    true = [np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]])]  # 1 = membrane; cells: 3 pixels
    cell_p = [np.array([[0.95, 0.35, 0.6, 0.05]]), np.array([[0.75, 0.55, 0.2, 0.0]])]
    # t = 0.5: called 0.95, 0.6, 0.75, 0.55 -> TP 2 (0.95, 0.75), FP 2, FN 1 (0.35): F = 4/7
    # t = 0.3: adds 0.35 -> TP 3, FP 2, FN 0: F = 6/8; t = 0.6: 0.95, 0.75 -> TP 2, FP 0, FN 1: F = 4/5
    # t = 0.7: same as 0.6 (0.75 > 0.7); t = 0.8: 0.95 -> TP 1, FN 2: F = 2/4
    r = isbi_pixel_error(true, cell_p)
    assert r["isbi_pixel_fscore"] == pytest.approx(4 / 5) and r["isbi_pixel_error"] == pytest.approx(1 / 5)
    assert r["isbi_threshold"] == 0.6
    with pytest.raises(DataError, match="shape"):
        isbi_pixel_error(true, [np.zeros((2, 2)), np.zeros((1, 4))])
    with pytest.raises(DataError, match="matching"):
        isbi_pixel_error(true, cell_p[:1])


def test_rand_error_by_hand():
    # boundary class 1 (membrane); cells are the 4-connected regions of class 0
    two_cells = np.array([[0, 0, 1, 0, 0], [0, 0, 1, 0, 0]])
    one_cell = np.zeros((2, 5), np.int64)
    assert regions(two_cells).max() == 2 and regions(one_cell).max() == 1
    assert rand_error(two_cells, two_cells) == 0.0
    # merge: true cells of 4 and 4 pixels, predicted as one region (the membrane pixel missed):
    # A = 4^2 + 4^2 = 32, S = 8^2 = 64 (the 8 true-cell pixels in one predicted region), T = 32
    assert rand_error(two_cells, one_cell) == pytest.approx(1 - 2 * 32 / (64 + 32))
    # split: one true cell of 10 pixels, predicted as two regions of 4 and 4 plus 2 boundary pixels
    # (singletons): A = 16 + 16 + 2 = 34, S = 16 + 16 + 2 = 34, T = 10^2 = 100
    assert rand_error(one_cell, two_cells) == pytest.approx(1 - 2 * 34 / (34 + 100))
    # everything predicted as boundary: each pixel its own segment: A = S = 4, T = 16
    r = adapted_rand_error(np.ones((2, 2)), np.zeros((2, 2)))
    assert r["rand_error"] == pytest.approx(1 - 8 / 20) and r["rand_precision"] == 1.0
    # the diagonal does not connect (4-connectivity): two cells
    diag = np.array([[0, 1], [1, 0]])
    assert regions(diag).max() == 2
    # true boundary pixels are ignored whatever is predicted there
    assert rand_error(two_cells, np.array([[0, 0, 0, 1, 0], [0, 0, 1, 0, 0]])) > 0
    assert rand_error(np.array([[0, 1, 0]]), np.array([[0, 1, 0]])) == 0.0


# -- folders and their errors ------------------------------------------------------------------------------
def test_folder_pairs_mapping_and_clear_errors(tmp_path):
    imgs, masks = blobs(4, 24, 20)
    img_dir, mask_dir = write_pairs(tmp_path, imgs, masks)
    seg = Segmenter(mapping="0:1,255:0")  # like ISBI: 0 (membrane) -> class 1
    d = seg.read(img_dir, mask_dir)
    assert d.names == ["0", "1", "2", "3"] and d.images[0].shape == (1, 24, 20)
    assert np.array_equal(d.masks[2], 1 - masks[2])
    assert Segmenter().read(img_dir, mask_dir).mapping == {0: 0, 255: 1}  # 0/255 masks by default

    bad = tmp_path / "bad_values"
    bad.mkdir()
    for i in range(4):
        m = (masks[i] * 255).astype(np.uint8)
        m[0, 0] = 7 if i == 2 else m[0, 0]
        Image.fromarray(m).save(bad / f"{i}.png")
    with pytest.raises(DataError, match=r"2\.png: mask values 7 are not in the mapping"):
        Segmenter(mapping="0:1,255:0").read(img_dir, bad)

    small = tmp_path / "small"
    small.mkdir()
    for i in range(4):
        Image.fromarray(np.zeros((24, 20 if i else 19), np.uint8)).save(small / f"{i}.png")
    with pytest.raises(DataError, match=r"image 0\.png is 20x24 but its mask 0\.png is 19x24"):
        Segmenter().read(img_dir, small)

    partial = tmp_path / "partial"
    partial.mkdir()
    Image.fromarray(np.zeros((24, 20), np.uint8)).save(partial / "1_mask.png")
    with pytest.raises(DataError, match=r"3 image\(s\) .* have no mask .*: 0, 2, 3"):
        Segmenter().read(img_dir, partial)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty.* holds no image files"):
        Segmenter().read(empty, mask_dir)

    Image.fromarray(np.zeros((24, 20, 3), np.uint8)).save(img_dir / "4.png")
    Image.fromarray(np.zeros((24, 20), np.uint8)).save(mask_dir / "4.png")
    with pytest.raises(
        DataError, match=r"mixed channel counts: 1 channel\(s\) \(e\.g\. 0\.png\), 3 channel\(s\) \(e\.g\. 4\.png\)"
    ):
        Segmenter().read(img_dir, mask_dir)


# -- the Segmenter ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    imgs, masks = blobs(8, 48, 48)
    seg = Segmenter(epochs=15, lr=3e-3, val_fraction=0.25, class_names=("background", "disk"), **TINY)
    return seg.fit(imgs, masks), imgs, masks


def test_segmenter_learns_blobs_and_reports(fitted):
    seg, _, _ = fitted
    x, y = blobs(3, 40, 56, seed=5)  # new images of another size
    pred = seg.predict(x)
    assert pred.shape == (3, 40, 56) and pred.dtype == np.int64
    assert seg.predict_proba(x).shape == (3, 2, 40, 56)
    rep = seg.evaluate(x, y)  # raw mask values, through the training mapping {0: 0, 1: 1}
    assert rep["positive_class"] == "disk"  # the minority class
    assert rep["dice"]["disk"] > 0.8 and rep["pixel_error"] < 0.08
    # the challenge's pixel error picks the best threshold, so it is no worse than 1 - F at 0.5
    assert 0 <= rep["isbi_pixel_error"] <= 1 - rep["dice"]["background"] + 1e-9
    assert set(rep) >= {"pixel_error", "rand_error", "dice", "iou", "dice_positive", "iou_positive"}
    assert len(seg.history_) == 15 and "val_loss" in seg.history_[-1]
    assert seg.history_[-1]["train_loss"] < seg.history_[0]["train_loss"]
    with pytest.raises(NotFittedError):
        Segmenter().predict(x)
    with pytest.raises(DataError, match="3 channel"):
        seg.predict(np.zeros((1, 3, 16, 16), np.float32))


def test_segmenter_saves_and_loads(fitted, tmp_path):
    seg, _, _ = fitted
    aekit.save(seg, tmp_path / "seg")
    back = aekit.load(tmp_path / "seg")
    x = blobs(2, 33, 47, seed=3)[0]
    assert np.allclose(back.predict_proba(x), seg.predict_proba(x), atol=1e-6)
    assert back.class_names_ == ["background", "disk"] and back.mapping_ == seg.mapping_


def test_resume_reproduces_an_uninterrupted_run(tmp_path, monkeypatch):
    from aekit.tasks.segmentation import SegmentationTrainer

    imgs, masks = blobs(4, 40, 40)
    opts = dict(TINY, epochs=3, steps_per_epoch=3, augment="flip,rot90,elastic")
    full = Segmenter(checkpoint=tmp_path / "a.safetensors", **opts).fit(imgs, masks)

    save = SegmentationTrainer._save

    def killed_after_epoch_1(self, model, epoch, *args, **kwargs):
        save(self, model, epoch, *args, **kwargs)
        if epoch == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(SegmentationTrainer, "_save", killed_after_epoch_1)
        with pytest.raises(KeyboardInterrupt):
            Segmenter(checkpoint=tmp_path / "b.safetensors", **opts).fit(imgs, masks)
    resumed = Segmenter(checkpoint=tmp_path / "b.safetensors", **opts).fit(imgs, masks, resume=True)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]
    for (k, a), b in zip(full.model_.state_dict().items(), resumed.model_.state_dict().values()):
        assert torch.equal(a, b), k


# -- the command line -----------------------------------------------------------------------------------------
def test_cli_train_predict_evaluate(tmp_path):
    from aekit.cli.segment import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    imgs, masks = blobs(5, 40, 40)
    img_dir, mask_dir = write_pairs(tmp_path, imgs, masks)
    run = tmp_path / "run"
    args = [
        "segment",
        "train",
        "--images",
        str(img_dir),
        "--masks",
        str(mask_dir),
        "--out",
        str(run),
        "--depth",
        "2",
        "--base-width",
        "4",
        "--crop",
        "32",
        "--epochs",
        "2",
        "--steps-per-epoch",
        "3",
        "--classes",
        "bg,disk",
        "--threads",
        "1",
        "--quiet",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    for f in ("aekit.json", "model.safetensors", "metrics.json", "history.csv", "loss.png", "validation.png"):
        assert (run / f).is_file(), f
    assert json.loads((run / "metrics.json").read_text())["val_images"] == 1

    res = runner.invoke(
        app,
        [
            "segment",
            "predict",
            str(run),
            "--images",
            str(img_dir),
            "--out",
            str(tmp_path / "pred"),
            "--masks",
            str(mask_dir),
        ],
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    m = np.asarray(Image.open(tmp_path / "pred" / "3.png"))
    assert m.shape == (40, 40) and set(np.unique(m)) <= {0, 255}  # the masks' own values
    assert (tmp_path / "pred" / "figures" / "3.png").is_file()

    res = runner.invoke(
        app,
        [
            "segment",
            "evaluate",
            str(run),
            "--images",
            str(img_dir),
            "--masks",
            str(mask_dir),
            "--out",
            str(tmp_path / "m.json"),
            "--figure",
            str(tmp_path / "m.png"),
        ],
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    rep = json.loads((tmp_path / "m.json").read_text())
    assert {"pixel_error", "rand_error", "dice", "iou", "dice_positive"} <= set(rep)
    assert set(rep["dice"]) == {"bg", "disk"} and (tmp_path / "m.png").is_file()

    # an existing run is refused; bad data is a typed error before anything is replaced
    assert isinstance(runner.invoke(app, args).exception, aekit.errors.RunExistsError)
    Image.fromarray(np.zeros((40, 39), np.uint8)).save(mask_dir / "2.png")
    res = runner.invoke(app, [*args, "--overwrite"])
    assert isinstance(res.exception, DataError) and "2.png" in str(res.exception)
    assert (run / "aekit.json").is_file()  # the old run is still there
