"""A TF buffer without ROS: the transform tree of ``/tf`` and ``/tf_static``, chains resolved, interpolated in time.

As tf2 does, each frame has one parent; an edge holds either a static transform or a time series. A lookup walks
both frames up to their common ancestor and composes the edges, each interpolated at the requested stamp:
translation linearly, rotation by spherical linear interpolation (slerp) of unit quaternions. A stamp outside an
edge's samples (beyond ``tolerance_ns``) or inside a gap longer than ``max_gap_ns`` is an error, never an
extrapolation.

``lookup(target, source, t)`` returns ``T_target_source``: it maps points given in ``source`` coordinates to
``target`` coordinates (tf2's ``lookup_transform(target_frame, source_frame, time)``). With a world frame as
target and a camera optical frame as source it is the camera-to-world matrix.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from ngp_sdk.core.camera_path import matrix_to_quaternion
from ngp_sdk.core.errors import DataError
from ngp_sdk.robotics.messages import quaternion_to_matrix, stamp_to_ns, transform_to_matrix

__all__ = ["TfError", "TfBuffer", "slerp"]


class TfError(DataError):
    """A transform cannot be looked up: frames not connected, stamp outside the data, a gap in the data."""


def slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions ``(x, y, z, w)`` (shortest arc), ``u`` in [0, 1]."""
    q0, q1 = np.asarray(q0, np.float64), np.asarray(q1, np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9999999:  # angle < 5e-4 rad: normalised lerp, error < 1e-10 rad
        q = q0 + u * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(1.0, dot))
    s = math.sin(theta)
    return (math.sin((1.0 - u) * theta) / s) * q0 + (math.sin(u * theta) / s) * q1


@dataclass
class _Edge:
    parent: str
    static: np.ndarray | None = None
    stamps: list[int] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    rotations: list[np.ndarray] = field(default_factory=list)
    _sorted: bool = True


def _fmt(ns: int) -> str:
    return f"{ns / 1e9:.3f} s"


class TfBuffer:
    """The transform tree of a recording.

    Args:
        max_gap_ns: longest time between two samples of an edge that may be interpolated across (default 1 s).
        tolerance_ns: how far outside an edge's first/last sample a stamp may be and still get that sample
            (default 0: exact coverage, as tf2 without extrapolation).
    """

    def __init__(self, *, max_gap_ns: int = 1_000_000_000, tolerance_ns: int = 0):
        self.max_gap_ns = int(max_gap_ns)
        self.tolerance_ns = int(tolerance_ns)
        self._edges: dict[str, _Edge] = {}

    @property
    def frames(self) -> set[str]:
        """Every frame named by an edge."""
        return set(self._edges) | {e.parent for e in self._edges.values()}

    def set_transform(self, parent: str, child: str, stamp_ns: int, matrix: np.ndarray, *,
                      static: bool = False) -> None:
        """Add ``T_parent_child`` (float ``[4, 4]``) at ``stamp_ns`` (ignored when ``static``).

        Raises:
            TfError: ``child`` already has another parent, or a frame is its own parent.
        """
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if parent == child:
            raise TfError(f"TF transform from {parent!r} to itself")
        edge = self._edges.get(child)
        if edge is None:
            edge = self._edges[child] = _Edge(parent=parent)
        elif edge.parent != parent:
            raise TfError(f"TF frame {child!r} has two parents: {edge.parent!r} and {parent!r}")
        m = np.asarray(matrix, np.float64)
        if static:
            edge.static = m
            return
        if edge.stamps and stamp_ns < edge.stamps[-1]:
            edge._sorted = False
        edge.stamps.append(int(stamp_ns))
        edge.translations.append(m[:3, 3].copy())
        edge.rotations.append(matrix_to_quaternion(m[:3, :3]))

    def add_message(self, msg, *, static: bool = False) -> int:
        """Add every transform of a ``tf2_msgs/TFMessage``; returns how many."""
        n = 0
        for t in msg.transforms:
            self.set_transform(str(t.header.frame_id), str(t.child_frame_id), stamp_to_ns(t.header.stamp),
                               transform_to_matrix(t.transform), static=static)
            n += 1
        return n

    def _sort(self, e: _Edge) -> None:
        if e._sorted:
            return
        order = sorted(range(len(e.stamps)), key=e.stamps.__getitem__)
        e.stamps = [e.stamps[i] for i in order]
        e.translations = [e.translations[i] for i in order]
        e.rotations = [e.rotations[i] for i in order]
        e._sorted = True

    def _edge_at(self, child: str, e: _Edge, stamp: int) -> np.ndarray:
        if e.static is not None and not e.stamps:
            return e.static
        self._sort(e)
        ts = e.stamps
        what = f"{e.parent} -> {child}"
        if stamp < ts[0] - self.tolerance_ns or stamp > ts[-1] + self.tolerance_ns:
            raise TfError(f"stamp {_fmt(stamp)} is outside the TF data for {what} "
                          f"({_fmt(ts[0])} .. {_fmt(ts[-1])}, {len(ts)} samples)")
        i = bisect.bisect_right(ts, stamp)
        m = np.eye(4)
        if i == 0 or i == len(ts) or ts[i - 1] == stamp:
            j = min(max(i - 1, 0), len(ts) - 1)
            m[:3, :3] = quaternion_to_matrix(e.rotations[j])
            m[:3, 3] = e.translations[j]
            return m
        t0, t1 = ts[i - 1], ts[i]
        if t1 - t0 > self.max_gap_ns:
            raise TfError(f"stamp {_fmt(stamp)} falls in a gap of {(t1 - t0) / 1e9:.3f} s in the TF data for {what} "
                          f"({_fmt(t0)} .. {_fmt(t1)}; the longest gap interpolated is {self.max_gap_ns / 1e9:.3f} s)")
        u = (stamp - t0) / (t1 - t0)
        m[:3, :3] = quaternion_to_matrix(slerp(e.rotations[i - 1], e.rotations[i], u))
        m[:3, 3] = (1.0 - u) * e.translations[i - 1] + u * e.translations[i]
        return m

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self._edges:
            path.append(self._edges[path[-1]].parent)
            if len(path) > len(self._edges) + 1:
                raise TfError(f"TF tree has a cycle through {frame!r}")
        return path

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """``T_target_source`` (float64 ``[4, 4]``) at ``stamp_ns``.

        Raises:
            TfError: a frame is unknown, the frames are in different trees, or an edge has no data at the stamp.
        """
        target, source = target.lstrip("/"), source.lstrip("/")
        known = self.frames
        for f in (target, source):
            if f not in known:
                raise TfError(f"TF frame {f!r} is not in the TF data (frames: {', '.join(sorted(known)) or 'none'})")
        up_s, up_t = self._path_to_root(source), self._path_to_root(target)
        common = next((f for f in up_s if f in set(up_t)), None)
        if common is None:
            raise TfError(f"TF frames {source!r} and {target!r} are not connected "
                          f"(roots {up_s[-1]!r} and {up_t[-1]!r})")
        m_common_source = np.eye(4)
        for f in up_s[: up_s.index(common)]:
            m_common_source = self._edge_at(f, self._edges[f], stamp_ns) @ m_common_source
        m_common_target = np.eye(4)
        for f in up_t[: up_t.index(common)]:
            m_common_target = self._edge_at(f, self._edges[f], stamp_ns) @ m_common_target
        return np.linalg.inv(m_common_target) @ m_common_source

    def prune(self, before_ns: int) -> None:
        """Drop samples older than ``before_ns``, keeping each edge's last one before it (for interpolation)."""
        for e in self._edges.values():
            if len(e.stamps) < 2:
                continue
            self._sort(e)
            k = max(0, bisect.bisect_left(e.stamps, before_ns) - 1)
            if k:
                del e.stamps[:k], e.translations[:k], e.rotations[:k]

    def time_range(self, target: str, source: str) -> tuple[int, int] | None:
        """Stamps ``(first, last)`` at which every time-varying edge between the frames has data (None: all
        static)."""
        up_s, up_t = self._path_to_root(source.lstrip("/")), self._path_to_root(target.lstrip("/"))
        lo, hi = None, None
        for f in set(up_s[:-1]) ^ set(up_t[:-1]):
            e = self._edges[f]
            if e.stamps:
                self._sort(e)
                lo = e.stamps[0] if lo is None else max(lo, e.stamps[0])
                hi = e.stamps[-1] if hi is None else min(hi, e.stamps[-1])
        return None if lo is None else (lo, hi)
