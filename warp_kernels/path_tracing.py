"""Unidirectional path tracing with next-event estimation and multiple importance sampling (Warp, CPU and CUDA).

One thread traces ``spp`` paths through one pixel and adds the sum of their radiance to the pixel's accumulator,
so progressive rendering is repeated launches with new seeds (the image is the sum over the total spp). Geometry
is one triangle :class:`warp.Mesh` (BVH); each triangle has a material index
(:class:`warp_kernels.bsdf.Material`, whose ``emission`` makes the triangle an area light emitting on its front
side, the side its winding's normal points to).

Conventions follow Mitsuba 3's ``path`` integrator so images agree: ``max_depth`` counts path vertices (1 = only
directly visible emitters, 2 = direct illumination; -1 = unbounded), Russian roulette from vertex ``rr_depth`` with
continuation probability ``min(max(throughput), 0.95)``, the power heuristic between light and BSDF sampling, a
box pixel filter (uniform jitter). Lights sampled by NEE: emissive triangles (chosen with probability
proportional to area x luminance of radiance, a uniform point on the triangle) and point lights (intensity in
W/sr); a constant environment is reached by BSDF sampling only.

Camera: a pinhole at ``origin`` looking along ``forward``; ``right``/``up`` are scaled by the tangent of half
the field of view so pixel ``(i, j)`` looks along ``forward + (2 (i + u) / W - 1) right + (1 - 2 (j + v) / H) up``.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from .bsdf import CONDUCTOR, Material, bsdf_eval, bsdf_pdf, bsdf_sample
from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = ["Camera", "LightTable", "SceneArgs", "ShadingFrame", "trace_paths", "make_camera", "make_scene_args",
           "camera_ray", "shading_frame", "to_world", "sample_direct", "emitter_mis_weight"]

#: Ray-origin offset along the normal (scene units; scenes are ~1-10 units across).
_EPS = wp.constant(1e-4)


@wp.struct
class Camera:
    """Pinhole camera: ``origin``, ``forward`` (unit), ``right`` and ``up`` (scaled by tan(fov/2) per axis)."""

    origin: wp.vec3
    forward: wp.vec3
    right: wp.vec3
    up: wp.vec3


@wp.struct
class LightTable:
    """Lights for next-event estimation.

    ``tri`` [L]: triangle index, or -1 for a point light; ``position``/``intensity`` [L]: point lights;
    ``cdf`` [L]: inclusive cumulative selection probabilities; ``pmf`` [L]; ``tri_pmf`` [F]: selection probability
    of each triangle (0 for non-emitters); ``tri_area`` [F]; ``count``: L.
    """

    tri: wp.array(dtype=int)
    position: wp.array(dtype=wp.vec3)
    intensity: wp.array(dtype=wp.vec3)
    cdf: wp.array(dtype=float)
    pmf: wp.array(dtype=float)
    tri_pmf: wp.array(dtype=float)
    tri_area: wp.array(dtype=float)
    count: int


@wp.struct
class SceneArgs:
    """Everything a path needs from the scene: the triangle BVH ``mesh`` (id), ``tri_material`` [F],
    ``materials`` [M], the NEE ``lights``, the constant environment radiance ``env`` and the camera ``cam``."""

    mesh: wp.uint64
    tri_material: wp.array(dtype=int)
    materials: wp.array(dtype=Material)
    lights: LightTable
    env: wp.vec3
    cam: Camera


def make_scene_args(mesh: wp.Mesh, tri_material: wp.array, materials: wp.array, lights: LightTable,
                    camera: Camera, env=(0.0, 0.0, 0.0)) -> SceneArgs:
    """A :class:`SceneArgs` from its parts."""
    a = SceneArgs()
    a.mesh = mesh.id
    a.tri_material = tri_material
    a.materials = materials
    a.lights = lights
    a.env = wp.vec3(*map(float, env))
    a.cam = camera
    return a


def make_camera(origin, forward, up, fov_deg: float, width: int, height: int, fov_axis: str = "x",
                right=None) -> Camera:
    """A :class:`Camera` from a position, a viewing direction, an up vector and a field of view along
    ``fov_axis`` (Mitsuba's: ``x``, ``y``, ``smaller``, ``larger``).

    ``right`` (image right in world space) defaults to ``forward x up``; pass it for frames with a reflection
    (e.g. Mitsuba's ``to_world`` with a negative scale, whose image right is minus the camera's x axis).
    """
    o, fwd, u = (np.asarray(v, np.float64) for v in (origin, forward, up))
    if np.linalg.norm(fwd) == 0:
        raise KernelArgumentError("camera forward direction is zero")
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, u) if right is None else np.asarray(right, np.float64)
    right = right - fwd * np.dot(right, fwd)
    if np.linalg.norm(right) < 1e-12:
        raise KernelArgumentError("camera up is parallel to the viewing direction")
    right /= np.linalg.norm(right)
    true_up = u - fwd * np.dot(u, fwd)
    true_up /= np.linalg.norm(true_up)
    aspect = width / height
    axis = fov_axis
    if axis == "smaller":
        axis = "x" if width <= height else "y"
    elif axis == "larger":
        axis = "x" if width >= height else "y"
    if axis not in ("x", "y"):
        raise KernelArgumentError(f"fov_axis must be x, y, smaller or larger, got {fov_axis!r}")
    t_half = np.tan(np.radians(fov_deg) / 2)
    tx, ty = (t_half, t_half / aspect) if axis == "x" else (t_half * aspect, t_half)
    cam = Camera()
    cam.origin = wp.vec3(*o.astype(np.float32))
    cam.forward = wp.vec3(*fwd.astype(np.float32))
    cam.right = wp.vec3(*(right * tx).astype(np.float32))
    cam.up = wp.vec3(*(true_up * ty).astype(np.float32))
    return cam


@wp.func
def _luminance(c: wp.vec3) -> float:
    return 0.212671 * c[0] + 0.715160 * c[1] + 0.072169 * c[2]


@wp.func
def _onb_t(n: wp.vec3) -> wp.vec3:
    """First tangent of the branchless orthonormal basis of Duff et al. (2017)."""
    s = wp.where(n[2] >= 0.0, 1.0, -1.0)
    a = -1.0 / (s + n[2])
    b = n[0] * n[1] * a
    return wp.vec3(1.0 + s * n[0] * n[0] * a, s * b, -s * n[0])


@wp.func
def _onb_b(n: wp.vec3) -> wp.vec3:
    s = wp.where(n[2] >= 0.0, 1.0, -1.0)
    a = -1.0 / (s + n[2])
    b = n[0] * n[1] * a
    return wp.vec3(b, s + n[1] * n[1] * a, -n[1])


@wp.func
def _pick_light(cdf: wp.array(dtype=float), count: int, u: float) -> int:
    lo = int(0)
    hi = count - 1
    while lo < hi:
        mid = (lo + hi) / 2
        if cdf[mid] > u:
            hi = mid
        else:
            lo = mid + 1
    return lo


@wp.func
def emitter_mis_weight(lights: LightTable, face: int, dist: float, cos_light: float, prev_pdf: float,
                       prev_delta: int) -> float:
    """Power-heuristic weight of emission reached by BSDF sampling (1 after a delta lobe or the camera)."""
    if prev_delta != 0:
        return 1.0
    pl = lights.tri_pmf[face] / lights.tri_area[face] * dist * dist / cos_light
    return prev_pdf * prev_pdf / (prev_pdf * prev_pdf + pl * pl)


@wp.struct
class ShadingFrame:
    """The local frame at a hit: shading normal ``n`` (flipped towards the viewer for two-sided materials),
    tangents ``t``/``b``, the direction to the viewer in local coordinates ``wi``, the offset ray origin ``origin``,
    and ``valid`` (0: the back of a one-sided material, which scatters nothing)."""

    n: wp.vec3
    t: wp.vec3
    b: wp.vec3
    wi: wp.vec3
    origin: wp.vec3
    valid: int


@wp.func
def shading_frame(p: wp.vec3, n: wp.vec3, wi: wp.vec3, twosided: int) -> ShadingFrame:
    """:class:`ShadingFrame` at hit point ``p`` with geometric normal ``n``, ``wi`` pointing to the viewer."""
    fr = ShadingFrame()
    ns = n
    fr.valid = 1
    if wp.dot(n, wi) < 0.0:
        ns = -n
        if twosided == 0:
            fr.valid = 0
    fr.n = ns
    fr.t = _onb_t(ns)
    fr.b = _onb_b(ns)
    fr.wi = wp.vec3(wp.dot(wi, fr.t), wp.dot(wi, fr.b), wp.dot(wi, ns))
    fr.origin = p + _EPS * ns
    return fr


@wp.func
def to_world(fr: ShadingFrame, w: wp.vec3) -> wp.vec3:
    """A local direction of ``fr`` in world coordinates (normalised)."""
    return wp.normalize(w[0] * fr.t + w[1] * fr.b + w[2] * fr.n)


@wp.func
def camera_ray(cam: Camera, px: int, py: int, width: int, height: int, u: float, v: float) -> wp.vec3:
    """Unit direction through the point ``(px + u, py + v)`` of the film (box filter)."""
    fx = 2.0 * (float(px) + u) / float(width) - 1.0
    fy = 1.0 - 2.0 * (float(py) + v) / float(height)
    return wp.normalize(cam.forward + fx * cam.right + fy * cam.up)


@wp.func
def sample_direct(scene: SceneArgs, mat: Material, fr: ShadingFrame, u0: float, u1: float, u2: float) -> wp.vec3:
    """Next-event estimate of the direct light scattered at ``fr`` towards the viewer (MIS-weighted against BSDF
    sampling; zero for delta materials or without lights)."""
    out = wp.vec3(0.0, 0.0, 0.0)
    lights = scene.lights
    mesh = scene.mesh
    p_off = fr.origin
    ns = fr.n
    t = fr.t
    b = fr.b
    wi_l = fr.wi
    if mat.kind == CONDUCTOR or lights.count == 0:
        return out
    li = _pick_light(lights.cdf, lights.count, u0)
    pmf = lights.pmf[li]
    ltri = lights.tri[li]
    if ltri >= 0:
        # mesh_get_point takes a face-vertex slot (3 * face + corner) and resolves the index itself
        a0 = wp.mesh_get_point(mesh, ltri * 3 + 0)
        a1 = wp.mesh_get_point(mesh, ltri * 3 + 1)
        a2 = wp.mesh_get_point(mesh, ltri * 3 + 2)
        su = wp.sqrt(u1)
        y = (1.0 - su) * a0 + su * (1.0 - u2) * a1 + su * u2 * a2
        to_l = y - p_off
        dist = wp.length(to_l)
        if dist <= 2.0 * _EPS:
            return out
        wl = to_l / dist
        cos_l = -wp.dot(wp.mesh_eval_face_normal(mesh, ltri), wl)
        cos_s = wp.dot(wl, ns)
        if cos_l > 0.0 and cos_s > 0.0:
            if not wp.mesh_query_ray_anyhit(mesh, p_off, wl, dist * (1.0 - 1.0e-4) - _EPS):
                wo_l = wp.vec3(wp.dot(wl, t), wp.dot(wl, b), cos_s)
                fval = bsdf_eval(mat, wi_l, wo_l)
                pl = pmf / lights.tri_area[ltri] * dist * dist / cos_l
                pb = bsdf_pdf(mat, wi_l, wo_l)
                w = pl * pl / (pl * pl + pb * pb)
                out = (w / pl) * wp.cw_mul(fval, scene.materials[scene.tri_material[ltri]].emission)
    else:
        to_l = lights.position[li] - p_off
        dist = wp.length(to_l)
        if dist <= 0.0:
            return out
        wl = to_l / dist
        cos_s = wp.dot(wl, ns)
        if cos_s > 0.0:
            if not wp.mesh_query_ray_anyhit(mesh, p_off, wl, dist * (1.0 - 1.0e-4)):
                wo_l = wp.vec3(wp.dot(wl, t), wp.dot(wl, b), cos_s)
                out = wp.cw_mul(bsdf_eval(mat, wi_l, wo_l), lights.intensity[li] / (dist * dist * pmf))
    return out


@wp.func
def luminance(c: wp.vec3) -> float:
    """Rec. 709 luminance of linear RGB."""
    return _luminance(c)


@wp.kernel(enable_backward=False)
def _trace_kernel(
    offset: int,
    scene: SceneArgs,
    width: int,
    height: int,
    spp: int,
    seed: int,
    max_depth: int,
    rr_depth: int,
    accum: wp.array(dtype=wp.vec3),
):
    tid = wp.tid() + offset
    px = tid % width
    py = tid / width
    total = wp.vec3(0.0, 0.0, 0.0)
    for s in range(spp):
        rng = wp.rand_init(seed, tid * spp + s)
        d = camera_ray(scene.cam, px, py, width, height, wp.randf(rng), wp.randf(rng))
        o = scene.cam.origin
        radiance = wp.vec3(0.0, 0.0, 0.0)
        beta = wp.vec3(1.0, 1.0, 1.0)
        prev_pdf = float(0.0)
        prev_delta = int(1)
        depth = int(1)
        while True:
            q = wp.mesh_query_ray(scene.mesh, o, d, 1.0e30)
            if not q.result:
                radiance = radiance + wp.cw_mul(beta, scene.env)
                break
            f = q.face
            p = o + q.t * d
            n = wp.mesh_eval_face_normal(scene.mesh, f)
            mat = scene.materials[scene.tri_material[f]]
            wi = -d
            cos_front = wp.dot(n, wi)
            if cos_front > 0.0 and _luminance(mat.emission) > 0.0:
                w = emitter_mis_weight(scene.lights, f, q.t, cos_front, prev_pdf, prev_delta)
                radiance = radiance + w * wp.cw_mul(beta, mat.emission)
            if max_depth >= 0 and depth >= max_depth:
                break
            fr = shading_frame(p, n, wi, mat.twosided)
            if fr.valid == 0:
                break
            u0 = wp.randf(rng)
            u1 = wp.randf(rng)
            u2 = wp.randf(rng)
            radiance = radiance + wp.cw_mul(beta, sample_direct(scene, mat, fr, u0, u1, u2))
            bs = bsdf_sample(mat, fr.wi, wp.randf(rng), wp.randf(rng))
            if bs.valid == 0:
                break
            beta = wp.cw_mul(beta, bs.weight)
            prev_pdf = bs.pdf
            prev_delta = bs.delta
            o = fr.origin
            d = to_world(fr, bs.wo)
            depth += 1
            if depth > rr_depth:
                q_rr = wp.min(wp.max(wp.max(beta[0], beta[1]), beta[2]), 0.95)
                if wp.randf(rng) >= q_rr:
                    break
                beta = beta / q_rr
        total = total + radiance
    accum[tid] = accum[tid] + total


def trace_paths(
    scene: SceneArgs,
    width: int,
    height: int,
    accum: wp.array,
    *,
    spp: int = 1,
    seed: int = 0,
    max_depth: int = -1,
    rr_depth: int = 5,
) -> wp.array:
    """Add the summed radiance of ``spp`` new paths per pixel to ``accum`` (vec3 ``[height * width]``, row-major).

    Args:
        scene: the scene's device arrays (:func:`make_scene_args`).
        width, height: image size in pixels.
        accum: vec3 ``[width * height]`` accumulator (sum of linear radiance over all samples so far).
        spp: paths per pixel in this launch.
        seed: RNG seed (use a new one per launch).
        max_depth: longest path in vertices (Mitsuba's convention; -1 = unbounded).
        rr_depth: first vertex depth at which Russian roulette may stop a path.

    Returns:
        ``accum``.
    """
    device = common_device([scene.tri_material, scene.materials, accum])
    n = width * height
    if width < 1 or height < 1 or spp < 1:
        raise KernelArgumentError(f"need width, height, spp >= 1, got {width}, {height}, {spp}")
    check_array(accum, "accum", dtype=wp.vec3, shape=(n,), device=device)
    check_array(scene.tri_material, "tri_material", dtype=wp.int32, device=device)
    if max_depth == 0:
        return accum
    launch_split(_trace_kernel, n, [scene, int(width), int(height), int(spp), int(seed) & 0x7FFFFFFF,
                                    int(max_depth), int(rr_depth), accum], device)
    return accum
