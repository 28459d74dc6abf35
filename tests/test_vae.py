"""VAEs: the KL term, the likelihood bounds, generation, bad input, and use by the other tasks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import aekit
from _cli_helpers import assert_fails, run_cli
from aekit.errors import ConfigError, DataError, NotFittedError, TrainingDivergedError
from aekit.models import create_model
from aekit.models.vae import gaussian_kl
from aekit.tasks.generative import (
    elbo,
    evaluate_likelihood,
    iwae_bound,
    latent_grid,
    likelihood_bounds,
    stochastic_binarize,
)

TINY = dict(input_shape=(1, 8, 8), hidden=(64, 32), latent_dim=4)


def tiny_vae(**kw):
    return create_model("vae", **{**TINY, **kw})


@pytest.fixture(scope="module")
def binary_digits():
    from aekit.data import load_dataset

    ds = load_dataset("digits")
    return (ds.x_train >= 0.5).astype(np.float32), (ds.x_test >= 0.5).astype(np.float32), ds.y_test


@pytest.fixture(scope="module")
def trained(binary_digits):
    """A tiny VAE trained briefly on binarised digits (once for the module)."""
    x_train, _, _ = binary_digits
    torch.manual_seed(0)
    model = tiny_vae()
    aekit.Trainer(aekit.TrainConfig(epochs=40, batch_size=64, lr=2e-3, progress=False)).fit(model, x_train)
    return model.eval()


# -- the KL term ---------------------------------------------------------------------------------
def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(3, 5, generator=g, dtype=torch.float64)
    logvar = torch.randn(3, 5, generator=g, dtype=torch.float64) * 0.7
    closed = gaussian_kl(mean, logvar)
    std = (0.5 * logvar).exp()
    eps = torch.randn(200_000, 3, 5, generator=g, dtype=torch.float64)
    z = mean + std * eps
    log_q = torch.distributions.Normal(mean, std).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    mc = (log_q - log_p).mean(0)
    torch.testing.assert_close(mc, closed, rtol=0.01, atol=0.01)
    # and torch's own closed form
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, std), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    torch.testing.assert_close(closed, ref)
    assert float(gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3))) == 0.0


def test_loss_terms_are_the_negative_elbo_with_beta_and_warmup():
    model = tiny_vae(beta=2.0, kl_warmup=10)
    x = torch.rand(8, 1, 8, 8)
    assert model.kl_weight == pytest.approx(0.2)  # step 1 of 10
    for _ in range(4):
        t = model.loss((x, x))
    assert int(model.train_steps) == 4
    t = {k: float(v.detach()) for k, v in t.items()}
    assert t["loss"] == pytest.approx(t["recon"] + 0.8 * t["kl"], rel=1e-5)  # step 4: 2 * 4/10
    assert t["neg_elbo"] == pytest.approx(t["recon"] + t["kl"], rel=1e-6)
    model.eval()  # evaluation reports the full beta, and does not count steps
    with torch.no_grad():
        t = model.loss((x, x))
    assert float(t["loss"]) == pytest.approx(float(t["recon"] + 2.0 * t["kl"]), rel=1e-5)
    assert int(model.train_steps) == 4
    assert create_model("beta_vae").config.beta == 4.0 and create_model("vae").config.beta == 1.0


def test_likelihoods_match_torch_distributions():
    bern = tiny_vae()
    logits, x = torch.randn(4, 1, 8, 8), torch.bernoulli(torch.full((4, 1, 8, 8), 0.3))
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bern.log_likelihood(logits, x), ref)
    gauss = create_model("vae", input_shape=(6,), hidden=(8,), latent_dim=2, output="linear")
    assert gauss.likelihood == "gaussian" and gauss.log_std is not None
    with torch.no_grad():
        gauss.log_std.fill_(math.log(0.5))
    mu, y = torch.randn(3, 6), torch.randn(3, 6)
    torch.testing.assert_close(gauss.log_likelihood(mu, y), torch.distributions.Normal(mu, 0.5).log_prob(y).sum(1))
    fixed = create_model("vae", input_shape=(6,), hidden=(8,), latent_dim=2, output="linear", obs_std=2.0)
    assert fixed.log_std is None
    torch.testing.assert_close(fixed.log_likelihood(mu, y), torch.distributions.Normal(mu, 2.0).log_prob(y).sum(1))


def test_dynamic_binarisation_trains_on_binary_draws(monkeypatch):
    model = tiny_vae(binarize=True)
    seen = []
    orig = model.log_likelihood
    monkeypatch.setattr(model, "log_likelihood", lambda lg, t: seen.append(t.clone()) or orig(lg, t))
    x = torch.full((16, 1, 8, 8), 0.3)
    model.loss((x, x))
    assert set(seen[-1].unique().tolist()) == {0.0, 1.0}
    assert abs(float(seen[-1].mean()) - 0.3) < 0.05
    model.eval()
    model.loss((x, x))  # evaluation scores the data as given
    assert torch.equal(seen[-1], x)
    with pytest.raises(ConfigError, match="Bernoulli"):
        tiny_vae(binarize=True, output="linear")


def test_stochastic_binarisation_is_seeded():
    x = np.random.default_rng(0).random((200, 1, 8, 8)).astype(np.float32)
    a, b = stochastic_binarize(x), stochastic_binarize(x)
    assert np.array_equal(a, b) and set(np.unique(a)) <= {0.0, 1.0}
    assert not np.array_equal(a, stochastic_binarize(x, seed=1))
    assert abs(a.mean() - x.mean()) < 0.01
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        stochastic_binarize(x * 2)


# -- bounds ------------------------------------------------------------------------------------
def test_training_improves_the_elbo(trained, binary_digits):
    _, x_test, _ = binary_digits
    torch.manual_seed(0)
    untrained = tiny_vae()
    before, after = elbo(untrained, x_test).mean(), elbo(trained, x_test).mean()
    assert after > before + 10, (before, after)
    assert int(trained.train_steps) > 0


def test_iwae_bound_is_above_the_elbo_and_tightens_with_k(trained, binary_digits):
    _, x_test, _ = binary_digits
    e_closed = elbo(trained, x_test, n_samples=20).mean()
    e1, b1 = likelihood_bounds(trained, x_test, k=1, seed=3)
    np.testing.assert_allclose(e1, b1)  # one draw: the bound is the (Monte Carlo) ELBO
    # K=1 equals the ELBO in expectation (within a few standard errors of the mean)
    se = b1.std() / math.sqrt(len(b1))
    assert abs(b1.mean() - e_closed) < 4 * se + 0.05, (b1.mean(), e_closed, se)
    # from the same draws, log-mean-exp >= mean log (Jensen), sample by sample
    e50, b50 = likelihood_bounds(trained, x_test, k=50, seed=3, max_rows=16)  # 4 chunks of draws per image
    assert np.all(b50 >= e50 - 1e-9)
    diff = b50 - b1
    assert diff.mean() > 4 * diff.std() / math.sqrt(len(diff))  # a significant gain, not noise
    # tighter with K (in expectation: each test image scored 4 times to average the noise out)
    x4 = np.concatenate([x_test] * 4)
    b5, b500 = iwae_bound(trained, x4, k=5, seed=4), iwae_bound(trained, x4, k=500, seed=5)
    assert b1.mean() < b5.mean() < b500.mean(), (b1.mean(), b5.mean(), b500.mean())
    gain = b500 - b5
    assert gain.mean() > 3 * gain.std() / math.sqrt(len(gain))
    # the same seed gives the same numbers; the bounds are finite
    np.testing.assert_array_equal(iwae_bound(trained, x4, k=5, seed=4), b5)
    assert np.isfinite(b500).all()


def test_evaluate_likelihood_reports_nats_and_binarises_grey_images(trained, binary_digits):
    from aekit.data import load_dataset

    grey = load_dataset("digits").x_test
    res = evaluate_likelihood(trained, grey, k=20)
    assert res["binarized"].startswith("stochastic") and res["k"] == 20 and res["n"] == len(grey)
    assert res["nll"] > 0 and res["elbo"] < 0 and -res["elbo"] >= res["nll"] - 3 * res["nll_std_err"]
    assert evaluate_likelihood(trained, binary_digits[1], k=2)["binarized"] == "binary already"


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_nll_with_bad_k_fails_clearly(trained, binary_digits, k):
    with pytest.raises(ConfigError, match="k .*must be an integer >= 1"):
        evaluate_likelihood(trained, binary_digits[1], k=k)


def test_likelihood_needs_a_vae_and_good_data(trained):
    with pytest.raises(ConfigError, match="train --model vae"):
        iwae_bound(create_model("dense_ae", input_shape=(1, 8, 8)), np.zeros((2, 1, 8, 8), np.float32), k=2)
    with pytest.raises(DataError, match="shape"):
        iwae_bound(trained, np.zeros((2, 1, 5, 5), np.float32), k=2)
    with pytest.raises(DataError, match="empty"):
        iwae_bound(trained, np.zeros((0, 1, 8, 8), np.float32), k=2)
    with pytest.raises(DataError, match="outside"):
        iwae_bound(trained, np.full((2, 1, 8, 8), 3.0, np.float32), k=2)


# -- encode, sample, interpolate ------------------------------------------------------------------
def test_encode_is_the_deterministic_posterior_mean(trained, binary_digits):
    x = torch.from_numpy(binary_digits[1][:16])
    trained.train()  # even in training mode
    try:
        z1, z2 = trained.encode(x), trained.encode(x)
        assert torch.equal(z1, z2)
        assert torch.equal(z1, trained.posterior(x)[0])
        assert not torch.equal(trained(x).z, trained(x).z)  # the forward pass samples
    finally:
        trained.eval()
    assert trained.code_shape == (4,)


def test_sample_and_interpolate(trained, binary_digits):
    s = trained.sample(12, generator=torch.Generator().manual_seed(0))
    assert s.shape == (12, 1, 8, 8) and 0 <= float(s.min()) and float(s.max()) <= 1
    assert torch.equal(s, trained.sample(12, generator=torch.Generator().manual_seed(0)))
    a, b = (torch.from_numpy(binary_digits[1][i]) for i in (0, 1))
    path = trained.interpolate(a, b, steps=7)
    assert path.shape == (7, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(path[0], trained.reconstruct(a[None])[0])
        torch.testing.assert_close(path[-1], trained.reconstruct(b[None])[0])
    with pytest.raises(ConfigError, match="steps"):
        trained.interpolate(a, b, steps=1)
    with pytest.raises(DataError, match="one sample"):
        trained.interpolate(torch.zeros(2, 1, 8, 8), b)
    with pytest.raises(ConfigError, match="n .*integer >= 1"):
        trained.sample(0)


def test_an_untrained_model_refuses_to_sample():
    model = tiny_vae()
    with pytest.raises(NotFittedError, match="not been trained.*train it first"):
        model.sample(4)
    with pytest.raises(NotFittedError, match="interpolate"):
        model.interpolate(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))


@pytest.mark.parametrize(
    "kw,words",
    [
        (dict(latent_dim=0), "latent_dim must be an integer >= 1"),
        (dict(beta=-0.5), "beta .*must be a finite number >= 0"),
        (dict(beta=float("nan")), "beta"),
        (dict(kl_warmup=-1), "kl_warmup"),
        (dict(arch="conv", input_shape=(13,)), "needs input_shape"),
        (dict(arch="mlp"), "arch must be"),
        (dict(output="linear", obs_std=0.0), "obs_std"),
    ],
)
def test_bad_configs_fail_clearly(kw, words):
    with pytest.raises(ConfigError, match=words):
        create_model("vae", **{**TINY, **kw})


def test_presets_and_conv_architecture():
    assert create_model("vae", "2d").code_shape == (2,)
    conv = create_model("vae", "conv")
    x = torch.rand(2, 1, 28, 28)
    assert conv(x).logits.shape == x.shape and conv.code_shape == (32,)
    odd = create_model("beta_vae", "conv", input_shape=(3, 10, 7))  # padded to 12 x 8, cropped back
    assert odd(torch.rand(2, 3, 10, 7)).logits.shape == (2, 3, 10, 7)


# -- training machinery -----------------------------------------------------------------------------
def test_nan_in_the_kl_stops_training_and_keeps_the_checkpoint(binary_digits, tmp_path):
    from aekit.training.checkpoint import load_checkpoint

    model = tiny_vae()
    good = {}

    def blow_up_after_epoch_2(trainer, rec):
        if rec["epoch"] == 2:  # from the next batch on, log-variance 1e4: exp() overflows, KL inf, loss NaN
            good.update({k: v.clone() for k, v in model.state_dict().items()})
            shift = torch.tensor([0.0] * 4 + [1e4] * 4)
            model.to_stats.register_forward_hook(lambda m, i, out: out + shift)

    ckpt = tmp_path / "ckpt.safetensors"
    trainer = aekit.Trainer(aekit.TrainConfig(epochs=5, progress=False), checkpoint=ckpt,
                            callbacks=[blow_up_after_epoch_2])
    with pytest.raises(TrainingDivergedError, match="loss became nan at epoch 3.*last good checkpoint kept"):
        trainer.fit(model, binary_digits[0][:200])
    tensors, meta = load_checkpoint(ckpt)
    assert meta["epoch"] == 2
    for k, v in good.items():
        torch.testing.assert_close(tensors[f"model.{k}"], v)


def test_save_and_load_round_trip(trained, tmp_path):
    path = aekit.save(trained, tmp_path / "vae")
    loaded = aekit.load(path)
    assert type(loaded).__name__ == "VAE" and int(loaded.train_steps) == int(trained.train_steps)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    torch.testing.assert_close(loaded.sample(3, generator=g()), trained.sample(3, generator=g()))
    doc = json.loads((path / "aekit.json").read_text())
    assert doc["model_name"] == "vae" and doc["model_config"]["latent_dim"] == 4


# -- the other tasks use it unchanged ------------------------------------------------------------------
def test_anomaly_detector_scores_with_the_negative_elbo(binary_digits):
    from sklearn.metrics import roc_auc_score

    x_train, x_test, _ = binary_digits
    det = aekit.AnomalyDetector(
        model="vae", model_options=dict(hidden=(64, 32), latent_dim=4, loss="bce"), epochs=15, seed=0
    ).fit(x_train)
    rng = np.random.default_rng(0)
    outliers = (rng.random((60, 1, 8, 8)) < 0.5).astype(np.float32)
    X = np.concatenate([x_test, outliers])
    scores = det.anomaly_score(X)
    with torch.inference_mode():
        own = det.model_.anomaly_score(torch.from_numpy(X)).double().numpy()
    np.testing.assert_allclose(scores, own, rtol=1e-6)  # the score is the model's negative ELBO
    with torch.inference_mode():  # and a sample's score does not depend on its batch
        alone = det.model_.anomaly_score(torch.from_numpy(X[[5, 3]])).double().numpy()
    np.testing.assert_allclose(alone, own[[5, 3]], rtol=1e-5)
    y = np.r_[np.zeros(len(x_test)), np.ones(len(outliers))]
    assert roc_auc_score(y, scores) > 0.95
    assert (det.predict(outliers) == -1).mean() > 0.9


def test_retrieval_indexes_the_posterior_means(trained, binary_digits):
    from aekit.tasks import ImageSearch

    _, x_test, _ = binary_digits
    search = ImageSearch(trained).fit(x_test[:100])
    with torch.inference_mode():
        means = trained.encode(torch.from_numpy(x_test[:100])).numpy()
    np.testing.assert_allclose(search.encode(x_test[:100]), means, rtol=1e-5, atol=1e-6)
    ids, _ = search.query(x_test[:5], k=1)
    assert list(np.asarray(ids)[:, 0]) == [0, 1, 2, 3, 4]


# -- figures and the command line ----------------------------------------------------------------------
def test_figures(trained, binary_digits, tmp_path):
    from aekit.viz import latent_map
    from aekit.viz.generative import interpolation_figure, manifold_map, sample_grid

    _, x_test, y_test = binary_digits
    assert sample_grid(trained.sample(9).numpy(), tmp_path / "s.png").stat().st_size > 1000
    a, b = x_test[0], x_test[1]
    strip = interpolation_figure([("0 -> 1", a, trained.interpolate(a, b, 5).numpy(), b)], tmp_path / "i.png")
    assert strip.is_file()
    model2d = tiny_vae(latent_dim=2)
    model2d.train_steps += 1  # a 2-D latent; its weights need not be trained to be drawn
    z1, z2, Z = latent_grid(6)
    assert Z.shape == (36, 2) and np.all(np.diff(z1) > 0) and Z[7].tolist() == pytest.approx([z1[1], z2[1]])
    imgs = model2d.decode_latents(torch.from_numpy(Z)).numpy()
    assert manifold_map(imgs, tmp_path / "m.png", z1=z1, z2=z2).is_file()
    with pytest.raises(DataError, match="6 x 6"):
        manifold_map(imgs[:-1], tmp_path / "m2.png", z1=z1, z2=z2)
    with torch.inference_mode():
        codes = model2d.encode(torch.from_numpy(x_test)).numpy()
    assert latent_map(codes, tmp_path / "scatter.png", labels=y_test).is_file()


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    import contextlib
    import io

    run = tmp_path_factory.mktemp("vae") / "run"
    from aekit.cli.main import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "--model", "vae", "--preset", "2d", "--dataset", "digits", "--epochs", "3",
                     "--out", str(run), "--quiet"])
    assert code == 0
    return run


def test_cli_sample_interpolate_and_nll(vae_run, tmp_path, capsys):
    assert (vae_run / "samples.png").stat().st_size > 5_000  # the run folder shows samples from the prior
    code, text = run_cli(capsys, "sample", vae_run, "--n", 16, "--out", tmp_path / "grid.png")
    assert code == 0 and (tmp_path / "grid.png").is_file(), text
    code, _ = run_cli(capsys, "sample", vae_run, "--n", 5, "--out", tmp_path / "s.npy")
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (5, 1, 8, 8)
    code, text = run_cli(capsys, "sample", vae_run, "--manifold", "--n", 5, "--out", tmp_path / "m.png")
    assert code == 0 and (tmp_path / "m.png").is_file(), text
    code, text = run_cli(capsys, "interpolate", vae_run, "--from", 3, "--to", 7, "--out", tmp_path / "strip.png")
    assert code == 0 and (tmp_path / "strip.png").is_file(), text
    code, _ = run_cli(capsys, "interpolate", vae_run, "--from", 3, "--to", 7, "--steps", 4, "--out", tmp_path / "p.npy")
    assert code == 0 and np.load(tmp_path / "p.npy").shape == (4, 1, 8, 8)
    code, text = run_cli(capsys, "evaluate", vae_run, "--nll", "--k", 10)
    assert code == 0 and "NLL, k=10" in text, text
    m = json.loads((vae_run / "metrics.json").read_text())
    assert m["test_nll"] > 0 and m["test_elbo"] < 0 and m["nll_k"] == 10
    assert m["test_bce_per_pixel"] is not None  # the usual metrics stay


def test_cli_errors(vae_run, tmp_path, capsys):
    assert_fails(capsys, ["evaluate", vae_run, "--nll", "--k", 0], "k (importance samples", ">= 1")
    assert_fails(capsys, ["sample", vae_run, "--n", 0, "--out", tmp_path / "g.png"], "n (how many", ">= 1")
    assert_fails(capsys, ["sample", vae_run, "--out", tmp_path / "g.jpg"], ".png", ".npy")
    assert_fails(capsys, ["interpolate", vae_run, "--from", 0, "--to", 999, "--out", tmp_path / "s.png"],
                 "--to 999 is out of range", "360 images")
    assert_fails(capsys, ["train", "--model", "vae", "--latent-dim", "0", "--out", tmp_path / "r", "--quiet"],
                 "latent_dim must be an integer >= 1")
    assert not (tmp_path / "r").exists()
    model = aekit.create_model("dense_ae", input_shape=(1, 8, 8))
    aekit.save(model, tmp_path / "ae")
    assert_fails(capsys, ["sample", tmp_path / "ae", "--out", tmp_path / "g.png"], "cannot generate", "vae")
    untrained = tiny_vae()
    aekit.save(untrained, tmp_path / "untrained")
    assert_fails(capsys, ["sample", tmp_path / "untrained", "--out", tmp_path / "g.png"], "not been trained")
    assert_fails(capsys, ["sample", vae_run.parent / "nope", "--out", tmp_path / "g.png"], "not an aekit")
