"""The path tracer against analytic radiance (furnaces, a point light) and Mitsuba 3, and the scene readers."""

from __future__ import annotations

import numpy as np
import pytest

from ngp_sdk.nrc import PathTracer, SceneError, build_scene, cornell_box, parse_mitsuba_xml
from ngp_sdk.nrc.scene import look_at, scale, translate


def closed_box(albedo: float, emission: float, max_depth: int = -1, size: int = 16) -> dict:
    """Inside of a cube whose walls all emit ``emission`` and reflect ``albedo`` (diffuse)."""
    return {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": max_depth, "rr_depth": 5},
        "sensor": {"type": "perspective", "fov": 60, "to_world": look_at((0.1, 0.2, 0.3), (1, -0.5, -2), (0, 1, 0)),
                   "film": {"type": "hdrfilm", "width": size, "height": size}},
        "box": {"type": "cube", "flip_normals": True, "to_world": scale(2.0),
                "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": (albedo,) * 3}},
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": (emission,) * 3}}},
    }


@pytest.mark.parametrize("albedo, max_depth, expected", [
    (0.5, -1, 2.0),   # Le / (1 - a)
    (0.8, -1, 5.0),
    (0.5, 1, 1.0),    # only the emitter seen
    (0.5, 2, 1.5),    # + one bounce (NEE and BSDF sampling, MIS-weighted)
    (0.5, 3, 1.75),
])
def test_closed_furnace_has_the_analytic_radiance(device, albedo, max_depth, expected):
    pt = PathTracer(build_scene(closed_box(albedo, 1.0, max_depth)), device=device, seed=1)
    img = pt.render(spp=256 if max_depth < 0 else 64, batch=64)
    assert img.mean() == pytest.approx(expected, rel=0.01)
    assert np.abs(img.mean(axis=(0, 1)) - expected).max() < 0.02 * expected  # every channel


def test_open_furnace_convex_diffuse_object_reflects_its_albedo(device):
    desc = {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": -1},
        "sensor": {"type": "perspective", "fov": 60, "to_world": look_at((0, 0, 5), (0, 0, 0), (0, 1, 0)),
                   "film": {"type": "hdrfilm", "width": 24, "height": 24}},
        "cube": {"type": "cube", "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": (0.6,) * 3}}},
        "env": {"type": "constant", "radiance": {"type": "rgb", "value": (1.0, 1.0, 1.0)}},
    }
    img = PathTracer(build_scene(desc), device=device).render(spp=256, batch=64)
    centre = img[9:15, 9:15].mean()   # the cube's front face
    corner = img[:2, :2].mean()        # the environment
    assert centre == pytest.approx(0.6, rel=0.02)  # convex: a single bounce to the environment, L = albedo
    assert corner == pytest.approx(1.0, abs=1e-6)


def test_point_light_over_a_plane_gives_the_inverse_square_law(device):
    h, intensity, albedo = 2.0, 10.0, 0.7
    desc = {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": 2},
        "sensor": {"type": "perspective", "fov": 2, "to_world": look_at((0, 0.01, 1), (0, 0, 0), (0, 1, 0)),
                   "film": {"type": "hdrfilm", "width": 4, "height": 4}},
        "plane": {"type": "rectangle", "to_world": scale(10.0),
                  "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": (albedo,) * 3}}},
        "light": {"type": "point", "position": (0, 0, h), "intensity": {"type": "rgb", "value": (intensity,) * 3}},
    }
    img = PathTracer(build_scene(desc), device=device).render(spp=4)
    np.testing.assert_allclose(img, albedo / np.pi * intensity / h ** 2, rtol=2e-3)


def test_cornell_box_renders_and_converges(device):
    pt = PathTracer(build_scene(cornell_box(32, 32)), device=device)
    a = pt.render(spp=64, batch=32)
    assert a.shape == (32, 32, 3) and np.isfinite(a).all() and a.min() >= 0
    left, right = a[16, 2], a[16, 29]
    assert left[0] > 2 * left[1] and right[1] > 1.5 * right[0]  # red wall on the left, green on the right
    row, col = np.unravel_index(a.sum(axis=-1).argmax(), a.shape[:2])
    assert row < 8 and 10 <= col < 22 and a[row, col].max() > 5  # the light itself: top centre, radiance ~18
    pt.seed = 99
    b = pt.render(spp=64, batch=32)
    assert abs(a.mean() - b.mean()) < 0.03 * a.mean()


# -- scene files -----------------------------------------------------------------------------------------------


XML = """<scene version="3.0.0">
  <default name="res" value="16"/>
  <integrator type="path"><integer name="max_depth" value="4"/></integrator>
  <sensor type="perspective">
    <float name="fov" value="40"/>
    <transform name="to_world"><lookat origin="0, 0, 4" target="0, 0, 0" up="0, 1, 0"/></transform>
    <sampler type="independent"><integer name="sample_count" value="8"/></sampler>
    <film type="hdrfilm"><integer name="width" value="$res"/><integer name="height" value="$res"/>
      <rfilter type="box"/></film>
  </sensor>
  <bsdf type="twosided" id="grey"><bsdf type="diffuse"><rgb name="reflectance" value="0.5"/></bsdf></bsdf>
  <bsdf type="roughconductor" id="metal"><string name="distribution" value="ggx"/>
    <float name="alpha" value="0.2"/><rgb name="eta" value="0.2, 0.9, 1.1"/><rgb name="k" value="3.9, 2.4, 1.6"/>
  </bsdf>
  <shape type="rectangle"><ref id="grey"/>
    <transform name="to_world"><scale value="3"/><rotate x="1" angle="-90"/><translate y="-1"/></transform>
  </shape>
  <shape type="cube"><ref id="metal"/><transform name="to_world"><scale x="0.5" y="0.5" z="0.5"/></transform></shape>
  <shape type="rectangle">
    <transform name="to_world"><rotate x="1" angle="90"/><translate y="2"/></transform>
    <emitter type="area"><rgb name="radiance" value="5"/></emitter>
  </shape>
  <emitter type="point"><point name="position" x="1" y="1" z="1"/><rgb name="intensity" value="2"/></emitter>
</scene>
"""


def test_mitsuba_xml_parses_into_the_description_build_scene_takes(device):
    desc = parse_mitsuba_xml(XML)
    scene = build_scene(desc)
    assert scene.max_depth == 4 and scene.sensor.width == 16 and scene.n_triangles == 2 + 12 + 2
    assert scene.materials[0].twosided and scene.materials[1].kind == 2 and scene.materials[1].alpha == 0.2
    assert scene.point_lights == [((1.0, 1.0, 1.0), (2.0, 2.0, 2.0))]
    # transforms apply in document order: scale, then rotate, then translate
    floor = scene.vertices[scene.faces[scene.face_material == 0].ravel()]
    np.testing.assert_allclose(floor[:, 1], -1.0, atol=1e-6)
    assert np.abs(floor[:, 0]).max() == pytest.approx(3.0)
    # the emitter faces down (its normal, from the winding, points to -y)
    tri = scene.vertices[scene.faces[scene.face_material == 2][0]]
    n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    assert n[1] < 0
    assert parse_mitsuba_xml(XML, params={"res": 8})["sensor_0"]["film"]["width"] == 8
    img = PathTracer(scene, device=device).render(spp=4)
    assert img.shape == (16, 16, 3) and np.isfinite(img).all() and img.max() > 0


@pytest.mark.parametrize("snippet, message", [
    ('<shape type="cylinder"/>', r":3: <shape> type 'cylinder' is not supported"),
    ('<bsdf type="diffuse" id="x"><float name="roughness" value="1"/></bsdf>', r":3: <float> property 'roughness'"),
    ('<shape type="cube"><ref id="nope"/></shape>', r":3: <ref> refers to unknown id 'nope'"),
    ('<shape type="cube"><transform name="to_world"><shear value="1"/></transform></shape>', r":3: <shear>"),
    ('<texture type="bitmap"/>', r":3: <texture> is not supported at the scene level"),
    ('<shape type="cube"><float name="radius" value="$r"/></shape>', r"uses \$r"),
    ('<bsdf type="roughconductor" id="m"><string name="distribution" value="beckmann"/></bsdf>'
     '<shape type="cube"><ref id="m"/></shape>', r"distribution 'beckmann' is not supported"),
    ('<shape type="cube"', r"not well-formed"),
])
def test_unsupported_scene_content_names_the_element_and_line(snippet, message):
    text = f'<scene version="3.0.0">\n<sensor type="perspective"/>\n{snippet}\n</scene>'
    with pytest.raises(SceneError, match=message):
        build_scene(parse_mitsuba_xml(text, where="s.xml"))


def test_scene_without_sensor_or_shapes_is_rejected():
    with pytest.raises(SceneError, match="no perspective sensor"):
        build_scene({"type": "scene", "c": {"type": "cube"}})
    with pytest.raises(SceneError, match="no shapes"):
        build_scene({"type": "scene", "s": {"type": "perspective", "to_world": translate((0, 0, 1))}})
