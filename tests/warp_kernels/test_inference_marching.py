"""Windowed inference marching: windows concatenate to ``march_rays``' samples; windowed compositing equals
compositing the packed samples (float64 reference and the one-pass kernel) whatever the window schedule."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import occupancy_grid_ref as oref
from tests.reference import ray_marching_ref as ref
from tests.reference import volume_rendering_ref as vref
from tests.warp_kernels.test_ray_marching import _per_ray, _rays, _sphere_bitfield
from tests.warp_kernels.test_volume_rendering import _batch
from warp_kernels.compaction import gather_ints, select_samples
from warp_kernels.device import KernelArgumentError
from warp_kernels.inference_marching import (
    WindowSamples,
    composite_window_colors,
    composite_window_density,
    march_spans,
    march_window,
)
from warp_kernels.ray_marching import march_rays
from warp_kernels.volume_rendering import composite_rays


def _march_in_windows(o, d, bf, n_cascades, schedule, max_samples=1024, cone=None):
    """Every ray marched to its end in windows of ``schedule`` (the last size repeats); per-ray t_starts,
    t_ends, positions and the number of windows a ray took."""
    n = o.shape[0]
    st = march_spans(o, d, n_cascades=n_cascades, cone_angle=cone)
    rays = wp.array(np.arange(n, dtype=np.int32), device=o.device)
    width = {"t_starts": 1, "t_ends": 1, "positions": 3}
    per = {k: [[np.zeros((0, c), np.float32)] for _ in range(n)] for k, c in width.items()}
    step = 0
    while rays.shape[0]:
        w = schedule[min(step, len(schedule) - 1)]
        s = march_window(st, o, d, bf, rays, w, max_samples_per_ray=max_samples)
        ids, counts, fin = rays.numpy(), s.counts.numpy(), s.finished.numpy()
        valid = s.valid.numpy().reshape(-1, w)
        slots = {k: getattr(s, k).numpy().reshape(len(ids), w, c) for k, c in width.items()}
        for a, r in enumerate(ids):
            np.testing.assert_array_equal(valid[a], np.arange(w) < counts[a])
            for k in per:
                per[k][r].append(slots[k][a, : counts[a]])
        rays = wp.array(ids[fin == 0], dtype=wp.int32, device=o.device)
        step += 1
    return {k: [np.concatenate(v).reshape(-1, width[k]).squeeze() for v in vals] for k, vals in per.items()}, step


@pytest.mark.parametrize("n_cascades, cone, schedule", [(1, 0.0, [8, 16, 32]), (2, 1 / 256, [1, 3]),
                                                       (1, 0.0, [1024])])
def test_windows_concatenate_to_the_samples_of_march_rays(device, n_cascades, cone, schedule):
    bf = _sphere_bitfield(n_cascades, device, radius=0.3)
    o_np, d_np = _rays(150, 4, n_cascades, inside=0.2, aim=0.3)
    o, d = wp.array(o_np, device=device), wp.array(d_np, device=device)
    full = march_rays(o, d, bf, n_cascades=n_cascades, cone_angle=cone, jitter=False)
    got, rounds = _march_in_windows(o, d, bf, n_cascades, schedule, cone=cone)
    for k in ("t_starts", "t_ends", "positions"):
        want = _per_ray(full, k)
        for g, w in zip(got[k], want, strict=True):
            np.testing.assert_array_equal(g.reshape(-1), w.reshape(-1))
    assert full.n_samples > 150 * 5 and rounds > (1 if schedule[0] < 1024 else 0)


def test_windows_follow_the_float64_reference_on_a_sparse_grid(device):
    k, cone = 2, 1 / 256
    rng = np.random.default_rng(2)
    cubes = (rng.random((k, 16, 16, 16)) < 0.15).repeat(8, 1).repeat(8, 2).repeat(8, 3)
    bits = oref.cubes_to_bitfield(cubes)
    o_np, d_np = _rays(64, 3, k, inside=0.25)
    got, _ = _march_in_windows(wp.array(o_np, device=device), wp.array(d_np, device=device),
                               wp.array(bits, device=device), k, [2, 5], cone=cone)
    want = ref.march_rays_ref(o_np, d_np, bits, n_cascades=k, cone_angle=cone, jitter=False)
    bad = sum(g.size != len(w) or not np.allclose(g.reshape(-1), w, rtol=1e-5, atol=2e-6)
              for g, w in zip(got["t_starts"], want["t_starts"], strict=True))
    assert bad <= 1  # a float32 / float64 tie at a voxel boundary may move one ray by a sample
    assert sum(g.size for g in got["t_starts"]) > 64


def test_sample_cap_missing_rays_and_finished_flags(device):
    bf = _sphere_bitfield(1, device, radius=0.3)
    o_np, d_np = _rays(40, 6, 1, aim=0.1)
    o_np[:5] = (5.0, 5.0, 5.0)  # behind the box, pointing away: no samples
    d_np[:5] = (0.0, 0.0, 1.0)
    o, d = wp.array(o_np, device=device), wp.array(d_np, device=device)
    got, _ = _march_in_windows(o, d, bf, 1, [4], max_samples=10)
    counts = np.array([t.size for t in got["t_starts"]])
    assert np.all(counts[:5] == 0) and counts.max() == 10 and np.all(counts[5:] > 0)
    # a ray that filled its window exactly at the cap is finished at once
    st = march_spans(o, d, n_cascades=1)
    rays = wp.array(np.arange(5, 40, dtype=np.int32), device=device)
    s = march_window(st, o, d, bf, rays, 10, max_samples_per_ray=10)
    np.testing.assert_array_equal(s.finished.numpy()[s.counts.numpy() == 10], 1)


def _windows_from_packed(b: dict, schedule, device):
    """Split packed samples into a schedule of windows (slot layout), as march_window would lay them out."""
    info = b["packed_info"]
    n = info.shape[0]
    pos = np.zeros(n, np.int64)
    live = np.arange(n)
    out, step = [], 0
    while live.size:
        w = schedule[min(step, len(schedule) - 1)]
        a = live.size
        ts, te, sig = (np.zeros(a * w, np.float32) for _ in range(3))
        rgb = np.zeros((a * w, 3), np.float32)
        counts = np.zeros(a, np.int32)
        for i, r in enumerate(live):
            first, cnt = info[r]
            c = int(min(w, cnt - pos[r]))
            sl = slice(first + pos[r], first + pos[r] + c)
            ts[i * w: i * w + c], te[i * w: i * w + c] = b["t_starts"][sl], b["t_ends"][sl]
            sig[i * w: i * w + c], rgb[i * w: i * w + c] = b["sigmas"][sl], b["rgbs"][sl]
            counts[i], pos[r] = c, pos[r] + c
        finished = (pos[live] >= info[live, 1]).astype(np.int32)
        ws = WindowSamples(w, wp.array(counts, device=device), wp.array(finished, device=device),
                           wp.array((np.arange(a * w) % w < np.repeat(counts, w)).astype(np.float32), device=device),
                           wp.array(ts, device=device), wp.array(te, device=device),
                           wp.zeros((a * w, 3), dtype=wp.float32, device=device),
                           wp.zeros((a * w, 3), dtype=wp.float32, device=device))
        out.append((wp.array(live.astype(np.int32), device=device), ws, wp.array(sig, device=device),
                    wp.array(rgb, device=device)))
        live = live[finished == 0]
        step += 1
    return out


@pytest.mark.parametrize("schedule", [[1], [3, 7], [8, 16, 32, 64], [100]])
def test_windowed_compositing_equals_compositing_the_packed_samples(device, schedule):
    b = _batch([5, 0, 1, 17, 40, 3, 60, 2], seed=3, sigma_max=40.0)
    n = b["packed_info"].shape[0]
    trans = wp.full(n, 1.0, dtype=wp.float32, device=device)
    opac, depth = wp.zeros(n, dtype=wp.float32, device=device), wp.zeros(n, dtype=wp.float32, device=device)
    color = wp.zeros((n, 3), dtype=wp.float32, device=device)
    w_ref, t_ref, _ = vref.render_weights_ref(b["t_starts"], b["t_ends"], b["sigmas"], b["packed_info"])
    seen_total = 0
    for rays, ws, sig, rgb in _windows_from_packed(b, schedule, device):
        weights, alive = composite_window_density(ws, sig, rays, trans, opac, depth)
        composite_window_colors(ws, weights, rgb, rays, color)
        seen_total += int((weights.numpy() >= 0).sum())
        # a ray stays live while it may see more: transmittance above the threshold and samples left
        want_alive = (trans.numpy()[rays.numpy()] >= 1e-4) & (ws.finished.numpy() == 0)
        np.testing.assert_array_equal(alive.numpy() == 1.0, want_alive)
    one = composite_rays(*(wp.array(b[k], device=device) for k in ("t_starts", "t_ends", "sigmas", "rgbs",
                                                                    "packed_info")))
    # the same float32 operations in the same order as the one-pass kernel
    np.testing.assert_array_equal(color.numpy(), one.colors.numpy())
    np.testing.assert_array_equal(opac.numpy(), one.opacities.numpy())
    np.testing.assert_array_equal(depth.numpy(), one.depths.numpy())
    c_ref, o_ref, d_ref = vref.composite_ref(b["t_starts"], b["t_ends"], b["sigmas"], b["rgbs"], b["packed_info"])
    np.testing.assert_allclose(color.numpy(), c_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opac.numpy(), o_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(depth.numpy(), d_ref, rtol=1e-5, atol=1e-6)
    # exactly the samples with transmittance on arrival >= the threshold get a weight (and so a colour)
    assert seen_total == int((t_ref >= 1e-4).sum()) < b["sigmas"].size


def test_many_rays_split_across_threads(device):
    bf = _sphere_bitfield(1, device, radius=0.3)
    o_np, d_np = _rays(5000, 8, 1, aim=0.3)
    o, d = wp.array(o_np, device=device), wp.array(d_np, device=device)
    full = march_rays(o, d, bf, n_cascades=1, jitter=False)
    st = march_spans(o, d, n_cascades=1)
    rays = wp.array(np.arange(5000, dtype=np.int32), device=device)
    s = march_window(st, o, d, bf, rays, 6)
    want = np.minimum(full.packed_info.numpy()[:, 1], 6)
    np.testing.assert_array_equal(s.counts.numpy(), want)
    keep = select_samples(wp.array((s.finished.numpy() == 0).astype(np.float32), device=device), 0.5)
    live = gather_ints(rays, keep)
    np.testing.assert_array_equal(live.numpy(), np.flatnonzero(s.finished.numpy() == 0))


def test_argument_checks(device):
    o = wp.zeros((4, 3), dtype=wp.float32, device=device)
    d = wp.array(np.tile([[0.0, 0.0, 1.0]], (4, 1)).astype(np.float32), device=device)
    with pytest.raises(KernelArgumentError, match="n_cascades"):
        march_spans(o, d, n_cascades=0)
    with pytest.raises(KernelArgumentError, match="directions"):
        march_spans(o, d[:3], n_cascades=1)
    st = march_spans(o, d, n_cascades=1)
    bf = _sphere_bitfield(1, device)
    rays = wp.array(np.arange(4, dtype=np.int32), device=device)
    with pytest.raises(KernelArgumentError, match="window"):
        march_window(st, o, d, bf, rays, 0)
    with pytest.raises(KernelArgumentError, match="rays"):
        march_window(st, o, d, bf, wp.array(np.array([0, 9], np.int32), device=device), 2)
    s = march_window(st, o, d, bf, rays, 2)
    with pytest.raises(KernelArgumentError, match="sigmas"):
        composite_window_density(s, wp.zeros(3, dtype=wp.float32, device=device), rays,
                                 *(wp.zeros(4, dtype=wp.float32, device=device) for _ in range(3)))
    with pytest.raises(KernelArgumentError, match="min_transmittance"):
        composite_window_density(s, wp.zeros(8, dtype=wp.float32, device=device), rays,
                                 *(wp.zeros(4, dtype=wp.float32, device=device) for _ in range(3)),
                                 min_transmittance=1.0)
    with pytest.raises(KernelArgumentError, match="indices"):
        gather_ints(rays, wp.array(np.array([4], np.int32), device=device))
