"""Mesh signed distance vs analytic spheres and boxes, instant-ngp's SDF sampling split, mesh loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
import warp as wp

from ngp_sdk.core.errors import DataError
from ngp_sdk.core.meshes import TriangleMesh, load_mesh, normalize_to_unit_cube
from tests.reference import sdf_ref as ref
from warp_kernels.device import KernelArgumentError
from warp_kernels.sdf import build_mesh, mesh_signed_distance, sample_sdf_training_points

CENTER = np.array([0.5, 0.5, 0.5])
RADIUS = 0.3


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    s = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS)
    s.apply_translation(CENTER)
    return s


def _points(a: np.ndarray, device) -> wp.array:
    return wp.array(np.ascontiguousarray(a, dtype=np.float32), dtype=wp.float32, device=device)


@pytest.mark.parametrize("winding", [True, False])
def test_sphere_distance_and_sign(device, sphere, winding):
    mesh = build_mesh(sphere.vertices, sphere.faces, device, support_winding_number=winding)
    gap = ref.inscribed_mesh_gap(sphere.vertices, sphere.faces, CENTER, RADIUS)
    assert 0 < gap < 3e-3
    rng = np.random.default_rng(1)
    pts = rng.uniform(-0.2, 1.2, size=(4000, 3))
    expected = ref.sphere_sdf(pts, CENTER, RADIUS)
    got = mesh_signed_distance(mesh, _points(pts, device)).numpy()
    # the inscribed mesh lies inside the sphere: its SDF is >= the sphere's, by at most the gap
    assert np.all(got >= expected - 1e-5)
    assert np.all(got <= expected + gap + 1e-5)
    clear = np.abs(expected) > gap + 1e-4
    np.testing.assert_array_equal(np.sign(got[clear]), np.sign(expected[clear]))


def test_box_distance_exact(device):
    half = np.array([0.3, 0.2, 0.1])
    box = trimesh.creation.box(extents=2 * half)
    box.apply_translation(CENTER)
    mesh = build_mesh(box.vertices, box.faces, device)
    rng = np.random.default_rng(2)
    pts = rng.uniform(-0.1, 1.1, size=(4000, 3))
    expected = ref.box_sdf(pts, CENTER, half)
    got = mesh_signed_distance(mesh, _points(pts, device)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    inside = _points([[0.5, 0.5, 0.5], [0.7, 0.65, 0.55]], device)
    np.testing.assert_allclose(mesh_signed_distance(mesh, inside).numpy(), [-0.1, -0.05], atol=1e-6)


def test_signed_distance_checks_arguments(device, sphere):
    mesh = build_mesh(sphere.vertices, sphere.faces, device)
    with pytest.raises(KernelArgumentError):
        mesh_signed_distance(mesh, wp.zeros((4, 2), dtype=wp.float32, device=device))
    with pytest.raises(KernelArgumentError):
        build_mesh(sphere.vertices, np.array([[0, 1, 10**6]]), device)


def test_sampling_split(device, sphere):
    mesh = build_mesh(sphere.vertices, sphere.faces, device)
    n = 8 * 512
    points, dist = sample_sdf_training_points(mesh, n, seed=7)
    p, d = points.numpy(), dist.numpy()
    assert p.shape == (n, 3) and d.shape == (n,)
    surface, near, uniform = slice(0, n // 2), slice(n // 2, 7 * n // 8), slice(7 * n // 8, n)
    assert np.all(d[surface] == 0.0)  # instant-ngp: surface samples are not queried, their distance is 0
    # near-surface: logistic noise of scale r/1024 per axis (r = the unit cube's bounding radius, as instant-ngp)
    scale = np.sqrt(3) / 2 / 1024
    off = np.abs(d[near])
    # on a sphere this large the distance is |n . delta| with delta logistic(scale) per axis: Monte Carlo median
    rng = np.random.default_rng(0)
    nrm = rng.normal(size=(200_000, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    u = rng.uniform(1e-7, 1 - 1e-7, size=(200_000, 3))
    expected = np.median(np.abs(np.sum(nrm * scale * np.log(u / (1 - u)), axis=1)))
    assert np.median(off) == pytest.approx(expected, rel=0.1)
    assert off.max() < 40 * scale
    assert np.all((p[uniform] >= 0) & (p[uniform] <= 1))
    np.testing.assert_allclose(d[uniform], ref.sphere_sdf(p[uniform], CENTER, RADIUS), atol=3e-3)
    # same seed, same batch; another seed, another batch
    np.testing.assert_array_equal(sample_sdf_training_points(mesh, n, seed=7)[0].numpy(), p)
    assert not np.array_equal(sample_sdf_training_points(mesh, n, seed=8)[0].numpy(), p)
    with pytest.raises(KernelArgumentError):
        sample_sdf_training_points(mesh, 100, seed=0)


def test_sampling_sign_modes_agree_on_a_closed_mesh(device, sphere):
    mesh = build_mesh(sphere.vertices, sphere.faces, device)
    n = 8 * 1024
    pw, dw = sample_sdf_training_points(mesh, n, seed=11, use_winding_number=True)
    pn, dn = sample_sdf_training_points(mesh, n, seed=11, use_winding_number=False)
    np.testing.assert_array_equal(pw.numpy(), pn.numpy())
    np.testing.assert_allclose(dw.numpy(), dn.numpy(), atol=1e-7)


def test_is_watertight(sphere):
    closed = TriangleMesh(sphere.vertices, sphere.faces)
    assert closed.is_watertight
    assert not TriangleMesh(sphere.vertices, sphere.faces[1:]).is_watertight  # a hole
    flipped = sphere.faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not TriangleMesh(sphere.vertices, flipped).is_watertight  # inconsistent orientation


def test_surface_sampling_is_area_weighted(device):
    # two unit triangles of area 1/2 and one of area 2 (scaled x2): 1/6, 1/6, 2/3 of samples
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1], [0, 0, 2], [2, 0, 2], [0, 2, 2]])
    f = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    mesh = build_mesh(v, f, device, support_winding_number=False)
    p = sample_sdf_training_points(mesh, 8 * 3000, seed=3)[0].numpy()[: 4 * 3000]
    frac = np.array([np.mean(np.isclose(p[:, 2], z)) for z in (0, 1, 2)])
    np.testing.assert_allclose(frac, [1 / 6, 1 / 6, 2 / 3], atol=0.02)


def test_load_mesh_formats_and_normalize(tmp_path: Path, sphere):
    box = trimesh.creation.box(extents=[2.0, 1.0, 0.5])
    box.apply_translation([10.0, -3.0, 1.0])
    for suffix in (".obj", ".ply", ".stl"):
        path = tmp_path / f"box{suffix}"
        box.export(path)
        m = load_mesh(path)
        assert m.vertices.dtype == np.float32 and m.faces.dtype == np.int32 and m.faces.shape[1] == 3
        assert len(m.faces) == 12
        np.testing.assert_allclose(m.bounds, box.bounds, atol=1e-5)
    norm, scale, offset = normalize_to_unit_cube(m, padding=0.005)
    diag = np.linalg.norm([2.0, 1.0, 0.5])
    assert scale == pytest.approx(1 / (2.0 + 2 * 0.005 * diag))
    lo, hi = norm.bounds
    np.testing.assert_allclose((lo + hi) / 2, 0.5, atol=1e-6)
    assert lo.min() > 0 and hi.max() < 1
    np.testing.assert_allclose(hi[0] - lo[0], 2.0 * scale, rtol=1e-6)  # aspect kept
    np.testing.assert_allclose((norm.vertices - offset) / scale, m.vertices, atol=1e-5)
    assert normalize_to_unit_cube(m, padding=0.0)[1] == pytest.approx(0.5)


def test_load_mesh_errors(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_mesh(tmp_path / "missing.obj")
    empty = tmp_path / "empty.obj"
    empty.write_text("# nothing here\n")
    with pytest.raises(DataError, match="empty"):
        load_mesh(empty)
    points_only = tmp_path / "points.obj"
    points_only.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(DataError, match="empty"):
        load_mesh(points_only)
    quad = tmp_path / "quad.obj"
    quad.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    with pytest.raises(DataError, match="non-triangle"):
        load_mesh(quad)
    assert len(load_mesh(quad, allow_polygons=True).faces) == 2
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\nend_header\n\x00\x01")
    with pytest.raises(DataError):
        load_mesh(garbage)
    text = tmp_path / "mesh.txt"
    text.write_text("v 0 0 0\n")
    with pytest.raises(DataError, match="unsupported"):
        load_mesh(text)
    with pytest.raises(DataError, match="triangles"):
        TriangleMesh(np.zeros((4, 3)), np.array([[0, 1, 2, 3]]))
