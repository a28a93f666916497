"""BSDFs against float64 references, and their sampling against their pdfs: chi-square tests over the sphere
(as Mitsuba tests its BSDFs), pdf normalisation, sample weights = eval / pdf, reciprocity."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference import bsdf_ref
from warp_kernels.bsdf import CONDUCTOR, DIFFUSE, ROUGH_CONDUCTOR, eval_bsdf_batch, make_material, sample_bsdf_batch

GOLD_ETA, GOLD_K = (0.143, 0.374, 1.442), (3.983, 2.385, 1.603)

MATERIALS = {
    "diffuse": make_material(DIFFUSE, reflectance=(0.2, 0.5, 0.9)),
    "rough0.05": make_material(ROUGH_CONDUCTOR, reflectance=(1, 1, 1), alpha=0.05),
    "rough0.3-gold": make_material(ROUGH_CONDUCTOR, reflectance=(1, 0.9, 0.8), alpha=0.3, eta=GOLD_ETA, k=GOLD_K),
    "rough0.8": make_material(ROUGH_CONDUCTOR, reflectance=(1, 1, 1), alpha=0.8),
}


def random_dirs(rng, n, upper=True):
    v = rng.standard_normal((n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    if upper:
        v[:, 2] = np.abs(v[:, 2])
    return v


def test_fresnel_matches_the_complex_fresnel_equations(device):
    from tests.reference.bsdf_ref import fresnel_conductor

    rng = np.random.default_rng(0)
    wi = random_dirs(rng, 2000)
    wo = random_dirs(rng, 2000)
    mat = MATERIALS["rough0.3-gold"]
    val, pdf = eval_bsdf_batch(mat, wi, wo, device=device)
    ref = bsdf_ref.rough_conductor_eval((1, 0.9, 0.8), 0.3, GOLD_ETA, GOLD_K, wi, wo)
    np.testing.assert_allclose(val, ref, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(pdf, bsdf_ref.rough_conductor_pdf(0.3, wi, wo), rtol=2e-3, atol=1e-6)
    # normal incidence: ((n-1)^2 + k^2) / ((n+1)^2 + k^2)
    e, k = GOLD_ETA[0], GOLD_K[0]
    assert fresnel_conductor(np.array([1.0]), e, k)[0] == pytest.approx(((e - 1) ** 2 + k * k) / ((e + 1) ** 2 + k * k))


def test_diffuse_matches_reference(device):
    rng = np.random.default_rng(1)
    wi = random_dirs(rng, 1000, upper=False)
    wo = random_dirs(rng, 1000, upper=False)
    val, pdf = eval_bsdf_batch(MATERIALS["diffuse"], wi, wo, device=device)
    np.testing.assert_allclose(val, bsdf_ref.diffuse_eval((0.2, 0.5, 0.9), wi, wo), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pdf, bsdf_ref.diffuse_pdf(wi, wo), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["diffuse", "rough0.05", "rough0.3-gold", "rough0.8"])
def test_reciprocity(device, name):
    rng = np.random.default_rng(2)
    wi = random_dirs(rng, 3000)
    wo = random_dirs(rng, 3000)
    a, _ = eval_bsdf_batch(MATERIALS[name], wi, wo, device=device)
    b, _ = eval_bsdf_batch(MATERIALS[name], wo, wi, device=device)
    # eval carries cos(wo): f(wi, wo) = eval / wo.z must be symmetric
    np.testing.assert_allclose(a / wo[:, 2:3], b / wi[:, 2:3], rtol=2e-3, atol=1e-5)


def _sphere_bins(n_theta=12, n_phi=24):
    return np.linspace(0, 1, n_theta + 1), np.linspace(-np.pi, np.pi, n_phi + 1)


def _expected_counts(mat, wi, n, device, n_theta=12, n_phi=24, sub=12):
    """Integrate the pdf over (cos theta, phi) bins with a sub-grid midpoint rule (upper hemisphere)."""
    ct, ph = _sphere_bins(n_theta, n_phi)
    c = (np.arange(n_theta * sub) + 0.5) / (n_theta * sub)
    p = -np.pi + 2 * np.pi * (np.arange(n_phi * sub) + 0.5) / (n_phi * sub)
    C, P = np.meshgrid(c, p, indexing="ij")
    s = np.sqrt(1 - C * C)
    wo = np.stack([s * np.cos(P), s * np.sin(P), C], -1).reshape(-1, 3)
    _, pdf = eval_bsdf_batch(mat, np.repeat(wi[None], len(wo), 0), wo, device=device)
    cell = (1.0 / (n_theta * sub)) * (2 * np.pi / (n_phi * sub))  # d(cos theta) d(phi) = solid angle
    dens = pdf.reshape(n_theta * sub, n_phi * sub) * cell
    return n * dens.reshape(n_theta, sub, n_phi, sub).sum(axis=(1, 3)), float(dens.sum())


@pytest.mark.parametrize("name", ["diffuse", "rough0.3-gold", "rough0.8"])
@pytest.mark.parametrize("theta_i", [10.0, 60.0, 85.0])
def test_sampling_passes_chi_square_against_pdf(device, name, theta_i):
    from scipy import stats

    mat = MATERIALS[name]
    t = np.radians(theta_i)
    wi = np.array([np.sin(t), 0.0, np.cos(t)])
    n = 200_000
    rng = np.random.default_rng(3)
    s = sample_bsdf_batch(mat, np.repeat(wi[None], n, 0), rng.random((n, 2)), device=device)
    wo = s["wo"][s["valid"]]
    ct, ph = _sphere_bins()
    observed, _, _ = np.histogram2d(wo[:, 2], np.arctan2(wo[:, 1], wo[:, 0]), bins=[ct, ph])
    expected, mass = _expected_counts(mat, wi, n, device)
    # the pdf's mass on the hemisphere is the fraction of valid samples (GGX may reflect below the horizon)
    assert mass == pytest.approx(s["valid"].mean(), abs=5e-3)
    # chi-square with bins of expected count < 5 pooled (Mitsuba's test does the same)
    small = expected < 5
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    exp *= obs.sum() / exp.sum()
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    p = stats.chi2.sf(chi2, len(obs) - 1)
    assert p > 1e-3, (chi2, len(obs), p)
    # the sample weight is eval / pdf of the sampled direction
    val, pdf = eval_bsdf_batch(mat, np.repeat(wi[None], len(wo), 0), wo, device=device)
    np.testing.assert_allclose(s["pdf"][s["valid"]], pdf, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(s["weight"][s["valid"]], val / pdf[:, None], rtol=5e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["diffuse", "rough0.05", "rough0.8"])
def test_albedo_by_sampling_equals_albedo_by_uniform_integration(device, name):
    mat = MATERIALS[name]
    wi = np.array([np.sin(0.7), 0.0, np.cos(0.7)])
    rng = np.random.default_rng(4)
    n = 400_000
    s = sample_bsdf_batch(mat, np.repeat(wi[None], n, 0), rng.random((n, 2)), device=device)
    by_sampling = np.where(s["valid"][:, None], s["weight"], 0).mean(axis=0)
    u = rng.random((n, 2))
    z = u[:, 0]
    r = np.sqrt(1 - z * z)
    wo = np.stack([r * np.cos(2 * np.pi * u[:, 1]), r * np.sin(2 * np.pi * u[:, 1]), z], 1)
    val, _ = eval_bsdf_batch(mat, np.repeat(wi[None], n, 0), wo, device=device)
    by_uniform = val.mean(axis=0) * 2 * np.pi
    tol = 0.03 if name == "rough0.05" else 0.01  # a sharp lobe is noisy under uniform sampling
    np.testing.assert_allclose(by_sampling, by_uniform, rtol=tol)
    assert np.all(by_sampling <= 1.0 + 1e-3)  # energy conservation


def test_smooth_conductor_is_a_delta_mirror(device):
    mat = make_material(CONDUCTOR, reflectance=(1, 1, 1), eta=GOLD_ETA, k=GOLD_K)
    rng = np.random.default_rng(5)
    wi = random_dirs(rng, 100)
    s = sample_bsdf_batch(mat, wi, rng.random((100, 2)), device=device)
    assert s["valid"].all() and s["delta"].all()
    np.testing.assert_allclose(s["wo"], wi * [-1, -1, 1], atol=1e-6)
    f = np.stack([bsdf_ref.fresnel_conductor(wi[:, 2], e, k) for e, k in zip(GOLD_ETA, GOLD_K, strict=True)], -1)
    np.testing.assert_allclose(s["weight"], f, rtol=1e-4)
    val, pdf = eval_bsdf_batch(mat, wi, s["wo"], device=device)
    assert not val.any() and not pdf.any()
