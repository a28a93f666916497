"""NerfField: forward pieces and the hand-written backward vs finite differences on a tiny field."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from ngp_sdk.core.config import HashGridConfig, NetworkConfig
from ngp_sdk.core.errors import ConfigError
from ngp_sdk.nerf.config import NerfConfig
from ngp_sdk.nerf.field import NerfField
from tests.reference.sh_encoding_ref import sh_encode_ref

TINY = NerfConfig(
    encoding=HashGridConfig(n_levels=2, n_features_per_level=2, log2_hashmap_size=8, base_resolution=4,
                            per_level_scale=2.0),
    network=NetworkConfig(n_neurons=16, n_hidden_layers=1),
    rgb_network=NetworkConfig(n_neurons=16, n_hidden_layers=1, output_activation="Sigmoid"),
)
AABB = (np.full(3, -0.5, np.float32), np.full(3, 1.5, np.float32))


def _field(device) -> NerfField:
    f = NerfField(TINY, AABB, device=device, seed=3)
    rng = np.random.default_rng(0)
    # larger table values than the 1e-4 initialisation, so every path carries signal
    f.grid.params.assign(wp.array(rng.uniform(-1, 1, f.grid.params.shape[0]).astype(np.float32), device=device))
    return f


def _samples(n: int, seed: int, device):
    rng = np.random.default_rng(seed)
    p = rng.uniform(-0.4, 1.4, (n, 3)).astype(np.float32)
    d = rng.normal(size=(n, 3))
    d = (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)
    return wp.array(p, device=device), wp.array(d, device=device), p, d


def test_forward_pieces(device):
    f = _field(device)
    pos, dirs, _, d = _samples(300, 1, device)
    sigma, rgb = f.forward(pos, dirs)
    saved = f._saved
    raw = saved["raw"].numpy()
    np.testing.assert_allclose(sigma.numpy(), np.exp(raw[:, 0]), rtol=1e-6)
    ci = saved["color_in"].numpy()
    np.testing.assert_array_equal(ci[:, :16], raw)
    np.testing.assert_allclose(ci[:, 16:], sh_encode_ref(d.astype(np.float64)), atol=2e-6)
    assert np.all((rgb.numpy() > 0) & (rgb.numpy() < 1))
    # inference (separate buffers) agrees with the training forward; density() matches sigma
    s2, c2 = f.infer(pos, dirs)
    np.testing.assert_allclose(s2.numpy(), sigma.numpy(), rtol=1e-6)
    np.testing.assert_allclose(c2.numpy(), rgb.numpy(), rtol=1e-6)
    np.testing.assert_allclose(f.density(pos, chunk=128).numpy(), sigma.numpy(), rtol=1e-6)


def test_backward_matches_finite_differences(device):
    f = _field(device)
    pos, dirs, _, _ = _samples(64, 2, device)
    rng = np.random.default_rng(5)
    a = rng.normal(size=64) * 0.05  # L = sum(a * sigma) + sum(B * rgb)
    b = rng.normal(size=(64, 3))

    def loss() -> float:
        s, c = f.infer(pos, dirs)
        return float(np.sum(a * s.numpy().astype(np.float64)) + np.sum(b * c.numpy().astype(np.float64)))

    f.forward(pos, dirs)
    f.backward(wp.array(a.astype(np.float32), device=device), wp.array(b.astype(np.float32), device=device))
    for g in f.param_groups():
        grads = g.grads.numpy().copy()
        params = g.params.numpy()
        idx = np.argsort(-np.abs(grads))[:6]  # the entries with the most signal
        for i in idx:
            old = params[i]
            eps = 5e-4 * max(1.0, abs(old))  # small: ReLU kinks make wide differences unreliable
            vals = []
            for s in (1, -1):
                params[i] = old + s * eps
                g.params.assign(wp.array(params, device=device))
                vals.append(loss())
            params[i] = old
            g.params.assign(wp.array(params, device=device))
            fd = (vals[0] - vals[1]) / (2 * eps)
            assert grads[i] == pytest.approx(fd, rel=0.03, abs=3e-3), (g.name, i)
        assert np.abs(grads).max() > 0, g.name


def test_colour_on_selected_samples_only(device):
    pos, dirs, _, _ = _samples(200, 3, device)
    rng = np.random.default_rng(7)
    keep = np.sort(rng.choice(200, 77, replace=False)).astype(np.int32)
    gs = rng.normal(size=200).astype(np.float32) * 0.1
    gr = rng.normal(size=(200, 3)).astype(np.float32)
    gr_masked = np.zeros_like(gr)
    gr_masked[keep] = gr[keep]
    f_all, f_sel = _field(device), _field(device)
    sigma, rgb = f_all.forward(pos, dirs)
    s2 = f_sel.forward_density(pos)
    rgb2 = f_sel.forward_color(dirs, wp.array(keep, device=device)).numpy()
    np.testing.assert_array_equal(s2.numpy(), sigma.numpy())
    np.testing.assert_allclose(rgb2[keep], rgb.numpy()[keep], rtol=1e-5, atol=1e-6)
    assert np.all(np.delete(rgb2, keep, axis=0) == 0)
    # the selected backward equals the full backward with the unselected colour gradients zeroed
    f_all.backward(wp.array(gs, device=device), wp.array(gr_masked, device=device))
    f_sel.backward(wp.array(gs, device=device), wp.array(gr, device=device))
    for ga, gb in zip(f_all.param_groups(), f_sel.param_groups(), strict=True):
        np.testing.assert_allclose(gb.grads.numpy(), ga.grads.numpy(), rtol=1e-4, atol=1e-6, err_msg=ga.name)
    # inference follows the same two phases
    si = f_sel.infer_density(pos)
    ci = f_sel.infer_color(dirs, wp.array(keep, device=device)).numpy()
    np.testing.assert_allclose(si.numpy(), sigma.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ci[keep], rgb.numpy()[keep], rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="forward_density first"):
        f_sel.forward_color(dirs)


@pytest.mark.parametrize("levels", [None, 1])
def test_position_gradient_matches_finite_differences(device, levels):
    """dL/dp of L = sum(a * sigma) + sum(B * rgb) (density and colour paths) against central differences of the
    sample positions; ``position_levels=1`` matches the same loss with the finer level's features frozen."""
    f = _field(device)
    pos, dirs, p, _ = _samples(24, 11, device)
    rng = np.random.default_rng(12)
    a = rng.normal(size=24) * 0.05
    b = rng.normal(size=(24, 3))
    f.forward(pos, dirs)
    gx = f.backward(wp.array(a.astype(np.float32), device=device), wp.array(b.astype(np.float32), device=device),
                    position_grad=True, position_levels=levels).numpy()
    gp = gx * f.unit_cube_scale
    lo, hi = f.aabb

    def features(q: np.ndarray) -> np.ndarray:
        return f.grid.forward(wp.array(((q - lo) / (hi - lo)).astype(np.float32), device=device)).numpy()

    base = features(p)
    good = bad = 0
    for i in range(24):
        for k in range(3):
            vals = []
            for s in (1, -1):
                q = p.copy()
                q[i, k] += s * 5e-4
                feats = features(q)
                if levels is not None:  # the finer level held constant
                    feats[:, 2:] = base[:, 2:]
                sig, rgb = _heads(f, feats, dirs)
                vals.append(float(np.sum(a * sig) + np.sum(b * rgb)))
            fd = (vals[0] - vals[1]) / 1e-3
            if abs(fd) > 1e-3:
                if gp[i, k] == pytest.approx(fd, rel=0.02, abs=1e-3):
                    good += 1
                else:  # a difference across a ReLU kink or a cell face
                    bad += 1
    assert good > 40 and bad <= 0.1 * (good + bad), (good, bad)


def _heads(f: NerfField, feats: np.ndarray, dirs: wp.array) -> tuple[np.ndarray, np.ndarray]:
    """Density and colour of given hash-grid features (the field's own MLPs, inference weights)."""
    from warp_kernels.nerf_glue import density_outputs_to_sigma
    from warp_kernels.sh_encoding import sh_encode

    dev = f.device
    raw = f.density_mlp.forward(wp.array(feats, device=dev))
    sigma = density_outputs_to_sigma(raw).numpy()
    sh = sh_encode(dirs).numpy()
    rgb = f.color_mlp.forward(wp.array(np.concatenate([raw.numpy(), sh], axis=1), device=dev)).numpy()
    return sigma.astype(np.float64), rgb.astype(np.float64)


def test_level_weights(device):
    f = _field(device)
    pos, dirs, p, _ = _samples(50, 4, device)
    lo, hi = f.aabb
    feats = f.grid.forward(wp.array(((p - lo) / (hi - lo)).astype(np.float32), device=device)).numpy()
    f.set_level_weights(np.array([1.0, 0.25]))
    np.testing.assert_allclose(f.level_weights, [1.0, 0.25])
    sig, rgb = f.infer(pos, dirs)
    w = np.repeat([1.0, 0.25], 2).astype(np.float32)
    s_ref, c_ref = _heads(f, feats * w, dirs)
    np.testing.assert_allclose(sig.numpy(), s_ref, rtol=1e-5)
    np.testing.assert_allclose(rgb.numpy(), c_ref, rtol=1e-5, atol=1e-6)
    s_train, _ = f.forward(pos, dirs)  # training and inference agree under the weights
    np.testing.assert_allclose(s_train.numpy(), sig.numpy(), rtol=1e-6)
    # a level weighted 0 gets no gradient; all ones switches the weights off
    f.set_level_weights(np.array([1.0, 0.0]))
    f.forward(pos, dirs)
    f.backward(wp.array(np.ones(50, np.float32), device=device), wp.array(np.ones((50, 3), np.float32), device=device))
    g = f.grid.param_groups()[0].grads.numpy()
    off = f.grid.layout.offsets * f.grid.layout.n_features_per_level
    assert np.abs(g[off[0]:off[1]]).max() > 0 and np.all(g[off[1]:] == 0)
    f.set_level_weights(np.ones(2))
    assert f.level_weights is None
    with pytest.raises(ConfigError):
        f.set_level_weights(np.array([1.0, np.nan]))


def test_level_weights_equal_a_scaled_table(device):
    """The encoding is linear in its table, so weighing level 1 by 0.3 is the unweighted field with level 1's
    entries scaled by 0.3: same outputs, same MLP gradients, and 0.3x the table gradient of that level."""
    pos, dirs, _, _ = _samples(64, 2, device)
    rng = np.random.default_rng(5)
    ga = wp.array((rng.normal(size=64) * 0.05).astype(np.float32), device=device)
    gb = wp.array(rng.normal(size=(64, 3)).astype(np.float32), device=device)
    weighted, scaled = _field(device), _field(device)
    weighted.set_level_weights(np.array([1.0, 0.3]))
    off = scaled.grid.layout.offsets * scaled.grid.layout.n_features_per_level
    table = scaled.grid.params.numpy()
    table[off[1]:] *= 0.3
    scaled.grid.params.assign(table)
    outs = [f.forward(pos, dirs) for f in (weighted, scaled)]
    for x, y in zip(*outs, strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-7)
    for f in (weighted, scaled):
        f.backward(ga, gb)
    for g1, g2 in zip(weighted.param_groups(), scaled.param_groups(), strict=True):
        want = g2.grads.numpy().copy()
        if g1.name == weighted.grid.name:
            want[off[1]:] *= 0.3
        np.testing.assert_allclose(g1.grads.numpy(), want, rtol=1e-5, atol=1e-7, err_msg=g1.name)
