"""Float64 NumPy reference of warp_kernels.nerf_batch (instant-ngp's random training rays)."""

from __future__ import annotations

import numpy as np

from tests.reference.random_ref import rand01

__all__ = ["sample_training_rays_ref"]

STREAM = 32


def sample_training_rays_ref(images: list[np.ndarray], n_rays: int, seed: int, *, random_background: bool = True,
                             background=(0.0, 0.0, 0.0)):
    """``(pixel_xy [n, 2], cam_index [n], targets [n, 3], backgrounds [n, 3])`` from ``[h, w, C]`` uint8 images."""
    r = np.arange(n_rays, dtype=np.int64)
    u = [rand01(seed, STREAM, (6 * r + k).astype(np.uint32)) for k in range(6)]
    n_img = len(images)
    img = np.minimum((u[0] * n_img).astype(np.float32).astype(np.int64), n_img - 1)
    sizes = np.array([(im.shape[1], im.shape[0]) for im in images])
    w, h = sizes[img, 0], sizes[img, 1]
    # the kernel multiplies in float32: round the (exact) float64 products the same way
    px, py = (u[1] * w).astype(np.float32), (u[2] * h).astype(np.float32)
    ix, iy = np.minimum(px.astype(np.int64), w - 1), np.minimum(py.astype(np.int64), h - 1)
    pix = np.stack([images[i][y, x] for i, x, y in zip(img, ix, iy, strict=True)]).astype(np.float64) / 255.0
    a = pix[:, 3:4] if pix.shape[1] == 4 else np.ones((n_rays, 1))
    bg = np.stack(u[3:6], axis=1) if random_background else np.tile(np.asarray(background, np.float64), (n_rays, 1))
    target = pix[:, :3] * a + bg * (1 - a)
    return np.stack([px, py], axis=1), img, target, bg
