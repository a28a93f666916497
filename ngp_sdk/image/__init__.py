"""The gigapixel-image primitive: a 2D hash grid + MLP fitted to an image, rendered at any resolution.

Modules: :mod:`~ngp_sdk.image.config` (``ImageConfig``), :mod:`~ngp_sdk.image.data` (images in their stored
precision), :mod:`~ngp_sdk.image.field`, :mod:`~ngp_sdk.image.task` (``ImageTask``), :mod:`~ngp_sdk.image.cli`
(``ngp image ...``), :mod:`~ngp_sdk.image.demo`. Imports only :mod:`ngp_sdk.core` (never another primitive).
"""

from ngp_sdk.core.registry import Demo, Primitive, register_primitive
from ngp_sdk.image.cli import add_commands
from ngp_sdk.image.demo import run_image_demo
from ngp_sdk.image.task import ImageTask
from ngp_sdk.image.view import open_image_viewer

__all__ = ["PRIMITIVE"]

#: The registry entry of the image primitive.
PRIMITIVE = register_primitive(Primitive(
    name="image",
    summary="gigapixel image: (x, y) -> RGB",
    task=ImageTask,
    create=ImageTask.from_data,
    add_commands=add_commands,
    open_viewer=open_image_viewer,
    demo=Demo(run=run_image_demo, seconds=20.0, description="a 512x512 photo"),
))
