"""Inputs of the batch tests: two meshes, two images, small configs and a camera path, made on the spot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

SDF_CONFIG = {"encoding": {"n_levels": 6, "log2_hashmap_size": 14, "per_level_scale": 1.5},
              "network": {"n_neurons": 32, "n_hidden_layers": 1},
              "optimizer": {"otype": "Adam", "learning_rate": 1e-2}, "training": {"batch_size": 4096}}
IMAGE_CONFIG = {"encoding": {"n_levels": 6, "log2_hashmap_size": 12},
                "network": {"n_neurons": 16, "n_hidden_layers": 1}, "training": {"batch_size": 2048}}


def ray_env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    import trimesh

    d = tmp_path_factory.mktemp("batch")
    trimesh.creation.icosphere(subdivisions=3, radius=0.8).export(d / "sphere.obj")
    trimesh.creation.box(extents=(1.2, 0.8, 1.0)).export(d / "box.obj")
    y, x = np.mgrid[0:40, 0:56]
    iio.imwrite(d / "a.png", np.stack([x * 4, y * 6, (x + y) * 2], -1).astype(np.uint8))
    iio.imwrite(d / "b.png", np.stack([y * 6, x * 4, (x * y) % 255], -1).astype(np.uint8))
    (d / "sdf.json").write_text(json.dumps(SDF_CONFIG))
    (d / "img.json").write_text(json.dumps(IMAGE_CONFIG))
    (d / "path.json").write_text(json.dumps({"path": [
        {"R": [0, 0, 0, 1], "T": [0.5, 0.5, -1.2], "fov": 45},
        {"R": [0, 0.2588, 0, 0.9659], "T": [0.1, 0.6, -1.1], "fov": 50},
        {"R": [0, 0.5, 0, 0.866], "T": [-0.3, 0.55, -0.8], "fov": 40}]}))
    return d
