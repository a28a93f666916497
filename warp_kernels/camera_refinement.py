"""Camera refinement: per-camera pose corrections and their gradients (instant-ngp's extrinsic optimisation).

Layer 0: Warp kernels; layer 1: :func:`apply_pose_corrections` and :func:`accumulate_camera_gradients`.

A camera ``c`` has a correction ``corr[c] = (w, tau)`` (float32 ``[n_cams, 6]``): an axis-angle rotation ``w``
(radians, world axes) applied about the camera centre and a translation ``tau`` (world units)::

    R' = exp([w]x) R        c' = c + tau            (c2w = [R | c], columns right, down, forward, centre)

so a ray ``o + t d`` of the camera becomes ``c' + t exp([w]x) d``. With the gradient ``g_i = dL/dp_i`` of the
loss at the sample points ``p_i = o + t_i d`` of a ray (from the field's input gradient), a correction near
the current one changes the loss by::

    dL/dtau = sum_i g_i                    dL/dw = d x sum_i t_i g_i

(the rotation derivative is taken at the current correction, to first order in a small left-multiplied update
- instant-ngp's approximation; exact at ``w = 0``). :func:`accumulate_camera_gradients` sums both over the
samples of every ray into the ray's camera (atomics on CUDA; one CPU thread, so plain adds there).

Two other parametrisations of the same correction (:func:`apply_pose_corrections` ``pivot`` / ``local``): the
rotation turns about a fixed point ``p`` (``c' = p + exp([w]x) (c - p) + tau``), and ``w``, ``tau`` are given in
the camera's axes (world ``R w``, ``R tau``). :func:`camera_gradients_to_parameters` turns the accumulated
gradients into theirs: ``dL/dw += r x dL/dtau`` with ``r = exp([w]x) (c - p)``, then ``R^T`` on both.

Focal length: a log-scale ``s`` multiplies ``fx`` and ``fy`` by ``exp(s)`` (:func:`apply_focal_corrections`).
A pinhole ray through pixel ``(px, py)`` has the world direction ``d = v / |v|``, ``v = R ((px - cx) / fx,
(py - cy) / fy, 1)``, so with ``g_d = sum_i t_i g_i``::

    dL/ds = < (g_d - d <d, g_d>) / |v| , R (-(px - cx) / fx, -(py - cy) / fy, 0) >

(exact for pinhole cameras; lens distortion is ignored in this derivative). It is accumulated per camera, or
into entry 0 for one focal length shared by every camera (instant-ngp optimises a shared one).
"""

from __future__ import annotations

import warp as wp

from .device import KernelArgumentError, check_array, common_device

__all__ = ["apply_pose_corrections", "apply_focal_corrections", "accumulate_camera_gradients",
           "camera_gradients_to_parameters", "POSE_CORRECTION_DIMS"]

#: Parameters of one camera's correction: axis-angle rotation (3), translation (3).
POSE_CORRECTION_DIMS = 6

wp.set_module_options({"enable_backward": False})


@wp.func
def _rotate(w: wp.vec3, v: wp.vec3) -> wp.vec3:
    """``exp([w]x) v`` (Rodrigues); the identity for ``|w| < 1e-12``."""
    theta = wp.length(w)
    if theta < 1.0e-12:
        return v
    k = w / theta
    c = wp.cos(theta)
    s = wp.sin(theta)
    return v * c + wp.cross(k, v) * s + k * (wp.dot(k, v) * (1.0 - c))


@wp.func
def _column(m: wp.array3d(dtype=wp.float32), c: int, j: int) -> wp.vec3:
    return wp.vec3(m[c, 0, j], m[c, 1, j], m[c, 2, j])


@wp.func
def _to_world(m: wp.array3d(dtype=wp.float32), c: int, v: wp.vec3) -> wp.vec3:
    """``R v`` with ``R`` the rotation of ``m[c]``."""
    return _column(m, c, 0) * v[0] + _column(m, c, 1) * v[1] + _column(m, c, 2) * v[2]


@wp.func
def _to_camera(m: wp.array3d(dtype=wp.float32), c: int, v: wp.vec3) -> wp.vec3:
    """``R^T v`` with ``R`` the rotation of ``m[c]``."""
    return wp.vec3(wp.dot(_column(m, c, 0), v), wp.dot(_column(m, c, 1), v), wp.dot(_column(m, c, 2), v))


@wp.func
def _world_part(base: wp.array3d(dtype=wp.float32), corr: wp.array2d(dtype=wp.float32), c: int, k: int,
                local: int) -> wp.vec3:
    """Entries ``k .. k + 2`` of camera ``c``'s correction in world axes (``R v`` when they are in camera axes)."""
    v = wp.vec3(corr[c, k], corr[c, k + 1], corr[c, k + 2])
    if local != 0:
        v = _to_world(base, c, v)
    return v


@wp.kernel
def _apply_kernel(
    base: wp.array3d(dtype=wp.float32),
    corr: wp.array2d(dtype=wp.float32),
    use_pivot: int,
    pivot: wp.vec3,
    local: int,
    out: wp.array3d(dtype=wp.float32),
):
    c = wp.tid()
    w = _world_part(base, corr, c, 0, local)
    tau = _world_part(base, corr, c, 3, local)
    for j in range(3):
        col = _rotate(w, _column(base, c, j))
        for r in range(3):
            out[c, r, j] = col[r]
    centre = _column(base, c, 3)
    if use_pivot != 0:
        centre = pivot + _rotate(w, centre - pivot)
    centre = centre + tau
    for r in range(3):
        out[c, r, 3] = centre[r]


@wp.kernel
def _pivot_local_grad_kernel(
    base: wp.array3d(dtype=wp.float32),
    corr: wp.array2d(dtype=wp.float32),
    use_pivot: int,
    pivot: wp.vec3,
    local: int,
    grads: wp.array2d(dtype=wp.float32),
):
    c = wp.tid()
    gw = wp.vec3(grads[c, 0], grads[c, 1], grads[c, 2])
    gt = wp.vec3(grads[c, 3], grads[c, 4], grads[c, 5])
    if use_pivot != 0:
        w = _world_part(base, corr, c, 0, local)
        gw = gw + wp.cross(_rotate(w, _column(base, c, 3) - pivot), gt)
    if local != 0:
        gw = _to_camera(base, c, gw)
        gt = _to_camera(base, c, gt)
    for k in range(3):
        grads[c, k] = gw[k]
        grads[c, 3 + k] = gt[k]


@wp.kernel
def _focal_kernel(
    base: wp.array2d(dtype=wp.float32),
    log_scale: wp.array(dtype=wp.float32),
    shared: int,
    out: wp.array2d(dtype=wp.float32),
):
    c = wp.tid()
    k = c
    if shared != 0:
        k = 0
    f = wp.exp(log_scale[k])
    out[c, 0] = base[c, 0] * f
    out[c, 1] = base[c, 1] * f
    out[c, 2] = base[c, 2]
    out[c, 3] = base[c, 3]


@wp.kernel
def _camera_grad_kernel(
    packed_info: wp.array2d(dtype=wp.int32),
    t_starts: wp.array(dtype=wp.float32),
    grad_positions: wp.array2d(dtype=wp.float32),
    directions: wp.array2d(dtype=wp.float32),
    cam_index: wp.array(dtype=wp.int32),
    cam_mask: wp.array(dtype=wp.int32),
    grad_scale: wp.vec3,
    cam_grads: wp.array2d(dtype=wp.float32),
    want_focal: int,
    focal_shared: int,
    pixel_xy: wp.array2d(dtype=wp.float32),
    cam_params: wp.array2d(dtype=wp.float32),
    c2w: wp.array3d(dtype=wp.float32),
    focal_grads: wp.array(dtype=wp.float32),
):
    r = wp.tid()
    c = cam_index[r]
    if cam_mask[c] == 0 and want_focal == 0:
        return
    start = packed_info[r, 0]
    count = packed_info[r, 1]
    if count == 0:
        return
    go = wp.vec3(0.0)
    gd = wp.vec3(0.0)
    for k in range(count):
        s = start + k
        g = wp.cw_mul(wp.vec3(grad_positions[s, 0], grad_positions[s, 1], grad_positions[s, 2]), grad_scale)
        go = go + g
        gd = gd + g * t_starts[s]
    d = wp.vec3(directions[r, 0], directions[r, 1], directions[r, 2])
    if cam_mask[c] != 0:
        gw = wp.cross(d, gd)
        for k in range(3):
            wp.atomic_add(cam_grads, c, k, gw[k])
            wp.atomic_add(cam_grads, c, 3 + k, go[k])
    if want_focal != 0:
        u = (pixel_xy[r, 0] - cam_params[c, 2]) / cam_params[c, 0]
        v = (pixel_xy[r, 1] - cam_params[c, 3]) / cam_params[c, 1]
        cam = wp.vec3(u, v, 1.0)
        dv = wp.vec3(-u, -v, 0.0)
        vw = wp.vec3(0.0)
        dvw = wp.vec3(0.0)
        for i in range(3):
            vw[i] = c2w[c, i, 0] * cam[0] + c2w[c, i, 1] * cam[1] + c2w[c, i, 2] * cam[2]
            dvw[i] = c2w[c, i, 0] * dv[0] + c2w[c, i, 1] * dv[1] + c2w[c, i, 2] * dv[2]
        g_v = (gd - d * wp.dot(d, gd)) / wp.length(vw)
        k = c
        if focal_shared != 0:
            k = 0
        wp.atomic_add(focal_grads, k, wp.dot(g_v, dvw))


def _pivot_args(pivot, local: bool) -> list:
    if pivot is None:
        return [0, wp.vec3(0.0, 0.0, 0.0), int(bool(local))]
    try:
        p = [float(v) for v in pivot]
    except (TypeError, ValueError) as e:
        raise KernelArgumentError(f"pivot must be 3 numbers, got {pivot!r}") from e
    if len(p) != 3 or not all(abs(v) < float("inf") for v in p):
        raise KernelArgumentError(f"pivot must be 3 finite numbers, got {pivot!r}")
    return [1, wp.vec3(*p), int(bool(local))]


def apply_pose_corrections(base: wp.array, corrections: wp.array, *, pivot=None, local: bool = False,
                           out: wp.array | None = None, device: wp.context.Devicelike = None) -> wp.array:
    """Corrected camera-to-world matrices ``[exp([w]x) R | p + exp([w]x) (c - p) + tau]``.

    Args:
        base: float32 ``[n_cams, 3, 4]`` camera-to-world matrices ``[R | c]`` (internal convention, as
            :func:`warp_kernels.rays.generate_rays`).
        corrections: float32 ``[n_cams, 6]`` ``(w [rad], tau [world units])`` per camera.
        pivot: the point ``p`` rotations turn about (3 floats, world units); None = each camera's own centre
            (``c' = c + tau``, instant-ngp's convention).
        local: ``w`` and ``tau`` are in the base camera's axes (``R w``, ``R tau`` in world axes).
        out: optional float32 ``[n_cams, 3, 4]`` output (may not alias ``base``).
        device: ``None`` = the arrays' device.

    Returns:
        float32 ``[n_cams, 3, 4]``.
    """
    dev = common_device([base, corrections, out], device)
    check_array(base, "base", dtype=wp.float32, shape=(None, 3, 4), device=dev)
    n = base.shape[0]
    check_array(corrections, "corrections", dtype=wp.float32, shape=(n, POSE_CORRECTION_DIMS), device=dev)
    if out is None:
        out = wp.empty((n, 3, 4), dtype=wp.float32, device=dev)
    else:
        check_array(out, "out", dtype=wp.float32, shape=(n, 3, 4), device=dev)
    args = _pivot_args(pivot, local)
    if n:
        wp.launch(_apply_kernel, dim=n, inputs=[base, corrections, *args, out], device=dev)
    return out


def camera_gradients_to_parameters(cam_grads: wp.array, base: wp.array, corrections: wp.array, *, pivot=None,
                                   local: bool = False, device: wp.context.Devicelike = None) -> wp.array:
    """Turn accumulated camera gradients (world axes, rotation about the camera centre, as
    :func:`accumulate_camera_gradients` gives them) into gradients of the corrections of
    :func:`apply_pose_corrections` with ``pivot`` and ``local``, in place.

    A left-multiplied rotation update ``e`` about ``p`` moves the centre by ``e x r``, ``r = exp([w]x) (c - p)``,
    so ``dL/de = dL/dw_c + r x dL/dtau``; in camera axes both gradients are multiplied by ``R^T``.

    Args:
        cam_grads: float32 ``[n_cams, 6]`` ``(dL/dw, dL/dtau)``, converted in place.
        base: float32 ``[n_cams, 3, 4]`` the poses the corrections apply to.
        corrections: float32 ``[n_cams, 6]`` the current corrections.
        pivot, local: as :func:`apply_pose_corrections`.

    Returns:
        ``cam_grads``.
    """
    dev = common_device([cam_grads, base, corrections], device)
    check_array(base, "base", dtype=wp.float32, shape=(None, 3, 4), device=dev)
    n = base.shape[0]
    check_array(corrections, "corrections", dtype=wp.float32, shape=(n, POSE_CORRECTION_DIMS), device=dev)
    check_array(cam_grads, "cam_grads", dtype=wp.float32, shape=(n, POSE_CORRECTION_DIMS), device=dev)
    args = _pivot_args(pivot, local)
    if n and (args[0] or args[2]):
        wp.launch(_pivot_local_grad_kernel, dim=n, inputs=[base, corrections, *args, cam_grads], device=dev)
    return cam_grads


def apply_focal_corrections(base_params: wp.array, log_scale: wp.array, *, shared: bool = False,
                            out: wp.array | None = None, device: wp.context.Devicelike = None) -> wp.array:
    """Camera parameters ``(fx e^s, fy e^s, cx, cy)`` from ``base_params`` float32 ``[n_cams, 4]`` and log-scales
    ``log_scale`` float32 ``[n_cams]`` (or ``[1]`` with ``shared``: one scale for every camera)."""
    dev = common_device([base_params, log_scale, out], device)
    check_array(base_params, "base_params", dtype=wp.float32, shape=(None, 4), device=dev)
    n = base_params.shape[0]
    check_array(log_scale, "log_scale", dtype=wp.float32, shape=(1 if shared else n,), device=dev)
    if out is None:
        out = wp.empty((n, 4), dtype=wp.float32, device=dev)
    else:
        check_array(out, "out", dtype=wp.float32, shape=(n, 4), device=dev)
    if n:
        wp.launch(_focal_kernel, dim=n, inputs=[base_params, log_scale, int(bool(shared)), out], device=dev)
    return out


def accumulate_camera_gradients(
    packed_info: wp.array,
    t_starts: wp.array,
    grad_positions: wp.array,
    directions: wp.array,
    cam_index: wp.array,
    cam_mask: wp.array,
    cam_grads: wp.array,
    *,
    n_rays: int | None = None,
    grad_scale=(1.0, 1.0, 1.0),
    focal: tuple[wp.array, wp.array, wp.array, wp.array] | None = None,
    focal_shared: bool = False,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """Add each ray's ``(dL/dw, dL/dtau)`` into its camera's row of ``cam_grads`` (see the module docstring).

    Args:
        packed_info: int32 ``[n, 2]`` ``(first sample, count)`` per ray (:class:`warp_kernels.ray_marching.
            RaySamples`).
        t_starts: float32 ``[S]`` distance of every sample point along its (unit) ray.
        grad_positions: float32 ``[S, 3]`` dL/dp of every sample point (world units).
        directions: float32 ``[n, 3]`` unit direction of every ray.
        cam_index: int32 ``[n]`` camera of every ray.
        cam_mask: int32 ``[n_cams]``: cameras with 0 receive no pose gradient (their rays still count for the
            focal length).
        cam_grads: float32 ``[n_cams, 6]`` accumulated in place: ``(dL/dw, dL/dtau)``.
        n_rays: rays to visit (default all ``n``): rays dropped by a sample budget are left out.
        grad_scale: 3 floats multiplying ``grad_positions`` per axis first (a gradient with respect to
            ``x = (p - lo) * grad_scale``, e.g. the hash grid's unit cube, becomes dL/dp).
        focal: also accumulate dL/ds of the focal log-scale: ``(pixel_xy [n, 2], cam_params [n_cams, 4]
            (the ones the rays were made with), c2w [n_cams, 3, 4] (likewise), focal_grads [n_cams] or [1])``.
        focal_shared: add every camera's dL/ds into ``focal_grads[0]``.
        device: ``None`` = the arrays' device.

    Returns:
        ``cam_grads``.
    """
    dev = common_device([packed_info, t_starts, grad_positions, directions, cam_index, cam_mask, cam_grads], device)
    check_array(packed_info, "packed_info", dtype=wp.int32, shape=(None, 2), device=dev)
    n = packed_info.shape[0] if n_rays is None else int(n_rays)
    check_array(t_starts, "t_starts", dtype=wp.float32, shape=(None,), device=dev)
    check_array(grad_positions, "grad_positions", dtype=wp.float32, shape=(t_starts.shape[0], 3), device=dev)
    check_array(directions, "directions", dtype=wp.float32, shape=(None, 3), device=dev)
    check_array(cam_index, "cam_index", dtype=wp.int32, shape=(None,), device=dev)
    check_array(cam_grads, "cam_grads", dtype=wp.float32, shape=(None, POSE_CORRECTION_DIMS), device=dev)
    check_array(cam_mask, "cam_mask", dtype=wp.int32, shape=(cam_grads.shape[0],), device=dev)
    if min(packed_info.shape[0], directions.shape[0], cam_index.shape[0]) < n:
        raise KernelArgumentError(f"n_rays={n} exceeds the per-ray arrays")
    if focal is None:
        empty2 = wp.zeros((1, 2), dtype=wp.float32, device=dev)
        fin = [0, 0, empty2, wp.zeros((1, 4), dtype=wp.float32, device=dev),
               wp.zeros((1, 3, 4), dtype=wp.float32, device=dev), wp.zeros(1, dtype=wp.float32, device=dev)]
    else:
        pixel_xy, cam_params, c2w, focal_grads = focal
        check_array(pixel_xy, "pixel_xy", dtype=wp.float32, shape=(None, 2), device=dev)
        check_array(cam_params, "cam_params", dtype=wp.float32, shape=(cam_grads.shape[0], 4), device=dev)
        check_array(c2w, "c2w", dtype=wp.float32, shape=(cam_grads.shape[0], 3, 4), device=dev)
        check_array(focal_grads, "focal_grads", dtype=wp.float32,
                    shape=(1 if focal_shared else cam_grads.shape[0],), device=dev)
        if pixel_xy.shape[0] < n:
            raise KernelArgumentError(f"n_rays={n} exceeds pixel_xy")
        fin = [1, int(bool(focal_shared)), pixel_xy, cam_params, c2w, focal_grads]
    if n:
        # one CPU thread (no split launch): the per-camera sums are plain adds there
        wp.launch(_camera_grad_kernel, dim=n,
                  inputs=[packed_info, t_starts, grad_positions, directions, cam_index, cam_mask,
                          wp.vec3(*(float(v) for v in grad_scale)), cam_grads, *fin],
                  device=dev)
    return cam_grads
