"""Bounded-memory renders of an image field to 8-bit sRGB codes (3 bytes per output pixel, chunked inference)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ngp_sdk.core.images import PROGRESS_MIN_PIXELS, linear_to_srgb_codes
from ngp_sdk.image.window import Window

__all__ = ["render_codes"]


def render_codes(render: Callable[[Window], Iterator[tuple[int, np.ndarray]]], window: Window, *,
                 progress: bool = False) -> np.ndarray:
    """Render ``window`` as uint8 sRGB codes ``[h, w, 3]``.

    Args:
        render: ``render(window)`` yields ``(start, rgb)`` runs of float32 linear RGB
            (:meth:`ngp_sdk.image.task.ImageTask.iter_render`).
        window: the output pixels.
        progress: show a progress bar (for windows of 16 megapixels and more).

    Each run is converted as soon as it is rendered, so peak memory is the output codes plus one run.
    """
    from tqdm import tqdm

    out = np.empty((window.pixels, 3), dtype=np.uint8)
    with tqdm(total=window.pixels, unit="px", unit_scale=True, desc="render",
              disable=not progress or window.pixels < PROGRESS_MIN_PIXELS, leave=False) as bar:
        for start, rgb in render(window):
            out[start:start + rgb.shape[0]] = linear_to_srgb_codes(rgb)
            bar.update(rgb.shape[0])
    return out.reshape(window.height, window.width, 3)
