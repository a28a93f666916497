"""Small bags made in code for the robotics tests: the synthetic sphere scene seen by a robot's camera."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ngp_sdk.core.cameras import Intrinsics
from ngp_sdk.nerf.synthetic import DEMO_SCENE, camera_positions, look_at_nerf, render_scene

SIZE = 32
N_FRAMES = 8


def capture(n: int = N_FRAMES, size: int = SIZE) -> tuple[list[np.ndarray], np.ndarray, Intrinsics]:
    """``n`` RGBA views of the demo scene, their NeRF camera-to-world matrices and the camera."""
    poses = np.stack([look_at_nerf(p) for p in camera_positions(n, DEMO_SCENE.camera_radius, 3)])
    images = [render_scene(DEMO_SCENE, m, size) for m in poses]
    f = 0.5 * size / math.tan(0.5 * DEMO_SCENE.camera_angle_x)
    return images, poses, Intrinsics(width=size, height=size, fx=f, fy=f, cx=size / 2, cy=size / 2)


@pytest.fixture(scope="session")
def scene_capture():
    return capture()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
