"""Pretraining with autoencoders: greedy stacking, fine-tuning, label draws, CLI, bad input.

Everything runs on scikit-learn's 8x8 digits with a small 64-48-24-10 dense_ae and few epochs;
the pretrained models are built once per module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import aekit
from aekit.errors import AekitError, ConfigError, DataError
from aekit.tasks.pretraining import (
    PretrainedClassifier,
    compare_pretraining,
    draw_labelled,
    frozen_code_classifier,
    pretrain,
    summarise,
)

ARCH = dict(input_shape=(1, 8, 8), hidden=(48, 24), latent_dim=10, activation="elu", code_activation="linear")
FAST = dict(epochs=60, batch_size=32, lr=1e-2, augment=None, threads=1)


def small_ae(**kw):
    aekit.seed_everything(0)
    return aekit.create_model("dense_ae", **{**ARCH, **kw})


@pytest.fixture(scope="module")
def data():
    from aekit.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def greedy(data):
    return pretrain(small_ae(), data.x_train, strategy="greedy", sparsity="l1:1e-4", epochs=8, batch_size=64,
                    threads=1)


def _state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


# -- greedy stacking -----------------------------------------------------------------------------
def test_greedy_stacks_an_encoder_of_the_expected_shape(greedy, data):
    m = greedy.model
    assert [tuple(layer.weight.shape) for layer in m.enc] == [(48, 64), (24, 48), (10, 24)]
    assert [tuple(layer.weight.shape) for layer in m.dec] == [(24, 10), (48, 24), (64, 48)]
    assert list(greedy.history) == ["layer1", "layer2", "layer3"]
    assert all(len(h) == 8 for h in greedy.history.values())
    codes = m.encode(torch.from_numpy(data.x_test[:5]))
    assert codes.shape == (5, 10) and torch.isfinite(codes).all()
    # the stacked model reconstructs better than an untrained one
    ev = aekit.Trainer().evaluate
    assert ev(m, data.x_test)["recon"] < ev(small_ae(), data.x_test)["recon"]
    stats = greedy.layer_stats
    assert [s["units"] for s in stats] == [48, 24, 10]
    assert all(0 <= s["dead_fraction"] <= 1 and np.isfinite(s["mean_activation"]) for s in stats)


def test_greedy_copies_each_layer_into_encoder_and_mirrored_decoder(data):
    """Layer i of the stack is exactly the one-layer autoencoder trained on the codes below."""
    from aekit.tasks.pretraining.stacking import _copy_layer

    stacked, one = small_ae(), aekit.create_model("dense_ae", input_shape=(48,), hidden=(), latent_dim=24)
    _copy_layer(one, stacked, 1)
    assert torch.equal(stacked.enc[1].weight, one.enc[0].weight)
    assert torch.equal(stacked.dec[1].weight, one.dec[0].weight)  # decoder mirrored: 24 -> 48
    tied = small_ae(tied=True)
    one_t = aekit.create_model("dense_ae", input_shape=(48,), hidden=(), latent_dim=24, tied=True)
    torch.nn.init.normal_(one_t.dec_bias[0])
    _copy_layer(one_t, tied, 1)
    assert torch.equal(tied.dec_bias[1], one_t.dec_bias[0])


def test_greedy_tied_and_end_to_end(data):
    r = pretrain(small_ae(tied=True), data.x_train[:300], strategy="greedy", epochs=1, threads=1)
    assert r.model.dec is None and len(r.history) == 3
    before = _state(small_ae())
    e = pretrain(small_ae(), data.x_train[:300], strategy="end_to_end", denoise="shift:1+mask:0.3",
                 sparsity="l1:1e-4", epochs=2, threads=1)
    assert list(e.history) == ["end_to_end"] and e.model.config.sparsity == "l1:1e-4"
    assert any(not torch.equal(before[k], v) for k, v in e.model.state_dict().items())
    p = pretrain("hinton2006", np.zeros((4, 784), np.float32), strategy="end_to_end", epochs=1)
    assert p.model.config.hidden == (1000, 500, 250)


def test_pretrain_bad_input(data):
    with pytest.raises(ConfigError, match="strategy"):
        pretrain(small_ae(), data.x_train, strategy="layerwise")
    with pytest.raises(DataError, match="expects"):
        pretrain(small_ae(), np.zeros((10, 784), np.float32))
    with pytest.raises(ConfigError, match="not a dense_ae"):
        pretrain(aekit.create_model("conv_ae", "tutorial", input_shape=(1, 8, 8)), data.x_train, strategy="greedy")
    with pytest.raises(ConfigError, match="sparsity"):
        pretrain(small_ae(), data.x_train, strategy="end_to_end", sparsity="l2:1")


def test_pretraining_resumes_exactly_after_interruption(data, tmp_path, monkeypatch):
    """Killed in the second layer's second epoch, resumed: the same weights as one uninterrupted run."""
    x = data.x_train[:400]
    full = pretrain(small_ae(), x, strategy="greedy", epochs=3, threads=1, checkpoint_dir=tmp_path / "a").model
    calls = {"n": 0}
    original = aekit.Trainer._train_epoch

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(aekit.Trainer, "_train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        pretrain(small_ae(), x, strategy="greedy", epochs=3, threads=1, checkpoint_dir=tmp_path / "b")
    monkeypatch.setattr(aekit.Trainer, "_train_epoch", original)
    resumed = pretrain(small_ae(), x, strategy="greedy", epochs=3, threads=1, checkpoint_dir=tmp_path / "b",
                       resume=True)
    assert len(resumed.history["layer2"]) == 3
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


# -- label draws -----------------------------------------------------------------------------------
def test_label_draw_is_balanced_and_reproducible(data):
    a = draw_labelled(data.y_train, 53, seed=3)
    assert np.array_equal(a, draw_labelled(data.y_train, 53, seed=3))
    assert not np.array_equal(a, draw_labelled(data.y_train, 53, seed=4))
    counts = np.bincount(data.y_train[a], minlength=10)
    assert len(a) == len(set(a.tolist())) == 53 and counts.min() == 5 and counts.max() == 6
    with pytest.raises(ConfigError, match="fewer than the 10 classes"):
        draw_labelled(data.y_train, 9)
    with pytest.raises(DataError, match="only"):
        draw_labelled(np.array([0] * 3 + [1] * 50), 20)
    y = data.y_train.copy()
    y[100:] = -1  # -1: unlabelled rows are never drawn
    assert (draw_labelled(y, 20, seed=0) < 100).all()


# -- fine-tuning ---------------------------------------------------------------------------------
def test_frozen_encoder_is_left_unchanged(greedy, data):
    idx = draw_labelled(data.y_train, 100, seed=0)
    before = _state(greedy.model)
    clf = PretrainedClassifier(greedy.model, freeze_encoder=True, weight_decay=0.1, dropout=0.0, **FAST)
    clf.fit(data.x_train[idx], data.y_train[idx])
    after = clf.model_.ae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert clf.score(data.x_test, data.y_test) > 0.5  # the head learnt on the frozen codes
    # and the pretrained model passed in is never touched, frozen or not
    PretrainedClassifier(greedy.model, **FAST).fit(data.x_train[idx], data.y_train[idx])
    assert all(torch.equal(before[k], v) for k, v in greedy.model.state_dict().items())


def test_unfreeze_after_and_encoder_lr(greedy, data):
    idx = draw_labelled(data.y_train, 100, seed=0)
    before = _state(greedy.model)
    clf = PretrainedClassifier(greedy.model, freeze_encoder=True, unfreeze_after=20, **FAST)
    clf.fit(data.x_train[idx], data.y_train[idx])
    assert not torch.equal(before["enc.0.weight"], clf.model_.ae.state_dict()["enc.0.weight"])
    with pytest.raises(ConfigError, match="freeze_encoder"):
        PretrainedClassifier(greedy.model, unfreeze_after=3).fit(data.x_train[idx], data.y_train[idx])


def test_classifier_api_quality_and_save_load(greedy, data, tmp_path):
    idx = draw_labelled(data.y_train, 200, seed=1)
    y_named = np.array([f"d{v}" for v in data.y_train])  # any label values
    clf = PretrainedClassifier(greedy.model, **FAST).fit(data.x_train[idx].reshape(200, -1), y_named[idx])
    proba = clf.predict_proba(data.x_test)
    assert proba.shape == (len(data.x_test), 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert set(clf.predict(data.x_test[:20])) <= set(clf.classes_)
    acc = clf.score(data.x_test, np.array([f"d{v}" for v in data.y_test]))
    assert acc > 0.7, acc
    aekit.save(clf, tmp_path / "clf")
    back = aekit.load(tmp_path / "clf")
    assert np.allclose(back.predict_proba(data.x_test), proba, atol=1e-6)
    assert clf.transform(data.x_test[:3]).shape == (3, 10)


def test_scratch_is_same_network_randomly_initialised(greedy, data):
    idx = draw_labelled(data.y_train, 50, seed=0)
    a, b = (PretrainedClassifier(greedy.model, from_scratch=True, epochs=1, seed=5).fit(data.x_train[idx],
                                                                                       data.y_train[idx])
            for _ in range(2))
    assert all(torch.equal(v, b.model_.state_dict()[k]) for k, v in a.model_.state_dict().items())
    assert a.model_.ae.enc[0].weight.shape == greedy.model.enc[0].weight.shape
    assert not torch.allclose(a.model_.ae.enc[0].weight, greedy.model.enc[0].weight, atol=0.05)


def test_classifier_bad_input(greedy, data):
    idx = draw_labelled(data.y_train, 50, seed=0)
    with pytest.raises(DataError, match="expects"):
        PretrainedClassifier(greedy.model, epochs=1).fit(np.zeros((20, 784), np.float32), np.arange(20) % 10)
    with pytest.raises(DataError, match="single class"):
        PretrainedClassifier(greedy.model, epochs=1).fit(data.x_train[:5], np.zeros(5))
    with pytest.raises(DataError, match="one label per sample"):
        PretrainedClassifier(greedy.model, epochs=1).fit(data.x_train[:5], np.arange(4))
    with pytest.raises(ConfigError, match="encoder"):
        PretrainedClassifier(None).fit(data.x_train[:5], np.arange(5))
    with pytest.raises(AekitError, match="not fitted"):
        PretrainedClassifier(greedy.model).predict(data.x_test)
    clf = PretrainedClassifier(greedy.model, epochs=1).fit(data.x_train[idx], data.y_train[idx])
    with pytest.raises(DataError, match="expects"):
        clf.predict(np.zeros((2, 10), np.float32))


def test_pseudo_labels_learn_from_the_unlabelled_images(greedy, data):
    """With 3 labels per class, the pseudo-label phase on the other training images lifts test
    accuracy well above the same fine-tuning without it, on each seed."""
    opts = dict(FAST, unlabelled_steps=200, strong_augment="mask:0.2")
    for seed in (0, 1):
        idx = draw_labelled(data.y_train, 30, seed=seed)
        unlabelled = np.delete(data.x_train, idx, axis=0)
        plain = PretrainedClassifier(greedy.model, seed=seed, **opts).fit(data.x_train[idx], data.y_train[idx])
        semi = PretrainedClassifier(greedy.model, seed=seed, **opts).fit(data.x_train[idx], data.y_train[idx],
                                                                        X_unlabelled=unlabelled)
        a, b = plain.score(data.x_test, data.y_test), semi.score(data.x_test, data.y_test)
        assert b > a + 0.05, (seed, a, b)
    rec = semi.history_[-1]
    assert rec["phase"] == "unlabelled" and rec["step"] == 200 and rec["epoch"] == 60 + 2
    assert 0 < rec["train_confident"] <= 1 and rec["train_unlabelled_loss"] > 0
    assert len(semi.history_) == 62  # 60 labelled epochs, then one record per 100 steps


def test_pseudo_labels_keep_a_frozen_encoder_and_check_input(greedy, data, tmp_path):
    idx = draw_labelled(data.y_train, 30, seed=0)
    before = _state(greedy.model)
    clf = PretrainedClassifier(greedy.model, freeze_encoder=True, dropout=0.0, unlabelled_steps=20, **FAST)
    clf.fit(data.x_train[idx], data.y_train[idx], X_unlabelled=data.x_train[:300].reshape(300, -1))
    assert all(torch.equal(before[k], v) for k, v in clf.model_.ae.state_dict().items())
    aekit.save(clf, tmp_path / "clf")
    back = aekit.load(tmp_path / "clf")
    assert back.unlabelled_steps == 20 and np.allclose(back.predict_proba(data.x_test), clf.predict_proba(data.x_test))
    with pytest.raises(DataError, match="expects"):
        clf.fit(data.x_train[idx], data.y_train[idx], X_unlabelled=np.zeros((5, 10), np.float32))
    with pytest.raises(DataError, match="empty"):
        clf.fit(data.x_train[idx], data.y_train[idx], X_unlabelled=np.zeros((0, 64), np.float32))
    for bad, words in ((dict(threshold=1.5), "threshold"), (dict(unlabelled_steps=0), "unlabelled_steps"),
                       (dict(unlabelled_ratio=0), "unlabelled_ratio"),
                       (dict(unlabelled_weight=-1), "unlabelled_weight")):
        with pytest.raises(ConfigError, match=words):
            PretrainedClassifier(greedy.model, **bad).fit(data.x_train[idx], data.y_train[idx])


def test_frozen_code_baselines_and_compare(greedy, data):
    idx = draw_labelled(data.y_train, 100, seed=0)
    for m in ("logreg", "knn"):
        acc = frozen_code_classifier(greedy.model, m).fit(data.x_train[idx], data.y_train[idx]).score(
            data.x_test, data.y_test)
        assert acc > 0.5, (m, acc)
    rows = compare_pretraining(data.x_train, data.y_train, data.x_test, data.y_test, {"greedy": greedy.model},
                               labels=[30], seeds=2, classifier_options=dict(epochs=2, threads=1))
    assert {r["method"] for r in rows} == {"scratch", "greedy", "greedy+logreg", "greedy+knn", "pixels+knn"}
    summ = summarise(rows)
    assert len(summ) == 5 and all(s["n_seeds"] == 2 for s in summ)
    rows = compare_pretraining(data.x_train, data.y_train, data.x_test, data.y_test, {"greedy": greedy.model},
                               labels=[30], seeds=1, baselines=False, pseudo_label=["scratch", "greedy"],
                               classifier_options=dict(epochs=2, threads=1, unlabelled_steps=5))
    assert [r["method"] for r in rows] == ["scratch", "scratch+pseudo", "greedy", "greedy+pseudo"]
    with pytest.raises(ConfigError, match="pseudo_label"):
        compare_pretraining(data.x_train, data.y_train, data.x_test, data.y_test, {"g": greedy.model},
                            labels=[30], pseudo_label=["other"])
    with pytest.raises(DataError, match="not present"):
        compare_pretraining(data.x_train, data.y_train, data.x_test, data.y_test + 1, {"g": greedy.model}, labels=[30])


# -- figures ------------------------------------------------------------------------------------
def test_figures(greedy, tmp_path):
    from aekit.viz.filters import accuracy_vs_labels, filter_grid

    p = filter_grid(greedy.model.enc[0].weight, tmp_path / "f.png", image_shape=(8, 8), n=30)
    assert p.stat().st_size > 1000
    summ = [{"method": "scratch", "n_labels": n, "mean": 0.5, "std": 0.1} for n in (10, 100)]
    assert accuracy_vs_labels(summ, tmp_path / "a.png", references={"MLP": {10: 0.4, 100: 0.6}}).is_file()
    with pytest.raises(DataError, match="shape"):
        filter_grid(np.zeros((5, 10)), tmp_path / "g.png", image_shape=(8, 8))


# -- CLI -----------------------------------------------------------------------------------------
@pytest.fixture()
def cli_app():
    import typer

    from aekit.cli.pretrain import register

    app = typer.Typer()
    app.command("noop")(lambda: None)  # keep typer in multi-command mode
    register(app)
    return app


def run_cli(app, *argv):
    from typer.testing import CliRunner

    return CliRunner().invoke(app, [str(a) for a in argv])


def test_cli_pretrain_finetune_and_bad_input(cli_app, tmp_path):
    run = tmp_path / "run"
    r = run_cli(cli_app, "pretrain", "--dataset", "digits", "--hidden", "48,24", "--latent-dim", "10",
                "--strategy", "greedy", "--sparsity", "l1:1e-4", "--epochs", "2", "--threads", "1", "--quiet",
                "--out", run)
    assert r.exit_code == 0, r.output
    m = json.loads((run / "metrics.json").read_text())
    assert len(m["layers"]) == 3 and "dead_fraction" in m["layers"][0] and "code_mean_activation" in m
    for f in ("aekit.json", "model.safetensors", "history.csv", "filters.png", "reconstructions.png"):
        assert (run / f).is_file(), f
    assert aekit.load(run).enc[0].weight.shape == (48, 64)

    clf = tmp_path / "clf"
    r = run_cli(cli_app, "finetune", run, "--labels", "50", "--seed", "0", "--epochs", "20", "--augment", "none",
                "--threads", "1", "--out", clf)
    assert r.exit_code == 0, r.output
    mc = json.loads((clf / "metrics.json").read_text())
    assert 0 <= mc["test_accuracy"] <= 1 and mc["n_labels"] == 50 and "frozen_knn_test_accuracy" in mc
    drawn = np.loadtxt(clf / "labelled.csv", delimiter=",", skiprows=1, dtype=int)
    from aekit.data import load_dataset

    assert np.array_equal(drawn[:, 0], draw_labelled(load_dataset("digits").y_train, 50, seed=0))
    assert isinstance(aekit.load(clf), PretrainedClassifier)

    r = run_cli(cli_app, "finetune", run, "--labels", "50", "--scratch", "--epochs", "2", "--out", tmp_path / "s")
    assert r.exit_code == 0 and json.loads((tmp_path / "s" / "metrics.json").read_text())["method"] == "scratch"
    r = run_cli(cli_app, "finetune", run, "--labels", "50", "--epochs", "2", "--pseudo-label", "--unlabelled-steps",
                "30", "--threads", "1", "--out", tmp_path / "p")
    assert r.exit_code == 0, r.output
    mp = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert mp["method"] == "pretrained+pseudo" and mp["n_unlabelled"] == 1437 - 50
    assert mp["classifier"]["unlabelled_steps"] == 30

    bad = [
        (["finetune", run, "--labels", "5", "--out", tmp_path / "x1"], ConfigError, "fewer than the 10 classes"),
        (["finetune", run, "--labels", "50", "--out", tmp_path / "x2", "--dataset", "mnist"], DataError, "expects"),
        (["finetune", run, "--labels", "50", "--out", clf], AekitError, "already exists"),
        (["compare-pretraining", "--dataset", "digits", "--pseudo-label", "pca", "--out", tmp_path / "c"], ConfigError,
         "--pseudo-label takes"),
    ]
    np.save(tmp_path / "short.npy", np.arange(10))
    bad.append((["finetune", run, "--out", tmp_path / "x3", "--label-file", tmp_path / "short.npy"], DataError,
                "10 labels but the training set has 1437"))
    for argv, err, words in bad:
        r = run_cli(cli_app, *argv)
        assert r.exit_code != 0 and isinstance(r.exception, err) and words in str(r.exception), (argv, r.exception)
    assert not (tmp_path / "x1").exists()


def test_cli_conv_pretraining_end_to_end(cli_app, tmp_path):
    run = tmp_path / "conv"
    r = run_cli(cli_app, "pretrain", "--dataset", "digits", "--model", "conv_ae", "--preset", "tutorial",
                "--latent-dim", "12", "--strategy", "end_to_end", "--denoise", "mask:0.2", "--epochs", "1",
                "--threads", "1", "--quiet", "--out", run)
    assert r.exit_code == 0, r.output
    model = aekit.load(run)
    assert model.model_name == "conv_ae" and model.code_dim == 12 and not (run / "filters.png").exists()
    assert json.loads((run / "metrics.json").read_text())["layers"][0]["units"] == 12
    r = run_cli(cli_app, "finetune", run, "--labels", "30", "--epochs", "2", "--augment", "none", "--threads", "1",
                "--out", tmp_path / "clf")
    assert r.exit_code == 0, r.output
    for argv, words in ((["--strategy", "greedy"], "use --strategy end_to_end"),
                        (["--strategy", "end_to_end", "--hidden", "8"], "only apply to --model dense_ae")):
        r = run_cli(cli_app, "pretrain", "--dataset", "digits", "--model", "conv_ae", *argv, "--out", tmp_path / "x")
        assert isinstance(r.exception, ConfigError) and words in str(r.exception), r.exception
        assert not (tmp_path / "x").exists()


def test_cli_resume_pretraining(cli_app, tmp_path, monkeypatch):
    run = tmp_path / "run"
    args = ["pretrain", "--dataset", "digits", "--hidden", "32", "--latent-dim", "8", "--strategy", "end_to_end",
            "--epochs", "3", "--threads", "1", "--quiet", "--n-train", "300", "--out", run]
    calls = {"n": 0}
    original = aekit.Trainer._train_epoch

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(aekit.Trainer, "_train_epoch", dying)
    r = run_cli(cli_app, *args)
    assert r.exit_code != 0 and not (run / "metrics.json").exists()
    monkeypatch.setattr(aekit.Trainer, "_train_epoch", original)
    r = run_cli(cli_app, "pretrain", "--resume", run, "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "metrics.json").read_text())["strategy"] == "end_to_end"
    r = run_cli(cli_app, *args[:-2], "--out", tmp_path / "fresh")
    a, b = aekit.load(run), aekit.load(tmp_path / "fresh")
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
