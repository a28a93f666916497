"""Deep Zoom (DZI) tile pyramids of a trained image field, with an offline OpenSeadragon viewer.

Every level is rendered from the field at its own scale (never downsampled from a full render): level ``L`` of
``max_level = ceil(log2(max(W, H)))`` samples the image plane on a grid of ``W * 2**(L - max_level)`` by
``H * 2**(L - max_level)`` pixels, the mapping OpenSeadragon uses to place its tiles. Levels are rendered in bands
one tile row high and cut into tiles, so memory stays bounded by one band whatever the image size; a tile equals
a direct render of its :class:`~ngp_sdk.image.window.Window` (:func:`tile_window`) bit for bit.

Layout (the Deep Zoom convention, as written by libvips ``dzsave`` or ``deepzoom.py``)::

    OUT/NAME.dzi                      XML: tile size, overlap, format, full size
    OUT/NAME_files/<level>/<col>_<row>.<jpg|png>
    OUT/index.html                    OpenSeadragon viewer (works from file://, no network)
    OUT/openseadragon/                the vendored viewer (BSD-3-Clause)

The tiles go to a temporary folder renamed into place at the end, so an interrupted or failed run never leaves a
half pyramid behind a valid ``.dzi``.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ngp_sdk.core.errors import DataError
from ngp_sdk.core.files import write_text_atomic
from ngp_sdk.image.render import render_codes
from ngp_sdk.image.window import Window

__all__ = ["PyramidLayout", "write_pyramid", "tile_window", "index_html", "VIEWER_DIR"]

#: The vendored OpenSeadragon build copied next to every pyramid.
VIEWER_DIR = Path(__file__).resolve().parent / "viewer" / "openseadragon"

#: Tile formats and their file suffixes.
_FORMATS = {"jpg": "jpg", "jpeg": "jpg", "png": "png"}


@dataclass(frozen=True)
class PyramidLayout:
    """Geometry of a Deep Zoom pyramid over a ``width x height`` image.

    Attributes:
        width, height: full-resolution size (the trained image's size).
        tile_size: tile edge in pixels, without overlap.
        overlap: pixels each tile repeats from its neighbours on every inner edge.
    """

    width: int
    height: int
    tile_size: int = 254
    overlap: int = 1

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise DataError(f"pyramid size {self.width}x{self.height} is not valid")
        if self.tile_size < 1 or self.overlap < 0 or self.overlap >= self.tile_size:
            raise DataError(f"tile_size must be >= 1 and 0 <= overlap < tile_size, got {self.tile_size}, "
                            f"{self.overlap}")

    @property
    def max_level(self) -> int:
        """Index of the full-resolution level (level 0 is 1x1)."""
        return int(math.ceil(math.log2(max(self.width, self.height)))) if max(self.width, self.height) > 1 else 0

    def scale(self, level: int) -> float:
        """Output pixels per full-resolution pixel at ``level``."""
        return 2.0 ** (level - self.max_level)

    def level_size(self, level: int) -> tuple[int, int]:
        """``(width, height)`` of ``level`` in pixels."""
        s = self.scale(level)
        return max(1, math.ceil(self.width * s)), max(1, math.ceil(self.height * s))

    def tiles(self, level: int) -> tuple[int, int]:
        """``(columns, rows)`` of tiles at ``level``."""
        w, h = self.level_size(level)
        return math.ceil(w / self.tile_size), math.ceil(h / self.tile_size)

    def tile_bounds(self, level: int, col: int, row: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` level pixels covered by a tile, overlap included."""
        w, h = self.level_size(level)
        t, o = self.tile_size, self.overlap
        x0, y0 = max(0, col * t - o), max(0, row * t - o)
        return x0, y0, min(w, (col + 1) * t + o), min(h, (row + 1) * t + o)

    def tile_count(self) -> int:
        return sum(c * r for c, r in (self.tiles(level) for level in range(self.max_level + 1)))

    def dzi_xml(self, fmt: str) -> str:
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" '
                f'Format="{fmt}" Overlap="{self.overlap}" TileSize="{self.tile_size}">\n'
                f'  <Size Width="{self.width}" Height="{self.height}"/>\n</Image>\n')


def tile_window(layout: PyramidLayout, level: int, col: int, row: int) -> Window:
    """The render window of one tile (a direct render of it equals the tile's pixels)."""
    x0, y0, x1, y1 = layout.tile_bounds(level, col, row)
    s = layout.scale(level)
    return Window(x1 - x0, y1 - y0, (x0, y0), (layout.width * s, layout.height * s))


def _band_window(layout: PyramidLayout, level: int, row: int) -> Window:
    """One tile row of ``level`` across the whole level width."""
    _, y0, _, y1 = layout.tile_bounds(level, 0, row)
    w, _ = layout.level_size(level)
    s = layout.scale(level)
    return Window(w, y1 - y0, (0, y0), (layout.width * s, layout.height * s))


def _save_tile(path: Path, codes: np.ndarray, fmt: str, quality: int) -> None:
    from PIL import Image

    im = Image.fromarray(codes, mode="RGB")
    if fmt == "jpg":
        im.save(path, format="JPEG", quality=quality)
    else:
        im.save(path, format="PNG", compress_level=1)


def write_pyramid(
    render: Callable[[Window], Iterator[tuple[int, np.ndarray]]],
    size: tuple[int, int],
    out_dir: str | os.PathLike,
    *,
    name: str = "image",
    tile_size: int = 254,
    overlap: int = 1,
    tile_format: str = "jpg",
    quality: int = 90,
    progress: bool = True,
    title: str | None = None,
) -> Path:
    """Render and write a Deep Zoom pyramid plus ``index.html``; returns the ``.dzi`` path.

    Args:
        render: ``render(window)`` yields ``(start, rgb)`` runs of float32 linear RGB (``ImageTask.iter_render``).
        size: ``(width, height)`` of the full-resolution image.
        out_dir: output folder (created; an existing pyramid of the same name is replaced).
        name: base name of ``NAME.dzi`` / ``NAME_files``.
        tile_size, overlap: Deep Zoom tile geometry (254 + 1 is the usual choice).
        tile_format: ``"jpg"`` or ``"png"``.
        quality: JPEG quality.
        progress: show a progress bar over tiles.
        title: page title of ``index.html``.

    Raises:
        DataError: bad geometry, format or name.
    """
    fmt = _FORMATS.get(tile_format.lower())
    if fmt is None:
        raise DataError(f"tile format must be jpg or png, got {tile_format!r}")
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DataError(f"pyramid name {name!r} must be a plain file name")
    layout = PyramidLayout(int(size[0]), int(size[1]), tile_size, overlap)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}_files.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    from tqdm import tqdm

    try:
        with cf.ThreadPoolExecutor(max_workers=2) as pool, \
                tqdm(total=layout.tile_count(), unit="tile", desc="pyramid", disable=not progress) as bar:
            pending: list[cf.Future] = []
            for level in range(layout.max_level + 1):
                (tmp / str(level)).mkdir(parents=True)
                cols, rows = layout.tiles(level)
                for row in range(rows):
                    band = render_codes(render, _band_window(layout, level, row))
                    for col in range(cols):
                        x0, _, x1, _ = layout.tile_bounds(level, col, row)
                        tile = np.ascontiguousarray(band[:, x0:x1])
                        pending.append(pool.submit(_save_tile, tmp / str(level) / f"{col}_{row}.{fmt}", tile,
                                                   fmt, quality))
                    # encoding overlaps the next band's render; keep at most two bands of tiles queued
                    while len(pending) > 2 * cols:
                        pending.pop(0).result()
                        bar.update(1)
            for f in pending:
                f.result()
                bar.update(1)
        files = out / f"{name}_files"
        shutil.rmtree(files, ignore_errors=True)
        os.replace(tmp, files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    dzi = out / f"{name}.dzi"
    write_text_atomic(dzi, layout.dzi_xml(fmt))
    viewer = out / "openseadragon"
    shutil.rmtree(viewer, ignore_errors=True)
    shutil.copytree(VIEWER_DIR, viewer)
    write_text_atomic(out / "index.html", index_html(layout, f"{name}_files/", fmt, title or name))
    return dzi


def index_html(layout: PyramidLayout, tiles_url: str, fmt: str, title: str, *,
               caption: str | None = None) -> str:
    """The OpenSeadragon page of a Deep Zoom pyramid whose tiles are at ``tiles_url`` + ``LEVEL/COL_ROW.FMT``
    (scripts from ``openseadragon/`` beside the page)."""
    # The tile source is inlined (not fetched from NAME.dzi) so the page also works from file://, where browsers
    # refuse XHR; tiles load as plain images. The canvas drawer avoids WebGL's same-origin rule for file:// tiles.
    source = {"Image": {"xmlns": "http://schemas.microsoft.com/deepzoom/2008", "Url": tiles_url,
                        "Format": fmt, "Overlap": str(layout.overlap), "TileSize": str(layout.tile_size),
                        "Size": {"Width": str(layout.width), "Height": str(layout.height)}}}

    def escape(t: str) -> str:
        return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    esc = escape(title)
    cap = escape(caption or f"{layout.width} x {layout.height} px, rendered by ngp-sdk")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc}</title>
<style>
  html, body {{ margin: 0; height: 100%; background: #111; color: #ddd; font: 14px sans-serif; }}
  #viewer {{ position: absolute; inset: 0; }}
  #caption {{ position: absolute; left: 8px; bottom: 8px; z-index: 10; opacity: 0.8; }}
</style>
</head>
<body>
<div id="viewer"></div>
<div id="caption">{esc} &mdash; {cap}</div>
<script src="openseadragon/openseadragon.min.js"></script>
<script>
  window.viewer = OpenSeadragon({{
    id: "viewer",
    prefixUrl: "openseadragon/images/",
    drawer: "canvas",
    showNavigator: true,
    maxZoomPixelRatio: 4,
    tileSources: {json.dumps(source)}
  }});
  window.viewer.addHandler("tile-loaded", function () {{ document.body.dataset.tilesLoaded = "1"; }});
</script>
</body>
</html>
"""
