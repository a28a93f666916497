"""Marching cubes of analytic SDFs, sphere-traced rendering of an analytic sphere, and the mesh metrics."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from ngp_sdk.core.camera_path import intrinsics_with_fov, look_at
from ngp_sdk.core.errors import DataError
from ngp_sdk.core.meshes import Mesh, save_mesh
from ngp_sdk.sdf.export import extract_sdf_mesh
from ngp_sdk.sdf.metrics import chamfer_and_normal_consistency, sample_surface
from ngp_sdk.sdf.render import SdfRenderSettings, ambient_occlusion, render_sdf_camera, shade_lambert
from tests.reference.sphere_tracing_ref import closest_approach, pinhole_directions, ray_sphere_ref

CENTRE = np.array([0.5, 0.5, 0.5])


def _sphere_fn(radius, device, centre=CENTRE):
    def fn(x):
        d = np.linalg.norm(x.numpy().astype(np.float64) - centre, axis=1) - radius
        return wp.array(d.astype(np.float32), dtype=wp.float32, device=device)
    return fn


def _sphere_normals(device, centre=CENTRE):
    def fn(x):
        v = x.numpy().astype(np.float64) - centre
        return wp.array((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), dtype=wp.float32,
                        device=device)
    return fn


@pytest.mark.parametrize("resolution", [32, 64])
def test_marching_cubes_of_an_analytic_sphere(device, resolution):
    r = 0.3
    mesh = extract_sdf_mesh(_sphere_fn(r, device), resolution=resolution, device=device)
    radii = np.linalg.norm(mesh.vertices - CENTRE, axis=1)
    cell = 1.0 / resolution
    assert np.abs(radii - r).max() < 0.1 * cell  # linear interpolation of an exact SDF is near-exact
    # outward normals and counter-clockwise winding seen from outside
    assert np.all(np.sum(mesh.normals * (mesh.vertices - CENTRE), axis=1) > 0)
    tri = mesh.vertices[mesh.faces].astype(np.float64)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.all(np.sum(face_n * (tri.mean(axis=1) - CENTRE), axis=1) > 0)
    # closed surface: every edge shared by exactly two faces; area and volume of the sphere
    e = np.sort(np.concatenate([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]], mesh.faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert np.all(counts == 2)
    area = 0.5 * np.linalg.norm(face_n, axis=1).sum()
    volume = np.sum(np.einsum("ij,ij->i", tri[:, 0] - CENTRE, np.cross(tri[:, 1] - CENTRE, tri[:, 2] - CENTRE))) / 6
    assert area == pytest.approx(4 * np.pi * r**2, rel=0.02)
    assert volume == pytest.approx(4 / 3 * np.pi * r**3, rel=0.02)


def test_marching_cubes_level_and_errors(device):
    mesh = extract_sdf_mesh(_sphere_fn(0.3, device), resolution=32, level=0.05, device=device)
    assert np.linalg.norm(mesh.vertices - CENTRE, axis=1).mean() == pytest.approx(0.35, abs=2e-3)
    with pytest.raises(DataError, match="no surface"):  # everything outside
        extract_sdf_mesh(_sphere_fn(0.1, device, centre=np.array([3.0, 3.0, 3.0])), resolution=16, device=device)
    # everything inside: the box closes the cut surface, so the mesh is (about) the box itself
    box = extract_sdf_mesh(_sphere_fn(2.0, device), resolution=16, device=device)
    assert box.vertices.min() > -1 / 16 and box.vertices.max() < 1 + 1 / 16
    tri = box.vertices[box.faces].astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    assert area == pytest.approx(6.0, rel=0.1)
    with pytest.raises(DataError, match="resolution"):
        extract_sdf_mesh(_sphere_fn(0.3, device), resolution=4, device=device)


def test_save_mesh_without_colours(device, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    mesh = extract_sdf_mesh(_sphere_fn(0.3, device), resolution=16, device=device)
    for suffix in (".ply", ".obj"):
        p = save_mesh(mesh, tmp_path / f"s{suffix}")
        back = trimesh.load(p, process=False)
        assert len(back.faces) == len(mesh.faces)
        assert back.is_watertight


def test_render_analytic_sphere_depth_normals_and_shading(device):
    eye, r = np.array([0.5, 0.8, 2.0]), 0.3
    c2w = look_at(eye, CENTRE, (0.0, 1.0, 0.0))
    intr = intrinsics_with_fov(48, 40, 30.0)
    img = render_sdf_camera(_sphere_fn(r, device), _sphere_normals(device), c2w, intr,
                            settings=SdfRenderSettings(epsilon=1e-5), device=device)
    d = pinhole_directions(c2w, intr)
    origins = np.repeat(eye[None], len(d), 0)
    t, hit = ray_sphere_ref(origins, d, CENTRE, r)
    clear = np.abs(closest_approach(origins, d, CENTRE) - r) > 0.005
    got = img.hit.reshape(-1)
    assert (got[clear] == hit[clear]).all() and hit.sum() > 200
    both = got & hit & clear
    np.testing.assert_allclose(img.depth.reshape(-1)[both], t[both], atol=5e-5)
    p = eye + t[both, None] * d[both]
    np.testing.assert_allclose(img.normals.reshape(-1, 3)[both], (p - CENTRE) / r, atol=1e-3)
    # lambert: the brightest hit faces the light, background is exactly the background colour
    s = SdfRenderSettings()
    assert np.allclose(img.rgb[~img.hit], s.background)
    light = c2w[:, :3] @ np.asarray(s.light_dir)
    light /= np.linalg.norm(light)
    expected = shade_lambert(img.normals.reshape(-1, 3)[both], light, s.albedo, s.ambient)
    np.testing.assert_allclose(img.rgb.reshape(-1, 3)[both], expected, atol=1e-5)
    nimg = img.normal_image()
    assert nimg.shape == (40, 48, 3) and nimg.min() >= 0 and nimg.max() <= 1
    dimg = img.depth_image()
    assert dimg[img.hit].min() >= 0.2 - 1e-6 and dimg[~img.hit].max() == 0


def test_ambient_occlusion_is_one_in_the_open_and_darker_in_a_crease(device):
    # open: a lone sphere seen along its normal
    p = np.array([[0.5, 0.5, 0.8]])
    n = np.array([[0.0, 0.0, 1.0]])
    ao = ambient_occlusion(_sphere_fn(0.3, device), p, n, step=0.01, strength=4.0, device=device)
    assert ao[0] == pytest.approx(1.0, abs=1e-6)

    # crease: the inside corner between two walls x <= 0.3 and y <= 0.3 (union of half spaces)
    def walls(x):
        q = x.numpy().astype(np.float64)
        return wp.array(np.minimum(q[:, 0] - 0.3, q[:, 1] - 0.3).astype(np.float32),
                        dtype=wp.float32, device=device)

    corner = np.array([[0.3 + 1e-4, 0.305, 0.5]])
    s = SdfRenderSettings()
    ao = ambient_occlusion(walls, corner, np.array([[1.0, 0.0, 0.0]]), step=s.ao_step, strength=s.ao_strength,
                           device=device)
    assert 0.5 < ao[0] < 0.9


def test_render_rejects_nan_pose_and_bad_shading(device):
    with pytest.raises(DataError, match="NaN"):
        render_sdf_camera(_sphere_fn(0.3, device), _sphere_normals(device), np.full((3, 4), np.nan),
                          intrinsics_with_fov(4, 4, 30.0), settings=SdfRenderSettings(), device=device)
    with pytest.raises(DataError, match="shading"):
        SdfRenderSettings(shading="toon")


def _uv_sphere(radius, n=64):
    trimesh = pytest.importorskip("trimesh")
    m = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    return np.asarray(m.vertices), np.asarray(m.faces)


def test_chamfer_and_normal_consistency():
    v1, f1 = _uv_sphere(1.0)
    v2, f2 = _uv_sphere(1.05)
    same = chamfer_and_normal_consistency(v1, f1, v1, f1, n_points=20000)
    assert same["chamfer"] < 0.02 and same["normal_consistency"] > 0.99
    bigger = chamfer_and_normal_consistency(v2, f2, v1, f1, n_points=20000)
    assert bigger["chamfer"] == pytest.approx(0.05, abs=0.012)
    assert bigger["bbox_diagonal"] == pytest.approx(2 * np.sqrt(3), rel=0.01)
    assert bigger["chamfer_relative"] == pytest.approx(bigger["chamfer"] / bigger["bbox_diagonal"])
    # a square against the same square turned 90 degrees about an in-plane axis: normals perpendicular
    sq_v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    sq_f = np.array([[0, 1, 2], [0, 2, 3]])
    turned = sq_v[:, [0, 2, 1]]
    m = chamfer_and_normal_consistency(turned, sq_f, sq_v, sq_f, n_points=5000)
    assert m["normal_consistency"] < 1e-6
    pts, nrm = sample_surface(sq_v, sq_f, 1000)
    assert np.allclose(pts[:, 2], 0) and np.allclose(np.abs(nrm[:, 2]), 1)
    with pytest.raises(DataError):
        sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10)


def test_mesh_dataclass_allows_no_colours():
    m = Mesh(vertices=np.zeros((3, 3), np.float32), faces=np.array([[0, 1, 2]], np.int32), colors=None,
             normals=np.zeros((3, 3), np.float32))
    assert m.colors is None
