"""SDF primitive: config round trip, training on an icosphere, IoU, snapshot round trip."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from ngp_sdk.core.config import AdamConfig, EmaConfig, HashGridConfig, NetworkConfig, OptimizerConfig, TrainingConfig
from ngp_sdk.core.errors import ConfigError, DataError
from ngp_sdk.core.meshes import TriangleMesh
from ngp_sdk.core.registry import get_primitive
from ngp_sdk.core.session import Session
from ngp_sdk.sdf.config import SdfConfig
from ngp_sdk.sdf.task import SdfTask


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
    # lr 1e-2 instead of instant-ngp's 1e-4 so that 300 steps suffice
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
    losses = [session.task.step()["loss"] for _ in range(300)]
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
    assert get_primitive("sdf").task is SdfTask


def test_train_reaches_iou(trained):
    session, losses = trained
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    m = session.task.evaluate(n_points=1 << 16)
    assert m["iou"] > 0.98, m
    assert m["mean_abs_error"] < 0.05, m


def test_render_slice(trained):
    img = trained[0].task.render_slice(width=32, height=24)
    assert img.shape == (24, 32, 3) and img.dtype == np.float32
    assert np.isfinite(img).all()


def test_sphere_traced_view_sees_the_sphere_at_its_depth(trained, sphere):
    """Rendered in the mesh frame, hits and depths agree with the analytic sphere (radius 0.8 at (2, 2, 2))."""
    from ngp_sdk.core.camera_path import intrinsics_with_fov, look_at
    from ngp_sdk.core.cameras import opencv_to_opengl
    from ngp_sdk.sdf.render import SdfRenderSettings
    from tests.reference.sphere_tracing_ref import closest_approach, pinhole_directions, ray_sphere_ref

    task = trained[0].task
    eye, centre = np.array([2.0, 2.3, 4.5]), np.array([2.0, 2.0, 2.0])
    c2w = opencv_to_opengl(look_at(eye, centre, (0.0, 1.0, 0.0)))
    intr = intrinsics_with_fov(40, 30, 40.0)
    img = task.render_world(c2w, intr)
    assert img.rgb.shape == (30, 40, 3) and img.depth.shape == (30, 40) and img.normals.shape == (30, 40, 3)
    # analytic rays through the same pixel centres (pinhole, OpenCV axes)
    d = pinhole_directions(look_at(eye, centre, (0.0, 1.0, 0.0)), intr)
    origins = np.repeat(eye[None], len(d), 0)
    t, hit = ray_sphere_ref(origins, d, centre, 0.8)
    # the icosphere (2 subdivisions) lies inside its circumsphere by up to ~2%: compare away from the rim
    clear = np.abs(closest_approach(origins, d, centre) - 0.8) > 0.06
    assert (img.hit.reshape(-1)[clear] == hit[clear]).mean() > 0.97
    both = img.hit.reshape(-1) & hit & clear
    assert both.sum() > 100
    err = np.abs(img.depth.reshape(-1)[both] - t[both])
    assert np.median(err) < 0.02 and err.max() < 0.05  # the icosphere's faces lie ~1.5% inside the sphere
    # exactly on the model's own zero level set: mesh-frame depth * direction lands where the network reads ~0
    p = eye + img.depth.reshape(-1)[both, None] * d[both]
    sdf = task.predict(p * task.scale + task.offset)
    assert np.abs(sdf).max() < 16 * SdfRenderSettings().epsilon
    # normals point back at the camera on the visible side and are unit length where hit
    n = img.normals.reshape(-1, 3)[both]
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, rtol=1e-3)
    facing = np.sum(n * d[both], axis=1)
    assert (facing < 0).mean() > 0.97 and facing.mean() < -0.5
    analytic = (p - centre) / np.linalg.norm(p - centre, axis=1, keepdims=True)
    assert np.mean(np.sum(n * analytic, axis=1)) > 0.9
    q = wp.array((p * task.scale + task.offset).astype(np.float32), dtype=wp.float32, device=task.device)
    again = task.field.normals(q, task.optimizer.inference_params()).numpy()
    # the grid's gradient jumps across cell faces, which a re-computed float32 position may cross
    assert (np.abs(n - again).max(axis=1) < 2e-3).mean() > 0.95
    # background where missed, shaded grey where hit
    assert np.allclose(img.rgb[~img.hit], 1.0) and img.rgb[img.hit].max() < 0.7


def test_render_panels_and_shadings(trained):
    task = trained[0].task
    plain = task.render(width=24, height=16)
    assert plain.shape == (16, 24, 3)
    panels = task.render(width=24, height=16, with_depth=True, with_normals=True, shading="normals",
                         ambient_occlusion=True)
    assert panels.shape == (16, 72, 3) and np.isfinite(panels).all()
    with pytest.raises(DataError, match="shading"):
        task.render(width=8, shading="phong")


def test_extract_mesh_matches_the_input_sphere(trained, sphere):
    from ngp_sdk.sdf.metrics import chamfer_and_normal_consistency

    task = trained[0].task
    mesh = task.extract_mesh(resolution=48)
    r = np.linalg.norm(mesh.vertices - 2.0, axis=1)
    assert np.median(np.abs(r - 0.8)) < 0.02 and np.abs(r - 0.8).max() < 0.04  # mesh frame
    outward = np.sum(mesh.normals * (mesh.vertices - 2.0), axis=1)
    assert (outward > 0).mean() > 0.99
    m = chamfer_and_normal_consistency(mesh.vertices, mesh.faces, sphere.vertices, sphere.faces, n_points=20000)
    assert m["chamfer_relative"] < 0.01 and m["normal_consistency"] > 0.98, m


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
                               "optimizer": {"otype": "Adam", "learning_rate": 1e-2},
                               "training": {"batch_size": 8192}}))
    snap = tmp_path / "ball.ingp"

    def ngp(*a):
        return subprocess.run([sys.executable, "-m", "ngp_sdk.cli", *a], capture_output=True, text=True, timeout=300)

    r = ngp("sdf", "train", str(mesh_path), "--steps", "40", "--config", str(cfg), "--out", str(snap), "--json",
            "--no-progress", "--eval-points", "20000", "--preview", str(tmp_path / "preview.png"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["steps"] == 40 and out["iou"] > 0.8 and snap.is_file()
    assert out["preview"] == str(tmp_path / "preview.png") and (tmp_path / "preview.png").is_file()
    r = ngp("sdf", "eval", str(snap), "--mesh", str(mesh_path), "--points", "20000", "--json", "--mesh-resolution",
            "32", "--surface-points", "5000", "--export", str(tmp_path / "ball.ply"))
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout.strip().splitlines()[-1])
    assert ev["iou"] == out["iou"]  # same points, same model
    assert 0 < ev["chamfer_relative"] < 0.05 and 0 < ev["normal_consistency"] <= 1 and ev["mesh_faces"] > 100
    assert (tmp_path / "ball.ply").is_file()
    r = ngp("render", str(snap), "--width", "32", "--height", "24", "--depth", "--normals", "--ao",
            "--out", str(tmp_path / "ball.png"))
    assert r.returncode == 0, r.stderr
    import imageio.v3 as iio

    img = iio.imread(tmp_path / "ball.png")
    assert img.shape == (24, 96, 3)
    assert img[:, :32].min() < 200 and img[0, 0].tolist() == [255, 255, 255]  # a shape on a white background
    r = ngp("render", str(snap), "--orbit", "3", "--width", "16", "--out", str(tmp_path / "orbit"))
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "orbit").glob("frame_*.png"))) == 3
    r = ngp("export", "mesh", str(snap), "--resolution", "24", "--out", str(tmp_path / "ball.obj"))
    assert r.returncode == 0, r.stderr
    assert trimesh.load(tmp_path / "ball.obj").is_watertight
    r = ngp("render", str(snap), "--view", "3", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "no training cameras" in r.stderr
    r = ngp("sdf", "eval", str(snap), "--mesh", str(tmp_path / "missing.obj"))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: ")


def test_eikonal_regulariser_trains_the_field_towards_unit_gradients():
    """The stencil values' gradient flows through the ordinary field backward: eikonal-only training drives
    ``mean (|grad f| - 1)^2`` from 1 (a fresh field is ~0 everywhere) to nearly 0."""
    from warp_kernels.eikonal import eikonal_loss, eikonal_stencil

    v, f = _icosphere(1, radius=0.8)
    task = SdfTask(_tiny_config(), TriangleMesh(v, f), device="cpu")
    stencil = eikonal_stencil(wp.array(np.random.default_rng(0).random((2048, 3), dtype=np.float32)), 2e-3)
    losses = []
    for _ in range(60):
        loss, grad = eikonal_loss(task.field.forward(stencil), 2e-3)
        task.field.backward(grad)
        task.optimizer.step()
        losses.append(loss)
    assert losses[0] > 0.9 and min(losses[-10:]) < 0.02, losses[::10]


def test_training_with_eikonal_term(sphere):
    import dataclasses

    from ngp_sdk.sdf.config import EikonalConfig

    cfg = dataclasses.replace(_tiny_config(), eikonal=EikonalConfig(weight=0.01, points_fraction=8, step=2e-3))
    assert SdfConfig.from_dict(cfg.to_dict()) == cfg
    task = SdfTask(cfg, sphere, device="cpu")
    metrics = [task.step() for _ in range(300)]
    assert set(metrics[-1]) == {"loss", "eikonal"}
    assert metrics[0]["eikonal"] > 5 * np.mean([m["eikonal"] for m in metrics[-10:]])
    assert task.evaluate(n_points=1 << 16)["iou"] > 0.98  # a small weight leaves the MAPE fit intact
    with pytest.raises(ConfigError):
        SdfConfig.from_dict({"eikonal": {"weight": -1}})
