"""Screenshots of the browser viewer for the README, taken in headless Chromium like the tests drive it.

    python -m benchmarks.shoot_viewer --nerf lego.ingp --out docs/images

Writes ``viewer_nerf.png`` (a NeRF snapshot with its training cameras and scene box), ``viewer_nerf_depth.png``
(the depth mode), ``viewer_nrc.png`` (radiance caching after a few seconds of frames) and ``viewer_image.png``
(the gigapixel image zoomed in, tiles rendered on request). ``--nerf`` defaults to a NeRF trained for 60 s on the
demo's showcase scene.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

from benchmarks._browser import open_chromium, wait_for


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _full(viewer, after: float, timeout: float = 900.0) -> None:
    def done():
        return any(c.frames and c.frames[0][2] == "full" and c.frames[0][1].issued > after
                   for c in viewer.clients.values())

    wait_for(done, timeout)
    time.sleep(1.0)


def _shot(driver, path: Path) -> None:
    """Screenshot without the headless browser's "software WebGL" notice (no GPU in a headless Chromium)."""
    driver.execute_script("""for (const e of document.querySelectorAll('body *')) {
        if (e.children.length === 0 && e.textContent.trim() === 'Software WebGL rendering detected') {
            let box = e;  // the notification: the largest ancestor holding nothing but it
            while (box.parentElement && box.parentElement.textContent.length < 400) box = box.parentElement;
            box.style.display = 'none';
        } }""")
    time.sleep(0.3)
    driver.save_screenshot(str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nerf", type=Path, default=None, help="a NeRF snapshot (default: 60 s on the showcase scene)")
    ap.add_argument("--out", type=Path, default=Path("docs/images"))
    ap.add_argument("--size", default="960x640", help="browser viewport WxH")
    args = ap.parse_args()
    import warp as wp

    wp.config.log_level = wp.LOG_ERROR
    from ngp_sdk import Session
    from ngp_sdk.core.viewer import SceneViewer, ViewerOptions, open_viewer

    size = tuple(int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.nerf is None:
        from ngp_sdk.nerf.demo import demo_config, write_showcase_dataset

        data = write_showcase_dataset(Path(tempfile.mkdtemp()))
        nerf = Session.nerf(Path(data) / "transforms_train.json", config=demo_config())
        nerf.train(seconds=60)
    else:
        nerf = Session.load(args.nerf)
    driver = open_chromium(size)
    try:
        with SceneViewer(nerf, ViewerOptions(port=_port(), max_pixels=size[0] * size[1])) as viewer:
            t0 = time.monotonic()
            driver.get(viewer.url)
            _full(viewer, t0)
            _shot(driver, args.out / "viewer_nerf.png")
            t1 = time.monotonic()
            viewer._mode.value = "depth"
            _full(viewer, t1)
            _shot(driver, args.out / "viewer_nerf_depth.png")

        from ngp_sdk.nrc.task import NrcTask, load_scene

        nrc = Session(NrcTask.from_data(load_scene("cornell-box", width=256, height=256)))
        with SceneViewer(nrc, ViewerOptions(port=_port(), show_box=False)) as viewer:
            driver.get(viewer.url)
            wait_for(lambda: nrc.step_count >= 60, 300)
            _shot(driver, args.out / "viewer_nrc.png")

        from skimage import data as skdata

        img = Session.image(skdata.astronaut().astype("float32") / 255.0)
        img.train(seconds=20)
        with open_viewer(img, ViewerOptions(port=_port())) as viewer:
            driver.get(viewer.url)
            loaded = ("return !!(window.viewer && window.viewer.world.getItemCount() > 0 && "
                      "window.viewer.world.getItemAt(0).getFullyLoaded())")
            wait_for(lambda: driver.execute_script(loaded), 120)
            driver.execute_script("window.viewer.viewport.zoomTo(6, new OpenSeadragon.Point(0.45, 0.3), true);")
            time.sleep(0.5)
            wait_for(lambda: driver.execute_script(loaded), 300)
            time.sleep(0.5)
            driver.save_screenshot(str(args.out / "viewer_image.png"))
    finally:
        driver.quit()
    print(f"wrote screenshots to {args.out}")


if __name__ == "__main__":
    main()
