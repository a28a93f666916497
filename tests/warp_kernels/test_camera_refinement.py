"""Pose corrections and camera gradients against the float64 reference, and by finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import camera_refinement_ref as ref
from warp_kernels.camera_refinement import (
    accumulate_camera_gradients,
    apply_focal_corrections,
    apply_pose_corrections,
    camera_gradients_to_parameters,
)
from warp_kernels.device import KernelArgumentError
from warp_kernels.rays import generate_rays

DEV = "cpu"


def _poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 3, 4))
    for i in range(n):
        out[i, :, :3] = ref.rotation_matrix(rng.normal(size=3))
        out[i, :, 3] = rng.uniform(-1, 1, 3)
    return out


def _f32(a, dtype=wp.float32):
    return wp.array(np.asarray(a, np.float32 if dtype == wp.float32 else np.int32), dtype=dtype, device=DEV)


def test_apply_matches_reference_and_zero_is_identity():
    base = _poses(6)
    rng = np.random.default_rng(1)
    corr = rng.normal(scale=0.3, size=(6, 6))
    corr[2] = 0.0
    out = apply_pose_corrections(_f32(base), _f32(corr)).numpy()
    np.testing.assert_allclose(out, ref.apply_pose_corrections_ref(base, corr), atol=2e-6)
    np.testing.assert_allclose(out[2], base[2], atol=1e-7)
    # rotations stay rotations
    r = out[:, :, :3].astype(np.float64)
    np.testing.assert_allclose(np.einsum("nij,nik->njk", r, r), np.broadcast_to(np.eye(3), r.shape), atol=2e-6)


def test_gradients_match_reference():
    rng = np.random.default_rng(2)
    counts = np.array([3, 0, 5, 1, 4])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    packed = np.stack([starts, counts], 1)
    s = counts.sum()
    t = rng.uniform(0.1, 2, s)
    g = rng.normal(size=(s, 3))
    d = rng.normal(size=(5, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    cams = np.array([0, 2, 1, 2, 0])
    mask = np.array([1, 0, 1])
    scale = (2.0, 0.5, 1.5)
    out = wp.zeros((3, 6), dtype=wp.float32, device=DEV)
    accumulate_camera_gradients(_f32(packed, wp.int32), _f32(t), _f32(g), _f32(d), _f32(cams, wp.int32),
                                _f32(mask, wp.int32), out, grad_scale=scale)
    expect = ref.camera_gradients_ref(packed, t, g, d, cams, mask, 3, grad_scale=scale)
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5, atol=1e-5)
    assert not out.numpy()[1].any()  # masked camera
    # n_rays leaves later rays out; accumulation adds to what is there
    accumulate_camera_gradients(_f32(packed, wp.int32), _f32(t), _f32(g), _f32(d), _f32(cams, wp.int32),
                                _f32(mask, wp.int32), out, grad_scale=scale, n_rays=2)
    first2 = ref.camera_gradients_ref(packed[:2], t, g, d, cams[:2], mask, 3, grad_scale=scale)
    np.testing.assert_allclose(out.numpy(), expect + first2, rtol=1e-5, atol=1e-5)


def _quadratic_loss(poses, params, focal_scales, pixel_xy, cams, t, quad, lin) -> float:
    """float64 ``sum_i f(o + t_i d)`` (f quadratic) over pinhole rays of ``poses`` ``[n, 3, 4]`` with ``(fx, fy)``
    scaled by ``exp(focal_scales)``: the reference loss of the finite differences."""
    total = 0.0
    for r, (px, py) in enumerate(pixel_xy):
        c = cams[r]
        f = np.exp(focal_scales[c])
        dc = np.array([(px - params[c, 2]) / (params[c, 0] * f), (py - params[c, 3]) / (params[c, 1] * f), 1.0])
        d = poses[c, :, :3] @ dc
        d /= np.linalg.norm(d)
        for ti in t[r]:
            p = poses[c, :, 3] + ti * d
            total += lin @ p + 0.5 * p @ quad @ p
    return total


def _loss_of_correction(base, corr, pixel_xy, cams, t, quad, lin, pivot=None, local=False):
    params = np.array([[50.0, 52.0, 32.0, 30.0]] * len(base))
    poses = ref.apply_pose_corrections_ref(base, corr, pivot, local)
    return _quadratic_loss(poses, params, np.zeros(len(base)), pixel_xy, cams, t, quad, lin)


def _log_rotation(r: np.ndarray) -> np.ndarray:
    ang = np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return axis / (2 * np.sin(ang)) * ang if ang > 1e-12 else 0.5 * axis


@pytest.mark.parametrize(("nonzero", "pivot", "local"), [(False, None, False), (True, None, False),
                                                         (True, (0.3, -0.2, 0.1), False), (True, None, True),
                                                         (True, (0.3, -0.2, 0.1), True)])
def test_gradients_by_finite_differences(nonzero, pivot, local):
    """Rays from generate_rays, a quadratic loss of the sample points: the accumulated camera gradient (converted
    by camera_gradients_to_parameters for a pivot and camera axes) is the derivative of the loss under a
    left-multiplied update of the correction (exact at w = 0)."""
    rng = np.random.default_rng(3)
    n_cams, n_rays, k = 2, 7, 4
    base = _poses(n_cams, seed=4)
    corr = rng.normal(scale=0.2, size=(n_cams, 6)) if nonzero else np.zeros((n_cams, 6))
    pixel_xy = rng.uniform(0, 64, size=(n_rays, 2))
    cams = rng.integers(0, n_cams, n_rays)
    t = np.sort(rng.uniform(0.2, 3.0, size=(n_rays, k)), axis=1)
    a = rng.normal(size=(3, 3))
    quad, lin = a @ a.T, rng.normal(size=3)
    poses = apply_pose_corrections(_f32(base), _f32(corr), pivot=pivot, local=local)
    np.testing.assert_allclose(poses.numpy(), ref.apply_pose_corrections_ref(base, corr, pivot, local), atol=3e-6)
    params = _f32(np.array([[50.0, 52.0, 32.0, 30.0]] * n_cams))
    o, d = generate_rays(poses, params, _f32(np.zeros((n_cams, 4))), _f32(np.zeros(n_cams), wp.int32),
                         _f32(cams, wp.int32), _f32(pixel_xy))
    p = o.numpy()[:, None, :].astype(np.float64) + t[..., None] * d.numpy()[:, None, :]
    g = (p @ quad + lin).reshape(-1, 3)
    packed = np.stack([np.arange(n_rays) * k, np.full(n_rays, k)], 1)
    grads = wp.zeros((n_cams, 6), dtype=wp.float32, device=DEV)
    accumulate_camera_gradients(_f32(packed, wp.int32), _f32(t.reshape(-1)), _f32(g), d, _f32(cams, wp.int32),
                                _f32(np.ones(n_cams), wp.int32), grads)
    camera_gradients_to_parameters(grads, _f32(base), _f32(corr), pivot=pivot, local=local)
    eps = 1e-6
    fd = np.zeros((n_cams, 6))
    for c in range(n_cams):
        rot = base[c, :, :3] if local else np.eye(3)
        for j in range(6):
            hi, lo = corr.copy(), corr.copy()
            if j < 3:  # left-multiplied rotation update exp(e) exp(w), e along axis j of the parameter's frame
                e = np.zeros(3)
                e[j] = eps
                for sgn, m in ((1, hi), (-1, lo)):
                    r = ref.rotation_matrix(sgn * rot @ e) @ ref.rotation_matrix(rot @ corr[c, :3])
                    m[c, :3] = rot.T @ _log_rotation(r)
            else:
                hi[c, j] += eps
                lo[c, j] -= eps
            fd[c, j] = (_loss_of_correction(base, hi, pixel_xy, cams, t, quad, lin, pivot, local)
                        - _loss_of_correction(base, lo, pixel_xy, cams, t, quad, lin, pivot, local)) / (2 * eps)
    np.testing.assert_allclose(grads.numpy(), fd, rtol=2e-3, atol=2e-3 * np.abs(fd).max())


def test_bad_shapes_are_refused():
    with pytest.raises(KernelArgumentError):
        apply_pose_corrections(_f32(np.zeros((2, 3, 4))), _f32(np.zeros((3, 6))))
    with pytest.raises(KernelArgumentError, match="pivot"):
        apply_pose_corrections(_f32(np.zeros((2, 3, 4))), _f32(np.zeros((2, 6))), pivot=(0.0, float("nan"), 1.0))
    with pytest.raises(KernelArgumentError, match="pivot"):
        camera_gradients_to_parameters(wp.zeros((2, 6), dtype=wp.float32, device=DEV), _f32(np.zeros((2, 3, 4))),
                                       _f32(np.zeros((2, 6))), pivot=(1.0, 2.0))
    with pytest.raises(KernelArgumentError):
        accumulate_camera_gradients(_f32(np.zeros((2, 2)), wp.int32), _f32(np.zeros(4)), _f32(np.zeros((3, 3))),
                                    _f32(np.zeros((2, 3))), _f32(np.zeros(2), wp.int32),
                                    _f32(np.ones(1), wp.int32), wp.zeros((1, 6), dtype=wp.float32, device=DEV))


@pytest.mark.parametrize("shared", [False, True])
def test_focal_gradient_by_finite_differences(shared):
    rng = np.random.default_rng(7)
    n_cams, n_rays, k = 3, 9, 3
    base = _poses(n_cams, seed=8)
    params = np.array([[50.0, 52.0, 32.0, 30.0], [40.0, 41.0, 20.0, 25.0], [60.0, 60.0, 31.0, 33.0]])
    scales = np.array([0.1]) if shared else rng.normal(scale=0.1, size=n_cams)
    per_cam = np.broadcast_to(scales, (n_cams,)).copy()
    cur = apply_focal_corrections(_f32(params), _f32(scales), shared=shared)
    np.testing.assert_allclose(cur.numpy()[:, :2], params[:, :2] * np.exp(per_cam)[:, None], rtol=1e-6)
    np.testing.assert_array_equal(cur.numpy()[:, 2:], params[:, 2:])
    pixel_xy = rng.uniform(0, 64, size=(n_rays, 2))
    cams = rng.integers(0, n_cams, n_rays)
    t = np.sort(rng.uniform(0.2, 3.0, size=(n_rays, k)), axis=1)
    a = rng.normal(size=(3, 3))
    quad, lin = a @ a.T, rng.normal(size=3)
    poses = _f32(base)
    o, d = generate_rays(poses, cur, _f32(np.zeros((n_cams, 4))), _f32(np.zeros(n_cams), wp.int32),
                         _f32(cams, wp.int32), _f32(pixel_xy))
    p = o.numpy()[:, None, :].astype(np.float64) + t[..., None] * d.numpy()[:, None, :]
    g = (p @ quad + lin).reshape(-1, 3)
    packed = np.stack([np.arange(n_rays) * k, np.full(n_rays, k)], 1)
    grads = wp.zeros((n_cams, 6), dtype=wp.float32, device=DEV)
    fgrads = wp.zeros(1 if shared else n_cams, dtype=wp.float32, device=DEV)
    accumulate_camera_gradients(_f32(packed, wp.int32), _f32(t.reshape(-1)), _f32(g), d, _f32(cams, wp.int32),
                                _f32(np.ones(n_cams), wp.int32), grads,
                                focal=(_f32(pixel_xy), cur, poses, fgrads), focal_shared=shared)
    eps = 1e-6
    fd = []
    for j in range(len(scales)):
        vals = []
        for sgn in (1, -1):
            sc = per_cam.copy()
            if shared:
                sc += sgn * eps
            else:
                sc[j] += sgn * eps
            vals.append(_quadratic_loss(base, params, sc, pixel_xy, cams, t, quad, lin))
        fd.append((vals[0] - vals[1]) / (2 * eps))
    np.testing.assert_allclose(fgrads.numpy(), fd, rtol=2e-3, atol=2e-3 * np.abs(fd).max())
