"""The Trainer: learning, determinism, resume, early stopping, divergence, bad data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aekit import TrainConfig, Trainer, create_model, seed_everything
from aekit.data import parse_corruption
from aekit.errors import ConfigError, DataError, ResumeError, TrainingDivergedError
from aekit.training import load_checkpoint


@pytest.fixture(scope="module")
def x(digits):
    return torch.from_numpy(digits.x_train[:512])


def _model(seed=0, **kw):
    seed_everything(seed)
    return create_model("dense_ae", input_shape=(1, 8, 8), hidden=(32,), latent_dim=4, **kw)


def _cfg(**kw):
    base = dict(epochs=3, batch_size=64, progress=False, lr=3e-3)
    base.update(kw)
    return TrainConfig(**base)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_reduces_the_loss(x):
    model = _model()
    h = Trainer(_cfg(epochs=8)).fit(model, x, x[:100])
    assert h[-1]["train_loss"] < 0.8 * h[0]["train_loss"]
    assert h[-1]["val_loss"] < h[0]["val_loss"]
    assert len(h) == 8 and h.steady_samples_per_s() > 0
    assert {"epoch", "train_loss", "val_loss", "seconds", "samples_per_s"} <= set(h[0])


def test_same_seed_same_weights(x):
    a, b, c = _model(), _model(), _model()
    Trainer(_cfg(seed=1)).fit(a, x)
    Trainer(_cfg(seed=1)).fit(b, x)
    Trainer(_cfg(seed=2)).fit(c, x)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_resume_continues_exactly(x, tmp_path):
    """Training 2 epochs, stopping, and resuming to 5 gives the weights of 5 epochs in one go."""
    noise = parse_corruption("gaussian:0.1")
    full = _model()
    Trainer(_cfg(epochs=5), corruption=noise).fit(full, x, x[:64])
    ck = tmp_path / "ck.safetensors"
    part = _model()
    Trainer(_cfg(epochs=2), corruption=noise, checkpoint=ck).fit(part, x, x[:64])
    assert load_checkpoint(ck)[1]["epoch"] == 2
    resumed = _model(seed=123)  # different init: everything must come from the checkpoint
    h = Trainer(_cfg(epochs=5), corruption=noise, checkpoint=ck).fit(resumed, x, x[:64], resume=True)
    assert [r["epoch"] for r in h] == [1, 2, 3, 4, 5]
    wf, wr = _weights(full), _weights(resumed)
    assert all(torch.allclose(wf[k], wr[k], atol=1e-6) for k in wf)


def test_resume_continues_exactly_for_a_channels_last_conv_net(x, tmp_path):
    """Conv nets train channels-last on CPU: the Adam moments must come back in that layout too
    (restored contiguous, the fused step drifted ~1e-3 from the uninterrupted run)."""

    def conv(seed=0):
        seed_everything(seed)
        return create_model("conv_ae", input_shape=(1, 8, 8), channels=(8, 4))

    full = conv()
    Trainer(_cfg(epochs=3)).fit(full, x)
    ck = tmp_path / "ck.safetensors"
    part = conv()
    Trainer(_cfg(epochs=1), checkpoint=ck).fit(part, x)
    resumed = conv(seed=5)
    Trainer(_cfg(epochs=3), checkpoint=ck).fit(resumed, x, resume=True)
    wf, wr = _weights(full), _weights(resumed)
    assert all(torch.allclose(wf[k], wr[k], atol=1e-6) for k in wf)


def test_resume_refuses_other_data_shape(x, tmp_path):
    ck = tmp_path / "ck.safetensors"
    Trainer(_cfg(epochs=1), checkpoint=ck).fit(_model(), x)
    other = create_model("dense_ae", input_shape=(1, 4, 4), hidden=(8,), latent_dim=2)
    with pytest.raises(ResumeError, match="shape"):
        Trainer(_cfg(epochs=2), checkpoint=ck).fit(other, torch.rand(32, 1, 4, 4), resume=True)


def test_early_stopping_restores_the_best(x):
    model = _model()
    # a tiny validation set that the model cannot improve on for long at this lr
    h = Trainer(_cfg(epochs=50, patience=2, lr=0.05)).fit(model, x, x[:32])
    assert h.stopped_early and len(h) < 50
    best = min(r["val_loss"] for r in h)
    val = Trainer(_cfg()).evaluate(model, (x[:32], x[:32]))["loss"]
    assert val == pytest.approx(best, rel=1e-4)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(x, tmp_path):
    ck = tmp_path / "ck.safetensors"
    model = _model()
    Trainer(_cfg(epochs=1), checkpoint=ck).fit(model, x)
    before = ck.read_bytes()
    bad = model
    with torch.no_grad():
        bad.enc[0].weight.mul_(float("nan"))

    with pytest.raises(TrainingDivergedError, match="lower the learning rate"):
        Trainer(_cfg(epochs=3), checkpoint=tmp_path / "other.safetensors").fit(bad, x)
    assert ck.read_bytes() == before
    _, meta = load_checkpoint(tmp_path / "other.safetensors")
    assert meta["epoch"] == 0  # the diverged run never overwrote its last good checkpoint


def test_denoising_pairs_and_fixed_noise(x):
    noise = parse_corruption("seed")
    seen = []

    model = _model()
    orig = model.loss

    def loss(batch):
        seen.append(batch)
        return orig(batch)

    model.loss = loss
    Trainer(_cfg(epochs=1, batch_size=512), corruption=noise).fit(model, x)
    inp, tgt = seen[0]
    assert not torch.equal(inp, tgt) and tgt.max() <= 1 and inp.min() >= 0
    # fixed noise: the same noisy copy in every epoch (the tutorial's recipe)
    seen.clear()
    Trainer(_cfg(epochs=2, batch_size=512, fixed_noise=True), corruption=noise).fit(model, x)
    (i1, t1), (i2, t2) = seen[0], seen[-1]
    order1, order2 = t1.flatten(1).sum(1).argsort(), t2.flatten(1).sum(1).argsort()
    assert torch.allclose(i1[order1].sum(), i2[order2].sum())


def test_explicit_pairs_and_dataloader_path(x):
    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 128

        def __getitem__(self, i):
            return x[i]

    model = _model()
    h = Trainer(_cfg(epochs=2)).fit(model, DS(), (x[:32], x[:32]))
    assert len(h) == 2 and math.isfinite(h[-1]["val_loss"])
    h = Trainer(_cfg(epochs=1)).fit(_model(), (x.numpy(), x.numpy()))
    assert len(h) == 1


@pytest.mark.parametrize(
    "data,match",
    [
        (torch.zeros(0, 1, 8, 8), "empty"),
        (torch.full((4, 1, 8, 8), float("nan")), "NaN"),
        (torch.rand(4, 1, 5, 5), "shape"),
        (torch.rand(64), "2-D"),
        ((torch.rand(4, 1, 8, 8), torch.rand(5, 1, 8, 8)), "rows"),
    ],
)
def test_bad_data_is_a_clear_error(data, match):
    with pytest.raises(DataError, match=match):
        Trainer(_cfg()).fit(_model(), data)


@pytest.mark.parametrize(
    "kw", [dict(epochs=0), dict(batch_size=0), dict(lr=-1.0), dict(lr=float("nan")), dict(optimizer="lbfgs"),
           dict(precision="fp8"), dict(patience=0), dict(threads=0)]
)
def test_bad_train_config(kw):
    with pytest.raises(ConfigError):
        TrainConfig(**kw)


def test_channels_last_and_bf16_paths_run(digits):
    xs = torch.from_numpy(digits.x_train[:128])
    seed_everything(0)
    conv = create_model("conv_ae", "tutorial", input_shape=(1, 8, 8))
    t = Trainer(_cfg(epochs=1, channels_last=True, precision="bf16"))
    h = t.fit(conv, xs)
    assert t.precision == "bf16" and t.channels_last and np.isfinite(h[-1]["train_loss"])


def test_inference_runs_conv_nets_channels_last_with_the_same_numbers(x):
    from aekit.training.metrics import reconstruct_batches

    seed_everything(0)
    model = create_model("conv_ae", input_shape=(1, 8, 8), channels=(8, 4)).eval()
    with torch.no_grad():
        expected = model.reconstruct(x[:100]).numpy()  # NCHW, the way the model was built
    got = reconstruct_batches(model, x[:100].numpy(), batch_size=32)
    assert got.shape == expected.shape and got.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert model.encoder[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_losses_read_back_in_groups_match_per_step(monkeypatch, digits):
    """The GPU path reads the loss terms of several steps at once: same history, same NaN stop."""
    import aekit.training.trainer as tr

    x = torch.from_numpy(digits.x_train[:300])
    runs = []
    for every in (1, 7):
        monkeypatch.setattr(tr, "SYNC_EVERY_CPU", every)
        torch.manual_seed(0)
        model = create_model("dense_ae", input_shape=(1, 8, 8), latent_dim=4)
        runs.append(Trainer(TrainConfig(epochs=2, batch_size=32, progress=False)).fit(model, x).records)
    for a, b in zip(*runs, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-9)
        assert a["train_samples"] == b["train_samples"]
    monkeypatch.setattr(tr, "SYNC_EVERY_CPU", 4)
    model = create_model("dense_ae", input_shape=(1, 8, 8), latent_dim=4)
    with torch.no_grad():
        model.enc[0].weight.mul_(float("inf"))  # the first forward pass gives NaN
    with pytest.raises(TrainingDivergedError, match="epoch 1, batch 1"):
        Trainer(TrainConfig(epochs=1, batch_size=32, progress=False)).fit(model, x)


def test_a_callback_can_stop_training(digits):
    x = torch.from_numpy(digits.x_train[:200])

    def enough(trainer, rec):
        trainer.should_stop = rec["epoch"] >= 2

    model = create_model("dense_ae", input_shape=(1, 8, 8), latent_dim=4)
    h = Trainer(TrainConfig(epochs=10, batch_size=32, progress=False), callbacks=[enough]).fit(model, x)
    assert len(h) == 2 and h.stopped_early


@pytest.mark.parametrize(
    "mode, load, preset, want",
    [("auto", 1.5, None, "PASSIVE"), ("auto", 0.2, None, None), ("passive", 0.0, None, "PASSIVE"),
     ("torch", 9.0, None, None), ("auto", 9.0, "ACTIVE", "ACTIVE")],
)
def test_openmp_wait_policy_choice(monkeypatch, mode, load, preset, want):
    import os

    import aekit

    monkeypatch.setenv("AEKIT_OMP_WAIT", mode)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    if preset:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    aekit._omp_wait_policy()
    assert os.environ.get("OMP_WAIT_POLICY") == want


def test_epoch_lines_show_headline_scores(capsys):
    from aekit.training.progress import make_progress

    rec = {"epoch": 2, "train_loss": 0.5, "val_loss": 0.25, "samples_per_s": 100.0, "seconds": 1.0}
    with make_progress(None) as bar:  # pytest's stdout is not a terminal: one line per epoch
        bar.epoch_done(rec, 3)
        bar.epoch_done({**rec, "val_exact_match": 0.875}, 3)
    first, second = capsys.readouterr().out.strip().splitlines()
    assert "val_loss 0.2500" in first and "exact" not in first
    assert "val_exact_match 0.8750" in second
