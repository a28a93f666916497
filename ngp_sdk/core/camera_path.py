"""Camera paths for rendering videos: instant-ngp's ``base_cam.json`` format and simple orbits.

instant-ngp camera path files (written by its GUI, read by ``scripts/run.py --video_camera_path``) are
``{"path": [keyframe, ...], "time": ...}`` with keyframes ``{"R": [x, y, z, w], "T": [x, y, z], "fov": deg,
"scale": ..., "slice": ..., "aperture_size": ...}``: ``R`` is the rotation quaternion (Eigen coefficient order
x, y, z, w) and ``T`` the position of a camera-to-world matrix in instant-ngp's *internal* space (columns right,
down, forward; :mod:`ngp_sdk.core.cameras`), and ``fov`` is the vertical field of view in degrees. A path is played
over ``t`` in [0, 1] with instant-ngp's uniform cubic B-spline through the keyframes (end keyframes repeated);
quaternions are blended on the short arc and normalised.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ngp_sdk.core.cameras import Intrinsics, focal_length_from_fov
from ngp_sdk.core.errors import DataError

__all__ = ["CameraKeyframe", "load_camera_path", "eval_camera_path", "sample_camera_path", "quaternion_to_matrix",
           "matrix_to_quaternion",
           "look_at",
           "orbit_poses", "intrinsics_with_fov"]


@dataclass(frozen=True, kw_only=True)
class CameraKeyframe:
    """One keyframe: quaternion ``R`` (x, y, z, w), internal position ``T``, vertical fov in degrees (or None)."""

    R: np.ndarray
    T: np.ndarray
    fov: float | None = None


def quaternion_to_matrix(q) -> np.ndarray:
    """Rotation matrix ``[3, 3]`` of quaternion ``(x, y, z, w)`` (normalised first, as Eigen's ``normalized()``)."""
    x, y, z, w = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(m) -> np.ndarray:
    """Unit quaternion ``(x, y, z, w)`` of a rotation matrix ``[3, 3]`` (Shepperd's method; ``w >= 0``)."""
    m = np.asarray(m, np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.asarray(q)
    q = q / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def load_camera_path(path: str | Path) -> list[CameraKeyframe]:
    """Read an instant-ngp camera path json.

    Raises:
        DataError: unreadable file, no ``path`` list, or a keyframe without a 4-vector ``R`` and 3-vector ``T``.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read camera path {p}: {e}") from None
    frames = doc.get("path") if isinstance(doc, dict) else None
    if not isinstance(frames, list) or not frames:
        raise DataError(f"{p}: expected a non-empty 'path' list of keyframes")
    out = []
    for i, f in enumerate(frames):
        try:
            r = np.asarray(f["R"], np.float64).reshape(4)
            t = np.asarray(f["T"], np.float64).reshape(3)
            fov = None if f.get("fov") is None else float(f["fov"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{p}: keyframe {i} needs 'R' [x, y, z, w] and 'T' [x, y, z] ({e})") from None
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(t)) and np.linalg.norm(r) > 0):
            raise DataError(f"{p}: keyframe {i} has a non-finite or zero R/T")
        if fov is not None and not 0 < fov < 180:
            raise DataError(f"{p}: keyframe {i} has fov {fov}, expected degrees in (0, 180)")
        out.append(CameraKeyframe(R=r, T=t, fov=fov))
    return out


def eval_camera_path(keyframes: list[CameraKeyframe], t: float) -> tuple[np.ndarray, float | None]:
    """Camera at time ``t`` in [0, 1]: ``(c2w [3, 4] internal, vertical fov in degrees or None)``.

    instant-ngp ``CameraPath::eval_camera_path``: ``t * (n - 1)`` selects the segment; the uniform cubic
    B-spline weights blend keyframes ``i - 1 .. i + 2`` (indices clamped), quaternions flipped onto the
    accumulated one's hemisphere before adding.
    """
    n = len(keyframes)
    if n == 0:
        raise DataError("an empty camera path has no cameras")
    s = float(np.clip(t, 0.0, 1.0)) * (n - 1)
    i = math.floor(s)
    u = s - i
    w = [(1 - u) ** 3 / 6, (3 * u**3 - 6 * u**2 + 4) / 6, (-3 * u**3 + 3 * u**2 + 3 * u + 1) / 6, u**3 / 6]
    r = np.zeros(4)
    pos = np.zeros(3)
    fovs = []
    for k, wk in zip(range(i - 1, i + 3), w, strict=True):
        kf = keyframes[min(max(k, 0), n - 1)]
        q = kf.R if k == i - 1 or np.dot(r, kf.R) >= 0 else -kf.R
        r += wk * q
        pos += wk * kf.T
        fovs.append(kf.fov)
    fov = None if any(f is None for f in fovs) else float(sum(wk * f for wk, f in zip(w, fovs, strict=True)))
    return np.concatenate([quaternion_to_matrix(r), pos[:, None]], axis=1), fov


def sample_camera_path(keyframes: list[CameraKeyframe], n_frames: int) -> list[tuple[np.ndarray, float | None]]:
    """``n_frames`` cameras evenly spaced over ``t`` in [0, 1] (one frame: ``t = 0``); see :func:`eval_camera_path`."""
    return [eval_camera_path(keyframes, i / (n_frames - 1) if n_frames > 1 else 0.0) for i in range(n_frames)]


def look_at(position, target, up) -> np.ndarray:
    """Internal camera-to-world ``[3, 4]`` (columns right, down, forward, position) looking at ``target``."""
    pos = np.asarray(position, np.float64)
    fwd = np.asarray(target, np.float64) - pos
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, np.asarray(up, np.float64))
    if np.linalg.norm(right) < 1e-9:  # looking along up: any perpendicular will do
        right = np.cross(fwd, [1.0, 0.0, 0.0] if abs(fwd[0]) < 0.9 else [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    return np.stack([right, down, fwd, pos], axis=1)


def orbit_poses(start_c2w: np.ndarray, centre, up, n_frames: int) -> list[np.ndarray]:
    """``n_frames`` cameras on a full circle around ``centre`` (axis ``up``) through ``start_c2w``'s position,
    all looking at ``centre``."""
    if n_frames < 1:
        raise DataError(f"an orbit needs at least one frame, got {n_frames}")
    c = np.asarray(centre, np.float64)
    k = np.asarray(up, np.float64) / np.linalg.norm(up)
    v = np.asarray(start_c2w, np.float64)[:3, 3] - c
    poses = []
    for i in range(n_frames):
        a = 2 * math.pi * i / n_frames
        rot = v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * np.dot(k, v) * (1 - math.cos(a))
        poses.append(look_at(c + rot, c, k))
    return poses


def intrinsics_with_fov(width: int, height: int, fov_y_degrees: float) -> Intrinsics:
    """Pinhole intrinsics of a ``width x height`` image with vertical field of view ``fov_y_degrees``."""
    f = focal_length_from_fov(height, math.radians(fov_y_degrees))
    return Intrinsics(width=width, height=height, fx=f, fy=f, cx=width / 2, cy=height / 2)
