"""The gigapixel image in the browser: OpenSeadragon pan and zoom over tiles rendered when the page asks for them.

:class:`ImageViewer` serves the page of :func:`~ngp_sdk.image.pyramid.index_html` (the vendored OpenSeadragon)
from a small threaded HTTP server. The Deep Zoom pyramid it describes is ``2 ** extra_levels`` times the training
image's size, so zooming goes past the trained resolution (the field is continuous); nothing is rendered ahead:
each tile is a :func:`~ngp_sdk.image.pyramid.tile_window` of the image plane, rendered under the session lock on
the first request and kept in a bounded cache (keyed by the session's step, so a training session shows new
tiles). Only the tiles of the visible window at the current zoom are ever rendered.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import re
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from ngp_sdk.core.errors import DataError
from ngp_sdk.image.pyramid import VIEWER_DIR, PyramidLayout, index_html, tile_window
from ngp_sdk.image.render import render_codes

__all__ = ["ImageViewer", "open_image_viewer"]

log = logging.getLogger(__name__)

_TILE = re.compile(r"^/tiles/(\d+)/(\d+)_(\d+)\.(jpg|png)$")


class ImageViewer:
    """Pan and zoom an image session in the browser; tiles are rendered on request.

    Args:
        session: a :class:`~ngp_sdk.core.session.Session` of the image primitive.
        host, port: where to listen (port 0: any free port).
        tile_format: ``jpg`` or ``png``.
        jpeg_quality: JPEG quality of tiles.
        extra_levels: pyramid levels past the training resolution (each doubles the deepest zoom).
        cache_tiles: encoded tiles kept in memory.
        title: page title.
    """

    def __init__(self, session: Any, *, host: str = "127.0.0.1", port: int = 8080, tile_format: str = "jpg",
                 jpeg_quality: int = 90, extra_levels: int = 2, cache_tiles: int = 1024, title: str = "ngp-sdk"):
        if tile_format not in ("jpg", "png"):
            raise DataError(f"tile format must be jpg or png, got {tile_format!r}")
        if not 0 <= extra_levels <= 6:
            raise DataError(f"extra_levels must be in 0..6, got {extra_levels}")
        self.session = session
        w, h = session.task.size
        self.zoom = 2 ** int(extra_levels)
        self.layout = PyramidLayout(w * self.zoom, h * self.zoom)
        self.tile_format = tile_format
        self.jpeg_quality = int(jpeg_quality)
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._cache_size = int(cache_tiles)
        self._cache_lock = threading.Lock()
        self.tiles_rendered: list[tuple[int, int, int]] = []
        self._page = index_html(self.layout, "tiles/", tile_format, title,
                                caption=f"{w} x {h} px trained, zoom to {self.zoom}x, rendered on request by ngp-sdk"
                                ).encode()
        self._http = ThreadingHTTPServer((host, port), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="ngp-image-viewer", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> ImageViewer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def tile_codes(self, level: int, col: int, row: int) -> np.ndarray:
        """uint8 ``[h, w, 3]`` of one tile (overlap included), rendered now.

        Raises:
            DataError: a tile outside the pyramid.
        """
        if not 0 <= level <= self.layout.max_level:
            raise DataError(f"level {level} is outside 0..{self.layout.max_level}")
        cols, rows = self.layout.tiles(level)
        if not (0 <= col < cols and 0 <= row < rows):
            raise DataError(f"tile {col},{row} is outside the {cols}x{rows} tiles of level {level}")
        window = tile_window(self.layout, level, col, row)
        task = self.session.task
        with self.session.locked():
            return render_codes(task.iter_render, window)

    def tile_bytes(self, level: int, col: int, row: int) -> bytes:
        """The encoded tile (from the cache when the session has not trained since)."""
        key = (self.session.step_count, level, col, row)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        from PIL import Image

        codes = self.tile_codes(level, col, row)
        buf = io.BytesIO()
        if self.tile_format == "jpg":
            Image.fromarray(codes).save(buf, format="JPEG", quality=self.jpeg_quality)
        else:
            Image.fromarray(codes).save(buf, format="PNG", compress_level=1)
        data = buf.getvalue()
        with self._cache_lock:
            self.tiles_rendered.append((level, col, row))
            self._cache[key] = data
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return data

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        viewer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # quiet: a page asks for hundreds of tiles
                log.debug(fmt, *args)

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                try:
                    if path in ("/", "/index.html"):
                        return self._send(200, viewer._page, "text/html; charset=utf-8")
                    m = _TILE.match(path)
                    if m:
                        if m.group(4) != viewer.tile_format:
                            return self._send(404, b"wrong tile format", "text/plain")
                        level, col, row = (int(g) for g in m.groups()[:3])
                        return self._send(200, viewer.tile_bytes(level, col, row),
                                          "image/jpeg" if viewer.tile_format == "jpg" else "image/png")
                    if path.startswith("/openseadragon/"):
                        rel = path[len("/openseadragon/"):]
                        target = (VIEWER_DIR / rel).resolve()
                        if VIEWER_DIR.resolve() in target.parents and target.is_file():
                            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                            return self._send(200, target.read_bytes(), ctype)
                    return self._send(404, b"not found", "text/plain")
                except DataError as e:
                    return self._send(404, str(e).encode(), "text/plain")
                except (BrokenPipeError, ConnectionResetError):
                    return None
                except Exception as e:  # the server keeps serving
                    log.exception("tile request %s failed", path)
                    return self._send(500, f"render failed: {e}".encode(), "text/plain")

        return Handler


def open_image_viewer(session: Any, options: Any) -> ImageViewer:
    """``Primitive.open_viewer`` of the image primitive (``ngp view image.ingp``); ``options`` is a
    :class:`~ngp_sdk.core.viewer.ViewerOptions` (host, port, transport -> tile format, JPEG quality, title)."""
    return ImageViewer(session, host=options.host, port=options.port,
                       tile_format="png" if options.transport == "png" else "jpg",
                       jpeg_quality=options.jpeg_quality, title=options.title)
