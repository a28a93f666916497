"""Devices of the SDK: resolved once per task, and arrays checked at the door.

Tasks and fields resolve ``device=None`` (Warp's current device) once with :func:`resolve_device`; Warp arrays
handed to them are checked with :func:`check_device`. Both raise :class:`~ngp_sdk.core.errors.DeviceError`,
so a wrong or missing device is a typed error the user can act on, never a silent copy or a crash inside a
kernel launch.
"""

from __future__ import annotations

from typing import Any

import warp as wp

from ngp_sdk.core.errors import DeviceError
from warp_kernels import device as kernel_device

__all__ = ["resolve_device", "check_device", "available_devices"]


def resolve_device(device: Any = None) -> wp.context.Device:
    """The Warp device named by ``device`` (``None`` = Warp's current device).

    Raises:
        DeviceError: the name is malformed or the device does not exist on this machine.
    """
    try:
        return kernel_device.resolve_device(device)
    except (ValueError, RuntimeError, TypeError) as e:
        raise DeviceError(f"device {device!r} is not available here ({e}); this machine has "
                          f"{', '.join(available_devices())}") from None


def check_device(array: Any, device: wp.context.Device, name: str) -> None:
    """Raise :class:`DeviceError` unless the Warp array ``array`` lives on ``device``.

    Args:
        array: a Warp array (anything with a ``device`` attribute).
        device: the device the task or field runs on.
        name: what the array is, for the message.
    """
    where = getattr(array, "device", None)
    if where is not None and where != device:
        raise DeviceError(f"{name} is on {where} but this runs on {device}; move it with wp.clone(..., "
                          f"device={str(device)!r}) or build the task on {where}")


def available_devices() -> list[str]:
    """Names of the Warp devices present (``cpu`` always, ``cuda:N`` when Warp sees GPUs)."""
    wp.init()
    return [str(d) for d in wp.get_devices()]
