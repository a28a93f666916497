"""The NeRF primitive: posed photos -> radiance field, offline (``NerfTask``) and live (``LiveNerfTask``).

Modules: :mod:`~ngp_sdk.nerf.config`, :mod:`~ngp_sdk.nerf.data` (``transforms.json`` flavours),
:mod:`~ngp_sdk.nerf.synthetic` (a scene made in code), :mod:`~ngp_sdk.nerf.scene` (camera metadata),
:mod:`~ngp_sdk.nerf.field`, :mod:`~ngp_sdk.nerf.occupancy`, :mod:`~ngp_sdk.nerf.render`,
:mod:`~ngp_sdk.nerf.export` (marching cubes with colours), :mod:`~ngp_sdk.nerf.refine` (camera pose refinement,
pose errors), :mod:`~ngp_sdk.nerf.task`, :mod:`~ngp_sdk.nerf.live`,
:mod:`~ngp_sdk.nerf.cli`, :mod:`~ngp_sdk.nerf.demo`. Imports only :mod:`ngp_sdk.core` (never another primitive).
"""

from ngp_sdk.core.registry import Demo, Primitive, register_primitive
from ngp_sdk.nerf.cli import add_commands, render_frames
from ngp_sdk.nerf.demo import run_nerf_demo
from ngp_sdk.nerf.live import LiveNerfTask
from ngp_sdk.nerf.task import NerfTask
from ngp_sdk.nerf.view import NerfSceneView

__all__ = ["PRIMITIVE"]

#: The registry entry of the NeRF primitive.
PRIMITIVE = register_primitive(Primitive(
    name="nerf",
    summary="neural radiance field: posed photos -> density and colour",
    task=NerfTask,
    create=NerfTask.from_data,
    create_live=LiveNerfTask.from_config,
    live_from_snapshot=LiveNerfTask.from_snapshot_state,
    add_commands=add_commands,
    render_frames=render_frames,
    scene_view=NerfSceneView,
    demo=Demo(run=run_nerf_demo, seconds=75.0, description="a NeRF of a textured, self-shadowing scene "
                                                           "it renders itself (256x256, held-out PSNR)"),
))
