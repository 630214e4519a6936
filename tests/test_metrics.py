"""PSNR, SSIM and luma as the super-resolution papers compute them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from resizer.color import luma
from resizer.metrics import modcrop, psnr, shave, ssim


def _slow_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """ssim_index.m written out: fspecial('gaussian', 11, 1.5), filter2(..., 'valid'), 2-D loops."""
    half = 5
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    window = np.exp(-(x**2 + y**2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    rows, cols = a.shape[0] - 10, a.shape[1] - 10
    total = 0.0
    for i in range(rows):
        for j in range(cols):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mu_a, mu_b = (window * pa).sum(), (window * pb).sum()
            var_a = (window * pa * pa).sum() - mu_a**2
            var_b = (window * pb * pb).sum() - mu_b**2
            cov = (window * pa * pb).sum() - mu_a * mu_b
            total += ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return total / (rows * cols)


def test_psnr_identical_is_infinite():
    a = np.random.default_rng(0).uniform(0, 255, (20, 30))
    assert psnr(a, a.copy()) == math.inf


def test_psnr_known_value():
    a = np.zeros((8, 8))
    b = np.full((8, 8), 10.0)  # MSE = 100
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-12)
    assert psnr(a, b, peak=1.0) == pytest.approx(-20.0, abs=1e-12)
    c = a.copy()
    c[0, 0] = 64.0  # MSE = 64 * 64 / 64 = 64
    assert psnr(a, c) == pytest.approx(20 * math.log10(255 / 8), abs=1e-12)


def test_psnr_accepts_tensors_and_rejects_mismatched_shapes():
    a = torch.zeros(5, 5, dtype=torch.float64)
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-12)
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)))


def test_ssim_identical_is_one():
    a = np.random.default_rng(1).uniform(0, 255, (40, 33))
    assert ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_constant_images_has_closed_form():
    # No variance: SSIM reduces to the luminance term (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)
    assert ssim(np.full((16, 16), 100.0), np.full((16, 16), 120.0)) == pytest.approx(expected, abs=1e-12)


def test_ssim_matches_slow_reference():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 255, (23, 31))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    value = ssim(a, b)
    assert 0.3 < value < 0.99
    assert value == pytest.approx(_slow_ssim(a, b), abs=1e-10)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError):
        ssim(np.zeros((10, 30)), np.zeros((10, 30)))


def test_luma_of_known_colours():
    colours = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    y = luma(colours)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y[0], [235.0, 16.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-9)
    # Not rounded: mid grey lands between integers.
    assert luma(np.full((1, 1, 3), 128, np.uint8))[0, 0] == pytest.approx(16 + 219 * 128 / 255, abs=1e-9)


def test_luma_of_grey_alpha_and_sixteen_bits():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    np.testing.assert_array_equal(luma(grey), grey[:, :, 0].astype(np.float64))
    np.testing.assert_array_equal(luma(grey[:, :, 0]), grey[:, :, 0])
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 255
    np.testing.assert_allclose(luma(rgba), 235.0)  # alpha ignored
    white16 = np.full((2, 2, 3), 65535, np.uint16)
    np.testing.assert_allclose(luma(white16), 235.0)


def test_shave_and_modcrop():
    a = np.arange(10 * 13).reshape(10, 13)
    assert shave(a, 2).shape == (6, 9)
    assert shave(a, 2)[0, 0] == a[2, 2]
    assert shave(a, 0) is a
    with pytest.raises(ValueError):
        shave(a, 5)
    assert modcrop(a, 3).shape == (9, 12)
    assert modcrop(np.zeros((10, 13, 3)), 4).shape == (8, 12, 3)
