"""SDF primitive: config round trip, training on an icosphere, IoU, snapshot round trip."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from ngp_sdk.config import AdamConfig, EmaConfig, HashGridConfig, NetworkConfig, OptimizerConfig, TrainingConfig
from ngp_sdk.data.meshes import TriangleMesh
from ngp_sdk.errors import ConfigError, DataError
from ngp_sdk.sdf_config import SdfConfig
from ngp_sdk.session import Session
from ngp_sdk.tasks import TASKS
from ngp_sdk.tasks.sdf import SdfTask


def _icosphere(subdivisions: int = 2, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    t = (1.0 + 5**0.5) / 2.0
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
         (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10),
         (8, 6, 7), (9, 8, 1)]
    verts = [np.asarray(p, dtype=np.float64) / np.linalg.norm(p) for p in v]
    faces = list(f)
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int, cache: dict[tuple[int, int], int] = cache) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.asarray(verts) * radius, np.asarray(faces, dtype=np.int32)


def _tiny_config(batch: int = 8192) -> SdfConfig:
    # lr 1e-2 instead of instant-ngp's 1e-4 so that 100 steps suffice
    return SdfConfig(
        encoding=HashGridConfig(n_levels=6, log2_hashmap_size=14, per_level_scale=1.5),
        network=NetworkConfig(n_neurons=32, n_hidden_layers=1, output_activation="None"),
        optimizer=OptimizerConfig(adam=AdamConfig(learning_rate=1e-2), ema=EmaConfig(decay=0.95)),
        training=TrainingConfig(batch_size=batch, seed=3),
    )


@pytest.fixture(scope="module")
def sphere() -> TriangleMesh:
    v, f = _icosphere(2, radius=0.8)
    return TriangleMesh(v + 2.0, f, name="icosphere")


@pytest.fixture(scope="module")
def trained(sphere):
    session = Session.sdf(sphere, config=_tiny_config(), device="cpu")
    losses = [session.task.step()["loss"] for _ in range(100)]
    return session, losses


def test_config_defaults_and_round_trip():
    cfg = SdfConfig()
    assert cfg.encoding.n_levels == 16 and cfg.encoding.log2_hashmap_size == 19
    assert cfg.encoding.per_level_scale == pytest.approx(1.38)
    assert cfg.loss.otype == "MAPE" and cfg.optimizer.ema is not None
    assert cfg.optimizer.adam.learning_rate == pytest.approx(1e-4)
    assert SdfConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        SdfConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError):
        SdfConfig(training=TrainingConfig(batch_size=1001))


def test_registered():
    assert TASKS["sdf"] is SdfTask


def test_train_reaches_iou(trained):
    session, losses = trained
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    m = session.task.evaluate(n_points=1 << 16)
    assert m["iou"] > 0.9, m
    assert m["mean_abs_error"] < 0.05, m


def test_render_slice(trained):
    img = trained[0].task.render(width=32, height=24)
    assert img.shape == (24, 32, 3) and img.dtype == np.float32
    assert np.isfinite(img).all()


def test_gradient_matches_finite_differences_and_normals_point_outwards(trained):
    task = trained[0].task
    params = task.optimizer.inference_params()
    rng = np.random.default_rng(1)
    d = rng.normal(size=(512, 3)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    # the sphere normalises to radius ~0.495 around the centre
    pts = (0.5 + 0.45 * d).astype(np.float32)
    g = task.field.gradient(wp.array(pts, dtype=wp.float32, device=task.device), params).numpy()
    h = 1e-4
    fd = np.stack([(task.predict(pts + h * e) - task.predict(pts - h * e)) / (2 * h)
                   for e in np.eye(3, dtype=np.float32)], axis=1)
    assert np.median(np.abs(g - fd)) < 0.02 * np.median(np.abs(g))
    n = task.field.normals(wp.array(pts, dtype=wp.float32, device=task.device), params).numpy()
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, rtol=1e-4)
    assert np.mean(np.sum(n * d, axis=1)) > 0.5


def test_snapshot_round_trip(trained, tmp_path):
    session = trained[0]
    path = session.save(tmp_path / "sphere.ingp")
    loaded = Session.load(path, device="cpu")
    assert isinstance(loaded.task, SdfTask) and loaded.task.step_count == session.task.step_count
    pts = np.random.default_rng(5).random((777, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded.task.predict(pts), session.task.predict(pts))
    with pytest.raises(DataError):
        loaded.task.step()


def test_load_obj_file(sphere, tmp_path):
    pytest.importorskip("trimesh")
    path = tmp_path / "sphere.obj"
    lines = [f"v {x} {y} {z}" for x, y, z in sphere.vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in
                                                                     sphere.faces]
    path.write_text("\n".join(lines) + "\n")
    session = Session.sdf(path, config=_tiny_config(1024), device="cpu")
    assert session.task.step()["loss"] > 0


def test_cli_sdf_train_and_eval(tmp_path):
    import json
    import subprocess
    import sys

    trimesh = pytest.importorskip("trimesh")
    mesh_path = tmp_path / "ball.obj"
    trimesh.creation.icosphere(subdivisions=2, radius=0.5).export(mesh_path)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"encoding": {"n_levels": 6, "log2_hashmap_size": 14, "per_level_scale": 1.5},
                               "network": {"n_neurons": 32, "n_hidden_layers": 1},
                               "training": {"batch_size": 8192}}))
    snap = tmp_path / "ball.ingp"

    def ngp(*a):
        return subprocess.run([sys.executable, "-m", "ngp_sdk.cli", *a], capture_output=True, text=True, timeout=300)

    r = ngp("sdf", "train", str(mesh_path), "--steps", "10", "--config", str(cfg), "--out", str(snap), "--json",
            "--no-progress", "--eval-points", "20000")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["steps"] == 10 and 0 <= out["iou"] <= 1 and snap.is_file()
    r = ngp("sdf", "eval", str(snap), "--mesh", str(mesh_path), "--points", "20000", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["iou"] == out["iou"]  # same points, same model
    r = ngp("sdf", "eval", str(snap), "--mesh", str(tmp_path / "missing.obj"))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: ")
