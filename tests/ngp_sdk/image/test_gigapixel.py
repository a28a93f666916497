"""The image primitive at any size: awkward shapes, large-image loading in stored precision, windows at any
scale, Deep Zoom pyramids (tiles equal direct renders), and a 100-megapixel image end to end."""

from __future__ import annotations

import resource
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from ngp_sdk import ImageConfig, Session
from ngp_sdk.core.config import HashGridConfig, NetworkConfig, TrainingConfig
from ngp_sdk.core.errors import DataError
from ngp_sdk.core.images import linear_to_srgb_codes, srgb_to_linear
from ngp_sdk.core.metrics import psnr_from_mse
from ngp_sdk.image.data import ImageData, load_image
from ngp_sdk.image.pyramid import PyramidLayout, tile_window, write_pyramid
from ngp_sdk.image.render import render_codes
from ngp_sdk.image.window import Window

TINY = ImageConfig(
    encoding=HashGridConfig(n_levels=4, log2_hashmap_size=12, base_resolution=4, per_level_scale=2.0),
    network=NetworkConfig(n_neurons=16, n_hidden_layers=1),
    training=TrainingConfig(batch_size=1024),
)


def pattern(h: int, w: int, dtype=np.uint8) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    v = np.stack([0.5 + 0.5 * np.sin(0.21 * x + 0.05 * y), 0.5 + 0.5 * np.cos(0.17 * y), ((x + 2 * y) % 13) / 12],
                 axis=-1)
    if dtype == np.uint8:
        return (v * 255 + 0.5).astype(np.uint8)
    if dtype == np.uint16:
        return (v * 65535 + 0.5).astype(np.uint16)
    return v.astype(dtype)


def reference_psnr(session: Session, img: np.ndarray) -> float:
    """PSNR from a whole-image render and the float64 sRGB rule (independent of the streamed evaluation)."""
    ref = srgb_to_linear(img.astype(np.float64) / 255.0).astype(np.float64)
    out = session.render().astype(np.float64)
    mse = np.mean((np.clip(out, 0, 1) - np.clip(ref, 0, 1)) ** 2)
    return psnr_from_mse(mse)


@pytest.mark.parametrize("h, w", [(1, 1), (1, 37), (41, 1), (1009, 997)])
def test_awkward_sizes_train_evaluate_render_and_snapshot(tmp_path, device, h, w):
    img = pattern(h, w)
    s = Session.image(img, config=TINY, device=device)
    s.train(steps=3)
    m = s.evaluate()
    assert m["psnr"] == pytest.approx(reference_psnr(s, img), abs=1e-3)
    out = s.render()
    assert out.shape == (h, w, 3) and np.isfinite(out).all()
    t = Session.load(s.save(tmp_path / "a.ingp"), device=device)
    assert t.task.size == (w, h)
    np.testing.assert_array_equal(t.render(), out)


@pytest.mark.parametrize("chunk", [7, 64 * 3, 64 * 3 + 5, 1 << 18])
def test_evaluation_is_the_same_for_any_chunk(device, chunk):
    """Chunks smaller than a row, dividing the width, not dividing it: all give the whole-image PSNR."""
    img = pattern(45, 64)
    s = Session.image(img, config=TINY, device=device)
    s.train(steps=3)
    expected = reference_psnr(s, img)
    assert s.task.evaluate(chunk=chunk)["psnr"] == pytest.approx(expected, abs=1e-3)
    # the MLP's GEMM may block differently for other batch sizes: equal up to float32 rounding
    np.testing.assert_allclose(s.task.render(chunk=chunk), s.render(), rtol=1e-5, atol=1e-7)


def test_subset_evaluation_estimates_the_full_psnr(device):
    img = pattern(120, 160)
    s = Session.image(img, config=TINY, device=device)
    s.train(steps=20)
    full = s.evaluate()["psnr"]
    sub = s.evaluate(pixels=4000)
    assert sub["pixels"] == 4000 and abs(sub["psnr"] - full) < 0.5
    assert s.evaluate(pixels=4000)["psnr"] == sub["psnr"]  # fixed subset
    assert s.evaluate(pixels=10 ** 9)["psnr"] == pytest.approx(full)  # more than the image: every pixel


def test_region_at_a_scale_equals_the_same_pixels_of_a_larger_render(device):
    s = Session.image(pattern(48, 64), config=TINY, device=device)
    s.train(steps=5)
    full2 = s.render(width=128, height=96)
    crop = s.render(region=(10, 5, 20, 15), scale=2)
    # the same sample positions bit for bit (test_image_sampling); the GEMM may round per batch size
    same = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # noqa: E731
    same(crop, full2[10:40, 20:60])
    same(s.render(region=(0, 0, 64, 48), scale=0.5), s.render(width=32, height=24))
    same(s.render(region=(0, 0, 64, 48)), s.render())
    zoom = s.render(region=(3.25, 7.5, 2, 1), scale=16.5)  # far past the training resolution
    assert zoom.shape == (18, 34, 3) and np.isfinite(zoom).all()
    with pytest.raises(DataError, match="not both"):
        s.render(width=10, region=(0, 0, 5, 5))
    with pytest.raises(DataError, match="scale"):
        s.render(region=(0, 0, 5, 5), scale=0)
    with pytest.raises(DataError, match="w, h > 0"):
        s.render(region=(0, 0, 0, 5))


def test_window_region_snaps_outward_to_whole_output_pixels():
    w = Window.region((997, 1009), (100, 200, 50.5, 30), 3.3)
    assert (w.origin, w.width, w.height) == ((330, 660), 167, 99)
    assert w.grid == pytest.approx((997 * 3.3, 1009 * 3.3))
    assert Window.region((5, 5), (0, 0, 0.01, 0.01), 1.0).pixels == 1


def test_pyramid_tiles_equal_direct_renders_at_every_level(tmp_path, device):
    s = Session.image(pattern(45, 61), config=TINY, device=device)
    s.train(steps=5)
    task = s.task
    dzi = write_pyramid(task.iter_render, task.size, tmp_path / "pyr", name="img", tile_size=16, overlap=1,
                        tile_format="png", progress=False)
    layout = PyramidLayout(61, 45, 16, 1)
    assert layout.max_level == 6 and layout.level_size(6) == (61, 45) and layout.level_size(5) == (31, 23)
    root = ET.parse(dzi).getroot()
    assert root.get("TileSize") == "16" and root.get("Overlap") == "1" and root.get("Format") == "png"
    size = root.find("{http://schemas.microsoft.com/deepzoom/2008}Size")
    assert (size.get("Width"), size.get("Height")) == ("61", "45")
    from PIL import Image

    files = tmp_path / "pyr" / "img_files"
    assert sorted(int(p.name) for p in files.iterdir()) == list(range(7))
    n = exact = total = 0
    for level in range(layout.max_level + 1):
        cols, rows = layout.tiles(level)
        assert len(list((files / str(level)).iterdir())) == cols * rows
        for col in range(cols):
            for row in range(rows):
                tile = np.asarray(Image.open(files / str(level) / f"{col}_{row}.png")).astype(int)
                direct = render_codes(task.iter_render, tile_window(layout, level, col, row)).astype(int)
                # same sample positions bit for bit; the MLP's GEMM may round differently for another batch
                # size, which can move a value across a code boundary
                assert tile.shape == direct.shape and np.abs(tile - direct).max() <= 1
                exact += np.count_nonzero(tile == direct)
                total += tile.size
                n += 1
    assert n == layout.tile_count() and exact >= 0.99 * total
    # a level is rendered from the field at its own scale, not downsampled: level 5 is the half-scale render
    half = linear_to_srgb_codes(s.render(region=(0, 0, 61, 45), scale=0.5))
    level5 = np.asarray(Image.open(files / "5" / "0_0.png")).astype(int)
    assert np.abs(level5 - half[:17, :17]).max() <= 1
    html = (tmp_path / "pyr" / "index.html").read_text()
    assert "openseadragon/openseadragon.min.js" in html and '"Url": "img_files/"' in html
    assert (tmp_path / "pyr" / "openseadragon" / "openseadragon.min.js").stat().st_size > 100_000
    assert not list((tmp_path / "pyr").glob(".*partial"))


def test_pyramid_rejects_bad_geometry(tmp_path):
    with pytest.raises(DataError, match="overlap"):
        PyramidLayout(10, 10, tile_size=4, overlap=4)
    with pytest.raises(DataError, match="jpg or png"):
        write_pyramid(lambda w: iter(()), (4, 4), tmp_path, tile_format="gif", progress=False)
    with pytest.raises(DataError, match="plain file name"):
        write_pyramid(lambda w: iter(()), (4, 4), tmp_path, name="../x", progress=False)


# -- loading large images in their stored precision ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["tiled-bigtiff", "striped-tiff", "png"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_large_formats_load_in_stored_precision(tmp_path, kind, dtype):
    pyvips = pytest.importorskip("pyvips")
    img = pattern(300, 517, dtype)
    vim = pyvips.Image.new_from_array(img, interpretation="srgb" if dtype == np.uint8 else "rgb16")
    if kind == "png":
        path = tmp_path / "a.png"
        vim.pngsave(str(path))
    else:
        path = tmp_path / "a.tif"
        vim.tiffsave(str(path), tile=kind.startswith("tiled"), tile_width=64, tile_height=64,
                     bigtiff=kind.endswith("bigtiff"), compression="deflate")
    data = load_image(path)
    assert data.pixels.dtype == dtype and data.srgb
    np.testing.assert_array_equal(data.pixels, img)
    scale = 255.0 if dtype == np.uint8 else 65535.0
    np.testing.assert_allclose(data.linear_rows(10, 12), srgb_to_linear(img[10:12] / scale), rtol=1e-5, atol=1e-7)


def test_jpeg_loads_as_8_bit_codes_strip_by_strip(tmp_path):
    pyvips = pytest.importorskip("pyvips")
    img = pattern(600, 300)
    pyvips.Image.new_from_array(img, interpretation="srgb").jpegsave(str(tmp_path / "a.jpg"), Q=98)
    data = load_image(tmp_path / "a.jpg")
    assert data.pixels.dtype == np.uint8 and data.pixels.shape == (600, 300, 3) and data.srgb
    assert np.abs(data.pixels.astype(int) - img).mean() < 2  # lossy, but the same picture


def test_rgba_and_grey_files_become_rgb(tmp_path):
    pyvips = pytest.importorskip("pyvips")
    rgba = np.concatenate([pattern(20, 30), np.full((20, 30, 1), 7, np.uint8)], axis=-1)
    pyvips.Image.new_from_array(rgba, interpretation="srgb").pngsave(str(tmp_path / "a.png"))
    np.testing.assert_array_equal(load_image(tmp_path / "a.png").pixels, rgba[..., :3])
    grey = pattern(20, 30)[..., 0]
    pyvips.Image.new_from_array(grey, interpretation="b-w").tiffsave(str(tmp_path / "g.tif"))
    np.testing.assert_array_equal(load_image(tmp_path / "g.tif").pixels, np.repeat(grey[..., None], 3, axis=2))


def test_npy_arrays_are_memory_mapped_not_copied(tmp_path, device):
    img = pattern(64, 80, np.uint16)
    np.save(tmp_path / "a.npy", img)
    data = load_image(tmp_path / "a.npy")
    assert isinstance(data.pixels, np.memmap) and data.pixels.dtype == np.uint16 and data.srgb
    np.testing.assert_array_equal(data.pixels, img)
    s = Session.image(data, config=TINY, device=device)
    before = s.evaluate()["psnr"]
    s.train(steps=30)
    assert s.evaluate()["psnr"] > before + 3  # trains from 16-bit codes through the 65536-entry table
    np.save(tmp_path / "rgba.npy", np.concatenate([pattern(8, 9), np.zeros((8, 9, 1), np.uint8)], axis=-1))
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.npy").pixels, pattern(8, 9))
    np.save(tmp_path / "flat.npy", np.zeros((8, 9), np.uint8))
    with pytest.raises(DataError, match="2-D"):
        load_image(tmp_path / "flat.npy")
    np.save(tmp_path / "f64.npy", np.zeros((8, 9, 3), np.float64))
    with pytest.raises(DataError, match="dtype"):
        load_image(tmp_path / "f64.npy")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="cannot read array"):
        load_image(tmp_path / "bad.npy")


def test_corrupt_and_truncated_tiffs_raise_data_errors(tmp_path):
    pyvips = pytest.importorskip("pyvips")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00 this is not a tiff")
    with pytest.raises(DataError, match="cannot read image"):
        load_image(tmp_path / "bad.tif")
    good = tmp_path / "good.tif"
    pyvips.Image.new_from_array(pattern(256, 256), interpretation="srgb").tiffsave(
        str(good), tile=True, tile_width=64, tile_height=64, compression="deflate")
    (tmp_path / "cut.tif").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="cut.tif"):
        load_image(tmp_path / "cut.tif")


# -- 100 megapixels end to end -------------------------------------------------------------------------------


@pytest.mark.slow
def test_100_megapixel_image_trains_evaluates_and_renders_in_bounded_memory(tmp_path, device):
    """10000 x 10000 uint8 (300 MB stored): train, evaluate every pixel (streamed), render a region, a scaled
    whole image and a pyramid level; memory grows by far less than one float32 copy of the image (1.2 GB)."""
    if not device.is_cpu:
        pytest.skip("RSS accounting is for the CPU device")
    h = w = 10000
    img = np.empty((h, w, 3), dtype=np.uint8)
    for y in range(0, h, 1000):  # filled in bands: no float temporary of the whole image
        img[y:y + 1000] = pattern(1000, w)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    s = Session.image(ImageData(pixels=img), config=TINY, device=device)
    s.train(steps=3)
    m = s.evaluate()
    assert np.isfinite(m["psnr"]) and m["psnr"] > 5
    crop = s.render(region=(4321, 1234, 300, 200))
    assert crop.shape == (200, 300, 3)
    small = s.render(width=500, height=500)
    assert small.shape == (500, 500, 3)
    band = render_codes(s.task.iter_render, Window(w, 256, (0, 4096), (w, h)))
    assert band.shape == (256, w, 3)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    assert grown_mib < 400, f"peak RSS grew by {grown_mib:.0f} MiB (a float32 copy would be ~1150 MiB)"


# -- the viewer in a real headless browser -------------------------------------------------------------------


@pytest.mark.slow
def test_pyramid_opens_in_a_headless_browser_and_shows_the_image(tmp_path, device):
    from benchmarks._browser import find_chromium, screenshot_openseadragon

    if find_chromium() is None:
        pytest.skip("needs selenium, chromium and chromedriver (apt-get install chromium chromium-driver)")
    s = Session.image(pattern(300, 400), config=TINY, device=device)
    s.train(steps=60)
    write_pyramid(s.task.iter_render, s.task.size, tmp_path, progress=False)
    info = screenshot_openseadragon(tmp_path / "index.html", tmp_path / "shot.png", size=(800, 600))
    assert info["tiles_loaded"] and info["fully_loaded"], info
    from PIL import Image

    shot = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB")).astype(int)
    h, w = shot.shape[:2]
    # OpenSeadragon fits the 4:3 image to the page: the page centre shows the image centre
    centre = linear_to_srgb_codes(s.render(region=(195, 145, 10, 10))).reshape(-1, 3).mean(axis=0)
    seen = shot[h // 2 - 3:h // 2 + 3, w // 2 - 3:w // 2 + 3].reshape(-1, 3).mean(axis=0)
    assert np.abs(seen - centre).max() < 20, (seen, centre)
    assert shot[h // 4:3 * h // 4, w // 4:3 * w // 4].std() > 10  # the image, not an empty page


def test_cli_train_render_region_and_pyramid_on_an_awkward_width(tmp_path, capsys):
    """The reported defect: a 1000-px-wide photo broke evaluation at the end of ``ngp image train``."""
    import json

    from ngp_sdk.cli import main
    from ngp_sdk.core.images import save_image

    img = pattern(263, 1000)
    save_image(tmp_path / "photo.png", img)  # uint8 input is written as codes
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY.to_dict()))
    snap = tmp_path / "p.ingp"
    assert main(["image", "train", str(tmp_path / "photo.png"), "--steps", "2", "--config", str(cfg),
                 "--out", str(snap), "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 2 and np.isfinite(out["psnr"])
    assert main(["image", "render", str(snap), "--region", "990,250,20,20", "--scale", "2.5",
                 "--out", str(tmp_path / "crop.png")]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "crop.png").size == (50, 50)
    assert main(["image", "pyramid", str(snap), "--out", str(tmp_path / "pyr"), "--json", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["size"] == [1000, 263] and (tmp_path / "pyr" / "index.html").is_file()
    with pytest.raises(SystemExit) as e:  # argparse: a usage error
        main(["image", "render", str(snap), "--region", "0,0,0,5", "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2
