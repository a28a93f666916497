"""Typed errors of the bridge protocol: :class:`ProtocolError`, one subclass per error code, and
:func:`error_from_code` (a client turns an ``error`` reply back into its exception)."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ProtocolError",
    "BadHeaderError",
    "UnknownTypeError",
    "BadVersionError",
    "PayloadMismatchError",
    "BadPoseError",
    "BadIntrinsicsError",
    "TooLargeError",
    "BadFieldError",
    "NoSessionError",
    "UnsupportedError",
    "StorageError",
    "BusyError",
    "InternalError",
    "ERROR_CODES",
    "error_from_code",
]


class ProtocolError(Exception):
    """Base class of every error this protocol reports; ``code`` is what an ``error`` reply carries.

    Args:
        message: human-readable explanation (sent as the ``message`` of the error reply).
        seq: ``seq`` of the offending request when it could be read, else None.

    Attributes:
        code: stable machine-readable error code (class attribute of each subclass).
        message: the message.
        seq: the request's ``seq`` or None.
        request_type: the request's ``type`` when it could be read, or None.
        version: the request's protocol version (its ``v``) when it is one this side speaks, or None; a server
            answers the error in that version (None: the newest).
    """

    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, seq: int | None = None, request_type: str | None = None,
                 version: int | None = None):
        super().__init__(message)
        self.message = message
        self.seq = seq
        self.request_type = request_type
        self.version = version


class BadHeaderError(ProtocolError):
    """The header frame is missing, not msgpack, not a map, breaks an unpacker limit, or has a bad common field."""

    code = "bad_header"


class UnknownTypeError(ProtocolError):
    """The ``type`` field names no message type of this protocol version."""

    code = "unknown_type"


class BadVersionError(ProtocolError):
    """The ``v`` field is an integer that is none of :data:`~bridges.protocol.constants.PROTOCOL_VERSIONS`."""

    code = "bad_version"


class PayloadMismatchError(ProtocolError):
    """The payload frames do not match the header: wrong count, wrong byte length, or undecodable image."""

    code = "payload_mismatch"


class BadPoseError(ProtocolError):
    """A ``pose`` field is missing, malformed, non-finite, not a rigid transform, or of an unknown convention."""

    code = "bad_pose"


class BadIntrinsicsError(ProtocolError):
    """An ``intrinsics`` field is missing, malformed, or out of range (e.g. ``fx <= 0``)."""

    code = "bad_intrinsics"


class TooLargeError(ProtocolError):
    """A message, header, image, render, capacity or mesh resolution exceeds its :class:`Limits`."""

    code = "too_large"


class BadFieldError(ProtocolError):
    """Any other field is missing, unknown, of the wrong type or out of range."""

    code = "bad_field"


class NoSessionError(ProtocolError):
    """The request needs a session and none was configured (or loaded) yet (server side)."""

    code = "no_session"


class UnsupportedError(ProtocolError):
    """The server cannot do this: missing optional package, capability absent, request on the wrong socket, an
    encoding it does not take there (version 2)."""

    code = "unsupported"


class StorageError(ProtocolError):
    """``save`` / ``load`` failed: unreadable, unwritable, refused or corrupt path (server side)."""

    code = "io_error"


class BusyError(ProtocolError):
    """The server's render queue is full; retry the render / export later."""

    code = "busy"


class InternalError(ProtocolError):
    """An unexpected failure inside the server; the request may be retried."""

    code = "internal"


#: Every error code of this protocol version and its exception class.
ERROR_CODES: dict[str, type[ProtocolError]] = {
    cls.code: cls
    for cls in (
        BadHeaderError,
        UnknownTypeError,
        BadVersionError,
        PayloadMismatchError,
        BadPoseError,
        BadIntrinsicsError,
        TooLargeError,
        BadFieldError,
        NoSessionError,
        UnsupportedError,
        StorageError,
        BusyError,
        InternalError,
    )
}


def error_from_code(code: str, message: str, seq: int | None = None) -> ProtocolError:
    """The typed exception of an ``error`` reply (a client re-raises it).

    Args:
        code: the reply's ``code``; an unknown code (newer server) gives a plain :class:`ProtocolError`
            whose ``code`` attribute is set to it.
        message: the reply's ``message``.
        seq: the reply's ``seq``.
    """
    cls = ERROR_CODES.get(code)
    if cls is not None:
        return cls(message, seq=seq)
    err = ProtocolError(message, seq=seq)
    err.code = code
    return err
