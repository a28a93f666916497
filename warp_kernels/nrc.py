"""Neural radiance caching (Müller, Rousselle, Novák, Keller 2021): one frame of cache-terminated paths.

:func:`trace_nrc_frame` traces one path per pixel with next-event estimation and MIS (the functions of
:mod:`warp_kernels.path_tracing`) and ends it at the first vertex where the path's area spread exceeds
``spread_c`` times the spread of the primary vertex (the paper's heuristic:
``a(x_1..x_n) = (sum_i sqrt(|x_{i-1} - x_i|^2 / (p(w_{i-1}) |cos theta_i|)))^2`` against
``a_0 = |x_0 - x_1|^2 / (4 pi cos theta_1)``). There it writes the vertex's cache inputs, so the caller can add
``throughput * cache(x_n)`` to the radiance gathered before it.

Every ``train_stride``-th pixel (from ``train_offset``) is also a *training path*: it continues past ``x_n`` with
a suffix ended by the same heuristic (restarted at ``x_n``) and records, for each vertex ``x_i``, its cache inputs,
the radiance ``c_i`` it scatters directly (next-event estimate plus the MIS-weighted emission found by its BSDF
sample) and the throughput ``w_i`` of that sample, so the scattered radiance satisfies
``L_i = c_i + w_i * L_{i+1}``; the suffix's last vertex is queried from the cache (self-training), except for
every ``unbiased_every``-th training path, which runs on until Russian roulette or escape (unbiased targets).

Cache inputs per vertex (:class:`CacheInputs`): position normalised to the scene's box, the direction towards
the previous vertex, the shading normal, and the material as ``[roughness, diffuse rgb, specular rgb]``.
"""

from __future__ import annotations

import math

import numpy as np
import warp as wp

from .bsdf import DIFFUSE, Material, bsdf_sample
from .device import KernelArgumentError, common_device
from .parallel import launch_split
from .path_tracing import (
    SceneArgs,
    camera_ray,
    emitter_mis_weight,
    luminance,
    sample_direct,
    shading_frame,
    to_world,
)

__all__ = [
    "CacheInputs",
    "NrcFrameBuffers",
    "trace_nrc_frame",
    "N_MATERIAL_FEATURES",
    "gather_inputs",
    "pack_network_inputs",
    "slice_feature_grad",
    "factor_radiance",
    "factor_radiance_backward",
    "new_cache_inputs",
]

#: Material features per vertex: roughness, diffuse rgb, specular rgb.
N_MATERIAL_FEATURES = 7

_INV_4PI = wp.constant(1.0 / (4.0 * math.pi))


@wp.struct
class CacheInputs:
    """Cache inputs of ``N`` vertices: ``position`` [N, 3] in [0, 1]^3, ``direction``/``normal`` [N] (unit, world),
    ``material`` [N, 7]."""

    position: wp.array2d(dtype=float)
    direction: wp.array(dtype=wp.vec3)
    normal: wp.array(dtype=wp.vec3)
    material: wp.array2d(dtype=float)


def new_cache_inputs(n: int, device) -> CacheInputs:
    """Zeroed :class:`CacheInputs` for ``n`` vertices."""
    c = CacheInputs()
    c.position = wp.zeros((n, 3), dtype=float, device=device)
    c.direction = wp.zeros(n, dtype=wp.vec3, device=device)
    c.normal = wp.zeros(n, dtype=wp.vec3, device=device)
    c.material = wp.zeros((n, N_MATERIAL_FEATURES), dtype=float, device=device)
    return c


class NrcFrameBuffers:
    """Everything one frame writes, allocated once per (pixels, training paths, vertices per training path).

    Attributes:
        prefix: vec3 [P] radiance gathered before the cache vertex; ``throughput``: vec3 [P] to multiply the cache
            prediction by; ``query``: :class:`CacheInputs` [P]; ``query_valid``: int [P] (0: the path ended
            without a cache vertex).
        records: :class:`CacheInputs` [T * K]; ``rec_c``/``rec_w``: vec3 [T * K]; ``rec_count``: int [T];
        end: :class:`CacheInputs` [T] (the suffix's last vertex); ``end_valid``: int [T] (1: query the cache).
    """

    def __init__(self, pixels: int, train_paths: int, max_train_vertices: int, device=None):
        device = common_device([], device)
        self.device = device
        self.pixels, self.train_paths, self.max_train_vertices = pixels, train_paths, max_train_vertices
        self.prefix = wp.zeros(pixels, dtype=wp.vec3, device=device)
        self.throughput = wp.zeros(pixels, dtype=wp.vec3, device=device)
        self.query = new_cache_inputs(pixels, device)
        self.query_valid = wp.zeros(pixels, dtype=int, device=device)
        t, k = max(1, train_paths), max(1, max_train_vertices)
        self.records = new_cache_inputs(t * k, device)
        self.rec_c = wp.zeros(t * k, dtype=wp.vec3, device=device)
        self.rec_w = wp.zeros(t * k, dtype=wp.vec3, device=device)
        self.rec_count = wp.zeros(t, dtype=int, device=device)
        self.end = new_cache_inputs(t, device)
        self.end_valid = wp.zeros(t, dtype=int, device=device)


@wp.func
def _write_inputs(c: CacheInputs, i: int, p: wp.vec3, wi: wp.vec3, ns: wp.vec3, mat: Material,
                  box_min: wp.vec3, box_inv: wp.vec3):
    q = wp.cw_mul(p - box_min, box_inv)
    c.position[i, 0] = wp.clamp(q[0], 0.0, 1.0)
    c.position[i, 1] = wp.clamp(q[1], 0.0, 1.0)
    c.position[i, 2] = wp.clamp(q[2], 0.0, 1.0)
    c.direction[i] = wi
    c.normal[i] = ns
    rough = float(0.0)
    diff = wp.vec3(0.0, 0.0, 0.0)
    spec = wp.vec3(0.0, 0.0, 0.0)
    if mat.kind == DIFFUSE:
        rough = 1.0
        diff = mat.reflectance
    else:
        spec = mat.reflectance
        if mat.kind != 1:
            rough = mat.alpha
    c.material[i, 0] = 1.0 - wp.exp(-rough)
    c.material[i, 1] = diff[0]
    c.material[i, 2] = diff[1]
    c.material[i, 3] = diff[2]
    c.material[i, 4] = spec[0]
    c.material[i, 5] = spec[1]
    c.material[i, 6] = spec[2]


@wp.kernel(enable_backward=False)
def _nrc_frame_kernel(
    offset: int,
    scene: SceneArgs,
    width: int,
    height: int,
    seed: int,
    max_depth: int,
    rr_depth: int,
    spread_c: float,
    train_stride: int,
    train_offset: int,
    unbiased_every: int,
    max_train_vertices: int,
    box_min: wp.vec3,
    box_inv: wp.vec3,
    prefix: wp.array(dtype=wp.vec3),
    throughput: wp.array(dtype=wp.vec3),
    query: CacheInputs,
    query_valid: wp.array(dtype=int),
    records: CacheInputs,
    rec_c: wp.array(dtype=wp.vec3),
    rec_w: wp.array(dtype=wp.vec3),
    rec_count: wp.array(dtype=int),
    end: CacheInputs,
    end_valid: wp.array(dtype=int),
):
    tid = wp.tid() + offset
    px = tid % width
    py = tid / width
    rng = wp.rand_init(seed, tid)
    is_train = int(0)
    ti = int(0)
    if train_stride > 0 and tid % train_stride == train_offset:
        ti = tid / train_stride
        is_train = 1
    unbiased = int(0)
    if is_train == 1 and unbiased_every > 0 and ti % unbiased_every == 0:
        unbiased = 1
    d = camera_ray(scene.cam, px, py, width, height, wp.randf(rng), wp.randf(rng))
    o = scene.cam.origin
    radiance = wp.vec3(0.0, 0.0, 0.0)
    beta = wp.vec3(1.0, 1.0, 1.0)
    prev_pdf = float(0.0)
    prev_delta = int(1)
    depth = int(1)
    a0 = float(0.0)
    spread = float(0.0)  # sqrt of the accumulated area spread
    rendering = int(1)   # 0 once the render path reached its cache vertex (training suffix)
    n_rec = int(0)
    query_valid[tid] = 0
    if is_train == 1:
        end_valid[ti] = 0
    while True:
        q = wp.mesh_query_ray(scene.mesh, o, d, 1.0e30)
        if not q.result:
            if rendering == 1:
                radiance = radiance + wp.cw_mul(beta, scene.env)
            elif n_rec > 0:
                j = ti * max_train_vertices + n_rec - 1
                rec_c[j] = rec_c[j] + wp.cw_mul(rec_w[j], scene.env)
            break
        f = q.face
        p = o + q.t * d
        n = wp.mesh_eval_face_normal(scene.mesh, f)
        mat = scene.materials[scene.tri_material[f]]
        wi = -d
        cos_front = wp.dot(n, wi)
        emitted = wp.vec3(0.0, 0.0, 0.0)
        if cos_front > 0.0 and luminance(mat.emission) > 0.0:
            emitted = emitter_mis_weight(scene.lights, f, q.t, cos_front, prev_pdf, prev_delta) * mat.emission
        if rendering == 1:
            radiance = radiance + wp.cw_mul(beta, emitted)
        if n_rec > 0:  # the previous training vertex found this emission with its BSDF sample
            j = ti * max_train_vertices + n_rec - 1
            rec_c[j] = rec_c[j] + wp.cw_mul(rec_w[j], emitted)
        # area spread
        ac = wp.abs(cos_front)
        if depth == 1 or (rendering == 0 and spread < 0.0):
            a0 = q.t * q.t * _INV_4PI / wp.max(ac, 1e-4)
            spread = 0.0
        elif prev_delta == 0:
            spread = spread + wp.sqrt(q.t * q.t / wp.max(prev_pdf * ac, 1e-12))
        if max_depth >= 0 and depth >= max_depth:
            break
        fr = shading_frame(p, n, wi, mat.twosided)
        if fr.valid == 0:
            break
        ns = fr.n
        terminal = depth > 1 and spread * spread > spread_c * a0
        if terminal and rendering == 1:
            _write_inputs(query, tid, p, wi, ns, mat, box_min, box_inv)
            query_valid[tid] = 1
            throughput[tid] = beta
            rendering = 0
            if is_train == 0:
                break
            spread = -1.0  # restart the heuristic at the next vertex
            terminal = False
        if terminal and rendering == 0 and unbiased == 0:
            _write_inputs(end, ti, p, wi, ns, mat, box_min, box_inv)
            end_valid[ti] = 1
            break
        if is_train == 1:
            if n_rec >= max_train_vertices:
                break
        direct = sample_direct(scene, mat, fr, wp.randf(rng), wp.randf(rng), wp.randf(rng))
        if rendering == 1:
            radiance = radiance + wp.cw_mul(beta, direct)
        bs = bsdf_sample(mat, fr.wi, wp.randf(rng), wp.randf(rng))
        w = bs.weight
        if bs.valid == 0:
            w = wp.vec3(0.0, 0.0, 0.0)
        depth += 1
        q_rr = float(1.0)
        if depth > rr_depth:
            q_rr = wp.min(wp.max(wp.max(w[0] * beta[0], w[1] * beta[1]), w[2] * beta[2]), 0.95)
            if q_rr > 0.0 and wp.randf(rng) < q_rr:
                w = w / q_rr
            else:
                w = wp.vec3(0.0, 0.0, 0.0)
        if is_train == 1:
            j = ti * max_train_vertices + n_rec
            _write_inputs(records, j, p, wi, ns, mat, box_min, box_inv)
            rec_c[j] = direct
            rec_w[j] = w
            n_rec += 1
        if bs.valid == 0 or luminance(w) <= 0.0:
            break
        beta = wp.cw_mul(beta, w)
        prev_pdf = bs.pdf
        prev_delta = bs.delta
        o = fr.origin
        d = to_world(fr, bs.wo)
    prefix[tid] = radiance
    if query_valid[tid] == 0:
        throughput[tid] = wp.vec3(0.0, 0.0, 0.0)
    if is_train == 1:
        rec_count[ti] = n_rec


def trace_nrc_frame(
    scene,
    buffers: NrcFrameBuffers,
    *,
    seed: int,
    spread_c: float = 0.01,
    train_stride: int = 32,
    train_offset: int = 0,
    unbiased_every: int = 16,
    box: tuple[np.ndarray, np.ndarray],
) -> None:
    """Trace one frame of cache-terminated paths (and training suffixes) into ``buffers``.

    Args:
        scene: a device scene with ``kernel_args()`` (a :class:`~warp_kernels.path_tracing.SceneArgs`) and a
            host ``scene`` (film size, ``max_depth``, ``rr_depth``), e.g. ``ngp_sdk.nrc.scene.DeviceScene``.
        buffers: outputs, sized for the film and ``ceil(P / train_stride)`` training paths.
        seed: per-frame seed.
        spread_c: area-spread threshold ``c`` (the paper's 0.01).
        train_stride, train_offset: pixel ``i`` is a training path when ``i % train_stride == train_offset``.
        unbiased_every: every n-th training path ignores the cache at its end.
        box: ``(min, max)`` corners of the scene's bounding box (cache positions are normalised to it).
    """
    s = scene.scene
    w, h = s.sensor.width, s.sensor.height
    n = w * h
    if buffers.pixels != n:
        raise KernelArgumentError(f"buffers hold {buffers.pixels} pixels, the film has {n}")
    need = (n - train_offset + train_stride - 1) // train_stride if train_stride > 0 else 0
    if need > buffers.train_paths:
        raise KernelArgumentError(f"{need} training paths need room, buffers hold {buffers.train_paths}")
    lo, hi = (np.asarray(v, np.float64) for v in box)
    inv = 1.0 / np.maximum(hi - lo, 1e-9)
    b = buffers
    launch_split(_nrc_frame_kernel, n, [
        scene.kernel_args(), int(w), int(h), int(seed) & 0x7FFFFFFF, int(s.max_depth), int(s.rr_depth), float(spread_c),
        int(train_stride), int(train_offset), int(unbiased_every), int(b.max_train_vertices),
        wp.vec3(*lo.astype(np.float32)), wp.vec3(*inv.astype(np.float32)),
        b.prefix, b.throughput, b.query, b.query_valid, b.records, b.rec_c, b.rec_w, b.rec_count, b.end,
        b.end_valid], buffers.device)


# ----------------------------------------------------------------------------------------------------------
# cache inputs -> network inputs, and the reflectance factorisation
# ----------------------------------------------------------------------------------------------------------


@wp.kernel(enable_backward=False)
def _gather_kernel(offset: int, src: CacheInputs, index: wp.array(dtype=int), dst: CacheInputs):
    i = wp.tid() + offset
    j = index[i]
    for c in range(3):
        dst.position[i, c] = src.position[j, c]
    dst.direction[i] = src.direction[j]
    dst.normal[i] = src.normal[j]
    for c in range(N_MATERIAL_FEATURES):
        dst.material[i, c] = src.material[j, c]


def gather_inputs(src: CacheInputs, index: wp.array, dst: CacheInputs) -> None:
    """``dst[i] = src[index[i]]`` for ``i < len(index)`` (dst must hold at least ``len(index)`` rows)."""
    n = index.shape[0]
    if dst.direction.shape[0] < n:
        raise KernelArgumentError(f"dst holds {dst.direction.shape[0]} rows, need {n}")
    launch_split(_gather_kernel, n, [src, index, dst], index.device)


@wp.kernel(enable_backward=False)
def _pack_kernel(offset: int, feats: wp.array2d(dtype=float), sh_dir: wp.array2d(dtype=float),
                 sh_normal: wp.array2d(dtype=float), inputs: CacheInputs, out: wp.array2d(dtype=float)):
    i = wp.tid() + offset
    nf = feats.shape[1]
    ns = sh_dir.shape[1]
    for c in range(nf):
        out[i, c] = feats[i, c]
    for c in range(ns):
        out[i, nf + c] = sh_dir[i, c]
        out[i, nf + ns + c] = sh_normal[i, c]
    for c in range(N_MATERIAL_FEATURES):
        out[i, nf + 2 * ns + c] = inputs.material[i, c]


def pack_network_inputs(feats: wp.array, sh_dir: wp.array, sh_normal: wp.array, inputs: CacheInputs,
                        out: wp.array) -> wp.array:
    """Rows ``[hash features | SH(direction) | SH(normal) | material]`` for the first ``len(feats)`` vertices."""
    n = feats.shape[0]
    width = feats.shape[1] + sh_dir.shape[1] + sh_normal.shape[1] + N_MATERIAL_FEATURES
    if out.shape[0] < n or out.shape[1] != width:
        raise KernelArgumentError(f"out must be [>= {n}, {width}], got {out.shape}")
    launch_split(_pack_kernel, n, [feats, sh_dir, sh_normal, inputs, out], feats.device)
    return out


@wp.kernel(enable_backward=False)
def _d_feats_kernel(offset: int, d_inputs: wp.array2d(dtype=float), d_feats: wp.array2d(dtype=float)):
    i = wp.tid() + offset
    for c in range(d_feats.shape[1]):
        d_feats[i, c] = d_inputs[i, c]


def slice_feature_grad(d_inputs: wp.array, d_feats: wp.array) -> wp.array:
    """The hash-feature columns of dL/d(network inputs), as a contiguous ``[N, F]`` array."""
    launch_split(_d_feats_kernel, d_feats.shape[0], [d_inputs, d_feats], d_feats.device)
    return d_feats


@wp.func
def _reflectance(inputs: CacheInputs, i: int) -> wp.vec3:
    return wp.vec3(inputs.material[i, 1] + inputs.material[i, 4], inputs.material[i, 2] + inputs.material[i, 5],
                   inputs.material[i, 3] + inputs.material[i, 6]) + wp.vec3(1e-3, 1e-3, 1e-3)


@wp.kernel(enable_backward=False)
def _factor_kernel(offset: int, raw: wp.array2d(dtype=float), inputs: CacheInputs, out: wp.array2d(dtype=float)):
    i = wp.tid() + offset
    r = _reflectance(inputs, i)
    for c in range(3):
        out[i, c] = wp.max(raw[i, c], 0.0) * r[c]


@wp.kernel(enable_backward=False)
def _factor_grad_kernel(offset: int, raw: wp.array2d(dtype=float), d_out: wp.array2d(dtype=float),
                        inputs: CacheInputs, d_raw: wp.array2d(dtype=float)):
    i = wp.tid() + offset
    r = _reflectance(inputs, i)
    for c in range(3):
        g = d_out[i, c] * r[c]
        if raw[i, c] < 0.0:
            g = wp.min(g, 0.0)  # the clamp passes gradients that push a negative output back up
        d_raw[i, c] = g


def factor_radiance(raw: wp.array, inputs: CacheInputs, out: wp.array) -> wp.array:
    """Radiance = ``max(raw, 0) * (diffuse + specular reflectance + 1e-3)`` (the paper's factorisation)."""
    launch_split(_factor_kernel, raw.shape[0], [raw, inputs, out], raw.device)
    return out


def factor_radiance_backward(raw: wp.array, d_out: wp.array, inputs: CacheInputs, d_raw: wp.array) -> wp.array:
    """dL/draw of :func:`factor_radiance` (gradient through the clamp only where it raises a negative raw)."""
    launch_split(_factor_grad_kernel, raw.shape[0], [raw, d_out, inputs, d_raw], raw.device)
    return d_raw
