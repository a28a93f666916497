"""Image lookups against the float64 reference; stratification and pixel-grid invariants."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference.image_sampling_ref import sample_bilinear
from warp_kernels.device import KernelArgumentError
from warp_kernels.image_sampling import (
    generate_pixel_centres,
    generate_stratified_positions,
    sample_image_bilinear,
    srgb_to_linear_lut,
)


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
def test_bilinear_matches_reference(device, dtype):
    rng = np.random.default_rng(0)
    img = (rng.random((13, 17, 3)) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    pos = rng.random((500, 2)).astype(np.float32)
    pos[:4] = [[0, 0], [1, 1], [0, 1], [1, 0]]
    lut = srgb_to_linear_lut(True)
    values = lut[img].astype(np.float64) if dtype == np.uint8 else img.astype(np.float64)
    out = sample_image_bilinear(wp.array(img, device=device), wp.array(pos, device=device),
                                lut=wp.array(lut, device=device) if dtype == np.uint8 else None).numpy()
    np.testing.assert_allclose(out, sample_bilinear(values, pos.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_pixel_centres_hit_pixels_exactly(device):
    rng = np.random.default_rng(1)
    img = rng.random((6, 9, 3)).astype(np.float32)
    pos = generate_pixel_centres(9, 6, 0, 54, device=device)
    out = sample_image_bilinear(wp.array(img, device=device), pos).numpy()
    np.testing.assert_allclose(out.reshape(6, 9, 3), img, atol=1e-6)
    part = generate_pixel_centres(9, 6, 10, 5, device=device).numpy()
    np.testing.assert_allclose(part, pos.numpy()[10:15])


def test_srgb_lut_endpoints_and_monotone():
    lut = srgb_to_linear_lut(True)
    assert lut[0] == 0 and lut[255] == pytest.approx(1.0)
    assert lut[128] == pytest.approx(0.2158605, rel=1e-5)  # sRGB 0.502 -> linear
    assert np.all(np.diff(lut) > 0)
    np.testing.assert_allclose(srgb_to_linear_lut(False), np.arange(256) / 255.0, rtol=1e-6)


def test_stratified_positions_cover_every_stratum(device):
    n = 40 * 40 + 7
    p = generate_stratified_positions(n, seed=3, device=device).numpy()
    assert p.shape == (n, 2) and np.all((p >= 0) & (p < 1))
    cells = np.floor(p[: 1600] * 40).astype(int)
    assert len({(a, b) for a, b in cells}) == 1600
    q = generate_stratified_positions(n, seed=4, device=device).numpy()
    assert not np.allclose(p, q)


def test_uint8_needs_lut(device):
    with pytest.raises(KernelArgumentError, match="lut"):
        sample_image_bilinear(wp.zeros((2, 2, 3), dtype=wp.uint8, device=device),
                              wp.zeros((1, 2), dtype=float, device=device))
