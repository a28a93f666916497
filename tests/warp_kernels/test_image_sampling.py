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


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32])
def test_bilinear_matches_reference(device, dtype):
    rng = np.random.default_rng(0)
    integer = np.issubdtype(dtype, np.integer)
    img = (rng.random((13, 17, 3)) * (np.iinfo(dtype).max if integer else 1)).astype(dtype)
    pos = rng.random((500, 2)).astype(np.float32)
    pos[:4] = [[0, 0], [1, 1], [0, 1], [1, 0]]
    lut = srgb_to_linear_lut(True, bits=8 * np.dtype(dtype).itemsize) if integer else None
    values = lut[img].astype(np.float64) if integer else img.astype(np.float64)
    out = sample_image_bilinear(wp.array(img, device=device), wp.array(pos, device=device),
                                lut=wp.array(lut, device=device) if integer else None).numpy()
    np.testing.assert_allclose(out, sample_bilinear(values, pos.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_pixel_centres_hit_pixels_exactly(device):
    rng = np.random.default_rng(1)
    img = rng.random((6, 9, 3)).astype(np.float32)
    pos = generate_pixel_centres(9, 6, 0, 54, device=device)
    out = sample_image_bilinear(wp.array(img, device=device), pos).numpy()
    np.testing.assert_allclose(out.reshape(6, 9, 3), img, atol=1e-6)
    part = generate_pixel_centres(9, 6, 10, 5, device=device).numpy()
    np.testing.assert_allclose(part, pos.numpy()[10:15])


@pytest.mark.parametrize("grid", [(9.0, 6.0), (22.5, 13.7)])
def test_window_of_a_grid_equals_the_same_pixels_of_the_whole_grid(device, grid):
    gw, gh = int(np.ceil(grid[0])), int(np.ceil(grid[1]))
    whole = generate_pixel_centres(gw, gh, 0, gw * gh, grid=grid, device=device).numpy().reshape(gh, gw, 2)
    win = generate_pixel_centres(4, 3, 0, 12, origin=(2, 1), grid=grid, device=device).numpy().reshape(3, 4, 2)
    np.testing.assert_array_equal(win, whole[1:4, 2:6])  # bit for bit
    j, i = np.mgrid[0:gh, 0:gw]
    np.testing.assert_allclose(whole[..., 0], (i + 0.5) / grid[0], rtol=1e-6)
    np.testing.assert_allclose(whole[..., 1], (j + 0.5) / grid[1], rtol=1e-6)
    with pytest.raises(KernelArgumentError, match="do not lie"):
        generate_pixel_centres(4, 3, 10, 5, device=device)


def test_srgb_lut_endpoints_and_monotone():
    lut = srgb_to_linear_lut(True)
    assert lut[0] == 0 and lut[255] == pytest.approx(1.0)
    assert lut[128] == pytest.approx(0.2158605, rel=1e-5)  # sRGB 0.502 -> linear
    assert np.all(np.diff(lut) > 0)
    np.testing.assert_allclose(srgb_to_linear_lut(False), np.arange(256) / 255.0, rtol=1e-6)
    lut16 = srgb_to_linear_lut(True, bits=16)
    assert lut16.shape == (65536,) and lut16[-1] == pytest.approx(1.0) and np.all(np.diff(lut16) > 0)
    np.testing.assert_allclose(lut16[::257], lut, rtol=1e-6)  # code c * 257 in 16 bits == code c in 8 bits


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
