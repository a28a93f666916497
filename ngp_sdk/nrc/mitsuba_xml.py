"""Mitsuba 3 XML scenes -> scene descriptions (the dictionary form :func:`ngp_sdk.nrc.scene.build_scene` takes).

Reads the subset of the format the path tracer renders: ``<scene>`` with ``<default>`` parameters (``$name``
substitution), ``<integrator type="path">`` (``max_depth``, ``rr_depth``), ``<sensor type="perspective">``
(``fov``, ``fov_axis``, ``to_world`` as ``lookat`` / ``matrix`` / ``translate`` / ``rotate`` / ``scale``, an
``hdrfilm`` with ``width``/``height``, any ``sampler`` and ``rfilter``), ``<shape>`` of type ``obj``, ``ply``,
``rectangle``, ``cube``, ``sphere`` with ``to_world``, ``<bsdf>`` ``diffuse`` / ``conductor`` /
``roughconductor`` / ``twosided`` (nested or by ``<ref id=...>``), ``<emitter>`` ``area`` / ``point`` /
``constant``. Any other element, plugin type or property raises :class:`~ngp_sdk.nrc.scene.SceneError` naming
the element and its line: nothing is ignored silently.
"""

from __future__ import annotations

import os
import re
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.nrc.scene import SceneError, look_at, rotate, scale, translate

__all__ = ["load_mitsuba_xml", "parse_mitsuba_xml"]

#: Properties each plugin accepts (anything else is an error).
_ALLOWED: dict[tuple[str, str], set[str]] = {
    ("integrator", "path"): {"max_depth", "rr_depth", "hide_emitters"},
    ("sensor", "perspective"): {"fov", "fov_axis", "to_world", "near_clip", "far_clip", "film", "sampler"},
    ("film", "hdrfilm"): {"width", "height", "rfilter", "pixel_format", "component_format"},
    ("sampler", "independent"): {"sample_count", "seed"},
    ("rfilter", "box"): set(),
    ("rfilter", "gaussian"): {"stddev"},
    ("shape", "obj"): {"filename", "to_world", "flip_normals", "face_normals", "bsdf", "emitter"},
    ("shape", "ply"): {"filename", "to_world", "flip_normals", "face_normals", "bsdf", "emitter"},
    ("shape", "rectangle"): {"to_world", "flip_normals", "bsdf", "emitter"},
    ("shape", "cube"): {"to_world", "flip_normals", "bsdf", "emitter"},
    ("shape", "sphere"): {"to_world", "flip_normals", "radius", "center", "bsdf", "emitter"},
    ("bsdf", "diffuse"): {"reflectance"},
    ("bsdf", "conductor"): {"material", "eta", "k", "specular_reflectance"},
    ("bsdf", "roughconductor"): {"material", "eta", "k", "specular_reflectance", "alpha", "distribution",
                                 "sample_visible"},
    ("bsdf", "twosided"): {"bsdf"},
    ("emitter", "area"): {"radiance"},
    ("emitter", "point"): {"position", "intensity", "to_world"},
    ("emitter", "constant"): {"radiance"},
}
_PLUGIN_TAGS = {"integrator", "sensor", "film", "sampler", "rfilter", "shape", "bsdf", "emitter"}
_VALUE_TAGS = {"float", "integer", "boolean", "string", "rgb", "spectrum", "point", "vector"}


@dataclass
class _Node:
    tag: str
    attrib: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)


def _parse_tree(text: str, where: str) -> _Node:
    parser = xml.parsers.expat.ParserCreate()
    stack: list[_Node] = []
    root: list[_Node] = []

    def start(tag, attrib):
        node = _Node(tag, dict(attrib), parser.CurrentLineNumber)
        (stack[-1].children if stack else root).append(node)
        stack.append(node)

    def end(tag):
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as e:
        raise SceneError(f"{where}: not well-formed XML ({e})") from None
    if len(root) != 1 or root[0].tag != "scene":
        raise SceneError(f"{where}: the root element must be <scene>")
    return root[0]


class _Reader:
    def __init__(self, where: str, params: dict[str, str]):
        self.where = where
        self.params = params

    def err(self, node: _Node, msg: str) -> SceneError:
        return SceneError(f"{self.where}:{node.line}: <{node.tag}> {msg}")

    def attr(self, node: _Node, name: str, default: str | None = None) -> str:
        if name not in node.attrib:
            if default is not None:
                return default
            raise self.err(node, f"needs the attribute {name!r}")
        value = node.attrib[name]

        def sub(m):
            if m.group(1) not in self.params:
                raise self.err(node, f"uses ${m.group(1)} but no <default name={m.group(1)!r}> defines it")
            return self.params[m.group(1)]

        return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)

    def floats(self, node: _Node, text: str, n: int | None = None) -> list[float]:
        try:
            vals = [float(x) for x in re.split(r"[,\s]+", text.strip()) if x]
        except ValueError:
            raise self.err(node, f"has a malformed number list {text!r}") from None
        if n is not None and len(vals) not in ((1, n) if n == 3 else (n,)):
            raise self.err(node, f"needs {n} numbers, got {len(vals)}")
        return vals * 3 if n == 3 and len(vals) == 1 else vals

    def xyz(self, node: _Node, default: float = 0.0) -> list[float]:
        if "value" in node.attrib:
            return self.floats(node, self.attr(node, "value"), 3)
        return [float(self.attr(node, c, str(default))) for c in "xyz"]

    def value(self, node: _Node) -> Any:
        tag = node.tag
        try:
            if tag == "float":
                return float(self.attr(node, "value"))
            if tag == "integer":
                return int(self.attr(node, "value"))
            if tag == "boolean":
                v = self.attr(node, "value").lower()
                if v not in ("true", "false"):
                    raise self.err(node, f"boolean must be true or false, got {v!r}")
                return v == "true"
            if tag == "string":
                return self.attr(node, "value")
            if tag in ("rgb",):
                return {"type": "rgb", "value": tuple(self.floats(node, self.attr(node, "value"), 3))}
            if tag == "spectrum":
                vals = self.floats(node, self.attr(node, "value"))
                if len(vals) != 1:
                    raise self.err(node, "only uniform spectra (one value) are supported; use <rgb>")
                return {"type": "rgb", "value": (vals[0],) * 3}
            if tag in ("point", "vector"):
                return tuple(self.xyz(node))
        except SceneError:
            raise
        except ValueError:
            raise self.err(node, f"has a malformed value {node.attrib.get('value')!r}") from None
        raise self.err(node, "is not a value element")

    def transform(self, node: _Node) -> np.ndarray:
        m = np.eye(4)
        for c in node.children:
            if c.tag == "lookat":
                op = look_at(*(self.floats(c, self.attr(c, k), 3) for k in ("origin", "target")),
                             self.floats(c, self.attr(c, "up", "0 1 0"), 3))
            elif c.tag == "translate":
                op = translate(self.xyz(c))
            elif c.tag == "scale":
                op = scale(self.floats(c, self.attr(c, "value"), 3)) if "value" in c.attrib else scale(self.xyz(c, 1.0))
            elif c.tag == "rotate":
                axis = self.floats(c, self.attr(c, "value"), 3) if "value" in c.attrib else self.xyz(c)
                op = rotate(axis, float(self.attr(c, "angle")))
            elif c.tag == "matrix":
                vals = self.floats(c, self.attr(c, "value"))
                if len(vals) not in (9, 16):
                    raise self.err(c, f"matrix needs 9 or 16 numbers, got {len(vals)}")
                op = np.eye(4)
                if len(vals) == 16:
                    op = np.asarray(vals).reshape(4, 4)
                else:
                    op[:3, :3] = np.asarray(vals).reshape(3, 3)
            else:
                raise self.err(c, "is not a supported transform operation (lookat, translate, rotate, scale, matrix)")
            m = op @ m
        return m

    def plugin(self, node: _Node, refs: dict[str, dict]) -> dict:
        kind = self.attr(node, "type")
        allowed = _ALLOWED.get((node.tag, kind))
        if allowed is None:
            known = sorted(t for (tag, t) in _ALLOWED if tag == node.tag)
            raise self.err(node, f"type {kind!r} is not supported (supported: {', '.join(known)})")
        out: dict[str, Any] = {"type": kind}
        if "id" in node.attrib:
            out["id"] = node.attrib["id"]
        for c in node.children:
            if c.tag in _VALUE_TAGS or c.tag == "transform":
                name = self.attr(c, "name")
                val = self.transform(c) if c.tag == "transform" else self.value(c)
            elif c.tag in _PLUGIN_TAGS:
                name = c.attrib.get("name", c.tag)
                val = self.plugin(c, refs)
            elif c.tag == "ref":
                rid = self.attr(c, "id")
                if rid not in refs:
                    raise self.err(c, f"refers to unknown id {rid!r} (define it before use)")
                val = refs[rid]
                name = c.attrib.get("name", _ref_role(val))
            else:
                raise self.err(c, f"is not supported inside <{node.tag} type={kind!r}>")
            if name not in allowed:
                raise self.err(c, f"property {name!r} is not supported by {node.tag} {kind!r} "
                                  f"(supported: {', '.join(sorted(allowed)) or 'none'})")
            out[name] = val
        return out


def _ref_role(desc: dict) -> str:
    kind = desc.get("type")
    if kind in ("diffuse", "conductor", "roughconductor", "twosided"):
        return "bsdf"
    return "emitter" if kind in ("area", "point", "constant") else "shape"


def parse_mitsuba_xml(text: str, *, where: str = "<xml>", params: dict[str, Any] | None = None) -> dict:
    """Parse Mitsuba 3 XML text into a scene description; ``params`` override its ``<default>`` values.

    Raises:
        SceneError: malformed XML or an unsupported element, type or property (with the line number).
    """
    root = _parse_tree(text, where)
    given = {k: str(v) for k, v in (params or {}).items()}
    reader = _Reader(where, dict(given))
    desc: dict[str, Any] = {"type": "scene"}
    refs: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for node in root.children:
        if node.tag == "default":
            name = reader.attr(node, "name")
            if name not in given:
                reader.params[name] = reader.attr(node, "value")
            continue
        if node.tag not in ("integrator", "sensor", "shape", "bsdf", "emitter"):
            raise reader.err(node, "is not supported at the scene level")
        item = reader.plugin(node, refs)
        key = item.get("id") or f"{node.tag}_{counts.get(node.tag, 0)}"
        counts[node.tag] = counts.get(node.tag, 0) + 1
        if key in desc:
            raise reader.err(node, f"duplicate id {key!r}")
        if "id" in item:
            refs[item["id"]] = item
        desc[key] = item
    return desc


def load_mitsuba_xml(path: str | os.PathLike, *, params: dict[str, Any] | None = None):
    """Read a Mitsuba XML file into a :class:`~ngp_sdk.nrc.scene.Scene` (mesh files relative to the file).

    Raises:
        SceneError: missing or unreadable file, malformed XML, unsupported content.
    """
    from ngp_sdk.nrc.scene import build_scene

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SceneError(f"cannot read scene {p}: {e.strerror or e}") from None
    desc = parse_mitsuba_xml(text, where=str(p), params=params)
    return build_scene(desc, base_dir=p.parent, name=str(p))
