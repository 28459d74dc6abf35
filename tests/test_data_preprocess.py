"""Array validation and conversion helpers."""

from __future__ import annotations

import numpy as np
import pytest

from aekit.data import as_images, binarize, to_float01, validate_array
from aekit.errors import ConfigError, DataError


def test_to_float01_scales_uint8_and_uint16():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    out = to_float01(x)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, [[0.0, 0.2, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(to_float01(np.array([65535], np.uint16)), [1.0])
    np.testing.assert_array_equal(to_float01(np.array([True, False])), [1.0, 0.0])


def test_to_float01_checks_float_range():
    assert to_float01(np.array([0.0, 0.5, 1.0])).dtype == np.float32
    with pytest.raises(DataError, match=r"\[0, 1\].*max 255.*divide"):
        to_float01(np.array([0.0, 255.0]))


def test_to_float01_refuses_ambiguous_integers():
    with pytest.raises(DataError, match="ambiguous.*astype"):
        to_float01(np.array([0, 200], dtype=np.int64))


def test_binarize():
    x = np.array([0.0, 0.49, 0.5, 0.9])
    np.testing.assert_array_equal(binarize(x), [0, 0, 1, 1])
    assert binarize(x).dtype == np.float32
    np.testing.assert_array_equal(binarize(x, threshold=0.2), [0, 1, 1, 1])
    for bad in (0.0, 1.0, -0.1, 2):
        with pytest.raises(ConfigError, match=r"\(0, 1\)"):
            binarize(x, threshold=bad)


def test_validate_array_converts():
    out = validate_array(np.arange(6, dtype=np.int64).reshape(3, 2)[:, ::-1])
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert validate_array([[1, 2]], name="X").shape == (1, 2)


def test_validate_array_errors():
    with pytest.raises(DataError, match="must have 2 to 4 dimensions.*shape \\(3,\\)"):
        validate_array(np.zeros(3))
    with pytest.raises(DataError, match="empty"):
        validate_array(np.zeros((0, 4)))
    assert validate_array(np.zeros((0, 4)), allow_empty=True).shape == (0, 4)
    with pytest.raises(DataError, match="numeric"):
        validate_array(np.array([["a", "b"]]))
    x = np.zeros((4, 3))
    x[2, 1] = np.nan
    x[3, 0] = np.inf
    with pytest.raises(DataError, match=r"2 NaN or infinite.*index \(2, 1\)") as info:
        validate_array(x, name="train")
    assert "train" in str(info.value)


def test_as_images_layouts():
    nhw = np.zeros((2, 5, 6), np.uint8)
    assert as_images(nhw).shape == (2, 1, 5, 6)
    nhwc = np.zeros((2, 5, 6, 3), np.uint8)
    assert as_images(nhwc).shape == (2, 3, 5, 6)
    nchw = np.zeros((2, 3, 5, 6), np.float32)
    assert as_images(nchw).shape == (2, 3, 5, 6)
    flat = np.full((2, 30), 0.5)
    assert as_images(flat, image_shape=(1, 5, 6)).shape == (2, 1, 5, 6)


def test_as_images_errors():
    with pytest.raises(DataError, match="no images found"):
        as_images(np.zeros((0, 4, 4)))
    with pytest.raises(DataError, match="image_shape"):
        as_images(np.zeros((2, 16)))
    with pytest.raises(DataError, match="channels"):
        as_images(np.zeros((2, 7, 5, 6)))
    with pytest.raises(DataError, match="dimensions|shaped"):
        as_images(np.zeros((2, 1, 1, 4, 4)))
    with pytest.raises(DataError, match=r"\(1, 4, 4\) is expected|but \(1, 4, 4\)"):
        as_images(np.zeros((2, 5, 5)), image_shape=(1, 4, 4))
