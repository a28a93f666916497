"""The occupancy grid a NeRF task keeps: density grid + bitfield, and instant-ngp's update schedule.

The grid knows nothing of the field: :meth:`OccupancyGrid.update` takes a density callback (positions ->
densities), so the same grid serves any density function (nerfacc-style).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import warp as wp

from ngp_sdk.core.errors import SnapshotError
from ngp_sdk.core.fields import load_flat
from warp_kernels.occupancy_grid import (
    MIN_CONE_STEPSIZE,
    NERF_GRID_N_CELLS,
    NERF_MIN_OPTICAL_THICKNESS,
    create_bitfield,
    create_density_grid,
    grid_cell_indices,
    mark_untrained_cells,
    refresh_occupancy_grid,
    update_occupancy_grid,
)

__all__ = ["OccupancyGrid"]


class OccupancyGrid:
    """Cascaded density grid and its occupancy bitfield (all cells start occupied).

    Args:
        n_cascades: number of cascades K (``n_cascades_for_aabb_scale(aabb_scale)``).
        device: resolved Warp device.
    """

    def __init__(self, n_cascades: int, device):
        self.n_cascades = int(n_cascades)
        self.device = device
        self.density_grid = create_density_grid(self.n_cascades, device=device)
        self.bitfield = create_bitfield(self.n_cascades, occupied=True, device=device)
        self.n_updates = 0
        self._densities: wp.array | None = None

    def update(self, density_fn: Callable[[wp.array, wp.array], wp.array], *, warmup: bool, fraction: float,
               decay: float, seed: int) -> None:
        """One update round (instant-ngp ``update_density_grid_nerf``), in place.

        Args:
            density_fn: ``density_fn(positions [M, 3], out [M]) -> out``, densities at internal positions.
            warmup: visit every cell once (instant-ngp's first 256 steps); else ``fraction * cells`` uniform
                and as many occupied-biased samples.
            fraction: sample fraction of a sampled round (instant-ngp: 1/4).
            decay: grid decay of this round.
            seed: RNG seed of the sample positions.
        """

        def densities(positions: wp.array) -> wp.array:
            m = positions.shape[0]
            if self._densities is None or self._densities.shape[0] < m:
                self._densities = wp.empty(m, dtype=wp.float32, device=self.device)
            return density_fn(positions, self._densities[:m])

        refresh_occupancy_grid(self.density_grid, densities, n_cascades=self.n_cascades, step=self.n_updates,
                               seed=seed, warmup=warmup, fraction=fraction, decay=decay, bitfield=self.bitfield)
        self.n_updates += 1

    def mark_untrained(self, c2w: wp.array, cam_params: wp.array, sizes: wp.array) -> None:
        """Exclude cells no training camera sees (set to -1; see :func:`mark_untrained_cells`)."""
        mark_untrained_cells(self.density_grid, n_cascades=self.n_cascades, c2w=c2w, cam_params=cam_params,
                             sizes=sizes)
        # clear the bits of the marked cells only (the rest stays occupied until the first density update)
        seen = np.packbits(self.density_grid.numpy() >= 0, bitorder="little")
        bits = self.bitfield.numpy()[: seen.size] & seen
        self.bitfield.assign(wp.array(np.concatenate([bits, self.bitfield.numpy()[seen.size:]]), dtype=wp.uint8,
                                      device=self.device))

    def seed_points(self, points: np.ndarray, *, optical_thickness: float = 1.0) -> int:
        """Mark the cells holding ``points`` (float ``[M, 3]``, internal space, e.g. surfaces seen by a depth
        camera) as dense: their grid value becomes at least ``optical_thickness`` (100x the occupancy threshold
        by default, so they survive ~90 decays without the network's confirmation) and their bits are set.
        Cells masked as never seen stay masked. Returns the number of distinct cells seeded."""
        p = wp.array(np.asarray(points, np.float32).reshape(-1, 3), dtype=wp.float32, device=self.device)
        idx = grid_cell_indices(p, n_cascades=self.n_cascades).numpy()
        cells = np.unique(idx[idx >= 0]).astype(np.int32)
        if cells.size:
            sigma = np.full(cells.size, optical_thickness / MIN_CONE_STEPSIZE, np.float32)
            update_occupancy_grid(self.density_grid, wp.array(cells, dtype=wp.int32, device=self.device),
                                  wp.array(sigma, dtype=wp.float32, device=self.device),
                                  n_cascades=self.n_cascades, decay=1.0)
            bits = np.unpackbits(self.bitfield.numpy(), bitorder="little")
            grid = self.density_grid.numpy()
            bits[cells] |= (grid[cells] >= NERF_MIN_OPTICAL_THICKNESS).astype(np.uint8)
            self.bitfield.assign(wp.array(np.packbits(bits, bitorder="little"), dtype=wp.uint8, device=self.device))
        return int(cells.size)

    def occupied_fraction(self) -> float:
        """Fraction of cascade-0 cells marked occupied."""
        bits = np.unpackbits(self.bitfield.numpy()[: NERF_GRID_N_CELLS // 8])
        return float(bits.mean())

    def state_dict(self) -> dict[str, object]:
        return {"n_cascades": self.n_cascades, "density_grid": self.density_grid.numpy().copy(),
                "bitfield": self.bitfield.numpy().copy(), "n_updates": self.n_updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        try:
            if int(state["n_cascades"]) != self.n_cascades:
                raise SnapshotError(f"occupancy grid has {state['n_cascades']} cascades, expected {self.n_cascades}")
            load_flat(self.density_grid, np.asarray(state["density_grid"]), "density_grid")
            bf = np.asarray(state["bitfield"])
            if bf.dtype != np.uint8 or bf.shape != tuple(self.bitfield.shape):
                raise SnapshotError(f"occupancy bitfield: expected uint8 {tuple(self.bitfield.shape)}, got "
                                    f"{bf.dtype} {bf.shape}")
            self.bitfield.assign(wp.array(bf, dtype=wp.uint8, device=self.device))
            self.n_updates = int(state.get("n_updates", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"occupancy grid state is incomplete ({e})") from None
