"""Open a page in headless Chromium (Selenium + the system chromium/chromedriver) and screenshot it.

Used by the pyramid and viewer browser tests, ``bench_gigapixel.py`` and ``bench_viewer.py``. Needs ``selenium``
(the ``test`` extra) and a
Chromium with its driver (Debian: ``apt-get install chromium chromium-driver``); :func:`find_chromium` tells
whether they are present.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import numpy as np

__all__ = ["find_chromium", "screenshot_openseadragon", "open_chromium", "canvas_pixels", "drag_canvas",
           "wait_for"]


def find_chromium() -> tuple[str, str] | None:
    """``(browser, driver)`` executables, or None when either (or selenium) is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def screenshot_openseadragon(index_html: str | Path, out_png: str | Path, *, size: tuple[int, int] = (1024, 768),
                             timeout: float = 60.0, zoom: float | None = None) -> dict:
    """Open an OpenSeadragon ``index.html`` from file://, wait until every visible tile is drawn, screenshot.

    Args:
        index_html: the page written by :func:`ngp_sdk.image.pyramid.write_pyramid`.
        out_png: screenshot path.
        size: browser window size.
        timeout: seconds to wait for the tiles.
        zoom: optional zoom factor applied (around the centre) before the screenshot.

    Returns:
        ``{"tiles_loaded": bool, "fully_loaded": bool, "level": int, "seconds": float}``.

    Raises:
        RuntimeError: no Chromium/driver/selenium, or OpenSeadragon did not start.
    """
    t0 = time.perf_counter()
    driver = open_chromium(size, webgl=False)
    try:
        driver.get(Path(index_html).resolve().as_uri())
        if zoom is not None:
            _wait(driver, "return !!(window.viewer && window.viewer.world.getItemCount() > 0)", timeout)
            driver.execute_script(f"window.viewer.viewport.zoomTo({float(zoom)}, null, true);")
        ok = _wait(driver, "return !!(window.viewer && window.viewer.world.getItemCount() > 0 && "
                           "window.viewer.world.getItemAt(0).getFullyLoaded())", timeout)
        time.sleep(0.5)  # one more animation frame drawn
        driver.save_screenshot(str(out_png))
        tiles = driver.execute_script("return document.body.dataset.tilesLoaded === '1'")
        level = driver.execute_script(
            "var t = window.viewer.world.getItemAt(0); return t ? t.lastDrawn.reduce("
            "function (m, d) { return Math.max(m, d.level); }, 0) : -1;")
    finally:
        driver.quit()
    return {"tiles_loaded": bool(tiles), "fully_loaded": bool(ok), "level": int(level),
            "seconds": round(time.perf_counter() - t0, 2)}


def open_chromium(size: tuple[int, int] = (1024, 768), *, webgl: bool = True):
    """A headless Chromium (selenium ``WebDriver``) whose page viewport is ``size`` pixels.

    ``webgl``: software WebGL (SwiftShader), for three.js pages such as the viser viewer.

    Raises:
        RuntimeError: no Chromium, driver or selenium.
    """
    found = find_chromium()
    if found is None:
        raise RuntimeError("headless browsers need selenium, chromium and chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = found
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    args = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--allow-file-access-from-files",
            f"--window-size={size[0]},{size[1]}", "--force-device-scale-factor=1"]
    args += ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"] if webgl else ["--disable-gpu"]
    for a in args:
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    # the window size includes the (headless) browser frame: grow it until the page viewport is `size`
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if tuple(inner) != tuple(size):
        driver.set_window_size(2 * size[0] - inner[0], 2 * size[1] - inner[1])
    return driver


#: The three.js canvas of a viser page.
_CANVAS = 'canvas[data-engine^="three.js"]'


def canvas_pixels(driver) -> np.ndarray:
    """uint8 ``[H, W, 3]`` of the three.js canvas as shown, with every page element over it hidden meanwhile."""
    from PIL import Image

    rect = driver.execute_script(f"""
        const c = document.querySelector('{_CANVAS}');
        window.__ngpHidden = [];
        document.querySelectorAll('body *').forEach(e => {{
            if (e !== c && !e.contains(c)) {{ window.__ngpHidden.push([e, e.style.visibility]);
                                              e.style.visibility = 'hidden'; }} }});
        const r = c.getBoundingClientRect();
        return [r.left, r.top, r.width, r.height];""")
    time.sleep(0.3)  # one more frame composited
    png = driver.get_screenshot_as_png()
    driver.execute_script("window.__ngpHidden.forEach(([e, v]) => { e.style.visibility = v; });")
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    x, y, w, h = (int(round(v)) for v in rect)
    return img[y:y + h, x:x + w].copy()


def drag_canvas(driver, dx: int, dy: int, start: tuple[float, float] = (0.2, 0.75)) -> None:
    """Drag the mouse across the three.js canvas by ``(dx, dy)`` pixels (orbits the camera).

    ``start``: where the drag begins, as fractions of the canvas size (default: lower left, clear of viser's
    control panel on the right and its notifications at the top).
    """
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("css selector", _CANVAS)
    w, h = canvas.size["width"], canvas.size["height"]
    ox, oy = int((start[0] - 0.5) * w), int((start[1] - 0.5) * h)
    chain = ActionChains(driver).move_to_element_with_offset(canvas, ox, oy).click_and_hold()
    steps = 6
    for _ in range(steps):
        chain = chain.move_by_offset(dx // steps, dy // steps).pause(0.02)
    chain.release().perform()


def wait_for(predicate, timeout: float, period: float = 0.1):
    """Poll ``predicate()`` until it returns something truthy (returned) or ``timeout`` seconds pass (None)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = predicate()
        if out:
            return out
        time.sleep(period)
    return None


def _wait(driver, script: str, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if driver.execute_script(script):
            return True
        time.sleep(0.2)
    return False
