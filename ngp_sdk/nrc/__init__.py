"""Neural radiance caching: a Warp path tracer, Mitsuba-format scenes, and a cache trained online while it renders.

Modules: :mod:`~ngp_sdk.nrc.scene` (scene descriptions as data, the built-in Cornell box, flattening to
triangles), :mod:`~ngp_sdk.nrc.mitsuba_xml` (Mitsuba 3 XML), :mod:`~ngp_sdk.nrc.tracer` (progressive path
tracing, the ground truth), :mod:`~ngp_sdk.nrc.config`, :mod:`~ngp_sdk.nrc.cache` (the radiance cache),
:mod:`~ngp_sdk.nrc.renderer` (cache-terminated frames + online training), :mod:`~ngp_sdk.nrc.task`
(``NrcTask``), :mod:`~ngp_sdk.nrc.animation` (moving light / camera), :mod:`~ngp_sdk.nrc.cli` (``ngp nrc ...``),
:mod:`~ngp_sdk.nrc.demo`. Imports only :mod:`ngp_sdk.core` and
:mod:`warp_kernels`.
"""

from ngp_sdk.core.registry import Demo, Primitive, register_primitive
from ngp_sdk.nrc.cli import add_commands
from ngp_sdk.nrc.demo import run_nrc_demo
from ngp_sdk.nrc.mitsuba_xml import load_mitsuba_xml, parse_mitsuba_xml
from ngp_sdk.nrc.scene import Scene, SceneError, build_scene, cornell_box
from ngp_sdk.nrc.task import NrcTask
from ngp_sdk.nrc.tracer import PathTracer
from ngp_sdk.nrc.view import NrcSceneView

__all__ = ["PRIMITIVE", "NrcTask", "PathTracer", "Scene", "SceneError", "build_scene", "cornell_box",
           "load_mitsuba_xml", "parse_mitsuba_xml"]

#: The registry entry of the NRC primitive.
PRIMITIVE = register_primitive(Primitive(
    name="nrc",
    summary="neural radiance caching: a path tracer whose paths end in a cache trained online",
    task=NrcTask,
    create=NrcTask.from_data,
    add_commands=add_commands,
    scene_view=NrcSceneView,
    demo=Demo(run=run_nrc_demo, seconds=20.0, description="the glossy Cornell box: cache vs path tracing"),
))
