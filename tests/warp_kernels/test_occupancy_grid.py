"""Occupancy grid: indexing helpers, update samples, decay/max update and bitfield vs the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import occupancy_grid_ref as ref
from warp_kernels.device import KernelArgumentError
from warp_kernels.occupancy_grid import (
    MIN_CONE_STEPSIZE,
    NERF_GRID_N_CELLS,
    cascaded_grid_idx_at,
    compute_occupancy_bitfield,
    create_bitfield,
    create_density_grid,
    generate_all_cell_samples,
    generate_grid_samples,
    grid_cell_indices,
    grid_occupied_at,
    grid_update_sample_counts,
    mip_from_dt,
    mip_from_pos,
    morton3d,
    morton3d_invert,
    n_cascades_for_aabb_scale,
    refresh_occupancy_grid,
    update_occupancy_grid,
)


@wp.kernel
def _probe_kernel(
    pos: wp.array(dtype=wp.vec3),
    dts: wp.array(dtype=float),
    mips: wp.array(dtype=int),
    bitfield: wp.array(dtype=wp.uint8),
    max_cascade: int,
    out: wp.array2d(dtype=int),
):
    i = wp.tid()
    p = pos[i]
    out[i, 0] = cascaded_grid_idx_at(p, mips[i])
    out[i, 1] = mip_from_pos(p, max_cascade)
    out[i, 2] = mip_from_dt(dts[i], p, max_cascade)
    out[i, 3] = int(grid_occupied_at(p, bitfield, mips[i]))


@wp.kernel
def _morton_kernel(xyz: wp.array2d(dtype=int), out: wp.array2d(dtype=int)):
    i = wp.tid()
    m = morton3d(xyz[i, 0], xyz[i, 1], xyz[i, 2])
    out[i, 0] = m
    out[i, 1] = morton3d_invert(m)
    out[i, 2] = morton3d_invert(m >> 1)
    out[i, 3] = morton3d_invert(m >> 2)


def test_morton_matches_reference(device):
    xyz = np.random.default_rng(0).integers(0, 128, size=(1000, 3))
    out = wp.zeros((1000, 4), dtype=int, device=device)
    wp.launch(
        _morton_kernel, dim=1000, inputs=[wp.array(xyz.astype(np.int32), device=device), out], device=device
    )
    got = out.numpy()
    np.testing.assert_array_equal(got[:, 0], ref.morton3d(xyz[:, 0], xyz[:, 1], xyz[:, 2]))
    np.testing.assert_array_equal(got[:, 1:], xyz)
    assert ref.morton3d(1, 0, 0) == 1 and ref.morton3d(0, 1, 0) == 2 and ref.morton3d(0, 0, 1) == 4
    assert ref.morton3d(127, 127, 127) == NERF_GRID_N_CELLS - 1


def test_index_and_mip_helpers_match_reference(device):
    rng = np.random.default_rng(1)
    n = 4000
    scale = 2.0 ** rng.integers(-3, 4, size=(n, 1))
    pos = (0.5 + rng.uniform(-1, 1, size=(n, 3)) * scale).astype(np.float32)
    # exact cascade boundaries and the centre
    pos[:6] = np.array(
        [
            [0.5, 0.5, 0.5],
            [1.0, 0.5, 0.5],
            [0.0, 0.5, 0.5],
            [0.5, 1.5, 0.5],
            [0.5, 0.5, -0.5],
            [0.75, 0.25, 0.5],
        ],
        np.float32,
    )
    dts = (2.0 ** rng.uniform(-12, 1, size=n)).astype(np.float32)
    dts[:4] = [1 / 256, 1 / 128, 1 / 512, 0.5]
    mips = rng.integers(0, 4, size=n)
    bits = rng.integers(0, 256, size=4 * NERF_GRID_N_CELLS // 8).astype(np.uint8)
    out = wp.zeros((n, 4), dtype=int, device=device)
    wp.launch(
        _probe_kernel,
        dim=n,
        inputs=[
            wp.array(pos, dtype=wp.vec3, device=device),
            wp.array(dts, device=device),
            wp.array(mips.astype(np.int32), device=device),
            wp.array(bits, device=device),
            3,
            out,
        ],
        device=device,
    )
    got = out.numpy()
    np.testing.assert_array_equal(got[:, 0], ref.cascaded_grid_idx_at(pos, mips, dtype=np.float32))
    np.testing.assert_array_equal(got[:, 1], ref.mip_from_pos(pos, 3))
    np.testing.assert_array_equal(got[:, 2], ref.mip_from_dt(dts, pos, 3))
    np.testing.assert_array_equal(got[:, 3], ref.grid_occupied_at(pos, bits, mips, dtype=np.float32))
    assert (got[:, 0] == -1).any() and (got[:, 3] == 1).any()
    # by hand: [0.25, 0.5) -> cascade 0, [0.5, 1) -> 1 (frexp exponent + 1); dt*256 in [1, 2) -> cascade >= 1
    assert got[:6, 1].tolist() == [0, 1, 1, 2, 2, 0]
    # dt*256: 1 -> exponent 1; 2 -> 2; 0.5 < 1 -> mip_from_pos (1 for x = 0); 128 -> 8, clamped to 3
    assert got[:4, 2].tolist() == [1, 2, 1, 3]


def test_n_cascades_and_schedule():
    assert [n_cascades_for_aabb_scale(s) for s in (1, 2, 3, 4, 16, 128)] == [1, 2, 3, 3, 5, 8]
    assert grid_update_sample_counts(2, warmup=True) == (2 * NERF_GRID_N_CELLS, 0)
    assert grid_update_sample_counts(2, warmup=False) == (NERF_GRID_N_CELLS // 2, NERF_GRID_N_CELLS // 2)


def _cell_offsets(pos: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Offset of each position inside its claimed cell, in cell units (expected in [0, 1])."""
    level, idx = cells // NERF_GRID_N_CELLS, cells % NERF_GRID_N_CELLS
    xyz = np.stack(
        [ref.morton3d_invert(idx), ref.morton3d_invert(idx >> 1), ref.morton3d_invert(idx >> 2)], -1
    )
    return ((pos.astype(np.float64) - 0.5) / 2.0 ** level[:, None] + 0.5) * 128 - xyz


def test_all_cell_samples(device):
    pos, cells = generate_all_cell_samples(2, seed=3, device=device)
    p, c = pos.numpy(), cells.numpy()
    assert p.shape == (2 * NERF_GRID_N_CELLS, 3)
    np.testing.assert_array_equal(c, np.arange(2 * NERF_GRID_N_CELLS))
    off = _cell_offsets(p, c)
    assert off.min() >= -1e-4 and off.max() <= 1 + 1e-4
    want_p, _ = ref.generate_all_cell_samples_ref(1, seed=3)
    np.testing.assert_allclose(p[:NERF_GRID_N_CELLS], want_p, rtol=0, atol=1e-6)
    centres, _ = generate_all_cell_samples(1, seed=3, jitter=False, device=device)
    np.testing.assert_allclose(_cell_offsets(centres.numpy(), np.arange(NERF_GRID_N_CELLS)), 0.5, atol=1e-4)


def test_grid_samples_match_reference_and_prefer_occupied_cells(device):
    k = 3
    rng = np.random.default_rng(4)
    grid = np.zeros(k * NERF_GRID_N_CELLS, np.float32)
    occupied = rng.random(grid.size) < 0.1
    grid[occupied] = 0.5
    grid[~occupied & (rng.random(grid.size) < 0.3)] = -1.0  # masked cells
    g = wp.array(grid, device=device)
    n = 20000
    pos, cells = generate_grid_samples(
        g, n_cascades=k, n_uniform=n, n_nonuniform=n, step=5, seed=6, device=device
    )
    want_p, want_c = ref.generate_grid_samples_ref(grid, k, n, n, step=5, seed=6)
    c = cells.numpy()
    np.testing.assert_array_equal(c, want_c)
    np.testing.assert_allclose(pos.numpy(), want_p, rtol=0, atol=1e-5)
    off = _cell_offsets(pos.numpy(), c)
    assert off.min() >= -1e-4 and off.max() <= 1 + 1e-4
    # every cascade is drawn; uniform samples avoid masked cells, non-uniform ones find occupied cells
    assert set(np.unique(c // NERF_GRID_N_CELLS)) == {0, 1, 2}
    assert (grid[c[:n]] < 0).mean() < 0.01  # 0.3^10 chance to give up
    assert (grid[c[n:]] > 0.01).mean() > 0.6  # 1 - 0.9^10 = 0.65
    # the update counter moves the hashed cells
    _, cells2 = generate_grid_samples(
        g, n_cascades=k, n_uniform=n, n_nonuniform=0, step=6, seed=6, device=device
    )
    assert (cells2.numpy() != c[:n]).mean() > 0.9


def test_update_decays_then_takes_the_max(device):
    k = 2
    rng = np.random.default_rng(7)
    grid = (rng.random(k * NERF_GRID_N_CELLS) * 0.05).astype(np.float32)
    grid[rng.random(grid.size) < 0.05] = -1.0
    m = 50000
    cells = rng.integers(0, 3000, size=m).astype(np.int32)  # many duplicates
    cells[:10] = -5  # ignored
    sig = rng.uniform(0, 40, size=m).astype(np.float32)
    g = wp.array(grid, device=device)
    res = update_occupancy_grid(
        g, wp.array(cells, device=device), wp.array(sig, device=device), n_cascades=k, decay=0.95
    )
    assert res.ptr == g.ptr
    want = ref.update_occupancy_grid_ref(grid, cells, sig, decay=0.95)
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-6, atol=0)
    # by hand: a cell hit once with sigma = 10 from 0 -> 10 * sqrt(3) / 1024; an untouched cell just decays
    g2 = wp.zeros(NERF_GRID_N_CELLS, dtype=wp.float32, device=device)
    update_occupancy_grid(
        g2,
        wp.array([7, 7], dtype=wp.int32, device=device),
        wp.array([10.0, 4.0], dtype=wp.float32, device=device),
        n_cascades=1,
    )
    update_occupancy_grid(
        g2,
        wp.zeros(0, dtype=wp.int32, device=device),
        wp.zeros(0, dtype=wp.float32, device=device),
        n_cascades=1,
        decay=0.5,
    )
    assert np.isclose(g2.numpy()[7], 0.5 * 10 * MIN_CONE_STEPSIZE, rtol=1e-6)


def test_bitfield_matches_reference(device):
    k = 3
    rng = np.random.default_rng(8)
    # multiples of 2^-10 so no value sits within rounding of the threshold
    grid = (rng.integers(-2, 14, size=k * NERF_GRID_N_CELLS) / 1024.0).astype(np.float32)
    bf, mean = compute_occupancy_bitfield(wp.array(grid, device=device), n_cascades=k)
    want_bf, want_mean = ref.compute_occupancy_bitfield_ref(grid, k)
    assert np.isclose(mean.numpy()[0], want_mean, rtol=1e-6)
    assert want_mean < 0.01  # the mean is the threshold here
    np.testing.assert_array_equal(bf.numpy(), want_bf)
    # high mean: the threshold is capped at 0.01
    grid2 = np.full(NERF_GRID_N_CELLS, 0.5, np.float32)
    grid2[:1000] = 0.009
    bf2, mean2 = compute_occupancy_bitfield(wp.array(grid2, device=device), n_cascades=1)
    assert np.isclose(mean2.numpy()[0], 0.5, rtol=1e-3)
    np.testing.assert_array_equal(
        np.unpackbits(bf2.numpy(), bitorder="little"), np.arange(NERF_GRID_N_CELLS) >= 1000
    )


def test_single_hot_cell_propagates_to_coarse_cascades(device):
    k = 4
    grid = np.zeros(k * NERF_GRID_N_CELLS, np.float32)
    xyz = np.array([77, 3, 120])
    grid[ref.morton3d(*xyz)] = 1.0
    out = create_bitfield(k, occupied=True, device=device)  # overwritten entirely
    bf, _ = compute_occupancy_bitfield(wp.array(grid, device=device), n_cascades=k, bitfield=out)
    assert bf.ptr == out.ptr
    cubes = ref.bitfield_to_cubes(bf.numpy(), k)
    assert cubes.sum() == k
    centre = (xyz + 0.5) / 128
    for level in range(k):
        cell = np.floor(((centre - 0.5) / 2**level + 0.5) * 128).astype(int)
        assert cubes[level][tuple(cell)], level


def test_refresh_with_a_density_callback(device):
    k = 2
    seen = []

    def density_fn(positions: wp.array) -> wp.array:
        seen.append((positions.shape, positions.dtype, positions.device))
        p = positions.numpy()
        return wp.array((np.linalg.norm(p - 0.5, axis=1) < 0.25).astype(np.float32) * 50.0, device=device)

    grid = create_density_grid(k, device=device)
    bf, mean = refresh_occupancy_grid(grid, density_fn, n_cascades=k, step=0, seed=1, warmup=True)
    assert seen == [((k * NERF_GRID_N_CELLS, 3), wp.float32, wp.get_device(device))]
    pos, _ = ref.generate_all_cell_samples_ref(k, seed=1)
    dens = (np.linalg.norm(pos.astype(np.float32) - 0.5, axis=1) < 0.25) * 50.0
    want_grid = ref.update_occupancy_grid_ref(np.zeros(k * NERF_GRID_N_CELLS), np.arange(dens.size), dens)
    want_bf, _ = ref.compute_occupancy_bitfield_ref(want_grid.astype(np.float32), k)
    # jittered positions right at the sphere may round differently: compare cell by cell with a little slack
    diff = np.unpackbits(bf.numpy() ^ want_bf).sum()
    assert diff <= 10
    occ = ref.bitfield_to_cubes(bf.numpy(), k)
    assert occ[0][64, 64, 64] and not occ[0][0, 0, 0] and occ[1][64, 64, 64]
    # a later round samples a subset and lets the rest decay
    bf2, _ = refresh_occupancy_grid(grid, density_fn, n_cascades=k, step=1, seed=2, warmup=False, decay=0.5)
    assert seen[-1][0] == (NERF_GRID_N_CELLS // 2 * k, 3)
    assert ref.bitfield_to_cubes(bf2.numpy(), k)[0][64, 64, 64]


def test_argument_checks(device):
    with pytest.raises(KernelArgumentError):
        create_density_grid(0, device=device)
    with pytest.raises(KernelArgumentError):
        create_density_grid(9, device=device)
    g = create_density_grid(1, device=device)
    with pytest.raises(KernelArgumentError):
        compute_occupancy_bitfield(g, n_cascades=2)
    with pytest.raises(KernelArgumentError):
        update_occupancy_grid(
            g,
            wp.zeros(3, dtype=wp.int32, device=device),
            wp.zeros(2, dtype=wp.float32, device=device),
            n_cascades=1,
        )
    with pytest.raises(KernelArgumentError):
        update_occupancy_grid(
            g,
            wp.zeros(2, dtype=wp.int32, device=device),
            wp.zeros(2, dtype=wp.float32, device=device),
            n_cascades=1,
            decay=1.5,
        )
    with pytest.raises(KernelArgumentError):
        n_cascades_for_aabb_scale(0)


def test_mark_untrained_cells_matches_reference(device):
    from tests.reference.occupancy_grid_ref import mark_untrained_cells as mark_ref
    from warp_kernels.occupancy_grid import create_density_grid, mark_untrained_cells

    # two cameras at the scene centre's side looking at it (internal convention: columns right, down, forward)
    def look_at(eye):
        eye = np.asarray(eye, float)
        fwd = np.array([0.5, 0.5, 0.5]) - eye
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        return np.concatenate([np.stack([right, down, fwd], axis=1), eye[:, None]], axis=1)

    c2w = np.stack([look_at([0.5, -1.5, 0.5]), look_at([2.5, 0.5, 0.7])]).astype(np.float32)
    params = np.array([[120.0, 120.0, 16.0, 12.0], [90.0, 90.0, 16.0, 16.0]], np.float32)
    sizes = np.array([[32, 24], [32, 32]], np.int32)
    grid = create_density_grid(2, device=device)
    grid.fill_(0.25)
    mark_untrained_cells(grid, n_cascades=2, c2w=wp.array(c2w, device=device),
                         cam_params=wp.array(params, device=device), sizes=wp.array(sizes, device=device))
    got = grid.numpy()
    want = mark_ref(np.full(2 * 128**3, 0.25), 2, c2w, params, sizes)
    assert 0.05 < (got < 0).mean() < 0.95  # both seen and unseen cells exist
    mismatch = np.mean((got < 0) != (want < 0))
    assert mismatch < 1e-4, mismatch  # float32 vs float64 only flips cells exactly on a frustum boundary
    np.testing.assert_array_equal(got[got >= 0], 0.25)


def test_grid_cell_indices_match_reference():
    rng = np.random.default_rng(21)
    pos = np.concatenate([rng.uniform(-1.6, 2.6, (2000, 3)), [[np.nan, 0.5, 0.5], [9.0, 0.5, 0.5]]]).astype(np.float32)
    got = grid_cell_indices(wp.array(pos, device="cpu"), n_cascades=3).numpy()
    mips = ref.mip_from_pos(pos, 2)
    idx = ref.cascaded_grid_idx_at(pos, mips, dtype=np.float32)
    expect = np.where(idx >= 0, mips * NERF_GRID_N_CELLS + idx, -1)
    np.testing.assert_array_equal(got, expect)
    assert got[-2] == -1 and got[-1] == -1 and (got[:-2] >= 0).mean() > 0.5
