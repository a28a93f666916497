"""Depth supervision of NeRF training rays: per-ray target distances and an L1 loss on rendered depth.

Layer 0: Warp kernels; layer 1: :func:`gather_depth_targets` and :func:`depth_l1_loss`.

Depth images hold **z-depth** (distance along the camera's optical axis, as depth cameras and Blender write it),
stacked like the colour rows of :mod:`warp_kernels.nerf_batch`: ``depths[image, y * width_i + x]``, 0 (or any
value <= 0) marking an invalid pixel. A training ray through pixel ``(x, y)`` of camera ``c`` with unit
direction ``d`` reaches that depth at the ray distance::

    t* = z * depth_scale / <d, f_c>          f_c = the camera's unit forward axis (column 2 of c2w)

(``depth_scale`` converts depth units into the rays' units, e.g. NeRF world -> internal). The loss on the
rendered (expected-termination) depth ``D = sum_i w_i m_i`` of :func:`warp_kernels.volume_rendering.
composite_rays` is, over the ``n`` rays of a batch::

    L = weight / n * sum_{valid r} |D_r - t*_r|        dL/dD_r = weight / n * sign(D_r - t*_r)

Invalid targets (``t* = 0``) contribute nothing. All kernels are per ray (no atomics).
"""

from __future__ import annotations

import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = ["gather_depth_targets", "depth_l1_loss"]

wp.set_module_options({"enable_backward": False})


@wp.kernel
def _targets_kernel(
    offset: int,
    depths: wp.array2d(dtype=wp.float32),
    sizes: wp.array2d(dtype=wp.int32),
    pixel_xy: wp.array2d(dtype=wp.float32),
    cam_index: wp.array(dtype=wp.int32),
    c2w: wp.array3d(dtype=wp.float32),
    directions: wp.array2d(dtype=wp.float32),
    depth_scale: float,
    targets: wp.array(dtype=wp.float32),
):
    r = wp.tid() + offset
    c = cam_index[r]
    w = sizes[c, 0]
    h = sizes[c, 1]
    ix = wp.clamp(int(pixel_xy[r, 0]), 0, w - 1)
    iy = wp.clamp(int(pixel_xy[r, 1]), 0, h - 1)
    z = depths[c, iy * w + ix]
    fwd = wp.normalize(wp.vec3(c2w[c, 0, 2], c2w[c, 1, 2], c2w[c, 2, 2]))
    cosang = wp.dot(wp.vec3(directions[r, 0], directions[r, 1], directions[r, 2]), fwd)
    t = float(0.0)
    if z > 0.0 and cosang > 1.0e-6:
        t = z * depth_scale / cosang
    targets[r] = t


@wp.kernel
def _l1_kernel(
    offset: int,
    rendered: wp.array(dtype=wp.float32),
    targets: wp.array(dtype=wp.float32),
    scale: float,
    grad: wp.array(dtype=wp.float32),
    loss_terms: wp.array(dtype=wp.float32),
):
    r = wp.tid() + offset
    t = targets[r]
    g = float(0.0)
    term = float(0.0)
    if t > 0.0:
        diff = rendered[r] - t
        term = scale * wp.abs(diff)
        if diff > 0.0:
            g = scale
        elif diff < 0.0:
            g = -scale
    grad[r] = g
    loss_terms[r] = term


def gather_depth_targets(
    depths: wp.array,
    sizes: wp.array,
    pixel_xy: wp.array,
    cam_index: wp.array,
    c2w: wp.array,
    directions: wp.array,
    *,
    depth_scale: float = 1.0,
    out: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """Target ray distance of every training ray (0 where the depth image has no valid value).

    Args:
        depths: float32 ``[n_images, row_len]`` z-depth rows (see the module docstring); <= 0 = invalid.
        sizes: int32 ``[n_images, 2]`` ``(width, height)``.
        pixel_xy: float32 ``[n, 2]`` continuous pixel coordinates of the rays.
        cam_index: int32 ``[n]`` image (= camera) of every ray.
        c2w: float32 ``[n_images, 3, 4]`` camera-to-world matrices the rays were made with.
        directions: float32 ``[n, 3]`` unit ray directions.
        depth_scale: depth units -> ray units.
        out: optional float32 ``[n]`` output.
        device: ``None`` = the arrays' device.

    Returns:
        float32 ``[n]`` target distances along the rays (0 = no target).
    """
    dev = common_device([depths, sizes, pixel_xy, cam_index, c2w, directions, out], device)
    check_array(depths, "depths", dtype=wp.float32, shape=(None, None), device=dev)
    check_array(sizes, "sizes", dtype=wp.int32, shape=(depths.shape[0], 2), device=dev)
    check_array(pixel_xy, "pixel_xy", dtype=wp.float32, shape=(None, 2), device=dev)
    n = pixel_xy.shape[0]
    check_array(cam_index, "cam_index", dtype=wp.int32, shape=(n,), device=dev)
    check_array(c2w, "c2w", dtype=wp.float32, shape=(None, 3, 4), device=dev)
    if c2w.shape[0] < depths.shape[0]:
        raise KernelArgumentError(f"c2w has {c2w.shape[0]} cameras for {depths.shape[0]} depth images")
    check_array(directions, "directions", dtype=wp.float32, shape=(n, 3), device=dev)
    if out is None:
        out = wp.empty(n, dtype=wp.float32, device=dev)
    else:
        check_array(out, "out", dtype=wp.float32, shape=(n,), device=dev)
    if n:
        launch_split(_targets_kernel, n,
                     [depths, sizes, pixel_xy, cam_index, c2w, directions, float(depth_scale), out], dev)
    return out


def depth_l1_loss(
    rendered: wp.array,
    targets: wp.array,
    *,
    weight: float = 1.0,
    n_normalize: int | None = None,
    grad_out: wp.array | None = None,
    loss_terms: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> tuple[wp.array, wp.array]:
    """L1 loss of rendered depth against targets, ignoring rays without a target (see the module docstring).

    Args:
        rendered: float32 ``[n]`` expected-termination depth per ray.
        targets: float32 ``[n]`` target distances, 0 = none.
        weight: loss weight (instant-ngp's ``depth_supervision_lambda``).
        n_normalize: the ``n`` of the mean (default: the ray count).
        grad_out: optional float32 ``[n]`` output dL/dD.
        loss_terms: optional float32 ``[n]`` output: each ray's share of the loss (sum them for L).
        device: ``None`` = the arrays' device.

    Returns:
        ``(grad_out, loss_terms)``.
    """
    dev = common_device([rendered, targets, grad_out, loss_terms], device)
    check_array(rendered, "rendered", dtype=wp.float32, shape=(None,), device=dev)
    n = rendered.shape[0]
    check_array(targets, "targets", dtype=wp.float32, shape=(n,), device=dev)
    outs = []
    for a, name in ((grad_out, "grad_out"), (loss_terms, "loss_terms")):
        if a is None:
            a = wp.empty(n, dtype=wp.float32, device=dev)
        else:
            check_array(a, name, dtype=wp.float32, shape=(n,), device=dev)
        outs.append(a)
    norm = n if n_normalize is None else int(n_normalize)
    if n:
        launch_split(_l1_kernel, n, [rendered, targets, float(weight) / max(norm, 1), *outs], dev)
    return outs[0], outs[1]
