"""Hash encoding: layout arithmetic, forward/backward vs the float64 reference, finite differences, invariants."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import hash_encoding_ref as ref
from warp_kernels.device import DeviceMismatchError, KernelArgumentError
from warp_kernels.hash_encoding import (
    FORWARD_SCHEDULE_ENV,
    HashGridLayout,
    forward_schedule,
    hash_encode,
    hash_encode_backward,
    hash_encode_input_grad,
    init_hash_grid_params,
)


def _away_from_faces(layout: HashGridLayout, x: np.ndarray, margin: float) -> np.ndarray:
    """Rows of x whose grid position is at least ``margin`` (in cells) from a face at every level."""
    keep = np.ones(len(x), dtype=bool)
    for s in layout.scales.astype(np.float64):
        f = (x * s + 0.5) % 1.0
        keep &= np.all((f > margin) & (f < 1 - margin), axis=1)
    return x[keep]


def test_layout_counts_and_offsets_by_hand():
    # 2D, N_min 16, b 1.5, T 2^10: s = 15, 23, 35, 53 -> res 16, 24, 36, 54 -> res^2 256, 576, 1296, 2916
    lay = HashGridLayout(n_dims=2, n_levels=4, n_features_per_level=2, log2_hashmap_size=10,
                         base_resolution=16, per_level_scale=1.5)
    assert lay.resolutions.tolist() == [16, 24, 36, 54]
    assert lay.hashed.tolist() == [False, False, True, True]
    assert lay.level_sizes.tolist() == [256, 576, 1024, 1024]
    assert lay.offsets.tolist() == [0, 256, 832, 1856, 2880]
    assert lay.n_params == 2880 * 2
    # 3D: s = 4, 9, 19 -> res 5 -> 125 entries rounded up to 128 (multiple of 8); res 10 -> 1000; res 20 -> 8000 > 2^12
    lay3 = HashGridLayout(n_dims=3, n_levels=3, n_features_per_level=4, log2_hashmap_size=12,
                          base_resolution=5, per_level_scale=2.0)
    assert lay3.resolutions.tolist() == [5, 10, 20]
    assert lay3.hashed.tolist() == [False, False, True]
    assert lay3.level_sizes.tolist() == [128, 1000, 4096]
    assert lay3.offsets.tolist() == [0, 128, 1128, 5224]
    assert lay3.n_params == 5224 * 4
    assert lay3.n_output_dims == 12


def test_layout_validation():
    with pytest.raises(ValueError, match="n_features_per_level"):
        HashGridLayout(n_features_per_level=3)
    with pytest.raises(ValueError, match="n_dims"):
        HashGridLayout(n_dims=4)
    with pytest.raises(ValueError, match="interpolation"):
        HashGridLayout(interpolation="Cubic")


@pytest.mark.parametrize("n_dims", [2, 3])
@pytest.mark.parametrize("n_features", [1, 2, 4, 8])
def test_forward_and_backward_match_reference(device, n_dims, n_features):
    # small T so that finer levels are hashed with collisions, coarse ones dense
    lay = HashGridLayout(n_dims=n_dims, n_levels=4, n_features_per_level=n_features, log2_hashmap_size=8,
                         base_resolution=4, per_level_scale=2.0)
    assert lay.hashed.any() and not lay.hashed.all()
    rng = np.random.default_rng(n_dims * 10 + n_features)
    params = rng.normal(size=lay.n_params).astype(np.float32)
    x = rng.random((300, n_dims)).astype(np.float32)
    x[0] = 0.0
    x[1] = 1.0  # the upper boundary exercises tcnn's modulo wrap of the +1 corner on dense levels
    x64 = x.astype(np.float64)

    out = hash_encode(lay, wp.array(x, device=device), wp.array(params, device=device)).numpy()
    np.testing.assert_allclose(out, ref.encode(lay, x64, params), rtol=1e-5, atol=1e-5)

    grad_out = rng.normal(size=out.shape).astype(np.float32)
    gp = wp.zeros(lay.n_params, device=device)
    hash_encode_backward(lay, wp.array(x, device=device), wp.array(grad_out, device=device), gp)
    np.testing.assert_allclose(gp.numpy(), ref.encode_backward(lay, x64, grad_out), rtol=1e-5, atol=1e-5)

    xs = _away_from_faces(lay, x64, 1e-3).astype(np.float32)
    go = grad_out[: len(xs)]
    gx = hash_encode_input_grad(lay, wp.array(xs, device=device), wp.array(params, device=device),
                                wp.array(go, device=device)).numpy()
    np.testing.assert_allclose(gx, ref.encode_input_grad(lay, xs.astype(np.float64), params, go),
                               rtol=1e-4, atol=1e-3)
    if lay.n_levels > 1:  # the coarsest levels only = the finer levels' output gradients zeroed
        coarse = go.copy()
        coarse[:, lay.n_features_per_level:] = 0
        gx1 = hash_encode_input_grad(lay, wp.array(xs, device=device), wp.array(params, device=device),
                                     wp.array(go, device=device), n_levels=1).numpy()
        np.testing.assert_allclose(gx1, ref.encode_input_grad(lay, xs.astype(np.float64), params, coarse),
                                   rtol=1e-4, atol=1e-3)
        with pytest.raises(KernelArgumentError):
            hash_encode_input_grad(lay, wp.array(xs, device=device), wp.array(params, device=device),
                                   wp.array(go, device=device), n_levels=lay.n_levels + 1)


def test_hashed_level_really_collides():
    lay = HashGridLayout(n_dims=2, n_levels=2, n_features_per_level=2, log2_hashmap_size=6,
                         base_resolution=16, per_level_scale=2.0)
    assert lay.hashed.all()
    g = np.stack(np.meshgrid(np.arange(33), np.arange(33), indexing="ij"), -1).reshape(-1, 2)
    idx = ref.grid_indices(lay, 1, g)
    assert len(np.unique(idx)) == 64  # 1089 grid points share 64 entries


def test_hash_matches_tcnn_formula_on_known_corner():
    lay = HashGridLayout(n_dims=3, n_levels=1, n_features_per_level=2, log2_hashmap_size=4,
                         base_resolution=64, per_level_scale=2.0)
    corner = np.array([[3, 5, 7]])
    expect = ((3 * 1) ^ ((5 * 2654435761) & 0xFFFFFFFF) ^ ((7 * 805459861) & 0xFFFFFFFF)) % 16
    assert ref.grid_indices(lay, 0, corner)[0] == expect
    # and the kernel looks up exactly that entry: a table that is 0 except entry `expect`
    params = np.zeros(lay.n_params, dtype=np.float32)
    params[expect * 2] = 1.0
    s = float(lay.scales[0])
    x = ((corner + 0.0 - 0.5) / s).astype(np.float32)  # exactly on the corner: weight 1 for it
    out = hash_encode(lay, wp.array(x, device="cpu"), wp.array(params, device="cpu")).numpy()
    assert out[0, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("interpolation", ["Linear", "Smoothstep"])
def test_input_gradient_finite_differences(device, interpolation):
    lay = HashGridLayout(n_dims=3, n_levels=2, n_features_per_level=2, log2_hashmap_size=10,
                         base_resolution=4, per_level_scale=1.5, interpolation=interpolation)
    rng = np.random.default_rng(7)
    params = rng.normal(size=lay.n_params).astype(np.float32)
    x = _away_from_faces(lay, rng.random((400, 3)), 0.05)[:40]
    w = rng.normal(size=(len(x), lay.n_output_dims))
    gx = hash_encode_input_grad(lay, wp.array(x.astype(np.float32), device=device),
                                wp.array(params, device=device),
                                wp.array(w.astype(np.float32), device=device)).numpy()
    h = 1e-3 / float(lay.scales[-1])
    fd = np.zeros_like(x)
    for d in range(3):
        e = np.zeros(3)
        e[d] = h
        fd[:, d] = np.sum(w * (ref.encode(lay, x + e, params) - ref.encode(lay, x - e, params)), axis=1) / (2 * h)
    np.testing.assert_allclose(gx, fd, rtol=2e-3, atol=2e-3)


def test_table_gradient_finite_differences(device):
    lay = HashGridLayout(n_dims=2, n_levels=3, n_features_per_level=2, log2_hashmap_size=6,
                         base_resolution=4, per_level_scale=2.0)
    rng = np.random.default_rng(3)
    params = rng.normal(size=lay.n_params).astype(np.float64)
    x = rng.random((50, 2)).astype(np.float32)
    w = rng.normal(size=(50, lay.n_output_dims))
    gp = wp.zeros(lay.n_params, device=device)
    hash_encode_backward(lay, wp.array(x, device=device), wp.array(w.astype(np.float32), device=device), gp)
    gp = gp.numpy()
    for j in rng.choice(lay.n_params, 25, replace=False):
        e = np.zeros(lay.n_params)
        e[j] = 1e-3
        x64 = x.astype(np.float64)
        fd = np.sum(w * (ref.encode(lay, x64, params + e) - ref.encode(lay, x64, params - e))) / 2e-3
        assert gp[j] == pytest.approx(fd, rel=1e-4, abs=1e-4)


def test_interpolation_invariants(device):
    lay = HashGridLayout(n_dims=3, n_levels=3, n_features_per_level=2, log2_hashmap_size=12,
                         base_resolution=4, per_level_scale=2.0)
    rng = np.random.default_rng(5)
    x = wp.array(rng.random((200, 3)).astype(np.float32), device=device)
    # a constant table encodes every point to that constant (weights sum to one)
    const = wp.array(np.full(lay.n_params, 0.25, np.float32), device=device)
    np.testing.assert_allclose(hash_encode(lay, x, const).numpy(), 0.25, atol=1e-6)
    # the backward of an all-ones output gradient distributes exactly one unit of weight per point and level
    gp = wp.zeros(lay.n_params, device=device)
    hash_encode_backward(lay, x, wp.array(np.ones((200, 6), np.float32), device=device), gp)
    g = gp.numpy().reshape(-1, 2)
    for lv in range(3):
        assert g[lay.offsets[lv]:lay.offsets[lv + 1]].sum(axis=0) == pytest.approx([200, 200], rel=1e-5)
    # zero output gradient leaves the table gradient untouched
    before = gp.numpy().copy()
    hash_encode_backward(lay, x, wp.zeros((200, 6), dtype=float, device=device), gp)
    np.testing.assert_array_equal(gp.numpy(), before)


def test_split_launches_match_single_thread(device, monkeypatch):
    lay = HashGridLayout(n_dims=3, n_levels=8, n_features_per_level=2, log2_hashmap_size=12,
                         base_resolution=4, per_level_scale=1.5)
    rng = np.random.default_rng(11)
    x = wp.array(rng.random((9000, 3)).astype(np.float32), device=device)
    p = wp.array(init_hash_grid_params(lay, seed=1, scale=1.0), device=device)
    go = wp.array(rng.normal(size=(9000, 16)).astype(np.float32), device=device)
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("NGP_NUM_THREADS", threads)
        gp = wp.zeros(lay.n_params, device=device)
        hash_encode_backward(lay, x, go, gp)
        results.append((hash_encode(lay, x, p).numpy(), gp.numpy(), hash_encode_input_grad(lay, x, p, go).numpy()))
    for r in results[1:]:
        for a, b in zip(results[0], r, strict=True):
            np.testing.assert_array_equal(a, b)


def test_cpu_forward_schedules_agree_and_one_is_chosen_by_timing(monkeypatch):
    lay = HashGridLayout(n_dims=3, n_levels=6, n_features_per_level=2, log2_hashmap_size=14,
                         base_resolution=8, per_level_scale=1.7)
    rng = np.random.default_rng(12)
    x_np = rng.random((40000, 3)).astype(np.float32)
    x_np[:500] = _away_from_faces(lay, x_np[:5000], 1e-3)[:500]  # float32 vs float64 agree off the cell faces
    x = wp.array(x_np, device="cpu")
    p = wp.array(init_hash_grid_params(lay, seed=2, scale=1.0), device="cpu")
    want = ref.encode(lay, x_np[:500].astype(np.float64), p.numpy().astype(np.float64))
    monkeypatch.setenv("NGP_NUM_THREADS", "2")
    outs = {}
    for mode in ("points", "levels"):
        monkeypatch.setenv(FORWARD_SCHEDULE_ENV, mode)
        assert forward_schedule(lay) == mode
        outs[mode] = hash_encode(lay, x, p).numpy()
    np.testing.assert_array_equal(outs["points"], outs["levels"])
    np.testing.assert_allclose(outs["points"][:500], want, rtol=1e-5, atol=1e-5)
    # measured: the first large calls encode one half per schedule (same output), then one schedule is kept
    monkeypatch.delenv(FORWARD_SCHEDULE_ENV)
    for _ in range(4):
        np.testing.assert_array_equal(hash_encode(lay, x, p).numpy(), outs["points"])
    assert forward_schedule(lay) in ("points", "levels")
    np.testing.assert_array_equal(hash_encode(lay, x, p).numpy(), outs["points"])


def test_bad_arguments_raise_typed_errors(device):
    lay = HashGridLayout(n_dims=3, n_levels=2, log2_hashmap_size=8, base_resolution=4)
    p = wp.zeros(lay.n_params, device=device)
    with pytest.raises(KernelArgumentError, match="positions"):
        hash_encode(lay, wp.zeros((10, 2), dtype=float, device=device), p)
    with pytest.raises(KernelArgumentError, match="params"):
        hash_encode(lay, wp.zeros((10, 3), dtype=float, device=device), wp.zeros(5, device=device))
    with pytest.raises(KernelArgumentError, match="grad_output"):
        hash_encode_backward(lay, wp.zeros((10, 3), dtype=float, device=device),
                             wp.zeros((10, 3), dtype=float, device=device), p)
    if wp.get_cuda_device_count() > 0:
        with pytest.raises(DeviceMismatchError):
            hash_encode(lay, wp.zeros((10, 3), dtype=float, device="cuda:0"), wp.zeros(lay.n_params, device="cpu"))


def test_empty_batch(device):
    lay = HashGridLayout(n_dims=2, n_levels=2, log2_hashmap_size=8, base_resolution=4)
    out = hash_encode(lay, wp.zeros((0, 2), dtype=float, device=device), wp.zeros(lay.n_params, device=device))
    assert out.shape == (0, 4)
