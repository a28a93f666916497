"""``ngp import rosbag`` on bags written in code: ROS 1, ROS 2 sqlite3 and MCAP; raw and compressed images; TF at
another rate than the images through a static chain; depth; rigs; pose topics; frame selection; bad bags."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from ngp_sdk.cli import main
from ngp_sdk.core.cameras import Intrinsics
from ngp_sdk.nerf.data import load_nerf_dataset
from ngp_sdk.robotics import BagError, FrameOptions, TfError, import_rosbag
from ngp_sdk.robotics.messages import MessageError, nerf_to_optical
from ngp_sdk.robotics.writer import BASE_TO_OPTICAL, BagWriter, write_capture

from .conftest import capture

pytest.importorskip("rosbags")

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


@pytest.mark.parametrize("fmt, compressed", [("ros1", None), ("sqlite3", "png"), ("mcap", None), ("mcap", "jpeg")])
def test_import_round_trips_poses_images_and_cameras(tmp, scene_capture, fmt, compressed):
    images, poses, intr = scene_capture
    bag = tmp / ("b.bag" if fmt == "ros1" else "b")
    rgb = [im[..., :3] for im in images] if compressed == "jpeg" else images
    info = write_capture(bag, rgb, poses, intr, format=fmt, compressed=compressed)
    # TF samples never coincide with an image stamp: every pose below is interpolated
    assert not set(info["tf_stamps_ns"]) & set(info["image_stamps_ns"])
    r = import_rosbag(bag, tmp / "out", FrameOptions(image_topics=(info["image_topic"],)), progress=False)
    assert r.frames == len(images) and r.scene.aabb_scale == 1
    ds = load_nerf_dataset(tmp / "out")
    assert len(ds) == len(images)
    assert np.abs(ds.nerf_poses - poses).max() < 1e-6
    k = ds.intrinsics[0]
    assert (k.width, k.height, k.model) == (intr.width, intr.height, "PINHOLE")
    assert np.allclose((k.fx, k.fy, k.cx, k.cy), (intr.fx, intr.fy, intr.cx, intr.cy))
    if compressed == "jpeg":
        assert np.abs(ds.images[..., :3].astype(int) - np.stack(rgb)).mean() < 8
    else:
        assert np.array_equal(ds.images, np.stack(images))
    # the estimated scene box puts the cameras' focus (the scene origin) at the centre of the unit cube
    assert np.allclose(np.asarray(ds.offset), 0.5, atol=0.02)


def test_depth_topic_is_written_as_millimetres(tmp, scene_capture):
    images, poses, intr = scene_capture
    depth = [np.full(images[0].shape[:2], 1.5 + 0.25 * i, np.float32) for i in range(len(images))]
    depth[2][3:5, 3:5] = 0.0
    info = write_capture(tmp / "d", images, poses, intr, depth=depth)
    r = import_rosbag(tmp / "d", tmp / "out", FrameOptions(image_topics=(info["image_topic"],),
                                                           depth_topic=info["depth_topic"]), progress=False)
    assert r.frames_with_depth == len(images)
    t = json.loads((tmp / "out" / "transforms.json").read_text())
    assert t["depth_unit_scale_factor"] == 0.001
    for i, f in enumerate(sorted(t["frames"], key=lambda f: f["file_path"])):
        mm = iio.imread(tmp / "out" / f["depth_file_path"])
        assert mm.dtype == np.uint16 and np.array_equal(mm, np.rint(depth[i] * 1000).astype(np.uint16))


def _rig_bag(path: Path, fmt: str = "mcap", *, odometry: bool = False) -> tuple[dict, dict, list[np.ndarray]]:
    """Two cameras of different sizes on one body; body poses from /tf (or Odometry) at 20 Hz, images at 4 Hz."""
    cams = {"/left/image_raw": (Intrinsics(width=24, height=16, fx=20.0, fy=20.0, cx=12.0, cy=8.0),
                                np.array([[0, 0, 1, 0.1], [-1, 0, 0, 0.05], [0, -1, 0, 0.2], [0, 0, 0, 1.0]])),
            "/right/image_raw": (Intrinsics(width=20, height=20, fx=18.0, fy=18.0, cx=10.5, cy=9.5),
                                 np.array([[0, 0, 1, 0.1], [-1, 0, 0, -0.05], [0, -1, 0, 0.2], [0, 0, 0, 1.0]]))}

    def body(t: float) -> np.ndarray:
        c, s = np.cos(0.3 * t), np.sin(0.3 * t)
        return np.array([[c, -s, 0, 1 + 0.2 * t], [s, c, 0, 0.1 * t], [0, 0, 1, 0], [0, 0, 0, 1.0]])

    stamps = {}
    rng = np.random.default_rng(5)
    with BagWriter(path, fmt) as w:
        statics = [("base_link", f"{t.split('/')[1]}_optical", m) for t, (_, m) in cams.items()]
        w.write_tf(T0, statics, static=True)
        for k in range(41):  # 2 s of body poses at 20 Hz
            t = T0 + k * S // 20
            if odometry:
                w.write_odometry("/odom", t, body(k / 20), frame_id="map", child_frame_id="base_link")
            else:
                w.write_tf(t, [("map", "base_link", body(k / 20))])
        for i in range(6):
            t = T0 + 137_000_000 + i * S // 4
            for topic, (intr, _) in cams.items():
                frame = f"{topic.split('/')[1]}_optical"
                w.write_camera_info(topic.rsplit("/", 1)[0] + "/camera_info", t, intr, frame_id=frame)
                w.write_image(topic, t, rng.integers(0, 255, (intr.height, intr.width, 3), dtype=np.uint8),
                              frame_id=frame, encoding="bgr8")
                stamps.setdefault(topic, []).append(t)
    return cams, stamps, body


@pytest.mark.parametrize("odometry", [False, True])
def test_multi_camera_rig_poses_come_through_the_body_frame(tmp, odometry):
    cams, stamps, body = _rig_bag(tmp / "rig", odometry=odometry)
    opts = FrameOptions(image_topics=tuple(cams), pose_topic="/odom" if odometry else None)
    r = import_rosbag(tmp / "rig", tmp / "out", opts, progress=False)
    assert r.frames == 12 and set(r.cameras) == {"left", "right"}
    t = json.loads((tmp / "out" / "transforms.json").read_text())
    for f in t["frames"]:
        topic = f"/{f['camera']}/image_raw"
        intr, static = cams[topic]
        expected = body((f["stamp_ns"] - T0) / S) @ static
        assert np.allclose(nerf_to_optical(np.array(f["transform_matrix"])), expected, atol=1e-9)
        assert (f["w"], f["h"], f["fl_x"], f["cx"]) == (intr.width, intr.height, intr.fx, intr.cx)
    ds = load_nerf_dataset(tmp / "out")
    assert len(ds) == 12 and isinstance(ds.images, list)  # two image sizes


def test_frame_selection_every_max_blur_and_motion(tmp):
    from ngp_sdk.nerf.synthetic import DEMO_SCENE, look_at_nerf, render_scene

    _, _, intr = capture(1, 48)
    angles = np.linspace(0.0, 0.35, 8)  # a slow arc: neighbouring frames look alike, as in a video
    poses = np.stack([look_at_nerf(3.2 * np.array([np.cos(a), np.sin(a), 0.4])) for a in angles])
    imgs = [render_scene(DEMO_SCENE, m, 48) for m in poses]
    sharp = imgs[5].astype(np.float32)
    for _ in range(6):  # a heavily blurred frame 5
        sharp = sum(np.roll(sharp, k, axis) for k in (1, -1) for axis in (0, 1)) / 5 + sharp / 5
    imgs[5] = sharp.astype(np.uint8)
    ps = poses.copy()
    ps[3] = ps[2]  # the robot did not move between frames 2 and 3
    info = write_capture(tmp / "b", imgs, ps, intr)
    topic = (info["image_topic"],)
    r = import_rosbag(tmp / "b", tmp / "a", FrameOptions(image_topics=topic, every=2), progress=False)
    assert r.frames == 4 and r.rejected["every"] == 4
    r = import_rosbag(tmp / "b", tmp / "m", FrameOptions(image_topics=topic, max_frames=3), progress=False)
    assert r.frames == 3
    stamps = [f["stamp_ns"] for f in json.loads((tmp / "m" / "transforms.json").read_text())["frames"]]
    recorded = info["image_stamps_ns"]
    assert stamps == sorted(stamps) and (stamps[0], stamps[-1]) == (recorded[0], recorded[-1])
    r = import_rosbag(tmp / "b", tmp / "bl", FrameOptions(image_topics=topic, blur_reject=True), progress=False)
    assert r.rejected["blur"] == 1 and r.frames == 7
    r = import_rosbag(tmp / "b", tmp / "mo", FrameOptions(image_topics=topic, min_translation=0.01,
                                                          min_rotation_deg=0.5), progress=False)
    assert r.rejected["motion"] == 1 and r.frames == 7


def test_distortion_the_trainer_cannot_express_is_resampled_away(tmp, scene_capture):
    images, poses, intr = scene_capture
    info = write_capture(tmp / "b", images[:2], poses[:2], intr)  # for its stamps
    # rewrite the CameraInfo with a k3 term
    with BagWriter(tmp / "k3", "mcap") as w:
        w.write_tf(T0, [("base_link", "camera_optical_frame", BASE_TO_OPTICAL)], static=True)
        for i, t in enumerate(info["image_stamps_ns"]):
            w.write_tf(t - 1000, [("map", "base_link", nerf_to_optical(poses[i]) @ np.linalg.inv(BASE_TO_OPTICAL))])
            w.write_tf(t + 1000, [("map", "base_link", nerf_to_optical(poses[i]) @ np.linalg.inv(BASE_TO_OPTICAL))])
            w.write_camera_info("/camera/camera_info", t, intr, frame_id="camera_optical_frame",
                                distortion_model="plumb_bob", d=[0.05, 0.0, 0.0, 0.0, 0.03])
            w.write_image("/camera/image_raw", t, images[i], frame_id="camera_optical_frame", encoding="rgba8")
    import_rosbag(tmp / "k3", tmp / "out", FrameOptions(image_topics=("/camera/image_raw",)), progress=False)
    f = json.loads((tmp / "out" / "transforms.json").read_text())["frames"][0]
    assert "camera_model" not in f and "k1" not in f  # pinhole after resampling
    out = iio.imread(tmp / "out" / f["file_path"])
    assert out.shape == images[0].shape and not np.array_equal(out, images[0])
    assert np.abs(out[12:20, 12:20].astype(int) - images[0][12:20, 12:20]).mean() < 30  # centre barely moves


def test_imported_dataset_trains_with_default_flags(tmp, scene_capture, capsys):
    images, poses, intr = scene_capture
    info = write_capture(tmp / "b", images, poses, intr)
    assert main(["import", "rosbag", str(tmp / "b"), "--out", str(tmp / "out"), "--image-topic",
                 info["image_topic"], "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frames"] == len(images)
    assert main(["nerf", "train", str(tmp / "out"), "--steps", "3", "--json", "--no-progress",
                 "--out", str(tmp / "s.ingp")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 3


# -- bad bags ----------------------------------------------------------------------------------------------------
def _cli_error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    return capsys.readouterr().err


def test_bad_bags_give_clear_errors(tmp, scene_capture, capsys):
    images, poses, intr = scene_capture
    write_capture(tmp / "ok.bag", images, poses, intr, format="ros1")
    data = (tmp / "ok.bag").read_bytes()
    (tmp / "trunc.bag").write_bytes(data[: len(data) // 2])
    err = _cli_error(capsys, "import", "rosbag", str(tmp / "trunc.bag"), "--out", str(tmp / "o1"),
                     "--image-topic", "/camera/image_raw")
    assert "cannot read bag" in err and "trunc.bag" in err
    err = _cli_error(capsys, "import", "rosbag", str(tmp / "missing.bag"), "--out", str(tmp / "o1"),
                     "--image-topic", "/camera/image_raw")
    assert "does not exist" in err
    err = _cli_error(capsys, "import", "rosbag", str(tmp / "ok.bag"), "--out", str(tmp / "o1"),
                     "--image-topic", "/front/image_raw")
    assert "image topic /front/image_raw is not in bag" in err and "/camera/image_raw" in err
    assert not (tmp / "o1").exists() and not (tmp / "o1.partial").exists()

    with BagWriter(tmp / "noinfo", "mcap") as w:  # images but no CameraInfo
        w.write_image("/camera/image_raw", T0, images[0], frame_id="cam", encoding="rgba8")
        w.write_tf(T0, [("map", "cam", np.eye(4))])
    err = _cli_error(capsys, "import", "rosbag", str(tmp / "noinfo"), "--out", str(tmp / "o2"),
                     "--image-topic", "/camera/image_raw")
    assert "CameraInfo absent" in err and "/camera/camera_info" in err

    with BagWriter(tmp / "yuv", "mcap") as w:  # unknown encoding
        w.write_tf(T0, [("map", "cam", np.eye(4))])
        w.write_tf(T0 + S, [("map", "cam", np.eye(4))])
        w.write_camera_info("/camera/camera_info", T0 + S // 2, Intrinsics(width=4, height=2, fx=4.0, fy=4.0, cx=2.0,
                                                                           cy=1.0), frame_id="cam")
        w.write_image("/camera/image_raw", T0 + S // 2, np.zeros((2, 4, 2), np.uint8), frame_id="cam",
                      encoding="yuv422")
    err = _cli_error(capsys, "import", "rosbag", str(tmp / "yuv"), "--out", str(tmp / "o3"),
                     "--image-topic", "/camera/image_raw")
    assert "unsupported image encoding 'yuv422'" in err

    with BagWriter(tmp / "gap", "mcap") as w:  # TF with a 3 s hole around the second image
        w.write_tf(T0, [("map", "cam", np.eye(4))], static=False)
        w.write_tf(T0 + S // 10, [("map", "cam", np.eye(4))])
        w.write_tf(T0 + 4 * S, [("map", "cam", np.eye(4))])
        for t in (T0 + S // 20, T0 + 2 * S, T0 + 5 * S):
            w.write_camera_info("/camera/camera_info", t, intr, frame_id="cam")
            w.write_image("/camera/image_raw", t, images[0], frame_id="cam", encoding="rgba8")
    err = _cli_error(capsys, "import", "rosbag", str(tmp / "gap"), "--out", str(tmp / "o4"),
                     "--image-topic", "/camera/image_raw")
    assert "gap of 3.900 s" in err and "map -> cam" in err
    err = _cli_error(capsys, "import", "rosbag", str(tmp / "gap"), "--out", str(tmp / "o4"),
                     "--image-topic", "/camera/image_raw", "--max-tf-gap", "10")
    assert "outside the TF data for map -> cam" in err  # the image at 5 s comes after the last TF sample
    with pytest.raises(TfError):
        import_rosbag(tmp / "gap", tmp / "o5", FrameOptions(image_topics=("/camera/image_raw",)), progress=False)
    with pytest.raises(BagError, match="no /tf"):
        with BagWriter(tmp / "notf", "mcap") as w:
            w.write_camera_info("/camera/camera_info", T0, intr, frame_id="cam")
            w.write_image("/camera/image_raw", T0, images[0], frame_id="cam", encoding="rgba8")
        import_rosbag(tmp / "notf", tmp / "o6", FrameOptions(image_topics=("/camera/image_raw",)), progress=False)
    assert issubclass(MessageError, ValueError)


def test_a_snapshot_of_an_import_evaluates_on_the_original_val_split(tmp, scene_capture):
    """The import keeps the bag's world frame but picks its own scale/offset; evaluation re-expresses the val
    poses (same world, default scale) in the trained scene's box."""
    from ngp_sdk.core.cameras import nerf_matrix_to_ngp
    from ngp_sdk.nerf.scene import NerfScene
    from ngp_sdk.nerf.synthetic import write_synthetic_dataset

    images, poses, intr = scene_capture
    info = write_capture(tmp / "b", images, poses, intr)
    import_rosbag(tmp / "b", tmp / "out", FrameOptions(image_topics=(info["image_topic"],)), progress=False)
    imported = load_nerf_dataset(tmp / "out")
    val = load_nerf_dataset(write_synthetic_dataset(tmp / "orig", n_train=2, n_val=2, size=8), split="val")
    scene = NerfScene.from_dataset(imported)
    assert not np.isclose(scene.scale, val.scale)
    got = scene.poses_of(val)
    ref = np.stack([nerf_matrix_to_ngp(m, scene.scale, scene.offset)[:3] for m in val.nerf_poses])
    assert np.allclose(got, ref, atol=1e-6)
    assert np.array_equal(scene.poses_of(imported), imported.poses)


@pytest.mark.parametrize("fmt", ["mcap", "sqlite3"])
def test_truncated_ros2_bags_give_a_bag_error(tmp, scene_capture, fmt):
    images, poses, intr = scene_capture
    info = write_capture(tmp / "b", images, poses, intr, format=fmt)
    data_file = next(f for f in (tmp / "b").iterdir() if f.suffix in (".mcap", ".db3"))
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(BagError, match=r"cannot read bag|damaged|does not deserialise"):
        import_rosbag(tmp / "b", tmp / "out", FrameOptions(image_topics=(info["image_topic"],)), progress=False)
    assert not (tmp / "out").exists() and not (tmp / "out.partial").exists()
