"""``ngp demo --primitive image``: fit a photo bundled with scikit-image (no download) and report its PSNR."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ngp_sdk.core.cli import training_summary
from ngp_sdk.core.errors import DataError
from ngp_sdk.core.images import save_image
from ngp_sdk.core.session import Session
from ngp_sdk.image.data import ImageData

__all__ = ["demo_photo", "run_image_demo"]


def demo_photo() -> ImageData:
    """scikit-image's bundled 'astronaut' photo (no download) as uint8 sRGB."""
    try:
        from skimage import data as skdata
    except ImportError:
        raise DataError("the image demo needs scikit-image for its bundled photo: "
                        "pip install 'ngp-sdk[demo]'") from None
    return ImageData(pixels=skdata.astronaut()[:, :, :3].copy(), srgb=True, name="skimage:astronaut")


def run_image_demo(out_dir: str | os.PathLike, *, seconds: float = 20.0, device: Any = None,
                   progress: bool = True, **_: Any) -> dict[str, Any]:
    """Fit the bundled photo; write ``demo_image.png`` and ``demo_image.ingp``."""
    out = Path(out_dir)
    photo = demo_photo()
    session = Session.image(photo, device=device)
    r = session.train(seconds=seconds, progress=progress)
    snapshot = session.save(out / "demo_image.ingp")
    psnr = session.evaluate()["psnr"]
    h, w = photo.pixels.shape[:2]
    preview = str(save_image(out / "demo_image.png", session.render()))
    zoom = str(save_image(out / "demo_image_zoom.png",
                          session.render(region=(w // 3, h // 8, w // 4, h // 4), scale=4.0)))
    return {
        **training_summary("image", session, r),
        "psnr": round(psnr, 3),
        "headline": f"a {w}x{h} photo in a hash grid and a tiny MLP: {psnr:.1f} dB",
        "preview": preview,
        "outputs": {"picture": preview, "zoom_4x": zoom, "snapshot": str(snapshot)},
        "next": [f"ngp image render {snapshot} --region 100,60,128,128 --scale 8 --out zoom.png",
                 f"ngp image pyramid {snapshot} --out pyramid   # then open pyramid/index.html",
                 "ngp image train YOUR_PHOTO.tif --config gigapixel --seconds 600 --out big.ingp"],
        "snapshot": str(snapshot),
    }
