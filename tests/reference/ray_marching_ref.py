"""Float64 reference of warp_kernels.ray_marching: a plain Python loop per ray (tiny sizes only).

``dense_march_ref`` enumerates every lattice step between the AABB entry and exit (what a full grid gives);
``march_rays_ref`` is the occupancy-skipping marcher of instant-ngp's ``generate_training_samples_nerf``
(``calc_dt``, ``mip_from_dt``, ``density_grid_occupied_at``, ``advance_to_next_voxel``), in float64.
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference import occupancy_grid_ref as og

__all__ = [
    "STREAM_MARCH_JITTER",
    "Stepping",
    "ray_aabb_intersect",
    "distance_to_next_voxel",
    "start_lattice",
    "dense_march_ref",
    "march_rays_ref",
]

STREAM_MARCH_JITTER = 16
_MORTON_SPREAD = [int(og.morton3d(v, 0, 0)) for v in range(og.GRIDSIZE)]


class Stepping:
    """instant-ngp's stepping space for one cone angle (float64)."""

    def __init__(self, cone_angle: float):
        self.linear = cone_angle <= 1e-5
        if not self.linear:
            self.l1p = math.log1p(cone_angle)
            self.a = (math.log(og.MIN_CONE_STEPSIZE) - math.log(self.l1p)) / self.l1p
            self.b = (math.log(og.MAX_CONE_STEPSIZE) - math.log(self.l1p)) / self.l1p
            self.at = og.MIN_CONE_STEPSIZE / self.l1p
            self.bt = og.MAX_CONE_STEPSIZE / self.l1p

    def to(self, t: float) -> float:
        if self.linear:
            return t / og.MIN_CONE_STEPSIZE
        if t <= self.at:
            return (t - self.at) / og.MIN_CONE_STEPSIZE + self.a
        if t <= self.bt:
            return math.log(t) / self.l1p
        return (t - self.bt) / og.MAX_CONE_STEPSIZE + self.b

    def frm(self, n: float) -> float:
        if self.linear:
            return n * og.MIN_CONE_STEPSIZE
        if n <= self.a:
            return (n - self.a) * og.MIN_CONE_STEPSIZE + self.at
        if n <= self.b:
            return math.exp(n * self.l1p)
        return (n - self.b) * og.MAX_CONE_STEPSIZE + self.bt

    def dt(self, t: float) -> float:
        """instant-ngp ``calc_dt``."""
        return self.frm(self.to(t) + 1.0) - t


def ray_aabb_intersect(o, d, lo, hi) -> tuple[float, float]:
    t_near, t_far = -math.inf, math.inf
    for a in range(3):
        if d[a] != 0.0:
            ta, tb = (lo[a] - o[a]) / d[a], (hi[a] - o[a]) / d[a]
            t_near, t_far = max(t_near, min(ta, tb)), min(t_far, max(ta, tb))
        elif o[a] < lo[a] or o[a] > hi[a]:
            return 1.0, 0.0
    return t_near, t_far


def distance_to_next_voxel(pos, d, res: float) -> float:
    t = math.inf
    for a in range(3):
        p = res * (pos[a] - 0.5)
        if d[a] > 0:
            t = min(t, (math.floor(p + 1.0) - p) / d[a])
        elif d[a] < 0:
            t = min(t, (math.floor(p) - p) / d[a])
    return max(t / res, 0.0)


def _default_aabb(n_cascades):
    half = 0.5 * 2 ** (n_cascades - 1)
    return (0.5 - half,) * 3, (0.5 + half,) * 3


def start_lattice(o, d, aabb, stepping: Stepping, t_min, t_max, jitter, seed, ray):
    """``(n0, t1)``: stepping-space position of the first sample and the last allowed t; None if no
    overlap."""
    t0, t1 = ray_aabb_intersect(o, d, *aabb)
    t0, t1 = max(t0, t_min), min(t1, t_max)
    if not t0 <= t1:
        return None
    n0 = stepping.to(t0)
    if jitter:
        n0 += float(og.rand01(seed, STREAM_MARCH_JITTER, [ray])[0])
    return n0, t1


def dense_march_ref(
    origins,
    directions,
    *,
    n_cascades,
    aabb=None,
    cone_angle=0.0,
    t_min=0.0,
    t_max=math.inf,
    max_samples_per_ray=1024,
    jitter=True,
    seed=0,
) -> list[np.ndarray]:
    """All lattice sample distances ``t`` per ray (every cell occupied)."""
    aabb = _default_aabb(n_cascades) if aabb is None else aabb
    st = Stepping(cone_angle)
    out = []
    for r, (o, d) in enumerate(
        zip(np.asarray(origins, np.float64), np.asarray(directions, np.float64), strict=True)
    ):
        ts = []
        s = start_lattice(o, d, aabb, st, t_min, t_max, jitter, seed, r)
        if s is not None:
            n0, t1 = s
            k = 0
            while len(ts) < max_samples_per_ray:
                t = st.frm(n0 + k)
                if not t <= t1:
                    break
                ts.append(t)
                k += 1
        out.append(np.asarray(ts))
    return out


def _mip_from_pos(pos, max_cascade):
    maxval = max(abs(pos[0] - 0.5), abs(pos[1] - 0.5), abs(pos[2] - 0.5))
    if maxval == 0.0:
        return 0
    return min(max(math.frexp(maxval)[1] + 1, 0), max_cascade)


def _mip_from_dt(dt, pos, max_cascade):
    mip = _mip_from_pos(pos, max_cascade)
    d = dt * 2 * og.GRIDSIZE
    if d < 1.0:
        return mip
    return min(max(mip, math.frexp(d)[1]), max_cascade)


def _occupied(pos, bitfield, mip):
    s = 2.0**-mip
    g = [math.floor(((pos[a] - 0.5) * s + 0.5) * og.GRIDSIZE) for a in range(3)]
    if not all(0 <= v < og.GRIDSIZE for v in g):
        return False
    if bitfield is None:
        return True
    idx = _MORTON_SPREAD[g[0]] | (_MORTON_SPREAD[g[1]] << 1) | (_MORTON_SPREAD[g[2]] << 2)
    return bool((bitfield[mip * (og.N_CELLS // 8) + (idx >> 3)] >> (idx & 7)) & 1)


def march_rays_ref(
    origins,
    directions,
    bitfield,
    *,
    n_cascades,
    aabb=None,
    cone_angle=0.0,
    t_min=0.0,
    t_max=math.inf,
    max_samples_per_ray=1024,
    max_total_samples=None,
    jitter=True,
    seed=0,
) -> dict:
    """Occupancy-skipping marcher; ``bitfield=None`` means every cell is occupied.

    Returns:
        dict with ``t_starts``, ``t_ends`` (lists of float64 arrays per ray), packed ``ray_indices``,
        ``packed_info`` [n, 2], ``n_samples``, ``n_rays_kept``, ``n_samples_requested``.
    """
    aabb = _default_aabb(n_cascades) if aabb is None else aabb
    bits = None if bitfield is None else [int(b) for b in np.asarray(bitfield, dtype=np.uint8)]
    st = Stepping(cone_angle)
    max_cascade = n_cascades - 1
    starts, ends = [], []
    for r, (o, d) in enumerate(
        zip(np.asarray(origins, np.float64), np.asarray(directions, np.float64), strict=True)
    ):
        ts, te = [], []
        s = start_lattice(o, d, aabb, st, t_min, t_max, jitter, seed, r)
        if s is not None:
            n0, t1 = s
            k = 0
            while len(ts) < max_samples_per_ray:
                n = n0 + k
                t = st.frm(n)
                if not t <= t1:
                    break
                pos = o + t * d
                dt = st.frm(n + 1.0) - t
                mip = _mip_from_dt(dt, pos, max_cascade)
                if _occupied(pos, bits, mip):
                    ts.append(t)
                    te.append(t + dt)
                    k += 1
                else:
                    t_target = t + distance_to_next_voxel(pos, d, og.GRIDSIZE * 2.0**-mip)
                    if not t_target <= t1:
                        break
                    k += math.ceil(max(st.to(t_target) - n, 0.5))
        starts.append(np.asarray(ts))
        ends.append(np.asarray(te))
    counts = np.array([len(t) for t in starts], dtype=np.int64)
    total = int(counts.sum())
    budget = total if max_total_samples is None else max_total_samples
    incl = np.cumsum(counts)
    n_kept = int(np.searchsorted(incl, budget, side="right"))
    n_samples = int(incl[n_kept - 1]) if n_kept else 0
    first = np.concatenate([[0], incl[:-1]]) if counts.size else counts
    info = (
        np.stack(
            [
                np.where(np.arange(counts.size) < n_kept, first, n_samples),
                np.where(np.arange(counts.size) < n_kept, counts, 0),
            ],
            axis=1,
        )
        if counts.size
        else np.zeros((0, 2))
    )
    ray_indices = np.repeat(np.arange(n_kept), counts[:n_kept])
    return dict(
        t_starts=starts,
        t_ends=ends,
        ray_indices=ray_indices,
        packed_info=info.astype(np.int64),
        n_samples=n_samples,
        n_rays_kept=n_kept,
        n_samples_requested=total,
    )
