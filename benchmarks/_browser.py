"""Open a page in headless Chromium (Selenium + the system chromium/chromedriver) and screenshot it.

Used by the pyramid browser test and ``bench_gigapixel.py``. Needs ``selenium`` (the ``test`` extra) and a
Chromium with its driver (Debian: ``apt-get install chromium chromium-driver``); :func:`find_chromium` tells
whether they are present.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

__all__ = ["find_chromium", "screenshot_openseadragon"]


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
    found = find_chromium()
    if found is None:
        raise RuntimeError("headless screenshots need selenium, chromium and chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = found
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--allow-file-access-from-files", f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(a)
    t0 = time.perf_counter()
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
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


def _wait(driver, script: str, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if driver.execute_script(script):
            return True
        time.sleep(0.2)
    return False
