"""Sphere tracing: analytic spheres and boxes, the float64 reference, packing and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference.sphere_tracing_ref import closest_approach, ray_sphere_ref, sphere_trace_ref
from warp_kernels.device import KernelArgumentError
from warp_kernels.sphere_tracing import sphere_trace

CENTRE = np.array([0.5, 0.5, 0.5])
RADIUS = 0.3


def _sphere_sdf_np(p):
    return np.linalg.norm(np.asarray(p, np.float64) - CENTRE, axis=1) - RADIUS


def _box_sdf_np(p, half=0.2):
    q = np.abs(np.asarray(p, np.float64) - CENTRE) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def _warp_fn(np_fn, device, calls=None, scale=1.0):
    def fn(x: wp.array) -> wp.array:
        if calls is not None:
            calls.append(x.shape[0])
        return wp.array((scale * np_fn(x.numpy())).astype(np.float32), dtype=wp.float32, device=device)
    return fn


def _pinhole_rays(eye, n=24, half_angle=0.35):
    """Rays from ``eye`` towards the cube centre, spread over a square of angles."""
    eye = np.asarray(eye, np.float64)
    fwd = CENTRE - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    u, v = np.meshgrid(np.linspace(-half_angle, half_angle, n), np.linspace(-half_angle, half_angle, n))
    d = fwd + u.reshape(-1, 1) * right + v.reshape(-1, 1) * up
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.repeat(eye[None], d.shape[0], axis=0)
    return o, d


def _arrays(o, d, device):
    return (wp.array(o.astype(np.float32), dtype=wp.float32, device=device),
            wp.array(d.astype(np.float32), dtype=wp.float32, device=device))


@pytest.mark.parametrize("eye", [(0.5, 0.5, -1.0), (1.7, 1.3, 1.9), (0.5, 0.5, 0.5 + 0.45)])
def test_hits_analytic_sphere_at_the_right_depth(device, eye):
    o, d = _pinhole_rays(eye, half_angle=0.5 if eye[2] < 1 and eye[2] > 0 else 0.35)
    t_true, hit_true = ray_sphere_ref(o, d, CENTRE, RADIUS)
    r = sphere_trace(*_arrays(o, d, device), _warp_fn(_sphere_sdf_np, device), epsilon=1e-5)
    hit = r.hit.numpy().astype(bool)
    # away from the silhouette (where a grazing ray may stop short) hits and misses agree with the analytic ones
    clear = np.abs(closest_approach(o, d, CENTRE) - RADIUS) > 0.01
    assert hit_true[clear].any() and (hit[clear] == hit_true[clear]).all()
    both = hit & hit_true & clear
    np.testing.assert_allclose(r.t.numpy()[both], t_true[both], atol=5e-5)
    pos = r.positions.numpy()[both]
    np.testing.assert_allclose(np.linalg.norm(pos - CENTRE, axis=1), RADIUS, atol=5e-5)


def test_matches_float64_reference(device):
    o, d = _pinhole_rays((1.4, 0.9, -0.6), n=16)
    r = sphere_trace(*_arrays(o, d, device), _warp_fn(_box_sdf_np, device), epsilon=1e-4, max_steps=64)
    t_ref, hit_ref = sphere_trace_ref(o, d, _box_sdf_np, epsilon=1e-4, max_steps=64)
    hit = r.hit.numpy().astype(bool)
    assert (hit == hit_ref).mean() > 0.98  # float32 vs float64 may flip a ray that ends exactly at epsilon
    both = hit & hit_ref
    assert both.sum() > 50
    np.testing.assert_allclose(r.t.numpy()[both], t_ref[both], atol=2e-4)


def test_box_face_depth_is_exact_for_axis_rays(device):
    o = np.array([[0.5 + dx, 0.5 + dy, -0.25] for dx in (-0.1, 0.0, 0.15) for dy in (-0.15, 0.05)])
    d = np.tile([0.0, 0.0, 1.0], (len(o), 1))
    r = sphere_trace(*_arrays(o, d, device), _warp_fn(_box_sdf_np, device), epsilon=1e-6)
    assert r.hit.numpy().all()
    # the face z = 0.3 is 0.55 in front of z = -0.25
    np.testing.assert_allclose(r.t.numpy(), 0.55, atol=2e-6)


def test_rays_missing_the_box_are_never_evaluated(device):
    o = np.array([[2.0, 2.0, 2.0], [-1.0, 0.5, 0.5], [0.5, 0.5, -1.0]])
    d = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    calls: list[int] = []
    r = sphere_trace(*_arrays(o, d, device), _warp_fn(_sphere_sdf_np, device, calls))
    assert r.hit.numpy().tolist() == [0, 0, 1]
    assert calls and max(calls) == 1  # only the third ray was ever active


def test_only_active_rays_are_evaluated_and_counts_add_up(device):
    o, d = _pinhole_rays((0.5, 0.5, -1.0), n=20, half_angle=0.4)
    calls: list[int] = []
    r = sphere_trace(*_arrays(o, d, device), _warp_fn(_sphere_sdf_np, device, calls))
    assert calls == sorted(calls, reverse=True)  # the active set only shrinks
    assert r.n_evaluations == sum(calls) and r.n_iterations == len(calls)
    assert r.n_evaluations < len(o) * r.n_iterations


def test_overestimating_sdf_steps_back_and_converges(device):
    """An SDF scaled by 1.6 overshoots the surface; negative values walk the ray back onto it."""
    o, d = _pinhole_rays((0.5, 0.5, -1.0), n=12, half_angle=0.1)
    t_true, hit_true = ray_sphere_ref(o, d, CENTRE, RADIUS)
    assert hit_true.all()
    r = sphere_trace(*_arrays(o, d, device), _warp_fn(_sphere_sdf_np, device, scale=1.6), step_scale=1.0,
                     epsilon=1e-5, max_steps=200)
    assert r.hit.numpy().all()
    np.testing.assert_allclose(r.t.numpy(), t_true, atol=2e-5)


def test_column_vector_results_are_accepted(device):
    o, d = _pinhole_rays((0.5, 0.5, -1.0), n=4, half_angle=0.1)

    def column(x):
        return wp.array(_sphere_sdf_np(x.numpy()).astype(np.float32).reshape(-1, 1), dtype=wp.float32,
                        device=device)

    assert sphere_trace(*_arrays(o, d, device), column).hit.numpy().all()


def test_bad_arguments_raise(device):
    o, d = _arrays(*_pinhole_rays((0.5, 0.5, -1.0), n=4), device)
    fn = _warp_fn(_sphere_sdf_np, device)
    with pytest.raises(KernelArgumentError):
        sphere_trace(o, d[:3], fn)
    with pytest.raises(KernelArgumentError):
        sphere_trace(o, d, fn, step_scale=1.5)
    with pytest.raises(KernelArgumentError):
        sphere_trace(o, d, lambda x: wp.zeros(x.shape[0] + 1, dtype=wp.float32, device=device))
