"""Windows of the image plane: which output pixels a render produces, at which scale.

A render samples the field at the centres of a grid of ``grid_w x grid_h`` output pixels spread over the unit
square of the image plane (the whole trained image); ``scale`` output pixels per training pixel gives
``grid = (W * scale, H * scale)``, which may be fractional. A :class:`Window` is a rectangle of whole output pixels
of such a grid; the positions it samples depend only on the grid and the pixels' integer grid coordinates, so a
window rendered alone equals the same pixels of any larger window of the same grid (pyramid tiles rely on this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ngp_sdk.core.errors import DataError

__all__ = ["Window", "MAX_RENDER_PIXELS"]

#: Largest render a single call may produce (output pixels).
MAX_RENDER_PIXELS = 1 << 34


@dataclass(frozen=True)
class Window:
    """``width x height`` output pixels starting at grid pixel ``origin`` of a ``grid``-pixel image plane.

    Attributes:
        width, height: output size in pixels (>= 1).
        origin: ``(x0, y0)`` integer grid coordinates of the top-left output pixel.
        grid: ``(grid_w, grid_h)`` output pixels across the whole image plane (> 0, may be fractional).
    """

    width: int
    height: int
    origin: tuple[int, int] = (0, 0)
    grid: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1 or self.width * self.height > MAX_RENDER_PIXELS:
            raise DataError(f"render size {self.width}x{self.height} is not valid")
        grid = self.grid if self.grid is not None else (float(self.width), float(self.height))
        if not all(math.isfinite(g) and g > 0 for g in grid):
            raise DataError(f"render grid {grid} must be positive and finite")
        object.__setattr__(self, "grid", (float(grid[0]), float(grid[1])))
        object.__setattr__(self, "origin", (int(self.origin[0]), int(self.origin[1])))

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @classmethod
    def full(cls, width: int, height: int) -> Window:
        """The whole image plane at ``width x height``."""
        return cls(int(width), int(height))

    @classmethod
    def region(cls, image_size: tuple[int, int], region: tuple[float, float, float, float] | None = None,
               scale: float = 1.0) -> Window:
        """Training-image pixels ``region = (x, y, w, h)`` (default: all) at ``scale`` output pixels per pixel.

        The region is snapped outward to whole output pixels; it may extend past the image (edges repeat).

        Raises:
            DataError: non-positive scale or region size, or a render too large for one call.
        """
        W, H = image_size
        if not (math.isfinite(scale) and scale > 0):
            raise DataError(f"scale must be positive, got {scale}")
        x, y, w, h = region if region is not None else (0, 0, W, H)
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise DataError(f"region {region} must be x,y,w,h with w, h > 0")
        x0, y0 = math.floor(x * scale + 1e-9), math.floor(y * scale + 1e-9)
        x1, y1 = max(x0 + 1, math.ceil((x + w) * scale - 1e-9)), max(y0 + 1, math.ceil((y + h) * scale - 1e-9))
        return cls(x1 - x0, y1 - y0, (x0, y0), (W * scale, H * scale))
