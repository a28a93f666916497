"""BSDFs of the path tracer as Warp functions, plus batch kernels that evaluate, sample and score them.

Conventions (Mitsuba 3's): directions live in the local shading frame (``z`` = normal) and point away from the
surface; ``wi`` is the direction towards the previous path vertex (the camera side), ``wo`` the sampled one.
``eval`` returns the BSDF times the cosine of ``wo`` (``f(wi, wo) |cos theta_o|``), ``pdf`` the solid-angle density
of sampling ``wo``, ``sample`` a direction with its pdf and weight ``eval / pdf``. Delta lobes (smooth conductor)
have ``eval = pdf = 0`` and report ``delta = 1`` from ``sample``. Every BSDF here is one-sided (black when
``wi.z <= 0`` or ``wo.z <= 0``); a material's ``twosided`` flag makes the caller mirror the frame instead.

Materials (``Material.kind``):

* :data:`DIFFUSE` — Lambert, ``reflectance / pi``; cosine-weighted sampling.
* :data:`CONDUCTOR` — smooth mirror; Fresnel of a conductor with complex IOR ``eta + i k`` per channel, or
  ``F = 1`` (``eta = 0``, Mitsuba's ``material="none"``), times ``specular_reflectance``.
* :data:`ROUGH_CONDUCTOR` — GGX microfacets (isotropic ``alpha``), separable Smith shadowing, sampling of the
  visible normals (Heitz 2018), the same Fresnel.

Float64 NumPy references live in ``tests/reference/bsdf_ref.py``.
"""

from __future__ import annotations

import math

import numpy as np
import warp as wp

from .device import check_array, common_device
from .parallel import launch_split

__all__ = [
    "DIFFUSE",
    "CONDUCTOR",
    "ROUGH_CONDUCTOR",
    "Material",
    "BsdfSample",
    "bsdf_eval",
    "bsdf_pdf",
    "bsdf_sample",
    "fresnel_conductor",
    "eval_bsdf_batch",
    "sample_bsdf_batch",
    "make_material",
]

DIFFUSE = wp.constant(0)
CONDUCTOR = wp.constant(1)
ROUGH_CONDUCTOR = wp.constant(2)

_INV_PI = wp.constant(1.0 / math.pi)
_PI = wp.constant(math.pi)


@wp.struct
class Material:
    """One material: ``kind`` (DIFFUSE / CONDUCTOR / ROUGH_CONDUCTOR), ``reflectance`` (diffuse albedo or
    specular_reflectance), ``alpha`` (GGX roughness), ``eta``/``k`` (conductor IOR; ``eta = 0`` means F = 1),
    ``twosided`` (1: both sides scatter), ``emission`` (area-light radiance of surfaces with this material)."""

    kind: int
    reflectance: wp.vec3
    alpha: float
    eta: wp.vec3
    k: wp.vec3
    twosided: int
    emission: wp.vec3


@wp.struct
class BsdfSample:
    """A sampled direction: ``wo`` (local frame), ``pdf`` (solid angle; 0 for delta), ``weight`` (eval / pdf,
    or the delta lobe's throughput), ``delta`` (1 for a delta lobe), ``valid`` (0: no direction)."""

    wo: wp.vec3
    pdf: float
    weight: wp.vec3
    delta: int
    valid: int


def make_material(kind: int = 0, reflectance=(0.5, 0.5, 0.5), alpha: float = 0.1, eta=(0.0, 0.0, 0.0),
                  k=(1.0, 1.0, 1.0), twosided: bool = False, emission=(0.0, 0.0, 0.0)) -> Material:
    """A :class:`Material` from Python values."""
    m = Material()
    m.kind = int(kind)
    m.reflectance = wp.vec3(*map(float, reflectance))
    m.alpha = float(alpha)
    m.eta = wp.vec3(*map(float, eta))
    m.k = wp.vec3(*map(float, k))
    m.twosided = int(bool(twosided))
    m.emission = wp.vec3(*map(float, emission))
    return m


# ----------------------------------------------------------------------------------------------------------
# Fresnel and microfacet pieces
# ----------------------------------------------------------------------------------------------------------


@wp.func
def _fresnel_conductor_1(cos_i: float, eta: float, k: float) -> float:
    """Unpolarised Fresnel reflectance of a conductor (Mitsuba 3's ``fresnel_conductor``), one channel."""
    c2 = cos_i * cos_i
    s2 = 1.0 - c2
    s4 = s2 * s2
    t1 = eta * eta - k * k - s2
    a2pb2 = wp.sqrt(wp.max(t1 * t1 + 4.0 * k * k * eta * eta, 0.0))
    a = wp.sqrt(wp.max(0.5 * (a2pb2 + t1), 0.0))
    term1 = a2pb2 + c2
    term2 = 2.0 * cos_i * a
    rs = (term1 - term2) / (term1 + term2)
    term3 = a2pb2 * c2 + s4
    term4 = term2 * s2
    rp = rs * (term3 - term4) / (term3 + term4)
    return 0.5 * (rs + rp)


@wp.func
def fresnel_conductor(cos_i: float, eta: wp.vec3, k: wp.vec3) -> wp.vec3:
    """Per-channel conductor Fresnel; ``eta.x <= 0`` selects a perfect reflector (F = 1)."""
    if eta[0] <= 0.0:
        return wp.vec3(1.0, 1.0, 1.0)
    c = wp.clamp(cos_i, 0.0, 1.0)
    return wp.vec3(_fresnel_conductor_1(c, eta[0], k[0]), _fresnel_conductor_1(c, eta[1], k[1]),
                   _fresnel_conductor_1(c, eta[2], k[2]))


@wp.func
def ggx_d(m: wp.vec3, alpha: float) -> float:
    """GGX normal distribution ``D(m)`` (isotropic), zero below the surface."""
    if m[2] <= 0.0:
        return 0.0
    a2 = alpha * alpha
    t = m[2] * m[2] * (a2 - 1.0) + 1.0
    return a2 / (_PI * t * t)


@wp.func
def ggx_g1(w: wp.vec3, m: wp.vec3, alpha: float) -> float:
    """Smith's GGX masking ``G1(w, m)``."""
    if wp.dot(w, m) * w[2] <= 0.0:
        return 0.0
    c2 = w[2] * w[2]
    if c2 >= 1.0:
        return 1.0
    tan2 = (1.0 - c2) / c2
    return 2.0 / (1.0 + wp.sqrt(1.0 + alpha * alpha * tan2))


@wp.func
def ggx_sample_visible(wi: wp.vec3, alpha: float, u1: float, u2: float) -> wp.vec3:
    """A microfacet normal distributed as ``G1(wi, m) max(0, wi.m) D(m) / wi.z`` (Heitz 2018)."""
    vh = wp.normalize(wp.vec3(alpha * wi[0], alpha * wi[1], wi[2]))
    lensq = vh[0] * vh[0] + vh[1] * vh[1]
    t1 = wp.vec3(1.0, 0.0, 0.0)
    if lensq > 0.0:
        t1 = wp.vec3(-vh[1], vh[0], 0.0) / wp.sqrt(lensq)
    t2 = wp.cross(vh, t1)
    r = wp.sqrt(u1)
    phi = 2.0 * _PI * u2
    p1 = r * wp.cos(phi)
    p2 = r * wp.sin(phi)
    s = 0.5 * (1.0 + vh[2])
    p2 = (1.0 - s) * wp.sqrt(wp.max(1.0 - p1 * p1, 0.0)) + s * p2
    nh = p1 * t1 + p2 * t2 + wp.sqrt(wp.max(1.0 - p1 * p1 - p2 * p2, 0.0)) * vh
    return wp.normalize(wp.vec3(alpha * nh[0], alpha * nh[1], wp.max(nh[2], 1e-7)))


@wp.func
def _reflect(w: wp.vec3, m: wp.vec3) -> wp.vec3:
    return 2.0 * wp.dot(w, m) * m - w


# ----------------------------------------------------------------------------------------------------------
# eval / pdf / sample
# ----------------------------------------------------------------------------------------------------------


@wp.func
def bsdf_eval(mat: Material, wi: wp.vec3, wo: wp.vec3) -> wp.vec3:
    """``f(wi, wo) * wo.z`` in the local frame (zero for delta lobes and below the surface)."""
    if wi[2] <= 0.0 or wo[2] <= 0.0:
        return wp.vec3(0.0, 0.0, 0.0)
    if mat.kind == DIFFUSE:
        return mat.reflectance * (_INV_PI * wo[2])
    if mat.kind == ROUGH_CONDUCTOR:
        m = wp.normalize(wi + wo)
        d = ggx_d(m, mat.alpha)
        g = ggx_g1(wi, m, mat.alpha) * ggx_g1(wo, m, mat.alpha)
        f = fresnel_conductor(wp.dot(wi, m), mat.eta, mat.k)
        return wp.cw_mul(mat.reflectance, f) * (d * g / (4.0 * wi[2]))
    return wp.vec3(0.0, 0.0, 0.0)


@wp.func
def bsdf_pdf(mat: Material, wi: wp.vec3, wo: wp.vec3) -> float:
    """Solid-angle density of :func:`bsdf_sample` producing ``wo`` (zero for delta lobes)."""
    if wi[2] <= 0.0 or wo[2] <= 0.0:
        return 0.0
    if mat.kind == DIFFUSE:
        return wo[2] * _INV_PI
    if mat.kind == ROUGH_CONDUCTOR:
        m = wp.normalize(wi + wo)
        dm = ggx_d(m, mat.alpha) * ggx_g1(wi, m, mat.alpha) * wp.max(wp.dot(wi, m), 0.0) / wi[2]
        return dm / (4.0 * wp.abs(wp.dot(wo, m)))
    return 0.0


@wp.func
def bsdf_sample(mat: Material, wi: wp.vec3, u1: float, u2: float) -> BsdfSample:
    """Sample ``wo`` given ``wi`` and two uniform numbers."""
    s = BsdfSample()
    s.valid = 0
    s.delta = 0
    s.pdf = 0.0
    s.weight = wp.vec3(0.0, 0.0, 0.0)
    s.wo = wp.vec3(0.0, 0.0, 1.0)
    if wi[2] <= 0.0:
        return s
    if mat.kind == DIFFUSE:
        r = wp.sqrt(u1)
        phi = 2.0 * _PI * u2
        wo = wp.vec3(r * wp.cos(phi), r * wp.sin(phi), wp.sqrt(wp.max(1.0 - u1, 0.0)))
        if wo[2] <= 0.0:
            return s
        s.wo = wo
        s.pdf = wo[2] * _INV_PI
        s.weight = mat.reflectance
        s.valid = 1
    elif mat.kind == CONDUCTOR:
        s.wo = wp.vec3(-wi[0], -wi[1], wi[2])
        s.delta = 1
        s.weight = wp.cw_mul(mat.reflectance, fresnel_conductor(wi[2], mat.eta, mat.k))
        s.valid = 1
    else:
        m = ggx_sample_visible(wi, mat.alpha, u1, u2)
        wo = _reflect(wi, m)
        if wo[2] <= 0.0:
            return s
        s.wo = wo
        s.pdf = bsdf_pdf(mat, wi, wo)
        if s.pdf <= 0.0:
            return s
        s.weight = bsdf_eval(mat, wi, wo) / s.pdf
        s.valid = 1
    return s


# ----------------------------------------------------------------------------------------------------------
# batch kernels (tests, chi-square)
# ----------------------------------------------------------------------------------------------------------


@wp.kernel(enable_backward=False)
def _eval_kernel(offset: int, mat: Material, wi: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3),
                 value: wp.array(dtype=wp.vec3), pdf: wp.array(dtype=float)):
    i = wp.tid() + offset
    value[i] = bsdf_eval(mat, wi[i], wo[i])
    pdf[i] = bsdf_pdf(mat, wi[i], wo[i])


@wp.kernel(enable_backward=False)
def _sample_kernel(offset: int, mat: Material, wi: wp.array(dtype=wp.vec3), u: wp.array(dtype=wp.vec2),
                   wo: wp.array(dtype=wp.vec3), pdf: wp.array(dtype=float), weight: wp.array(dtype=wp.vec3),
                   flags: wp.array(dtype=int)):
    i = wp.tid() + offset
    s = bsdf_sample(mat, wi[i], u[i][0], u[i][1])
    wo[i] = s.wo
    pdf[i] = s.pdf
    weight[i] = s.weight
    flags[i] = s.valid + 2 * s.delta


def eval_bsdf_batch(mat: Material, wi: np.ndarray, wo: np.ndarray, *, device=None) -> tuple[np.ndarray, np.ndarray]:
    """``(eval [N, 3], pdf [N])`` of ``mat`` for local directions ``wi``, ``wo`` ``[N, 3]`` (testing helper)."""
    device = common_device([], device)
    n = len(wi)
    a_wi = wp.array(np.asarray(wi, np.float32), dtype=wp.vec3, device=device)
    a_wo = wp.array(np.asarray(wo, np.float32), dtype=wp.vec3, device=device)
    check_array(a_wi, "wi", shape=(n,), device=device)
    check_array(a_wo, "wo", shape=(n,), device=device)
    value = wp.empty(n, dtype=wp.vec3, device=device)
    pdf = wp.empty(n, dtype=float, device=device)
    launch_split(_eval_kernel, n, [mat, a_wi, a_wo, value, pdf], device)
    return value.numpy(), pdf.numpy()


def sample_bsdf_batch(mat: Material, wi: np.ndarray, u: np.ndarray, *, device=None) -> dict[str, np.ndarray]:
    """Sample ``mat`` for ``wi`` ``[N, 3]`` with uniforms ``u`` ``[N, 2]``: ``wo``, ``pdf``, ``weight``, ``valid``,
    ``delta`` (testing helper)."""
    device = common_device([], device)
    n = len(wi)
    a_wi = wp.array(np.asarray(wi, np.float32), dtype=wp.vec3, device=device)
    a_u = wp.array(np.asarray(u, np.float32), dtype=wp.vec2, device=device)
    out = {k: wp.empty(n, dtype=t, device=device)
           for k, t in (("wo", wp.vec3), ("pdf", float), ("weight", wp.vec3), ("flags", int))}
    launch_split(_sample_kernel, n, [mat, a_wi, a_u, out["wo"], out["pdf"], out["weight"], out["flags"]], device)
    r = {k: v.numpy() for k, v in out.items()}
    flags = r.pop("flags")
    r["valid"] = (flags & 1).astype(bool)
    r["delta"] = (flags & 2).astype(bool)
    return r
