"""Device resolution and argument checks shared by the kernel launchers (public: the SDK uses them too).

Nothing here holds state. Launch functions resolve ``device`` once and check that every array they are
given lives there; a mismatch raises :class:`DeviceMismatchError` instead of copying silently.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import warp as wp

__all__ = [
    "DeviceMismatchError",
    "KernelArgumentError",
    "resolve_device",
    "check_array",
    "common_device",
    "as_numpy_view",
]


class KernelArgumentError(ValueError):
    """An array handed to a launch function has the wrong shape, dtype or device."""


class DeviceMismatchError(KernelArgumentError):
    """Arrays handed to one launch live on different devices."""


def resolve_device(device: wp.context.Devicelike = None) -> wp.context.Device:
    """Resolve ``device`` once; ``None`` means Warp's current device."""
    wp.init()
    return wp.get_device(device)


def common_device(arrays: Iterable[wp.array | None], device: wp.context.Devicelike = None) -> wp.context.Device:
    """Return the one device all non-None ``arrays`` share (and ``device`` if given).

    Raises:
        DeviceMismatchError: if two arrays (or an array and ``device``) disagree.
    """
    found = None if device is None else resolve_device(device)
    for a in arrays:
        if a is None:
            continue
        if found is None:
            found = a.device
        elif a.device != found:
            raise DeviceMismatchError(f"array on {a.device} but expected {found}; move it explicitly")
    return found if found is not None else resolve_device(None)


def check_array(
    a: wp.array,
    name: str,
    *,
    dtype: type | None = None,
    shape: tuple[int | None, ...] | None = None,
    device: wp.context.Device | None = None,
) -> None:
    """Raise :class:`KernelArgumentError` unless ``a`` matches dtype, shape (None = any) and device."""
    if not isinstance(a, wp.array):
        raise KernelArgumentError(f"{name} must be a warp.array, got {type(a).__name__}")
    if dtype is not None and a.dtype != dtype:
        raise KernelArgumentError(f"{name} must have dtype {dtype.__name__}, got {a.dtype.__name__}")
    if shape is not None:
        if len(a.shape) != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape, strict=True)):
            raise KernelArgumentError(f"{name} must have shape {shape} (None = any), got {a.shape}")
    if device is not None and a.device != device:
        raise DeviceMismatchError(f"{name} is on {a.device} but the launch runs on {device}")


def as_numpy_view(a: wp.array) -> np.ndarray:
    """Zero-copy NumPy view of a CPU Warp array (raises on GPU arrays)."""
    if not a.device.is_cpu:
        raise KernelArgumentError("a NumPy view needs a CPU array")
    return a.numpy()
