"""Input corruptions: shapes, ranges, statistics, determinism and spec parsing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit.data import (
    Corruption,
    GaussianNoise,
    MaskNoise,
    SaltPepperNoise,
    SeedNoise,
    ShiftNoise,
    corrupt_numpy,
    parse_corruption,
)
from aekit.errors import ConfigError, DataError, UnknownNameError

SPECS = ["seed", "seed:0.1,0.3", "gaussian:0.5", "saltpepper:0.1", "mask:0.3", "shift:2", "shift:1+mask:0.2"]
N = 200_000  # values per statistics check: standard error of a fraction <= 0.0012


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("spec", SPECS)
def test_shape_range_and_input_untouched(spec):
    x = torch.rand(8, 1, 6, 6, generator=_gen(1))
    before = x.clone()
    out = parse_corruption(spec)(x, _gen())
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, x)
    torch.testing.assert_close(x, before)


@pytest.mark.parametrize("spec", SPECS)
def test_deterministic_given_generator(spec):
    corruption = parse_corruption(spec)
    x = torch.rand(4, 3, 5, 5, generator=_gen(1))
    torch.testing.assert_close(corruption(x, _gen(7)), corruption(x, _gen(7)))
    assert not torch.equal(corruption(x, _gen(7)), corruption(x, _gen(8)))
    assert corruption(x).shape == x.shape  # global RNG when no generator is given


@pytest.mark.parametrize("spec", SPECS)
def test_spec_round_trips(spec):
    corruption = parse_corruption(spec)
    assert isinstance(corruption, Corruption)
    assert parse_corruption(corruption.spec) == corruption
    assert parse_corruption(corruption) is corruption


def test_defaults_and_none():
    for spec in (None, "", "none", " None "):
        assert parse_corruption(spec) is None
    assert parse_corruption("seed") == SeedNoise(shift=0.2, std=0.2)
    assert parse_corruption("mask") == MaskNoise(0.3)
    assert parse_corruption("GAUSSIAN:0.25") == GaussianNoise(0.25)


def test_mask_fraction():
    out = MaskNoise(0.3)(torch.ones(N), _gen())
    assert abs((out == 0).float().mean().item() - 0.3) < 0.01
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_saltpepper_fractions():
    out = SaltPepperNoise(0.2)(torch.full((N,), 0.5), _gen())
    assert abs((out == 0).float().mean().item() - 0.1) < 0.01
    assert abs((out == 1).float().mean().item() - 0.1) < 0.01
    assert abs((out == 0.5).float().mean().item() - 0.8) < 0.01


def test_gaussian_statistics():
    out = GaussianNoise(0.1)(torch.full((N,), 0.5), _gen())
    assert abs(out.mean().item() - 0.5) < 0.005
    assert abs(out.std().item() - 0.1) < 0.005


def test_seed_noise_statistics():
    out = SeedNoise()(torch.full((N,), 0.3), _gen())  # 0.3 + 0.2 + N(0, 0.2), clipped
    assert abs(out.mean().item() - 0.5) < 0.005  # clipping is symmetric around 0.5
    assert (out == 0).any() and (out == 1).any()


def test_float64_and_bfloat16_keep_dtype():
    for dtype in (torch.float64, torch.bfloat16):
        x = torch.full((10, 10), 0.5, dtype=dtype)
        assert GaussianNoise(0.1)(x, _gen()).dtype == dtype
        assert MaskNoise(0.5)(x, _gen()).dtype == dtype


def test_non_float_tensor_refused():
    with pytest.raises(DataError, match="float tensor"):
        MaskNoise(0.3)(torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(DataError, match="float tensor"):
        MaskNoise(0.3)(np.zeros(3))


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("blur:3", UnknownNameError),
        ("gaussian:abc", ConfigError),
        ("gaussian:-1", ConfigError),
        ("gaussian:nan", ConfigError),
        ("mask:0", ConfigError),
        ("mask:1.5", ConfigError),
        ("saltpepper:0.1,0.2", ConfigError),
        ("seed:0.1", ConfigError),
        ("seed:2,0.1", ConfigError),
        ("shift:0", ConfigError),
        ("shift:1.5", ConfigError),
        ("shift:2+", ConfigError),
        ("shift:2+blur", UnknownNameError),
    ],
)
def test_parse_errors_list_valid_forms(spec, error):
    with pytest.raises(error, match="seed.*gaussian:STD.*saltpepper:P.*mask:P"):
        parse_corruption(spec)


def test_constructor_validates():
    with pytest.raises(ConfigError):
        MaskNoise(p=-0.1)
    with pytest.raises(ConfigError):
        SeedNoise(std=0)


def test_corrupt_numpy():
    x = np.random.default_rng(0).integers(0, 256, (5, 1, 4, 4), dtype=np.uint8)
    a = corrupt_numpy(x, "mask:0.5", seed=3)
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, corrupt_numpy(x, "mask:0.5", seed=3))
    assert not np.array_equal(a, corrupt_numpy(x, "mask:0.5", seed=4))
    np.testing.assert_allclose(corrupt_numpy(x, None), x / 255, rtol=1e-6)
    assert corrupt_numpy(x / 255.0, SeedNoise(), seed=0).max() <= 1.0


def test_shift_moves_whole_images_by_at_most_px():
    x = torch.zeros(500, 2, 9, 9)
    x[:, 0, 4, 4] = 1.0  # one lit pixel in the centre of channel 0, another in channel 1
    x[:, 1, 4, 4] = 0.5
    out = ShiftNoise(2)(x, _gen(3))
    lit = out[:, 0].reshape(500, -1).argmax(1)
    rows, cols = lit // 9 - 4, lit % 9 - 4
    assert rows.abs().max() == 2 and cols.abs().max() == 2  # every shift in [-2, 2], the extremes drawn
    assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) == 25  # all 25 offsets occur
    assert torch.equal(out[:, 1] * 2, out[:, 0])  # both channels moved together
    assert torch.equal(out.sum((1, 2, 3)), torch.full((500,), 1.5))  # nothing lost, nothing added


def test_shift_fills_with_zeros_and_keeps_3d_batches():
    x = torch.ones(50, 6, 6)
    out = ShiftNoise(3)(x, _gen(0))
    assert out.shape == x.shape
    moved = out.sum((1, 2)) < 36
    assert moved.any() and ((out == 0) | (out == 1)).all()
    with pytest.raises(DataError, match=r"\(N, H, W\) or \(N, C, H, W\)"):
        ShiftNoise(2)(torch.rand(4, 784), _gen())


def test_chained_applies_in_order():
    chained = parse_corruption("shift:2+mask:0.5")
    x = torch.rand(16, 1, 8, 8, generator=_gen(1))
    g = _gen(5)  # one generator drives both parts, in order
    step = MaskNoise(0.5)._apply(ShiftNoise(2)._apply(x, g), g)
    torch.testing.assert_close(chained(x, _gen(5)), step)
    assert not torch.equal(step, MaskNoise(0.5)(x, _gen(5)))  # the shift did something
    assert chained.spec == "shift:2+mask:0.5"
