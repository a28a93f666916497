"""Typed errors of the SDK. Every error a user can cause derives from :class:`NgpError`."""

from __future__ import annotations

__all__ = [
    "NgpError",
    "ConfigError",
    "DataError",
    "SnapshotError",
    "DeviceError",
]


class NgpError(Exception):
    """Base class of every error the SDK raises on bad input."""


class ConfigError(NgpError, ValueError):
    """A configuration is malformed: unknown key, wrong type, value out of range."""


class DataError(NgpError, ValueError):
    """An input file or array is missing, unreadable or inconsistent (shape, size, NaN)."""


class SnapshotError(NgpError, ValueError):
    """A snapshot is truncated, corrupt, of a foreign format or of an unsupported version."""


class DeviceError(NgpError, RuntimeError):
    """Arrays live on the wrong device, or the requested device does not exist."""
