"""Embedder and Denoiser: scikit-learn's own API checks, plus quality floors on real digits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit.errors import DataError, NotFittedError

# scikit-learn's checks feed tiny random tables: a few epochs of a small network suffice
_FAST = dict(epochs=2, batch_size=16, model_options={"hidden": (8,)}, latent_dim=2)
_EXPECTED_FAILURES = {
    # a neural network trained with float32 arithmetic cannot give bit-identical output for
    # float64 and float32 copies of the same data
}


@parametrize_with_checks(
    [aekit.Embedder(**_FAST), aekit.Denoiser(**_FAST, noise="gaussian:0.1")],
    expected_failed_checks=lambda est: _EXPECTED_FAILURES,
)
def test_sklearn_api(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)


@pytest.fixture(scope="module")
def fitted(digits):
    X = digits.x_train.reshape(len(digits.x_train), -1)
    return aekit.Embedder(latent_dim=8, model_options={"hidden": (64,)}, epochs=40, lr=3e-3).fit(X)


def test_embedder_compresses_digits_close_to_pca(fitted, digits):
    X = digits.x_test.reshape(len(digits.x_test), -1)
    Z = fitted.transform(X)
    assert Z.shape == (len(X), 8)
    R = fitted.inverse_transform(Z)
    assert R.shape == X.shape and np.all((R >= 0) & (R <= 1))
    ae = ((R - X) ** 2).sum(1).mean()
    pca = PCA(8).fit(digits.x_train.reshape(len(digits.x_train), -1))
    pca_err = ((pca.inverse_transform(pca.transform(X)) - X) ** 2).sum(1).mean()
    noise_floor = ((X - X.mean(0)) ** 2).sum(1).mean()
    assert ae < 0.5 * noise_floor  # learnt real structure
    assert ae < 1.6 * pca_err  # within reach of PCA after 40 short epochs
    assert fitted.score(X) == pytest.approx(-fitted.reconstruction_error(X).mean())


def test_embedder_standardises_tables_and_saves_scaling(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(50, 10, size=(300, 6)).astype(np.float32)
    X[:, 3] = 2 * X[:, 0] - X[:, 1]
    emb = aekit.Embedder(latent_dim=5, epochs=20, lr=3e-3, model_options={"hidden": (16,)}).fit(X)
    assert emb.scale_mode_ == "standard" and emb.model_.recon_kind == "mse"
    R = emb.reconstruct(X)
    assert np.abs(R - X).mean() < 0.7 * np.abs(X - X.mean(0)).mean()
    path = aekit.save(emb, tmp_path / "emb")
    np.testing.assert_allclose(aekit.load(path).reconstruct(X[:4]), R[:4], rtol=1e-5)


def test_denoiser_removes_the_tutorial_noise(digits):
    from aekit.data import corrupt_numpy

    X = digits.x_train
    den = aekit.Denoiser(epochs=25, lr=3e-3, model_options={"channels": (16, 16)}).fit(X)
    Xt = digits.x_test
    noisy = corrupt_numpy(Xt, "seed", seed=1)
    clean = den.transform(noisy)
    assert clean.shape == Xt.shape
    before = ((noisy - Xt) ** 2).sum((1, 2, 3)).mean()
    after = ((clean - Xt) ** 2).sum((1, 2, 3)).mean()
    assert after < 0.6 * before  # measured 0.56 after 25 epochs


def test_denoiser_learns_from_given_pairs(digits):
    X = digits.x_train[:300]
    noisy = np.clip(X + 0.3, 0, 1)
    den = aekit.Denoiser(model="dense_ae", epochs=5, model_options={"hidden": (32,)}, latent_dim=16)
    den.fit(noisy, X)
    assert den.transform(noisy).shape == X.shape


def test_errors(digits):
    emb = aekit.Embedder(epochs=1)
    with pytest.raises(NotFittedError):
        emb.transform(np.zeros((2, 64)))
    with pytest.raises(ValueError, match="NaN"):
        emb.fit(np.full((10, 4), np.nan))
    emb.fit(digits.x_train[:50].reshape(50, -1))
    with pytest.raises(ValueError, match="features"):
        emb.transform(np.zeros((2, 63)))
    with pytest.raises(DataError, match="columns"):
        emb.inverse_transform(np.zeros((2, 5)))
