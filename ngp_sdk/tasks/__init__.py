"""One small task per primitive, all speaking the :class:`~ngp_sdk.tasks.base.Task` protocol.

The registry maps a primitive name (``"image"``, ``"nerf"``, ...) to its task class;
:class:`~ngp_sdk.session.Session` looks tasks up here instead of switching on a mode.
"""

from .base import TASKS, Task, register_task
from .image import ImageTask
from .nerf import NerfTask
from .sdf import SdfTask

__all__ = ["TASKS", "Task", "register_task", "ImageTask", "NerfTask", "SdfTask"]
