"""NeRF dataset loading: fox (instant-ngp), lego (Blender), and small synthetic datasets for every rule."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from ngp_sdk.core.cameras import nerf_matrix_to_ngp
from ngp_sdk.core.errors import ConfigError, DataError
from ngp_sdk.core.images import read_image
from ngp_sdk.nerf.data import composite_alpha, load_nerf_dataset

# ---------------------------------------------------------------------------------------------- helpers


def _pose(t=(0.0, 0.0, 3.0)) -> list:
    m = np.eye(4)
    m[:3, 3] = t
    return m.tolist()


def _img(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def _write(folder: Path, name: str, content: dict, images: dict[str, np.ndarray] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, img in (images or {}).items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(p, img)
    path = folder / name
    path.write_text(json.dumps(content))
    return path


def _simple(tmp_path: Path, **top) -> Path:
    """A 2-frame dataset of 8x6 RGB PNGs with camera_angle_x."""
    frames = [{"file_path": f"im{i}.png", "transform_matrix": _pose((i, 0, 3))} for i in range(2)]
    return _write(
        tmp_path,
        "transforms.json",
        {"camera_angle_x": 1.0, **top, "frames": frames},
        {f"im{i}.png": _img(6, 8, seed=i) for i in range(2)},
    )


# ---------------------------------------------------------------------------------------------- shared data


FOX_MISSING = [
    f"images/{n:04d}.jpg" for n in (5, 16, 17, 24, 32, 51, 68, 71, 75, 83, 87, 88, 93, 99, 104, 106, 113)
]


def test_fox_metadata_and_missing_frames_warning(shared_data):
    root = shared_data / "nerf" / "fox"
    with pytest.warns(UserWarning) as record:
        ds = load_nerf_dataset(root, load_images=False)
    msgs = [str(w.message) for w in record if "no image file" in str(w.message)]
    assert len(msgs) == 1, msgs
    assert "17 of 67" in msgs[0]
    for name in FOX_MISSING:
        assert name in msgs[0]
    assert len(ds) == 50 and ds.images is None
    assert ds.source_format == "instant-ngp" and not ds.has_alpha and not ds.is_hdr
    assert (ds.aabb_scale, ds.scale, ds.offset) == (4, 0.33, (0.5, 0.5, 0.5))
    k = ds.intrinsics[0]
    assert (k.width, k.height, k.model) == (1080, 1920, "OPENCV")
    assert (k.fx, k.fy, k.cx, k.cy) == (1375.52, 1374.49, 554.558, 965.268)  # fl_x wins over camera_angle_x
    assert k.dist == (0.0578421, -0.0805099, -0.000980296, 0.00015575)
    assert ds.file_names[:3] == ("images/0001.jpg", "images/0002.jpg", "images/0003.jpg")
    assert all(name not in ds.file_names for name in FOX_MISSING)
    assert ds.poses.shape == (50, 3, 4) and ds.poses.dtype == np.float32
    assert ds.nerf_poses.shape == (50, 4, 4)
    first = next(
        f
        for f in json.loads((root / "transforms.json").read_text())["frames"]
        if f["file_path"] == "images/0001.jpg"
    )
    np.testing.assert_array_equal(ds.nerf_poses[0], first["transform_matrix"])
    np.testing.assert_allclose(ds.poses, nerf_matrix_to_ngp(ds.nerf_poses[:, :3]), rtol=1e-6, atol=1e-6)
    lo, hi = ds.aabb
    np.testing.assert_array_equal(lo, [-1.5] * 3) and np.testing.assert_array_equal(hi, [2.5] * 3)


def test_fox_images_downscaled(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = load_nerf_dataset(shared_data / "nerf" / "fox" / "transforms.json", downscale=8, max_frames=2)
    assert ds.images.shape == (2, 240, 135, 3) and ds.images.dtype == np.uint8
    full = iio.imread(ds.image_paths[1]).astype(np.float64)
    expected = np.rint(full.reshape(240, 8, 135, 8, 3).mean(axis=(1, 3)))
    assert np.abs(ds.images[1].astype(np.float64) - expected).max() <= 1  # float32 mean vs float64 rounding
    k = ds.intrinsics[1]
    assert (k.width, k.height) == (135, 240)
    assert k.fx == pytest.approx(1375.52 / 8) and k.cy == pytest.approx(965.268 / 8)


def test_lego_blender_split(shared_data):
    ds = load_nerf_dataset(shared_data / "nerf" / "lego", downscale=8, max_frames=2)
    assert ds.source_format == "blender" and ds.has_alpha
    assert ds.images.shape == (2, 100, 100, 4) and ds.images.dtype == np.uint8
    assert ds.file_names == ("./train/r_0", "./train/r_1")
    assert ds.image_paths[0].name == "r_0.png"
    assert (ds.aabb_scale, ds.scale, ds.offset) == (1, 0.33, (0.5, 0.5, 0.5))
    fx = 0.5 * 800 / math.tan(0.5 * 0.6911112070083618) / 8
    k = ds.intrinsics[0]
    assert k.model == "PINHOLE" and k.fx == pytest.approx(fx) and k.fy == pytest.approx(fx)
    assert (k.cx, k.cy) == (50.0, 50.0)
    alpha = ds.images[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255  # background transparent, object opaque: alpha kept


def test_lego_split_selection(shared_data):
    root = shared_data / "nerf" / "lego"
    assert len(load_nerf_dataset(root, split="val", load_images=False)) == 10
    both = load_nerf_dataset(root, split=None, load_images=False)
    assert len(both) == 90 and [p.name for p in both.json_paths] == [
        "transforms_train.json",
        "transforms_val.json",
    ]
    with pytest.raises(DataError, match="transforms_test.json"):
        load_nerf_dataset(root, split="test", load_images=False)


# ---------------------------------------------------------------------------------------------- synthetic


def test_instant_ngp_format_and_per_frame_overrides(tmp_path):
    top = {
        "fl_x": 10.0,
        "fl_y": 11.0,
        "cx": 3.5,
        "cy": 2.5,
        "w": 8,
        "h": 6,
        "k1": 0.1,
        "k2": -0.01,
        "p1": 0.001,
        "p2": 0.002,
        "aabb_scale": 2,
        "scale": 0.5,
        "offset": [0.1, 0.2, 0.3],
        "up": [0.0, 0.0, 1.0],
    }
    frames = [
        {"file_path": "a.png", "transform_matrix": _pose((1, 2, 3))},
        {"file_path": "b.png", "transform_matrix": _pose(), "fl_x": 20.0, "cx": 4.0},
        {"file_path": "c.png", "transform_matrix": _pose(), "is_fisheye": True, "k3": 0.003, "k4": 0.004},
        {
            "file_path": "d.png",
            "transform_matrix": _pose(),
            "camera_angle_x": math.pi / 2,
            "k1": 0.0,
            "k2": 0.0,
            "p1": 0.0,
            "p2": 0.0,
        },
    ]
    imgs = {n: _img(6, 8) for n in ("a.png", "b.png", "c.png", "d.png")}
    with pytest.warns(UserWarning, match="c.png'?: p1/p2 on a fisheye camera"):
        ds = load_nerf_dataset(_write(tmp_path, "transforms.json", {**top, "frames": frames}, imgs))
    a, b, c, d = ds.intrinsics
    assert (a.fx, a.fy, a.cx, a.cy, a.model) == (10.0, 11.0, 3.5, 2.5, "OPENCV")
    assert a.dist == (0.1, -0.01, 0.001, 0.002)
    assert (b.fx, b.fy, b.cx, b.cy) == (20.0, 20.0, 4.0, 2.5)  # a frame focal replaces the pair
    assert c.model == "OPENCV_FISHEYE" and c.dist == (0.1, -0.01, 0.003, 0.004)
    assert d.model == "PINHOLE" and d.fx == pytest.approx(4.0) and d.fy == pytest.approx(4.0)
    assert (ds.aabb_scale, ds.scale, ds.offset, ds.up) == (2, 0.5, (0.1, 0.2, 0.3), (0.0, 1.0, 0.0))
    np.testing.assert_allclose(ds.poses[0, :, 3], [2 * 0.5 + 0.2, 3 * 0.5 + 0.3, 1 * 0.5 + 0.1], rtol=1e-6)
    assert ds.images.shape == (4, 6, 8, 3)
    np.testing.assert_array_equal(ds.images[0], imgs["a.png"])


def test_aabb_key_sets_scale_and_offset(tmp_path):
    ds = load_nerf_dataset(_simple(tmp_path, aabb=[[-1, -2, -3], [3, 2, 1]]), load_images=False)
    assert ds.scale == pytest.approx(0.25)
    np.testing.assert_allclose(ds.offset, [0.5 - 0.25, 0.5, 0.5 + 0.25])


def test_nerfstudio_format(tmp_path):
    content = {
        "camera_model": "OPENCV_FISHEYE",
        "fl_x": 30.0,
        "fl_y": 31.0,
        "cx": 4.0,
        "cy": 3.0,
        "w": 8,
        "h": 6,
        "k1": 0.01,
        "k2": 0.02,
        "k3": 0.03,
        "k4": 0.04,
        "applied_transform": np.eye(4)[:3].tolist(),
        "frames": [{"file_path": "images/frame_00001.png", "transform_matrix": _pose()}],
    }
    ds = load_nerf_dataset(
        _write(tmp_path, "transforms.json", content, {"images/frame_00001.png": _img(6, 8)})
    )
    assert ds.source_format == "nerfstudio"
    k = ds.intrinsics[0]
    assert k.model == "OPENCV_FISHEYE" and k.dist == (0.01, 0.02, 0.03, 0.04) and (k.fx, k.fy) == (30.0, 31.0)
    np.testing.assert_array_equal(ds.applied_transform, np.eye(4)[:3])


def test_nerfstudio_opencv_k3_is_reported_and_unknown_model_rejected(tmp_path):
    base = {"fl_x": 30.0, "frames": [{"file_path": "a.png", "transform_matrix": _pose()}]}
    path = _write(
        tmp_path, "t.json", {**base, "camera_model": "OPENCV", "k1": 0.1, "k3": 0.2}, {"a.png": _img(6, 8)}
    )
    with pytest.warns(UserWarning, match="k3/k4"):
        ds = load_nerf_dataset(path)
    assert ds.intrinsics[0].model == "OPENCV" and ds.intrinsics[0].dist == (0.1, 0.0, 0.0, 0.0)
    _write(tmp_path, "t.json", {**base, "camera_model": "EQUIRECTANGULAR"})
    with pytest.raises(DataError, match="EQUIRECTANGULAR"):
        load_nerf_dataset(path)


def test_folder_merges_transforms_files(tmp_path):
    imgs = {"a.png": _img(6, 8), "b.png": _img(6, 8), "c.png": _img(6, 8)}
    _write(
        tmp_path,
        "one.json",
        {
            "camera_angle_x": 1.0,
            "scale": 0.5,
            "frames": [{"file_path": "a.png", "transform_matrix": _pose()}],
        },
        imgs,
    )
    _write(
        tmp_path,
        "two.json",
        {
            "camera_angle_x": 1.0,
            "scale": 0.5,
            "frames": [
                {"file_path": "c.png", "transform_matrix": _pose()},
                {"file_path": "b.png", "transform_matrix": _pose()},
            ],
        },
    )
    _write(tmp_path, "other.json", {"not": "a transforms file"})
    ds = load_nerf_dataset(tmp_path, load_images=False)
    assert ds.file_names == ("a.png", "b.png", "c.png") and len(ds.json_paths) == 2 and ds.scale == 0.5
    assert len(load_nerf_dataset(tmp_path, split=None, load_images=False)) == 3
    with pytest.raises(DataError, match="no split files"):
        load_nerf_dataset(tmp_path, split="val")
    _write(
        tmp_path,
        "two.json",
        {
            "camera_angle_x": 1.0,
            "scale": 0.4,
            "frames": [{"file_path": "b.png", "transform_matrix": _pose()}],
        },
    )
    with pytest.raises(DataError, match="conflicts"):
        load_nerf_dataset(tmp_path, load_images=False)


def test_natural_sort_and_extensionless_paths(tmp_path):
    names = ["img10", "img2", "img1"]
    content = {
        "camera_angle_x": 1.0,
        "frames": [{"file_path": f"./r/{n}", "transform_matrix": _pose()} for n in names],
    }
    path = _write(tmp_path, "transforms_train.json", content, {f"r/{n}.png": _img(6, 8) for n in names})
    ds = load_nerf_dataset(tmp_path, load_images=False)
    assert ds.json_paths == (path,)
    assert ds.file_names == ("./r/img1", "./r/img2", "./r/img10")
    assert [p.name for p in ds.image_paths] == ["img1.png", "img2.png", "img10.png"]


def test_max_frames_and_lazy_loading(tmp_path):
    path = _simple(tmp_path)
    lazy = load_nerf_dataset(path, load_images=False)
    assert lazy.images is None
    eager = lazy.with_images()
    for i in range(2):
        np.testing.assert_array_equal(lazy.load_image(i), eager.images[i])
    assert len(load_nerf_dataset(path, max_frames=1)) == 1


def test_downscale_area_average_weights_straight_alpha(tmp_path):
    red = np.array([255, 0, 0, 255], np.uint8)
    img = np.zeros((4, 2, 4), np.uint8)
    img[:, :] = red
    img[0, 0] = [0, 0, 0, 0]  # one transparent texel in the top block
    img[2:, :, :3] = [[10, 20, 30], [30, 40, 50]]  # opaque bottom block: plain mean
    content = {"camera_angle_x": 1.0, "frames": [{"file_path": "a.png", "transform_matrix": _pose()}]}
    ds = load_nerf_dataset(_write(tmp_path, "t.json", content, {"a.png": img}), downscale=2)
    assert ds.images.shape == (1, 2, 1, 4)
    np.testing.assert_array_equal(ds.images[0, 0, 0], [255, 0, 0, 191])  # colour not darkened by the hole
    np.testing.assert_array_equal(ds.images[0, 1, 0], [20, 30, 40, 255])
    assert ds.intrinsics[0].width == 1 and ds.intrinsics[0].cx == pytest.approx(0.5)


def test_mixed_sizes_and_channels(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    imgs = {"a.png": _img(6, 8), "b.png": _img(4, 4, c=4), "c.png": gray}
    content = {"camera_angle_x": 1.0, "frames": [{"file_path": n, "transform_matrix": _pose()} for n in imgs]}
    ds = load_nerf_dataset(_write(tmp_path, "t.json", content, imgs))
    assert isinstance(ds.images, list) and ds.has_alpha
    assert [im.shape for im in ds.images] == [(6, 8, 4), (4, 4, 4), (6, 8, 4)]
    assert np.all(ds.images[0][..., 3] == 255)
    np.testing.assert_array_equal(ds.images[0][..., :3], imgs["a.png"])
    np.testing.assert_array_equal(ds.images[2][..., 1], gray)
    np.testing.assert_array_equal(ds.image_sizes, [[8, 6], [4, 4], [8, 6]])


def test_exr_images_stay_half_float(tmp_path):
    import OpenEXR

    rgb = np.random.default_rng(0).uniform(0, 8, (4, 6, 3)).astype(np.float32)
    tmp_path.mkdir(exist_ok=True)
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"RGB": rgb}) as f:
        f.write(str(tmp_path / "a.exr"))
    content = {"camera_angle_x": 1.0, "frames": [{"file_path": "a", "transform_matrix": _pose()}]}
    ds = load_nerf_dataset(_write(tmp_path, "t.json", content), downscale=2)
    assert (
        ds.is_hdr and not ds.has_alpha and ds.images.dtype == np.float16 and ds.images.shape == (1, 2, 3, 3)
    )
    expected = rgb.astype(np.float16).astype(np.float32).reshape(2, 2, 3, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(ds.images[0].astype(np.float32), expected, rtol=2e-3)
    assert read_image(tmp_path / "a.exr").dtype == np.float32  # the one reader keeps the stored precision


def test_composite_alpha():
    px = np.array([[255, 0, 0, 255], [0, 255, 0, 0], [0, 0, 255, 51]], np.uint8)
    out = composite_alpha(px, (0.0, 0.0, 1.0))
    np.testing.assert_allclose(out, [[1, 0, 0], [0, 0, 1], [0, 0, 1]], atol=1e-6)
    out = composite_alpha(px, (1.0, 1.0, 1.0))
    np.testing.assert_allclose(out[2], [0.8, 0.8, 1.0], atol=1e-6)


# ---------------------------------------------------------------------------------------------- errors


def _frame(**kw) -> dict:
    return {"file_path": "a.png", "transform_matrix": _pose(), **kw}


@pytest.mark.parametrize(
    "content, match",
    [
        ({"camera_angle_x": 1.0, "frames": [_frame(transform_matrix=np.eye(4)[:3].tolist())]}, "must be 4x4"),
        ({"camera_angle_x": 1.0, "frames": [_frame(transform_matrix=[[float("nan")] * 4] * 4)]}, "NaN"),
        ({"camera_angle_x": 1.0, "frames": [_frame(transform_matrix="eye")]}, "4x4"),
        ({"camera_angle_x": 1.0, "w": 16, "frames": [_frame()]}, "w=16"),
        ({"camera_angle_x": 1.0, "frames": [_frame(h=3)]}, "h=3"),
        ({"frames": [_frame()]}, "no focal length"),
        ({"fl_x": -2.0, "frames": [_frame()]}, "positive"),
        ({"camera_angle_x": 1.0, "frames": [{"transform_matrix": _pose()}]}, "file_path"),
        ({"camera_angle_x": 1.0, "frames": [_frame(k1="x")]}, "'k1' must be a number"),
        ({"camera_angle_x": 1.0, "aabb_scale": 0, "frames": [_frame()]}, "aabb_scale"),
        ({"camera_angle_x": 1.0}, "no 'frames'"),
        ({"camera_angle_x": 1.0, "frames": []}, "no frames"),
    ],
)
def test_invalid_transforms_raise(tmp_path, content, match):
    path = _write(tmp_path, "transforms.json", content, {"a.png": _img(6, 8)})
    with pytest.raises(DataError, match=match) as e:
        load_nerf_dataset(path)
    assert "transforms.json" in str(e.value) or "frames" in match


def test_missing_and_broken_json(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_nerf_dataset(tmp_path / "nope")
    bad = tmp_path / "transforms.json"
    bad.write_text('{"frames": [}')
    with pytest.raises(DataError, match=r"transforms\.json is not valid JSON"):
        load_nerf_dataset(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(DataError, match="JSON object"):
        load_nerf_dataset(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no \\*.json"):
        load_nerf_dataset(tmp_path / "empty")


def test_all_images_missing(tmp_path):
    content = {"camera_angle_x": 1.0, "frames": [_frame(file_path="x.png"), _frame(file_path="y.jpg")]}
    path = _write(tmp_path, "transforms.json", content)
    with pytest.warns(UserWarning, match="2 of 2 frames .* x.png, y.jpg"):
        with pytest.raises(DataError, match="no frames with an existing image"):
            load_nerf_dataset(path)


def test_unreadable_image(tmp_path):
    path = _simple(tmp_path)
    (tmp_path / "im1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="im1.png"):
        load_nerf_dataset(path)


@pytest.mark.parametrize(
    "kwargs", [dict(downscale=0), dict(downscale=1.5), dict(max_frames=0), dict(max_frames=True)]
)
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        load_nerf_dataset(_simple(tmp_path), **kwargs)
