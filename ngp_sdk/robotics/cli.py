"""``ngp import rosbag`` and the bag options ``ngp serve --replay`` shares (command plugin, see ``pyproject.toml``)."""

from __future__ import annotations

import argparse
from typing import Any

from ngp_sdk.core.cli import add_output_options, emit, positive_int

__all__ = ["register_cli", "add_bag_options", "frame_options"]


def _aabb(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x0,y0,z0,x1,y1,z1, got {text!r}") from None
    if len(values) != 6:
        raise argparse.ArgumentTypeError(f"expected 6 numbers x0,y0,z0,x1,y1,z1, got {len(values)}")
    return values


def add_bag_options(p: argparse.ArgumentParser, *, image_topic_required: bool = True, aabb_scale: bool = True) -> None:
    """Topics, frames and frame selection of a bag (``ngp import rosbag``, ``ngp serve --replay``); ``aabb_scale``:
    add ``--aabb-scale`` (``ngp serve`` has its own)."""
    p.add_argument("--image-topic", action="append", required=image_topic_required, default=None,
                   help="sensor_msgs/Image or CompressedImage topic, once per camera of a rig")
    p.add_argument("--camera-info-topic", action="append", default=None,
                   help="CameraInfo topic per --image-topic, same order (default: camera_info beside each)")
    p.add_argument("--depth-topic", default=None, help="depth image topic registered to the first camera "
                                                       "(16UC1 mm or 32FC1 m)")
    p.add_argument("--world-frame", default="map", help="TF frame the poses are given in (default: map)")
    pose = p.add_mutually_exclusive_group()
    pose.add_argument("--camera-frame", default=None,
                      help="TF frame of the camera's optical frame (default: the images' header.frame_id)")
    pose.add_argument("--pose-topic", default=None, help="PoseStamped / Odometry topic instead of /tf")
    p.add_argument("--every", type=positive_int, default=1, help="keep every N-th image of each camera")
    p.add_argument("--max-frames", type=positive_int, default=None, help="at most this many frames, evenly spaced")
    p.add_argument("--blur-reject", action="store_true",
                   help="drop frames whose Laplacian variance is below 0.6x the camera's running median")
    p.add_argument("--min-translation", type=float, default=0.0,
                   help="metres a camera must move since its last kept frame (or turn --min-rotation) to be kept")
    p.add_argument("--min-rotation", type=float, default=0.0, help="degrees, see --min-translation")
    p.add_argument("--max-tf-gap", type=float, default=1.0, help="longest TF gap (s) interpolated across")
    p.add_argument("--aabb", type=_aabb, default=None,
                   help="scene box x0,y0,z0,x1,y1,z1 in world units (default: estimated from the cameras)")
    if aabb_scale:
        p.add_argument("--aabb-scale", type=positive_int, default=None, dest="bag_aabb_scale",
                       help="instant-ngp aabb_scale (default: 1 for an object capture, 16 inside-out)")


def frame_options(args: argparse.Namespace) -> Any:
    """A :class:`~ngp_sdk.robotics.frames.FrameOptions` from parsed :func:`add_bag_options` arguments."""
    from ngp_sdk.robotics.frames import FrameOptions

    return FrameOptions(image_topics=tuple(args.image_topic or ()),
                        camera_info_topics=tuple(args.camera_info_topic or ()), depth_topic=args.depth_topic,
                        world_frame=args.world_frame, camera_frame=args.camera_frame, pose_topic=args.pose_topic,
                        every=args.every, max_frames=args.max_frames, blur_reject=args.blur_reject,
                        min_translation=args.min_translation, min_rotation_deg=args.min_rotation,
                        max_tf_gap_s=args.max_tf_gap)


def _cmd_import_rosbag(args: argparse.Namespace) -> int:
    from ngp_sdk.robotics.importer import import_rosbag

    result = import_rosbag(args.bag, args.out, frame_options(args), aabb=args.aabb, aabb_scale=args.bag_aabb_scale,
                           overwrite=args.overwrite, progress=not args.no_progress)
    emit(args, result.to_dict())
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """``ngp import rosbag``: the plugin hook of :mod:`ngp_sdk.cli` (entry point group ``ngp_sdk.commands``)."""
    imp = subparsers.add_parser("import", help="import recordings as datasets").add_subparsers(dest="action",
                                                                                             required=True)
    p = imp.add_parser("rosbag", help="a ROS 1 / ROS 2 (sqlite3, MCAP) bag -> a transforms.json dataset",
                       description="Images + CameraInfo + TF (or a pose topic) [+ depth] -> DIR/transforms.json, "
                                   "images/ and depth/, which `ngp nerf train DIR` trains. Needs the 'ros' extra.")
    p.add_argument("bag", help=".bag file, ROS 2 bag folder, .db3 or .mcap file")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    add_bag_options(p)
    add_output_options(p)
    p.set_defaults(handler=_cmd_import_rosbag)
