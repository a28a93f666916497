"""Replay a bag into a live session through the bridge: a robot without a robot.

:func:`replay_bag` reads the bag's posed frames (:class:`~ngp_sdk.robotics.frames.BagFrames`, the importer's
conversions), ``configure`` s the server with the scene box of the recording, then sends every frame with
:class:`~bridges.client.NgpClient` ``add_frame`` (with its camera id) at the recording's pace times ``rate`` -- the
same messages, socket and server code a live robot's frames go through. ``rate=0`` sends as fast as the server
acknowledges.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bridges.client import NgpClient
from ngp_sdk.robotics.bag import Bag
from ngp_sdk.robotics.frames import BagFrames, FrameOptions
from ngp_sdk.robotics.scene_box import choose_scene_box

__all__ = ["ReplayStats", "replay_bag"]


@dataclass
class ReplayStats:
    """Progress of a replay: frames sent, kept by the server, and the seconds since the first frame."""

    frames_sent: int = 0
    frames_kept: int = 0
    seconds: float = 0.0
    done: bool = False
    error: str | None = None
    cameras: dict[str, int] = field(default_factory=dict)


def replay_bag(bag_path: str | os.PathLike, endpoint: str, options: FrameOptions, *, rate: float = 1.0,
               aabb: tuple[float, ...] | None = None, aabb_scale: int | None = None, capacity: int = 256,
               config: dict[str, Any] | None = None, configure: bool = True, stop: threading.Event | None = None,
               stats: ReplayStats | None = None, timeout_s: float = 300.0) -> ReplayStats:
    """Stream the frames of a bag into the server at ``endpoint``.

    Args:
        bag_path: the recording.
        endpoint: the server's request endpoint.
        options: topics and frame selection (as for the importer).
        rate: playback speed (1 = as recorded; 0 = as fast as the server acknowledges).
        aabb, aabb_scale: scene box (default: estimated from the recording's cameras).
        capacity: frames the live session keeps.
        config: NeRF config sent with ``configure``.
        configure: create the session first (False: the server already has one).
        stop: set it to end the replay early.
        stats: updated in place while the replay runs (for a caller watching from another thread).

    Returns:
        the final :class:`ReplayStats`.
    """
    stats = stats if stats is not None else ReplayStats()
    stop = stop or threading.Event()
    with Bag(bag_path) as bag:
        frames = BagFrames(bag, options)
        scene = choose_scene_box(aabb, aabb_scale, frames.poses)
        with NgpClient(endpoint, timeout_s=timeout_s) as client:
            client.hello()
            if configure:
                client.configure(config=config or {}, aabb_scale=scene.aabb_scale, scale=scene.scale,
                                 offset=scene.offset, capacity=capacity)
            t0 = time.monotonic()
            first_stamp = None
            for f in frames:
                if stop.is_set():
                    break
                if first_stamp is None:
                    first_stamp = f.stamp_ns
                if rate > 0:
                    due = t0 + (f.stamp_ns - first_stamp) / 1e9 / rate
                    while not stop.is_set() and time.monotonic() < due:
                        time.sleep(min(0.05, due - time.monotonic()))
                index = client.add_frame(f.image, f.c2w, f.intrinsics, depth=f.depth, stamp_ns=f.stamp_ns,
                                         camera_id=f.camera)
                stats.frames_sent += 1
                stats.frames_kept += int(index >= 0)
                stats.cameras[f.camera] = stats.cameras.get(f.camera, 0) + 1
                stats.seconds = time.monotonic() - t0
    stats.done = True
    return stats
