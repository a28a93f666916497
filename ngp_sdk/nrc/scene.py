"""Scenes for the path tracer: descriptions as data (Mitsuba 3's dictionary format), flattened to triangles.

A scene description is a nested ``dict`` in the vocabulary of Mitsuba 3's ``load_dict`` (``{"type": "scene",
"sensor": {...}, "integrator": {...}, "<name>": {"type": "rectangle", "to_world": 4x4, "bsdf": {...},
"emitter": {...}}, ...}``), with transforms as 4x4 NumPy arrays and colours as 3-tuples. Mitsuba XML files parse
into the same form (:mod:`ngp_sdk.nrc.mitsuba_xml`), the built-in Cornell box is one (:func:`cornell_box`), and
:func:`build_scene` turns any of them into a :class:`Scene` of flat arrays; :meth:`Scene.upload` puts that on a
Warp device for :func:`warp_kernels.path_tracing.trace_paths`.

Supported: shapes ``rectangle``, ``cube``, ``sphere`` (tessellated), ``obj``/``ply`` (``filename``,
``flip_normals``); BSDFs ``diffuse``, ``conductor``, ``roughconductor`` (GGX), ``twosided``; emitters ``area``,
``point``, ``constant``; a ``perspective`` sensor; a ``path`` integrator's ``max_depth`` and ``rr_depth``.
Anything else raises :class:`SceneError` naming it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.errors import DataError

__all__ = [
    "SceneError",
    "MaterialSpec",
    "Sensor",
    "Scene",
    "DeviceScene",
    "build_scene",
    "cornell_box",
    "glossy_box",
    "BUILTIN_SCENES",
    "translate",
    "rotate",
    "scale",
    "look_at",
]

DIFFUSE, CONDUCTOR, ROUGH_CONDUCTOR = 0, 1, 2


class SceneError(DataError):
    """A scene description or file that cannot be rendered (unsupported or malformed element)."""


# -- transforms (4x4, column vectors, like Mitsuba's ScalarTransform4f) -----------------------------------------


def translate(v) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = np.asarray(v, np.float64)
    return m


def scale(v) -> np.ndarray:
    s = np.broadcast_to(np.asarray(v, np.float64), (3,))
    return np.diag([*s, 1.0])


def rotate(axis, angle_deg: float) -> np.ndarray:
    a = np.asarray(axis, np.float64)
    n = np.linalg.norm(a)
    if n == 0:
        raise SceneError("rotation axis is zero")
    x, y, z = a / n
    t = math.radians(angle_deg)
    c, s, C = math.cos(t), math.sin(t), 1 - math.cos(t)
    m = np.eye(4)
    m[:3, :3] = [[x * x * C + c, x * y * C - z * s, x * z * C + y * s],
                 [y * x * C + z * s, y * y * C + c, y * z * C - x * s],
                 [z * x * C - y * s, z * y * C + x * s, z * z * C + c]]
    return m


def look_at(origin, target, up) -> np.ndarray:
    """Mitsuba's look-at: columns ``[left, up', dir, origin]`` with ``left = normalize(up x dir)``."""
    o, t, u = (np.asarray(v, np.float64) for v in (origin, target, up))
    d = t - o
    if np.linalg.norm(d) == 0:
        raise SceneError("lookat: origin and target coincide")
    d /= np.linalg.norm(d)
    left = np.cross(u, d)
    if np.linalg.norm(left) < 1e-12:
        raise SceneError("lookat: up is parallel to the viewing direction")
    left /= np.linalg.norm(left)
    new_up = np.cross(d, left)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = left, new_up, d, o
    return m


# -- flattened scene ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaterialSpec:
    """One material (see :class:`warp_kernels.bsdf.Material`)."""

    kind: int = DIFFUSE
    reflectance: tuple[float, float, float] = (0.5, 0.5, 0.5)
    alpha: float = 0.1
    eta: tuple[float, float, float] = (0.0, 0.0, 0.0)
    k: tuple[float, float, float] = (1.0, 1.0, 1.0)
    twosided: bool = False
    emission: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Sensor:
    """A perspective camera: ``to_world`` (camera looks along +z, +y up, image right = -x), field of view in
    degrees along ``fov_axis``, film size."""

    to_world: np.ndarray
    fov: float = 45.0
    fov_axis: str = "x"
    width: int = 256
    height: int = 256

    def camera(self):
        from warp_kernels.path_tracing import make_camera

        m = np.asarray(self.to_world, np.float64)
        return make_camera(m[:3, 3], m[:3, 2], m[:3, 1], self.fov, self.width, self.height, self.fov_axis,
                           right=-m[:3, 0])


@dataclass
class Scene:
    """Triangles with a material per triangle, point lights, a constant environment, a sensor and path settings.

    Attributes:
        vertices: float32 ``[V, 3]``; faces: int32 ``[F, 3]`` (front side = counter-clockwise winding).
        face_material: int32 ``[F]`` index into ``materials``.
        materials: one :class:`MaterialSpec` per shape.
        point_lights: ``(position, intensity)`` pairs (W/sr).
        env: constant environment radiance.
        sensor: the camera; max_depth / rr_depth: path-length settings (Mitsuba's convention).
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_material: np.ndarray
    materials: list[MaterialSpec]
    sensor: Sensor
    point_lights: list[tuple[tuple[float, float, float], tuple[float, float, float]]] = field(default_factory=list)
    env: tuple[float, float, float] = (0.0, 0.0, 0.0)
    max_depth: int = -1
    rr_depth: int = 5
    name: str = "<scene>"

    @property
    def n_triangles(self) -> int:
        return int(self.faces.shape[0])

    def with_film(self, width: int, height: int) -> Scene:
        """The same scene rendered at another film size."""
        s = self.sensor
        return dataclasses.replace(self, sensor=dataclasses.replace(s, width=int(width), height=int(height)))

    def upload(self, device=None) -> DeviceScene:
        """Arrays on a Warp device (BVH built there)."""
        return DeviceScene(self, device)


def _luminance(c) -> float:
    return 0.212671 * c[0] + 0.715160 * c[1] + 0.072169 * c[2]


class DeviceScene:
    """A :class:`Scene` on a device: the ``wp.Mesh``, per-triangle materials and the NEE light table."""

    def __init__(self, scene: Scene, device=None):
        import warp as wp

        from ngp_sdk.core.device import resolve_device
        from warp_kernels.bsdf import Material, make_material
        from warp_kernels.path_tracing import LightTable

        self.scene = scene
        self.device = resolve_device(device)
        dev = self.device
        self.mesh = wp.Mesh(points=wp.array(scene.vertices, dtype=wp.vec3, device=dev),
                            indices=wp.array(scene.faces.reshape(-1), dtype=wp.int32, device=dev))
        self.tri_material = wp.array(scene.face_material.astype(np.int32), dtype=wp.int32, device=dev)
        mats = [make_material(m.kind, m.reflectance, m.alpha, m.eta, m.k, m.twosided, m.emission)
                for m in scene.materials]
        self.materials = wp.array(mats, dtype=Material, device=dev)
        # NEE lights: emissive triangles by area x luminance, point lights by 4 pi x luminance of intensity
        v = scene.vertices.astype(np.float64)
        f = scene.faces
        area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
        lum = np.array([_luminance(m.emission) for m in scene.materials])[scene.face_material]
        emissive = np.flatnonzero((lum > 0) & (area > 0))
        weights = list(area[emissive] * lum[emissive])
        tri = list(emissive)
        pos, inten = [(0.0, 0.0, 0.0)] * len(tri), [(0.0, 0.0, 0.0)] * len(tri)
        for p, i in scene.point_lights:
            tri.append(-1)
            pos.append(tuple(p))
            inten.append(tuple(i))
            weights.append(4 * math.pi * _luminance(i))
        w = np.asarray(weights, np.float64)
        pmf = w / w.sum() if len(w) and w.sum() > 0 else np.zeros(len(w))
        tri_pmf = np.zeros(len(f))
        tri_pmf[emissive] = pmf[:len(emissive)]
        lights = LightTable()
        lights.tri = wp.array(np.asarray(tri or [0], np.int32), dtype=wp.int32, device=dev)
        lights.position = wp.array(np.asarray(pos or [(0, 0, 0)], np.float32), dtype=wp.vec3, device=dev)
        lights.intensity = wp.array(np.asarray(inten or [(0, 0, 0)], np.float32), dtype=wp.vec3, device=dev)
        lights.cdf = wp.array(np.cumsum(pmf).astype(np.float32) if len(pmf) else np.ones(1, np.float32),
                              dtype=float, device=dev)
        lights.pmf = wp.array(pmf.astype(np.float32) if len(pmf) else np.zeros(1, np.float32), dtype=float,
                              device=dev)
        lights.tri_pmf = wp.array(tri_pmf.astype(np.float32), dtype=float, device=dev)
        lights.tri_area = wp.array(np.maximum(area, 1e-30).astype(np.float32), dtype=float, device=dev)
        lights.count = int(len(tri)) if w.sum() > 0 else 0
        self.lights = lights
        self.camera = scene.sensor.camera()
        self._emitter_vertices = np.unique(f[emissive].ravel())
        self._points = np.asarray([p for p, _ in scene.point_lights], np.float32).reshape(-1, 3)

    def kernel_args(self):
        """The :class:`~warp_kernels.path_tracing.SceneArgs` of the scene as it is now (camera included)."""
        from warp_kernels.path_tracing import make_scene_args

        return make_scene_args(self.mesh, self.tri_material, self.materials, self.lights, self.camera,
                               self.scene.env)

    def move_emitters(self, offset) -> None:
        """Translate every light (emissive shapes and point lights) by ``offset`` from its place in the scene;
        the BVH is refitted (a moving light for dynamic-scene tests)."""
        import warp as wp

        off = np.asarray(offset, np.float32).reshape(3)
        v = self.scene.vertices.copy()
        v[self._emitter_vertices] += off
        self.mesh.points.assign(wp.array(v, dtype=wp.vec3, device=self.device))
        self.mesh.refit()
        if len(self._points):
            pos = np.concatenate([np.zeros((self.lights.position.shape[0] - len(self._points), 3), np.float32),
                                  self._points + off])
            self.lights.position.assign(wp.array(pos, dtype=wp.vec3, device=self.device))

    def set_camera(self, sensor: Sensor) -> None:
        """Render from another camera (same film size)."""
        if (sensor.width, sensor.height) != (self.scene.sensor.width, self.scene.sensor.height):
            raise SceneError("set_camera keeps the film size; build a new scene to change it")
        self.camera = sensor.camera()


# -- descriptions -> Scene -------------------------------------------------------------------------------------


def _rgb(value: Any, where: str) -> tuple[float, float, float]:
    if isinstance(value, dict):
        if value.get("type") not in ("rgb", "spectrum"):
            raise SceneError(f"{where}: only rgb colours are supported, got {value.get('type')!r}")
        value = value.get("value")
    a = np.broadcast_to(np.asarray(value, np.float64), (3,)) if value is not None else None
    if a is None or not np.isfinite(a).all() or (a < 0).any():
        raise SceneError(f"{where}: expected a non-negative colour, got {value!r}")
    return tuple(float(x) for x in a)


def _rectangle():
    v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float64)
    return v, np.array([[0, 1, 2], [2, 3, 0]], np.int32)


def _cube():
    verts, faces = [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u, w = (axis + 1) % 3, (axis + 2) % 3
            quad = []
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = np.zeros(3)
                p[axis], p[u], p[w] = sign, a, b
                quad.append(p)
            base = len(verts)
            verts += quad
            tri = [[0, 1, 2], [2, 3, 0]] if sign > 0 else [[0, 2, 1], [2, 0, 3]]
            faces += [[base + i for i in t] for t in tri]
    return np.array(verts), np.array(faces, np.int32)


def _sphere(n_theta: int = 64, n_phi: int = 128):
    th = np.linspace(0, np.pi, n_theta + 1)
    ph = np.linspace(0, 2 * np.pi, n_phi + 1)[:-1]
    t, p = np.meshgrid(th, ph, indexing="ij")
    v = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    faces = []
    for i in range(n_theta):
        for j in range(n_phi):
            a, b = i * n_phi + j, i * n_phi + (j + 1) % n_phi
            c, d = a + n_phi, b + n_phi
            if i > 0:
                faces.append([a, b, c])
            if i < n_theta - 1:
                faces.append([b, d, c])
    return v, np.array(faces, np.int32)


def _shape_geometry(desc: dict, name: str, base_dir: Path | None):
    kind = desc["type"]
    if kind == "rectangle":
        v, f = _rectangle()
    elif kind == "cube":
        v, f = _cube()
    elif kind == "sphere":
        v, f = _sphere()
        r = float(desc.get("radius", 1.0))
        v = v * r + np.asarray(desc.get("center", (0, 0, 0)), np.float64)
    elif kind in ("obj", "ply"):
        from ngp_sdk.core.meshes import load_mesh

        fn = desc.get("filename")
        if not fn:
            raise SceneError(f"shape {name!r}: {kind} needs a filename")
        path = Path(fn) if Path(fn).is_absolute() or base_dir is None else base_dir / fn
        m = load_mesh(path, allow_polygons=True)
        v, f = m.vertices.astype(np.float64), m.faces
    else:
        raise SceneError(f"shape {name!r}: unsupported shape type {kind!r} (rectangle, cube, sphere, obj, ply)")
    m = np.asarray(desc.get("to_world", np.eye(4)), np.float64)
    v = v @ m[:3, :3].T + m[:3, 3]
    if np.linalg.det(m[:3, :3]) < 0:
        f = f[:, ::-1]  # keep the front side where the transformed normals point
    if desc.get("flip_normals", False):
        f = f[:, ::-1]
    return v, np.ascontiguousarray(f)


def _material(desc: dict | None, name: str, emission) -> MaterialSpec:
    if desc is None:
        return MaterialSpec(emission=emission)
    kind = desc.get("type")
    if kind == "twosided":
        inner = [v for k, v in desc.items() if isinstance(v, dict) and k not in ("type", "id")]
        if len(inner) != 1:
            raise SceneError(f"bsdf {name!r}: twosided needs exactly one nested bsdf")
        m = _material(inner[0], name, emission)
        return MaterialSpec(m.kind, m.reflectance, m.alpha, m.eta, m.k, True, m.emission)
    if kind == "diffuse":
        return MaterialSpec(DIFFUSE, _rgb(desc.get("reflectance", 0.5), f"bsdf {name!r} reflectance"),
                            emission=emission)
    if kind in ("conductor", "roughconductor"):
        spec = _rgb(desc.get("specular_reflectance", 1.0), f"bsdf {name!r} specular_reflectance")
        material = desc.get("material", "none" if "eta" not in desc else None)
        if material not in (None, "none"):
            raise SceneError(f"bsdf {name!r}: named conductor {material!r} is not supported; give eta and k")
        eta = (0.0, 0.0, 0.0) if material == "none" else _rgb(desc["eta"], f"bsdf {name!r} eta")
        k = (0.0, 0.0, 0.0) if material == "none" else _rgb(desc.get("k", 0.0), f"bsdf {name!r} k")
        if kind == "conductor":
            return MaterialSpec(CONDUCTOR, spec, eta=eta, k=k, emission=emission)
        dist = desc.get("distribution", "beckmann")
        if dist != "ggx":
            raise SceneError(f"bsdf {name!r}: roughconductor distribution {dist!r} is not supported (use ggx)")
        if "alpha_u" in desc or "alpha_v" in desc:
            raise SceneError(f"bsdf {name!r}: anisotropic roughness is not supported")
        alpha = float(desc.get("alpha", 0.1))
        if not 1e-4 <= alpha <= 1.0:
            raise SceneError(f"bsdf {name!r}: alpha must be in [1e-4, 1], got {alpha}")
        return MaterialSpec(ROUGH_CONDUCTOR, spec, alpha=alpha, eta=eta, k=k, emission=emission)
    raise SceneError(f"bsdf {name!r}: unsupported type {kind!r} (diffuse, conductor, roughconductor, twosided)")


def build_scene(desc: dict, *, base_dir: str | Path | None = None, name: str = "<scene>") -> Scene:
    """Flatten a scene description (Mitsuba dictionary vocabulary) into a :class:`Scene`.

    Raises:
        SceneError: an unsupported or malformed element (the message names it).
    """
    if not isinstance(desc, dict) or desc.get("type") != "scene":
        raise SceneError("a scene description is a dict with type 'scene'")
    base = Path(base_dir) if base_dir is not None else None
    refs = {v["id"]: v for v in desc.values() if isinstance(v, dict) and "id" in v}
    verts, faces, fmat, mats = [], [], [], []
    points, env, sensor, max_depth, rr_depth = [], (0.0, 0.0, 0.0), None, -1, 5
    n_verts = 0
    for key, item in desc.items():
        if key == "type" or not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "perspective":
            film = item.get("film", {})
            sensor = Sensor(np.asarray(item.get("to_world", np.eye(4)), np.float64), float(item.get("fov", 45.0)),
                            str(item.get("fov_axis", "x")), int(film.get("width", 768)),
                            int(film.get("height", 576)))
        elif kind in ("path",):
            max_depth = int(item.get("max_depth", -1))
            rr_depth = int(item.get("rr_depth", 5))
        elif kind in ("diffuse", "conductor", "roughconductor", "twosided"):
            continue  # referenced by id from shapes
        elif kind == "point":
            pos = item.get("position")
            if pos is None:
                pos = np.asarray(item.get("to_world", np.eye(4)))[:3, 3]
            points.append((tuple(float(x) for x in pos), _rgb(item.get("intensity", 1.0), f"emitter {key!r}")))
        elif kind == "constant":
            env = tuple(a + b for a, b in zip(env, _rgb(item.get("radiance", 1.0), f"emitter {key!r}"), strict=True))
        elif kind in ("rectangle", "cube", "sphere", "obj", "ply"):
            v, f = _shape_geometry(item, key, base)
            bsdf = item.get("bsdf")
            if isinstance(bsdf, dict) and bsdf.get("type") == "ref":
                if bsdf.get("id") not in refs:
                    raise SceneError(f"shape {key!r}: reference to unknown id {bsdf.get('id')!r}")
                bsdf = refs[bsdf["id"]]
            em = item.get("emitter")
            emission = (0.0, 0.0, 0.0)
            if em is not None:
                if em.get("type") != "area":
                    raise SceneError(f"shape {key!r}: only area emitters attach to shapes, got {em.get('type')!r}")
                emission = _rgb(em.get("radiance", 1.0), f"shape {key!r} radiance")
            mats.append(_material(bsdf, key, emission))
            verts.append(v)
            faces.append(f + n_verts)
            fmat.append(np.full(len(f), len(mats) - 1, np.int32))
            n_verts += len(v)
        elif kind in ("independent", "hdrfilm", "box", "gaussian"):
            continue
        else:
            raise SceneError(f"element {key!r}: unsupported type {kind!r}")
    if sensor is None:
        raise SceneError("the scene has no perspective sensor")
    if not verts:
        raise SceneError("the scene has no shapes")
    return Scene(np.concatenate(verts).astype(np.float32), np.concatenate(faces).astype(np.int32),
                 np.concatenate(fmat), mats, sensor, points, env, max_depth, rr_depth, name)


def cornell_box(width: int = 256, height: int = 256, max_depth: int = 8) -> dict:
    """The Cornell box of Mitsuba 3's ``mitsuba.cornell_box()`` as a scene description (no file needed)."""
    def diffuse(name, rgb):
        return {"type": "diffuse", "id": name, "reflectance": {"type": "rgb", "value": rgb}}

    white = diffuse("white", (0.885809, 0.698859, 0.666422))
    green = diffuse("green", (0.105421, 0.37798, 0.076425))
    red = diffuse("red", (0.570068, 0.0430135, 0.0443706))
    ref = lambda i: {"type": "ref", "id": i}  # noqa: E731
    return {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": max_depth},
        "sensor": {"type": "perspective", "fov_axis": "smaller", "fov": 39.3077,
                   "to_world": look_at((0, 0, 3.9), (0, 0, 0), (0, 1, 0)),
                   "film": {"type": "hdrfilm", "width": width, "height": height}},
        "white": white, "green": green, "red": red,
        "light": {"type": "rectangle", "to_world": translate((0, 0.99, 0.01)) @ rotate((1, 0, 0), 90)
                  @ scale((0.23, 0.19, 0.19)), "bsdf": ref("white"),
                  "emitter": {"type": "area", "radiance": {"type": "rgb", "value": (18.387, 13.9873, 6.75357)}}},
        "floor": {"type": "rectangle", "to_world": translate((0, -1, 0)) @ rotate((1, 0, 0), -90),
                  "bsdf": ref("white")},
        "ceiling": {"type": "rectangle", "to_world": translate((0, 1, 0)) @ rotate((1, 0, 0), 90),
                    "bsdf": ref("white")},
        "back": {"type": "rectangle", "to_world": translate((0, 0, -1)), "bsdf": ref("white")},
        "green-wall": {"type": "rectangle", "to_world": translate((1, 0, 0)) @ rotate((0, 1, 0), -90),
                       "bsdf": ref("green")},
        "red-wall": {"type": "rectangle", "to_world": translate((-1, 0, 0)) @ rotate((0, 1, 0), 90),
                     "bsdf": ref("red")},
        "small-box": {"type": "cube", "to_world": translate((0.335, -0.7, 0.38)) @ rotate((0, 1, 0), -17)
                      @ scale(0.3), "bsdf": ref("white")},
        "large-box": {"type": "cube", "to_world": translate((-0.33, -0.4, -0.28)) @ rotate((0, 1, 0), 18.25)
                      @ scale((0.3, 0.61, 0.3)), "bsdf": ref("white")},
    }


def glossy_box(width: int = 256, height: int = 256, max_depth: int = 8) -> dict:
    """The Cornell box with a rough gold tall box (GGX, alpha 0.15) and a mirror short box."""
    d = cornell_box(width, height, max_depth)
    d["gold"] = {"type": "roughconductor", "id": "gold", "distribution": "ggx", "alpha": 0.15,
                 "eta": {"type": "rgb", "value": (0.143, 0.374, 1.442)},
                 "k": {"type": "rgb", "value": (3.983, 2.385, 1.603)}}
    d["large-box"] = {**d["large-box"], "bsdf": {"type": "ref", "id": "gold"}}
    d["mirror"] = {"type": "conductor", "id": "mirror"}
    d["small-box"] = {**d["small-box"], "bsdf": {"type": "ref", "id": "mirror"}}
    return d


#: Scenes that need no file, by name.
BUILTIN_SCENES = {"cornell-box": cornell_box, "glossy-box": glossy_box}
