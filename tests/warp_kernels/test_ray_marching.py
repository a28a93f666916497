"""Ray marching: dense equality on a full grid, occupancy skipping vs the reference, caps, budget, layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import warp as wp

from tests.reference import occupancy_grid_ref as oref
from tests.reference import ray_marching_ref as ref
from warp_kernels.device import KernelArgumentError
from warp_kernels.occupancy_grid import (
    MAX_CONE_STEPSIZE,
    MIN_CONE_STEPSIZE,
    compute_occupancy_bitfield,
    create_bitfield,
    generate_all_cell_samples,
    update_occupancy_grid,
)
from warp_kernels.ray_marching import (
    StepParams,
    adapt_rays_per_batch,
    default_aabb,
    default_cone_angle,
    distance_to_next_voxel,
    from_stepping_space,
    make_step_params,
    march_rays,
    ray_aabb_intersect,
    to_stepping_space,
)


@wp.kernel
def _stepping_probe(p: StepParams, ts: wp.array(dtype=float), out: wp.array2d(dtype=float)):
    i = wp.tid()
    n = to_stepping_space(ts[i], p)
    out[i, 0] = n
    out[i, 1] = from_stepping_space(n, p)
    out[i, 2] = from_stepping_space(n + 1.0, p) - from_stepping_space(n, p)


@wp.kernel
def _geometry_probe(
    o: wp.array(dtype=wp.vec3), d: wp.array(dtype=wp.vec3), res: float, out: wp.array2d(dtype=float)
):
    i = wp.tid()
    hit = ray_aabb_intersect(o[i], d[i], wp.vec3(-0.5), wp.vec3(1.5))
    out[i, 0] = hit[0]
    out[i, 1] = hit[1]
    out[i, 2] = distance_to_next_voxel(o[i], d[i], res)


def _rays(n: int, seed: int, n_cascades: int, inside: float = 0.0, aim: float | None = None):
    """Rays from around the AABB aimed at random points inside it (within ``aim`` of the centre if given);
    a fraction ``inside`` of them start inside."""
    rng = np.random.default_rng(seed)
    half = 0.5 * 2 ** (n_cascades - 1)
    o = rng.uniform(0.5 - 2 * half, 0.5 + 2 * half, (n, 3))
    k = int(inside * n)
    o[:k] = rng.uniform(0.5 - half, 0.5 + half, (k, 3))
    aim = half if aim is None else aim
    d = rng.uniform(0.5 - aim, 0.5 + aim, (n, 3)) - o
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return o.astype(np.float32), d.astype(np.float32)


def _per_ray(s, field: str = "t_starts") -> list[np.ndarray]:
    info = s.packed_info.numpy()
    vals = getattr(s, field).numpy()
    return [vals[a : a + c] for a, c in info]


def _sphere_bitfield(n_cascades: int, device, radius: float = 0.2) -> wp.array:
    """Realistic bitfield (threshold + max-pooling) of a ball of density 100 at the centre."""
    from warp_kernels.occupancy_grid import create_density_grid

    grid = create_density_grid(n_cascades, device=device)
    pos, cells = generate_all_cell_samples(n_cascades, seed=0, jitter=False, device=device)
    p = pos.numpy()
    dens = (np.linalg.norm(p - 0.5, axis=1) < radius).astype(np.float32) * 100.0
    update_occupancy_grid(grid, cells, wp.array(dens, device=device), n_cascades=n_cascades)
    return compute_occupancy_bitfield(grid, n_cascades=n_cascades)[0]


def test_stepping_space_matches_reference(device):
    ts = np.concatenate([np.linspace(0.0, 3.0, 200), 2.0 ** np.linspace(-3, 10, 200)]).astype(np.float32)
    for cone in (0.0, 1 / 256, 0.05):
        out = wp.zeros((ts.size, 3), dtype=float, device=device)
        wp.launch(
            _stepping_probe,
            dim=ts.size,
            inputs=[make_step_params(cone), wp.array(ts, device=device), out],
            device=device,
        )
        got = out.numpy()
        st = ref.Stepping(cone)
        np.testing.assert_allclose(got[:, 0], [st.to(float(t)) for t in ts], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(got[:, 1], ts, rtol=1e-5, atol=1e-5)
        dt = np.array([st.dt(float(t)) for t in ts])
        # float32 cancellation in from(n + 1) - from(n): a few ulps of t
        np.testing.assert_array_less(np.abs(got[:, 2] - dt), 2e-3 * dt + 4e-7 * ts)
        # calc_dt ~ clamp(t * cone, MIN, MAX) (exactly so in the linear parts)
        approx = (
            np.clip(ts * math.log1p(cone), MIN_CONE_STEPSIZE, MAX_CONE_STEPSIZE)
            if cone
            else MIN_CONE_STEPSIZE
        )
        np.testing.assert_allclose(dt, approx, rtol=0.06 if cone > 0.01 else 0.01)


def test_geometry_helpers_match_reference(device):
    rng = np.random.default_rng(0)
    o = rng.uniform(-2, 3, (500, 3))
    d = rng.normal(size=(500, 3))
    d[:50, 0] = 0.0  # parallel to the x slabs
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o32, d32 = o.astype(np.float32), d.astype(np.float32)
    out = wp.zeros((500, 3), dtype=float, device=device)
    wp.launch(
        _geometry_probe,
        dim=500,
        inputs=[
            wp.array(o32, dtype=wp.vec3, device=device),
            wp.array(d32, dtype=wp.vec3, device=device),
            32.0,
            out,
        ],
        device=device,
    )
    got = out.numpy()
    o64, d64 = o32.astype(np.float64), d32.astype(np.float64)
    want = np.array(
        [ref.ray_aabb_intersect(a, b, (-0.5,) * 3, (1.5,) * 3) for a, b in zip(o64, d64, strict=True)]
    )
    hit = want[:, 0] <= want[:, 1]
    assert hit.any() and (~hit).any()
    np.testing.assert_array_equal(got[:, 0] <= got[:, 1], hit)
    np.testing.assert_allclose(got[hit, :2], want[hit], rtol=1e-5, atol=1e-5)
    dist = [ref.distance_to_next_voxel(a, b, 32.0) for a, b in zip(o64, d64, strict=True)]
    np.testing.assert_allclose(got[:, 2], dist, rtol=1e-4, atol=1e-5)


def _assert_same_samples(
    got: list[np.ndarray], want: list[np.ndarray], t_ends: list[float], max_bad_rays: int
):
    """Per ray, the same t values (float32 tolerance); a ray may differ in count only by a last sample that
    lies within rounding of the exit distance (at most ``max_bad_rays`` rays may disagree otherwise)."""
    bad = 0
    for g, w, t1 in zip(got, want, t_ends, strict=True):
        m = min(len(g), len(w))
        if abs(len(g) - len(w)) > 1 or not np.allclose(g[:m], w[:m], rtol=1e-5, atol=2e-6):
            bad += 1
        elif len(g) != len(w):
            extra = (g if len(g) > len(w) else w)[-1]
            bad += not abs(extra - t1) < 1e-5 * max(1.0, t1)
    assert bad <= max_bad_rays, f"{bad} rays differ"


@pytest.mark.parametrize("n_cascades, cone", [(1, 0.0), (3, 1 / 256)])
def test_full_grid_equals_dense_marching(device, n_cascades, cone):
    o, d = _rays(64, 1, n_cascades, inside=0.25)
    s = march_rays(
        wp.array(o, device=device),
        wp.array(d, device=device),
        create_bitfield(n_cascades, occupied=True, device=device),
        n_cascades=n_cascades,
        cone_angle=cone,
        seed=5,
    )
    want = ref.dense_march_ref(o, d, n_cascades=n_cascades, cone_angle=cone, seed=5)
    exits = [
        ref.ray_aabb_intersect(a, b, *default_aabb(n_cascades))[1]
        for a, b in zip(o.astype(np.float64), d.astype(np.float64), strict=True)
    ]
    _assert_same_samples(_per_ray(s), want, exits, max_bad_rays=0)
    assert s.n_samples == s.n_samples_requested == sum(len(w) for w in want) > 64 * 50


def test_sparse_grid_matches_reference(device):
    k, cone = 2, 1 / 256
    rng = np.random.default_rng(2)
    cubes = (rng.random((k, 16, 16, 16)) < 0.15).repeat(8, 1).repeat(8, 2).repeat(8, 3)
    bits = oref.cubes_to_bitfield(cubes)
    o, d = _rays(64, 3, k, inside=0.25)
    s = march_rays(
        wp.array(o, device=device),
        wp.array(d, device=device),
        wp.array(bits, device=device),
        n_cascades=k,
        cone_angle=cone,
        seed=9,
    )
    want = ref.march_rays_ref(o, d, bits, n_cascades=k, cone_angle=cone, seed=9)
    exits = [
        ref.ray_aabb_intersect(a, b, *default_aabb(k))[1]
        for a, b in zip(o.astype(np.float64), d.astype(np.float64), strict=True)
    ]
    # a float32 / float64 tie at a voxel boundary may move one ray by a sample; allow a single such ray
    _assert_same_samples(_per_ray(s), want["t_starts"], exits, max_bad_rays=1)
    _assert_same_samples(_per_ray(s, "t_ends"), want["t_ends"], [math.inf] * 64, max_bad_rays=1)
    dense = sum(len(x) for x in ref.dense_march_ref(o, d, n_cascades=k, cone_angle=cone, seed=9))
    assert 0 < s.n_samples < 0.5 * dense  # empty space is skipped


@pytest.mark.parametrize("n_cascades, cone", [(1, 0.0), (2, 1 / 256)])
def test_no_sample_in_empty_space_and_all_on_the_dense_lattice(device, n_cascades, cone):
    bf = _sphere_bitfield(n_cascades, device)
    bits = bf.numpy()
    o, d = _rays(200, 4, n_cascades, inside=0.1, aim=0.2)
    s = march_rays(
        wp.array(o, device=device),
        wp.array(d, device=device),
        bf,
        n_cascades=n_cascades,
        cone_angle=cone,
        seed=11,
    )
    assert s.n_samples > 1000
    pos = s.positions.numpy()
    dt = s.t_ends.numpy().astype(np.float64) - s.t_starts.numpy()
    mips = oref.mip_from_dt(dt, pos, n_cascades - 1)
    occ = oref.grid_occupied_at(pos, bits, mips, dtype=np.float32)
    # t_end - t_start is the kernel's dt only up to float32 rounding of t_end: re-check near mip boundaries
    for f in (1 - 1e-4, 1 + 1e-4):
        occ |= oref.grid_occupied_at(
            pos, bits, oref.mip_from_dt(dt * f, pos, n_cascades - 1), dtype=np.float32
        )
    assert occ.all(), f"{(~occ).sum()} samples in empty cells"
    # the sampled cells of cascade 0 hug the ball (radius 0.2, cells of 1/128 plus the jitter-free sampling)
    fine = mips == 0
    assert np.linalg.norm(pos[fine] - 0.5, axis=1).max() < 0.2 + 2 * math.sqrt(3) / 128
    # skipping never moves a ray off its jittered lattice: every sample is a dense-marching sample
    dense = ref.dense_march_ref(o, d, n_cascades=n_cascades, cone_angle=cone, seed=11)
    for g, w in zip(_per_ray(s), dense, strict=True):
        if len(g):
            j = np.searchsorted(w, g)
            near = np.minimum(
                np.abs(w[np.clip(j, 0, len(w) - 1)] - g), np.abs(w[np.clip(j - 1, 0, len(w) - 1)] - g)
            )
            assert near.max() < 2e-6 * max(1.0, g.max())


def test_layout_positions_and_steps(device):
    k, cone = 2, 1 / 256
    o, d = _rays(100, 5, k, inside=0.2)
    s = march_rays(
        wp.array(o, device=device),
        wp.array(d, dtype=wp.vec3, device=device),
        _sphere_bitfield(k, device),
        n_cascades=k,
        cone_angle=cone,
        seed=1,
    )
    info = s.packed_info.numpy()
    ri = s.ray_indices.numpy()
    ts, te = s.t_starts.numpy(), s.t_ends.numpy()
    assert info[0, 0] == 0 and np.all(info[1:, 0] == np.cumsum(info[:, 1])[:-1])
    np.testing.assert_array_equal(ri, np.repeat(np.arange(100), info[:, 1]))
    assert s.positions.numpy().shape == (s.n_samples, 3) and s.directions.numpy().shape == (s.n_samples, 3)
    np.testing.assert_allclose(s.positions.numpy(), o[ri] + ts[:, None] * d[ri], rtol=0, atol=2e-6)
    np.testing.assert_array_equal(s.directions.numpy(), d[ri])
    st = ref.Stepping(cone)
    np.testing.assert_allclose(te - ts, [st.dt(float(t)) for t in ts], rtol=2e-3)
    for a, c in info:
        seg_s, seg_e = ts[a : a + c], te[a : a + c]
        assert np.all(seg_s[1:] >= seg_e[:-1] - 1e-6)  # increasing, non-overlapping
    assert s.n_rays_kept == 100


def test_max_samples_per_ray(device):
    o, d = _rays(40, 6, 1)
    full = create_bitfield(1, occupied=True, device=device)
    args = (wp.array(o, device=device), wp.array(d, device=device), full)
    s_all = march_rays(*args, n_cascades=1, seed=2)
    s_cap = march_rays(*args, n_cascades=1, seed=2, max_samples_per_ray=10)
    counts = s_all.packed_info.numpy()[:, 1]
    np.testing.assert_array_equal(s_cap.packed_info.numpy()[:, 1], np.minimum(counts, 10))
    for g, w in zip(_per_ray(s_cap), _per_ray(s_all), strict=True):
        np.testing.assert_array_equal(g, w[:10])
    assert counts.max() > 10 and march_rays(*args, n_cascades=1, max_samples_per_ray=0).n_samples == 0


def test_sample_budget_keeps_a_prefix_of_rays(device):
    o, d = _rays(50, 7, 1)
    full = create_bitfield(1, occupied=True, device=device)
    args = (wp.array(o, device=device), wp.array(d, device=device), full)
    s_all = march_rays(*args, n_cascades=1, seed=3)
    total = s_all.n_samples
    s = march_rays(*args, n_cascades=1, seed=3, max_total_samples=total // 2)
    counts = s_all.packed_info.numpy()[:, 1]
    n_kept = int(np.searchsorted(np.cumsum(counts), total // 2, side="right"))
    assert s.n_rays_kept == n_kept and 0 < n_kept < 50
    assert s.n_samples == counts[:n_kept].sum() <= total // 2
    assert s.n_samples_requested == total
    info = s.packed_info.numpy()
    np.testing.assert_array_equal(info[:n_kept], s_all.packed_info.numpy()[:n_kept])
    np.testing.assert_array_equal(info[n_kept:, 1], 0)
    np.testing.assert_array_equal(info[n_kept:, 0], s.n_samples)
    np.testing.assert_array_equal(s.t_starts.numpy(), s_all.t_starts.numpy()[: s.n_samples])
    want = ref.march_rays_ref(o, d, None, n_cascades=1, seed=3, max_total_samples=total // 2)
    assert want["n_rays_kept"] == n_kept and want["n_samples_requested"] == total
    assert march_rays(*args, n_cascades=1, seed=3, max_total_samples=0).n_samples == 0
    assert march_rays(*args, n_cascades=1, seed=3, max_total_samples=total).n_rays_kept == 50


def test_jitter_seed_and_near_far(device):
    k = 1
    o = np.array([[0.5, 0.5, 0.5], [-1.0, 0.3, 0.4], [0.2, 0.2, 0.2]], np.float32)
    d = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)  # axis-aligned on purpose
    full = create_bitfield(k, occupied=True, device=device)
    args = (wp.array(o, device=device), wp.array(d, device=device), full)
    s0 = march_rays(*args, n_cascades=k, jitter=False)
    first = [t[0] for t in _per_ray(s0)]
    np.testing.assert_allclose(first, [0.0, 1.0, 0.0], atol=1e-6)  # entry points
    # floor(length / (sqrt(3) / 1024)) + 1 samples: lengths 0.5, 1 and 0.8
    np.testing.assert_array_equal(s0.packed_info.numpy()[:, 1], [296, 592, 473])
    a, b = march_rays(*args, n_cascades=k, seed=1), march_rays(*args, n_cascades=k, seed=1)
    np.testing.assert_array_equal(a.t_starts.numpy(), b.t_starts.numpy())
    c = march_rays(*args, n_cascades=k, seed=2)
    starts_a, starts_c = [t[0] for t in _per_ray(a)], [t[0] for t in _per_ray(c)]
    assert all(0 < x - f < MIN_CONE_STEPSIZE for x, f in zip(starts_a, first, strict=True))
    assert starts_a != starts_c
    s = march_rays(*args, n_cascades=k, t_min=1.2, t_max=1.5, jitter=False)
    t = s.t_starts.numpy()
    assert t.min() >= 1.2 - 1e-6 and t.max() <= 1.5 and s.packed_info.numpy()[:, 1].tolist()[0] == 0


def test_rays_missing_the_box_and_degenerate_input(device):
    o = np.array([[5.0, 5.0, 5.0], [-1.0, 2.0, 0.5], [0.5, 0.5, 0.5]], np.float32)
    d = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [np.nan, 0.0, 0.0]], np.float32)
    s = march_rays(
        wp.array(o, device=device),
        wp.array(d, device=device),
        create_bitfield(1, occupied=True, device=device),
        n_cascades=1,
    )
    assert s.n_samples == 0 and s.packed_info.numpy()[:, 1].tolist() == [0, 0, 0]
    e = march_rays(
        wp.zeros((0, 3), dtype=wp.float32, device=device),
        wp.zeros((0, 3), dtype=wp.float32, device=device),
        create_bitfield(1, device=device),
        n_cascades=1,
    )
    assert e.n_samples == 0 and e.packed_info.shape == (0, 2)


def test_split_launch_matches_single_launches(device):
    k = 2
    o, d = _rays(5000, 8, k)  # >= 2 * 2048 rays: the CPU launch is split across threads
    bf = _sphere_bitfield(k, device, radius=0.3)
    whole = march_rays(wp.array(o, device=device), wp.array(d, device=device), bf, n_cascades=k, jitter=False)
    parts = [
        march_rays(
            wp.array(o[a:b], device=device), wp.array(d[a:b], device=device), bf, n_cascades=k, jitter=False
        )
        for a, b in ((0, 2000), (2000, 5000))
    ]
    np.testing.assert_array_equal(whole.t_starts.numpy(), np.concatenate([p.t_starts.numpy() for p in parts]))
    np.testing.assert_array_equal(
        whole.packed_info.numpy()[:, 1], np.concatenate([p.packed_info.numpy()[:, 1] for p in parts])
    )


def test_defaults_and_argument_checks(device):
    assert default_cone_angle(1) == 0.0 and default_cone_angle(3) == 1 / 256
    assert default_aabb(3) == ((-1.5,) * 3, (2.5,) * 3)
    o = wp.zeros((4, 3), dtype=wp.float32, device=device)
    bf = create_bitfield(1, device=device)
    with pytest.raises(KernelArgumentError):
        march_rays(o, wp.zeros((3, 3), dtype=wp.float32, device=device), bf, n_cascades=1)
    with pytest.raises(KernelArgumentError):
        march_rays(o, o, bf, n_cascades=2)  # bitfield of one cascade
    with pytest.raises(KernelArgumentError):
        march_rays(o, o, bf, n_cascades=1, aabb=((0, 0, 0), (1, -1, 1)))
    with pytest.raises(KernelArgumentError):
        march_rays(o, o, bf, n_cascades=1, cone_angle=-1.0)
    with pytest.raises(KernelArgumentError):
        march_rays(o, o, bf, n_cascades=1, max_total_samples=-1)


def test_adapt_rays_per_batch():
    # 4096 rays gave 100k samples; 2^18 wanted -> 10737.4 rays -> next multiple of 256
    assert adapt_rays_per_batch(4096, 100_000, 1 << 18) == 10752
    assert adapt_rays_per_batch(4096, 10, 1 << 18) == 1 << 18  # capped
    assert adapt_rays_per_batch(4096, 0, 1 << 18) == 4096  # nothing measured: keep
    assert adapt_rays_per_batch(1000, 10**9, 1000) == 256  # never below one granule
    with pytest.raises(KernelArgumentError):
        adapt_rays_per_batch(10, 10, 0)
