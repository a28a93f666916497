"""Depth targets and the L1 depth loss against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import camera_refinement_ref as ref
from warp_kernels.depth_supervision import depth_l1_loss, gather_depth_targets
from warp_kernels.device import KernelArgumentError
from warp_kernels.rays import generate_rays

DEV = "cpu"


def _a(x, dtype=wp.float32):
    return wp.array(np.asarray(x, np.float32 if dtype == wp.float32 else np.int32), dtype=dtype, device=DEV)


def test_targets_match_reference_and_hit_the_depth_plane():
    rng = np.random.default_rng(0)
    sizes = np.array([[8, 6], [5, 7]])
    depths = np.zeros((2, 56), np.float32)
    for i, (w, h) in enumerate(sizes):
        depths[i, : w * h] = rng.uniform(0.5, 3.0, w * h)
    depths[0, 3] = 0.0  # invalid
    c2w = np.zeros((2, 3, 4))
    c2w[0, :, :3] = ref.rotation_matrix([0.1, -0.3, 0.2])
    c2w[1, :, :3] = ref.rotation_matrix([0.5, 0.1, -0.4])
    c2w[:, :, 3] = rng.normal(size=(2, 3))
    n = 64
    cams = rng.integers(0, 2, n)
    xy = np.stack([rng.uniform(0, sizes[cams, 0]), rng.uniform(0, sizes[cams, 1])], 1)
    xy[0], cams[0] = (3.5, 0.5), 0  # the invalid pixel
    params = np.array([[6.0, 6.5, 4.0, 3.0], [5.0, 5.0, 2.5, 3.5]])
    o, d = generate_rays(_a(c2w), _a(params), _a(np.zeros((2, 4))), _a([0, 0], wp.int32), _a(cams, wp.int32),
                         _a(xy))
    t = gather_depth_targets(_a(depths), _a(sizes, wp.int32), _a(xy), _a(cams, wp.int32), _a(c2w), d,
                             depth_scale=0.5).numpy()
    expect = ref.depth_targets_ref(depths, sizes, xy, cams, c2w, d.numpy(), depth_scale=0.5)
    np.testing.assert_allclose(t, expect, rtol=1e-5)
    assert t[0] == 0.0
    # the target point lies on the camera's z = depth * scale plane
    p = o.numpy() + t[:, None] * d.numpy()
    z = np.einsum("nk,nk->n", p - c2w[cams, :, 3], c2w[cams, :, 2])
    ix, iy = xy[:, 0].astype(int), xy[:, 1].astype(int)
    want = depths[cams, iy * sizes[cams, 0] + ix] * 0.5
    np.testing.assert_allclose(z[1:], want[1:], rtol=1e-4)


def test_l1_loss_and_gradient():
    rng = np.random.default_rng(1)
    rendered = rng.uniform(0, 2, 50)
    targets = rng.uniform(0, 2, 50)
    targets[::7] = 0.0
    g, terms = depth_l1_loss(_a(rendered), _a(targets), weight=0.3, n_normalize=64)
    eg, el = ref.depth_l1_ref(rendered, targets, weight=0.3, n_normalize=64)
    np.testing.assert_allclose(g.numpy(), eg, rtol=1e-6)
    assert terms.numpy().sum() == pytest.approx(el, rel=1e-5)
    # finite differences of the loss in the rendered depth (away from the kink)
    eps = 1e-3
    for i in (1, 2, 3):
        hi, lo = rendered.copy(), rendered.copy()
        hi[i] += eps
        lo[i] -= eps
        fd = (ref.depth_l1_ref(hi, targets, 0.3, 64)[1] - ref.depth_l1_ref(lo, targets, 0.3, 64)[1]) / (2 * eps)
        assert g.numpy()[i] == pytest.approx(fd, rel=1e-3)


def test_shapes_checked():
    with pytest.raises(KernelArgumentError):
        depth_l1_loss(_a(np.zeros(3)), _a(np.zeros(4)))
    with pytest.raises(KernelArgumentError):
        gather_depth_targets(_a(np.zeros((2, 4))), _a(np.ones((2, 2)), wp.int32), _a(np.zeros((3, 2))),
                             _a(np.zeros(3), wp.int32), _a(np.zeros((1, 3, 4))), _a(np.zeros((3, 3))))
