"""Training-ray sampler: bit-exact choices vs the reference, composited targets, uniform coverage."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import nerf_batch_ref as ref
from warp_kernels.device import KernelArgumentError
from warp_kernels.nerf_batch import sample_training_rays


def _stack(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.zeros((len(images), max(im.size for im in images)), np.uint8)
    for i, im in enumerate(images):
        rows[i, : im.size] = im.reshape(-1)
    return rows, np.array([(im.shape[1], im.shape[0]) for im in images], np.int32)


@pytest.mark.parametrize("channels", [3, 4])
def test_matches_reference_with_mixed_sizes(device, channels):
    rng = np.random.default_rng(channels)
    images = [rng.integers(0, 256, (h, w, channels), dtype=np.uint8) for h, w in ((7, 5), (3, 11), (9, 9))]
    rows, sizes = _stack(images)
    n = 6000  # > 2 * 2048: split across CPU threads
    xy, cam, tgt, bg = sample_training_rays(wp.array(rows, device=device), wp.array(sizes, device=device), n,
                                            seed=1234, n_channels=channels)
    rxy, rcam, rtgt, rbg = ref.sample_training_rays_ref(images, n, 1234)
    np.testing.assert_array_equal(cam.numpy(), rcam)
    np.testing.assert_allclose(xy.numpy(), rxy, rtol=0, atol=1e-5)
    np.testing.assert_allclose(bg.numpy(), rbg, rtol=0, atol=1e-7)
    np.testing.assert_allclose(tgt.numpy(), rtgt, rtol=0, atol=1e-6)
    assert set(np.unique(cam.numpy())) == {0, 1, 2}
    assert np.all(xy.numpy() >= 0) and np.all(xy.numpy()[:, 0] < sizes[cam.numpy(), 0])


def test_fixed_background_and_opaque_pixels(device):
    img = np.zeros((4, 4, 4), np.uint8)
    img[..., :3] = 200
    img[:2, ..., 3] = 255  # top half opaque, bottom half transparent
    rows, sizes = _stack([img])
    xy, _, tgt, bg = sample_training_rays(wp.array(rows, device=device), wp.array(sizes, device=device), 500,
                                          seed=5, n_channels=4, random_background=False, background=(0.0, 1.0, 0.0))
    top = xy.numpy()[:, 1] < 2
    np.testing.assert_allclose(tgt.numpy()[top], 200 / 255, atol=1e-6)
    np.testing.assert_allclose(tgt.numpy()[~top], np.tile([0.0, 1.0, 0.0], ((~top).sum(), 1)), atol=1e-6)
    np.testing.assert_array_equal(bg.numpy(), np.tile([0.0, 1.0, 0.0], (500, 1)))
    with pytest.raises(KernelArgumentError, match="do not fit"):
        sample_training_rays(wp.array(rows[:, :10], device=device), wp.array(sizes, device=device), 5, seed=0,
                             n_channels=4)
