"""Volume rendering: forward and backward vs the float64 reference, finite differences, invariants."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import volume_rendering_ref as ref
from warp_kernels.device import KernelArgumentError
from warp_kernels.volume_rendering import (
    composite_rays,
    composite_rays_backward,
    render_weight_from_density,
    render_weight_from_density_backward,
)


def _batch(counts, seed: int, sigma_max: float = 30.0, gap: bool = False) -> dict:
    """Packed samples: per ray sorted intervals (with small holes between them), sigma, rgb."""
    rng = np.random.default_rng(seed)
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) + (np.arange(counts.size) if gap else 0)
    n_samples = int(counts.sum() + (counts.size if gap else 0))
    ts = np.zeros(n_samples)
    te = np.zeros(n_samples)
    for s, c in zip(starts, counts, strict=True):
        dt = rng.uniform(0.005, 0.05, c)
        holes = rng.uniform(0.0, 0.01, c)
        t = rng.uniform(0.2, 1.0) + np.cumsum(dt + holes) - dt
        ts[s : s + c], te[s : s + c] = t, t + dt
    return dict(
        t_starts=ts.astype(np.float32),
        t_ends=te.astype(np.float32),
        sigmas=rng.uniform(0.0, sigma_max, n_samples).astype(np.float32),
        rgbs=rng.uniform(0.0, 1.0, (n_samples, 3)).astype(np.float32),
        packed_info=np.stack([starts, counts], axis=1).astype(np.int32),
    )


def _wp(b: dict, device) -> dict:
    return {k: wp.array(v, device=device) for k, v in b.items()}


def _f64(b: dict) -> dict:
    return {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in b.items()}


def _args(b: dict) -> tuple:
    return b["t_starts"], b["t_ends"], b["sigmas"], b["rgbs"], b["packed_info"]


@pytest.mark.parametrize("background", [None, (0.2, 0.5, 0.9), "per_ray"])
def test_composite_matches_reference(device, background):
    b = _batch([5, 0, 1, 17, 40, 3], seed=0)
    n = b["packed_info"].shape[0]
    bg_np = np.random.default_rng(1).uniform(size=(n, 3)) if background == "per_ray" else background
    bg_arg = wp.array(bg_np.astype(np.float32), device=device) if background == "per_ray" else background
    out = composite_rays(*_args(_wp(b, device)), background=bg_arg)
    want = ref.composite_ref(
        *_args(_f64(b)), background=None if bg_np is None else np.asarray(bg_np, np.float32)
    )
    np.testing.assert_allclose(out.colors.numpy(), want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.opacities.numpy(), want[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.depths.numpy(), want[2], rtol=1e-5, atol=1e-6)
    assert out.colors.numpy().shape == (n, 3)
    # ray 1 is empty: it shows the background only
    bg_row1 = np.zeros(3) if bg_np is None else (bg_np[1] if background == "per_ray" else np.asarray(bg_np))
    np.testing.assert_allclose(out.colors.numpy()[1], bg_row1, atol=1e-7)
    assert out.opacities.numpy()[1] == 0.0 and out.depths.numpy()[1] == 0.0


def test_weights_invariants_and_reference(device):
    b = _batch([1, 8, 30, 0, 12], seed=2)
    wb = _wp(b, device)
    w, trans, alphas = (a.numpy() for a in render_weight_from_density(*_args(wb)[:3], wb["packed_info"]))
    ww, wt, wa = ref.render_weights_ref(*_args(_f64(b))[:3], b["packed_info"])
    np.testing.assert_allclose(w, ww, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(trans, wt, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(alphas, wa, rtol=1e-5, atol=1e-7)
    out = composite_rays(*_args(wb))
    for r, (s, c) in enumerate(b["packed_info"]):
        np.testing.assert_allclose(w[s : s + c].sum(), out.opacities.numpy()[r], rtol=1e-5, atol=1e-7)
        if c:
            # T_{i+1} = T_i (1 - alpha_i) and w_i = T_i alpha_i
            np.testing.assert_allclose(
                trans[s + 1 : s + c], (trans * (1 - alphas))[s : s + c - 1], rtol=1e-5, atol=1e-8
            )
            assert trans[s] == 1.0
    assert np.all(w >= 0) and np.all(out.opacities.numpy() <= 1.0 + 1e-6)


def test_early_termination(device):
    b = _batch([50, 50], seed=3, sigma_max=400.0)  # optical depth far above -log(1e-4)
    wb = _wp(b, device)
    w, trans, _ = (a.numpy() for a in render_weight_from_density(*_args(wb)[:3], wb["packed_info"]))
    dead = trans < 1e-4
    assert dead.any() and not dead.all()
    np.testing.assert_array_equal(w[dead], 0.0)
    assert np.all(w[~dead & (b["sigmas"] > 0)] > 0)
    # the terminated samples get no gradient either
    g = composite_rays_backward(
        *_args(wb),
        wp.array(np.ones((2, 3), np.float32), device=device),
        wp.array(np.ones(2, np.float32), device=device),
    )
    np.testing.assert_array_equal(g.sigmas.numpy()[dead], 0.0)
    np.testing.assert_array_equal(g.rgbs.numpy()[dead], 0.0)
    # threshold 0 keeps everything (matches the reference without termination)
    w0, _, _ = render_weight_from_density(*_args(wb)[:3], wb["packed_info"], min_transmittance=0.0)
    ww, _, _ = ref.render_weights_ref(*_args(_f64(b))[:3], b["packed_info"], min_transmittance=0.0)
    np.testing.assert_allclose(w0.numpy(), ww, rtol=1e-4, atol=1e-12)
    c = composite_rays(*_args(wb))
    want = ref.composite_ref(*_args(_f64(b)))
    np.testing.assert_allclose(c.colors.numpy(), want[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("with_bg", [False, True])
def test_backward_matches_reference(device, with_bg):
    b = _batch([6, 0, 2, 25, 9], seed=4)
    n = b["packed_info"].shape[0]
    rng = np.random.default_rng(5)
    gc, go, gd = (
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
    )
    bg = rng.uniform(size=(n, 3)).astype(np.float32) if with_bg else None
    g = composite_rays_backward(
        *_args(_wp(b, device)),
        wp.array(gc, device=device),
        wp.array(go, device=device),
        wp.array(gd, device=device),
        background=None if bg is None else wp.array(bg, device=device),
    )
    want = ref.composite_backward_ref(*_args(_f64(b)), gc, go, gd, background=bg)
    np.testing.assert_allclose(g.sigmas.numpy(), want[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g.rgbs.numpy(), want[1], rtol=1e-5, atol=1e-7)
    if with_bg:
        np.testing.assert_allclose(g.background.numpy(), want[2], rtol=1e-5, atol=1e-7)
    else:
        assert g.background is None


def _loss64(b, gc, go, gd, bg, sig):
    c, o, d = ref.composite_ref(b["t_starts"], b["t_ends"], sig, b["rgbs"], b["packed_info"], background=bg)
    return float((c * gc).sum() + (o * go).sum() + (d * gd).sum())


def test_backward_matches_finite_differences(device):
    b = _f64(_batch([4, 3], seed=6, sigma_max=20.0))
    rng = np.random.default_rng(7)
    gc, go, gd, bg = rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=2), rng.uniform(size=(2, 3))
    f32 = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in b.items()}
    g = composite_rays_backward(
        *_args(_wp(f32, device)),
        wp.array(gc.astype(np.float32), device=device),
        wp.array(go.astype(np.float32), device=device),
        wp.array(gd.astype(np.float32), device=device),
        background=wp.array(bg.astype(np.float32), device=device),
    )
    h = 1e-6
    fd = np.zeros(b["sigmas"].size)
    for i in range(fd.size):
        e = np.zeros(fd.size)
        e[i] = h
        fd[i] = (
            _loss64(b, gc, go, gd, bg, b["sigmas"] + e) - _loss64(b, gc, go, gd, bg, b["sigmas"] - e)
        ) / (2 * h)
    np.testing.assert_allclose(g.sigmas.numpy(), fd, rtol=1e-4, atol=1e-6)
    # rgb and background: the loss is linear in them
    fd_rgb = np.zeros_like(b["rgbs"])
    for i in range(b["rgbs"].shape[0]):
        for a in range(3):
            bp = dict(b)
            bp["rgbs"] = b["rgbs"].copy()
            bp["rgbs"][i, a] += 1.0
            fd_rgb[i, a] = _loss64(bp, gc, go, gd, bg, b["sigmas"]) - _loss64(b, gc, go, gd, bg, b["sigmas"])
    np.testing.assert_allclose(g.rgbs.numpy(), fd_rgb, rtol=1e-5, atol=1e-7)
    fd_bg = np.zeros((2, 3))
    for r in range(2):
        for a in range(3):
            bg_p = bg.copy()
            bg_p[r, a] += 1.0
            fd_bg[r, a] = _loss64(b, gc, go, gd, bg_p, b["sigmas"]) - _loss64(b, gc, go, gd, bg, b["sigmas"])
    np.testing.assert_allclose(g.background.numpy(), fd_bg, rtol=1e-5, atol=1e-7)

    # and a coarse check directly on the float32 kernel forward
    def loss32(sig):
        out = composite_rays(
            *_args(_wp(dict(f32, sigmas=sig.astype(np.float32)), device)),
            background=wp.array(bg.astype(np.float32), device=device),
        )
        return float(
            (out.colors.numpy() * gc).sum()
            + (out.opacities.numpy() * go).sum()
            + (out.depths.numpy() * gd).sum()
        )

    h = 1e-2
    fd32 = np.array(
        [(loss32(b["sigmas"] + h * e) - loss32(b["sigmas"] - h * e)) / (2 * h) for e in np.eye(fd.size)]
    )
    np.testing.assert_allclose(g.sigmas.numpy(), fd32, rtol=2e-2, atol=2e-3)


def test_weight_backward_matches_reference_and_finite_differences(device):
    b = _batch([7, 0, 11], seed=8)
    gw = np.random.default_rng(9).normal(size=b["sigmas"].size).astype(np.float32)
    wb = _wp(b, device)
    got = render_weight_from_density_backward(*_args(wb)[:3], wb["packed_info"], wp.array(gw, device=device))
    want = ref.weights_backward_ref(*_args(_f64(b))[:3], b["packed_info"], gw)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-6)
    s64 = b["sigmas"].astype(np.float64)

    def loss(sig):
        return float(ref.render_weights_ref(b["t_starts"], b["t_ends"], sig, b["packed_info"])[0] @ gw)

    h = 1e-6
    fd = np.array([(loss(s64 + h * e) - loss(s64 - h * e)) / (2 * h) for e in np.eye(s64.size)])
    np.testing.assert_allclose(got.numpy(), fd, rtol=1e-4, atol=1e-6)


def test_many_rays_split_across_threads(device):
    counts = np.random.default_rng(10).integers(0, 6, size=5000)  # > 2 * 2048 rays: split CPU launch
    b = _batch(counts, seed=11, gap=True)
    wb = _wp(b, device)
    out = composite_rays(*_args(wb), background=(1.0, 1.0, 1.0))
    want = ref.composite_ref(*_args(_f64(b)), background=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(out.colors.numpy(), want[0], rtol=1e-5, atol=1e-6)
    n = counts.size
    gc = np.ones((n, 3), np.float32)
    g = composite_rays_backward(*_args(wb), wp.array(gc, device=device), background=(1.0, 1.0, 1.0))
    want_g = ref.composite_backward_ref(*_args(_f64(b)), gc, background=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(g.sigmas.numpy(), want_g[0], rtol=1e-4, atol=1e-6)
    # samples in the holes between rays belong to no ray: zero gradient
    covered = np.zeros(b["sigmas"].size, bool)
    for s, c in b["packed_info"]:
        covered[s : s + c] = True
    assert (~covered).sum() == n
    np.testing.assert_array_equal(g.sigmas.numpy()[~covered], 0.0)


def test_argument_checks(device):
    b = _wp(_batch([3, 2], seed=12), device)
    bad = wp.array(np.array([[0, 3], [3, 5]], np.int32), device=device)
    with pytest.raises(KernelArgumentError, match="packed_info"):
        composite_rays(b["t_starts"], b["t_ends"], b["sigmas"], b["rgbs"], bad)
    with pytest.raises(KernelArgumentError):
        composite_rays(b["t_starts"], b["t_ends"], b["sigmas"][:4], b["rgbs"], b["packed_info"])
    with pytest.raises(KernelArgumentError):
        composite_rays(*_args(b), background=(1.0, 2.0))
    with pytest.raises(KernelArgumentError):
        composite_rays(*_args(b), min_transmittance=1.0)


# -- early ray termination for inference: density slices along the rays -------------------------------------
