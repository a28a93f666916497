"""The SDF primitive: a triangle mesh -> neural signed distance field, sphere-traced and meshed back.

Modules: :mod:`~ngp_sdk.sdf.config`, :mod:`~ngp_sdk.sdf.field`, :mod:`~ngp_sdk.sdf.task`,
:mod:`~ngp_sdk.sdf.render` (sphere tracing), :mod:`~ngp_sdk.sdf.export` (marching cubes),
:mod:`~ngp_sdk.sdf.metrics` (Chamfer, normal consistency), :mod:`~ngp_sdk.sdf.cli`. Imports only
:mod:`ngp_sdk.core` (never another primitive).
"""

from ngp_sdk.core.registry import Demo, Primitive, register_primitive
from ngp_sdk.sdf.cli import add_commands, render_arguments, render_frames
from ngp_sdk.sdf.demo import run_sdf_demo
from ngp_sdk.sdf.task import SdfTask
from ngp_sdk.sdf.view import SdfSceneView

__all__ = ["PRIMITIVE"]

#: The registry entry of the SDF primitive.
PRIMITIVE = register_primitive(Primitive(
    name="sdf",
    summary="signed distance field of a triangle mesh",
    task=SdfTask,
    create=SdfTask.from_data,
    add_commands=add_commands,
    render_arguments=render_arguments,
    render_frames=render_frames,
    scene_view=SdfSceneView,
    demo=Demo(run=run_sdf_demo, seconds=45.0, description="a neural SDF of a drilled CSG part, shaded with AO"),
))
