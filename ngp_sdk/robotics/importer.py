"""``ngp import rosbag``: a bag -> a dataset in the ``transforms.json`` format that ``ngp nerf train DIR`` reads.

Output folder::

    DIR/transforms.json          instant-ngp / nerfstudio keys (below)
    DIR/images/<camera>/000000.png   lossless; RGBA when the topic was rgba8/bgra8
    DIR/depth/<camera>/000000.png    16-bit millimetres (0 = none), when --depth-topic is given

``transforms.json``: ``scale`` / ``offset`` / ``aabb_scale`` (the scene box, :mod:`ngp_sdk.robotics.scene_box`),
per frame ``file_path``, ``transform_matrix`` (camera-to-world in the bag's world frame, metres, NeRF/OpenGL
camera axes), its camera (``w h fl_x fl_y cx cy`` and ``k1 k2 p1 p2`` or ``camera_model: OPENCV_FISHEYE`` with
``k1..k4``), ``depth_file_path`` (nerfstudio; with the top-level ``depth_unit_scale_factor`` 0.001), and the
ROS provenance ``camera`` / ``stamp_ns``; a ``ros`` block records the bag, topics and frame selection.

The folder is written as ``DIR.partial`` and renamed at the end: an interrupted import leaves no half dataset
under ``DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.errors import DataError
from ngp_sdk.robotics.bag import Bag
from ngp_sdk.robotics.frames import BagFrames, FrameOptions, PosedFrame
from ngp_sdk.robotics.scene_box import SceneBox, choose_scene_box

__all__ = ["ImportResult", "import_rosbag", "frame_camera_keys"]


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: the folder, its transforms file, frame counts and the scene box."""

    out: Path
    transforms: Path
    frames: int
    frames_with_depth: int
    rejected: dict[str, int]
    scene: SceneBox
    cameras: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "transforms": str(self.transforms), "frames": self.frames,
                "frames_with_depth": self.frames_with_depth, "rejected": dict(self.rejected),
                "scale": self.scene.scale, "offset": list(self.scene.offset), "aabb_scale": self.scene.aabb_scale,
                "scene_box": self.scene.source, "cameras": list(self.cameras)}


def frame_camera_keys(frame: PosedFrame) -> dict[str, Any]:
    """The per-frame camera keys of ``transforms.json`` for ``frame.intrinsics``."""
    k = frame.intrinsics
    keys: dict[str, Any] = {"w": k.width, "h": k.height, "fl_x": k.fx, "fl_y": k.fy, "cx": k.cx, "cy": k.cy}
    if k.model == "OPENCV_FISHEYE":
        keys.update(camera_model="OPENCV_FISHEYE", **dict(zip(("k1", "k2", "k3", "k4"), k.dist, strict=True)))
    elif k.model == "OPENCV":
        keys.update(camera_model="OPENCV", **dict(zip(("k1", "k2", "p1", "p2"), k.dist, strict=True)))
    return keys


def _write_png(path: Path, array: np.ndarray) -> None:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, array, extension=".png")


def import_rosbag(bag_path: str | os.PathLike, out: str | os.PathLike, options: FrameOptions, *,
                  aabb: tuple[float, ...] | None = None, aabb_scale: int | None = None, overwrite: bool = False,
                  progress: bool = True) -> ImportResult:
    """Import a bag into a ``transforms.json`` dataset (see the module docstring).

    Args:
        bag_path: ``.bag`` file, ROS 2 bag folder, ``.db3`` or ``.mcap`` file.
        out: dataset folder to create.
        options: topics, frames and selection.
        aabb: scene box ``(x0, y0, z0, x1, y1, z1)`` in world units; None = estimated from the cameras.
        aabb_scale: instant-ngp ``aabb_scale``; None = 1 for an object capture, 16 for an inside-out one.
        overwrite: replace an existing ``out``.
        progress: show a progress bar.

    Raises:
        BagError, TfError, MessageError: the bag lacks what the options need (see :class:`BagFrames`).
        DataError: ``out`` exists (without ``overwrite``) or no frame survives the selection.
    """
    out = Path(out)
    if out.exists() and not overwrite and any(out.iterdir()):
        raise DataError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with Bag(bag_path) as bag:
        frames = BagFrames(bag, options)
        scene = choose_scene_box(aabb, aabb_scale, frames.poses)
        partial.mkdir(parents=True)
        records: list[dict[str, Any]] = []
        try:
            records = _write_frames(frames, partial, progress)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    if not records:
        shutil.rmtree(partial, ignore_errors=True)
        raise DataError(f"no frame of {bag_path} survived the selection (rejected: {frames.rejected})")
    transforms = {
        **scene.to_transforms(),
        "frames": records,
        "ros": {"bag": str(Path(bag_path).resolve()), "world_frame": options.world_frame,
                "image_topics": list(options.image_topics), "camera_info_topics": list(options.info_topics()),
                "depth_topic": options.depth_topic, "pose_topic": options.pose_topic,
                "cameras": [c.name for c in frames.cameras], "rejected": frames.rejected, "scene_box": scene.source},
    }
    if any("depth_file_path" in r for r in records):
        transforms["depth_unit_scale_factor"] = 0.001
    (partial / "transforms.json").write_text(json.dumps(transforms, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return ImportResult(out=out, transforms=out / "transforms.json", frames=len(records),
                        frames_with_depth=sum("depth_file_path" in r for r in records), rejected=frames.rejected,
                        scene=scene, cameras=tuple(c.name for c in frames.cameras))


def _write_frames(frames: BagFrames, folder: Path, progress: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    records = []
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool, \
            tqdm(total=frames.n_candidates, desc="import", unit="frame", disable=not progress) as bar:
        pending = []
        for f in frames:
            name = f"{f.camera}/{f.index:06d}.png"
            rec: dict[str, Any] = {"file_path": f"images/{name}", "transform_matrix": f.c2w.tolist(),
                                   **frame_camera_keys(f), "camera": f.camera, "stamp_ns": f.stamp_ns}
            pending.append(pool.submit(_write_png, folder / "images" / name, f.image))
            if f.depth is not None:
                mm = np.clip(np.rint(f.depth * 1000.0), 0, 65535).astype(np.uint16)
                rec["depth_file_path"] = f"depth/{name}"
                pending.append(pool.submit(_write_png, folder / "depth" / name, mm))
            records.append(rec)
            bar.update(1)
            if len(pending) > 16:  # bounded memory: wait for the oldest writes
                for p in pending[:8]:
                    p.result()
                pending = pending[8:]
        for p in pending:
            p.result()
    return records
