"""Field-validation helpers of the bridge protocol: :class:`FieldReader` (typed, validated access to a decoded
msgpack map), the header tree checks used by :func:`~bridges.protocol.framing.decode_header`, and small value
helpers shared by the other submodules."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import BadHeaderError, ProtocolError

__all__ = [
    "is_int",
    "value_kind",
    "short_repr",
    "as_buffer",
    "pack_default",
    "unique_str_map",
    "check_tree",
    "MISSING",
    "FieldReader",
]


def is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def value_kind(value: Any) -> str:
    """msgpack name of a decoded value's type, for error messages."""
    for typ, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (dict, "map"), (list, "array")):
        if isinstance(value, typ):
            return name
    return "nil" if value is None else type(value).__name__


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_buffer(frame: Any) -> memoryview:
    """A flat byte view of one frame: bytes, bytearray, memoryview or anything with a ``buffer`` (zmq.Frame)."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        view = memoryview(frame)
    elif isinstance(frame, np.ndarray):
        view = memoryview(np.ascontiguousarray(frame).reshape(-1).view(np.uint8))
    elif hasattr(frame, "buffer"):
        view = memoryview(frame.buffer)
    else:
        raise TypeError(f"a frame must be bytes-like, got {type(frame).__name__}")
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def pack_default(obj: Any) -> Any:
    """msgpack ``default`` hook of headers: numpy scalars become Python numbers, anything else is refused."""
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot put a {type(obj).__name__} in a header; send arrays as payload frames")


def unique_str_map(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """msgpack ``object_pairs_hook`` of headers: a dict, refusing duplicate and non-string keys."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate map key")
    if not all(type(k) is str for k in out):
        raise ValueError("map keys must be strings")
    return out


def check_tree(obj: Any, max_depth: int) -> None:
    """Reject nesting deeper than ``max_depth`` and values JSON cannot express (bin, ext, timestamps)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > max_depth:
                raise BadHeaderError(f"header nests deeper than max_depth={max_depth}")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
        elif not (node is None or isinstance(node, (str, int, float))):
            raise BadHeaderError(f"headers may not contain {type(node).__name__} values (payloads go in frames)")


MISSING: Any = object()


class FieldReader:
    """Typed, validated access to one decoded map; names fields by dotted path and rejects unknown keys."""

    __slots__ = ("_data", "_prefix", "_error", "_seen")

    def __init__(self, data: Mapping[str, Any], prefix: str, error: type[ProtocolError], seen: Sequence[str] = ()):
        self._data = data
        self._prefix = prefix
        self._error = error
        self._seen = set(seen)

    def _name(self, key: str) -> str:
        return f"'{self._prefix}{key}'"

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        if key in self._data:
            return self._data[key]
        if default is MISSING:
            raise self._error(f"missing field {self._name(key)}")
        return default

    def invalid(self, key: str, what: str, value: Any) -> ProtocolError:
        """The error for field ``key`` holding ``value`` where ``what`` was expected."""
        return self._error(f"field {self._name(key)} must be {what}, got {short_repr(value)}")

    def integer(
        self,
        key: str,
        *,
        lo: int,
        hi: int | None = None,
        default: Any = MISSING,
        hi_error: type[ProtocolError] | None = None,
    ) -> int:
        value = self._get(key, default)
        if key not in self._data:
            return value
        if not is_int(value):
            raise self.invalid(key, "an integer", value)
        if value < lo:
            raise self.invalid(key, f">= {lo}", value)
        if hi is not None and value > hi:
            raise (hi_error or self._error)(f"field {self._name(key)} = {value} exceeds the limit {hi}")
        return value

    def number(self, key: str, *, default: Any = MISSING, positive: bool = False, hi: float | None = None) -> float:
        value = self._get(key, default)
        if key not in self._data:
            return value
        if not _is_number(value) or not np.isfinite(float(value)):
            raise self.invalid(key, "a finite number", value)
        if positive and not value > 0:
            raise self.invalid(key, "> 0", value)
        if hi is not None and value > hi:
            raise self.invalid(key, f"<= {hi}", value)
        return float(value)

    def numbers(self, key: str, *, lengths: tuple[int, ...], default: Any = MISSING) -> tuple[float, ...]:
        value = self._get(key, default)
        if key not in self._data:
            return value
        what = f"an array of {' or '.join(map(str, lengths))} finite numbers"
        if not isinstance(value, list) or len(value) not in lengths:
            raise self.invalid(key, what, value)
        for i, x in enumerate(value):
            if not _is_number(x) or not np.isfinite(float(x)):
                raise self._error(f"field {self._name(key)}[{i}] must be a finite number, got {short_repr(x)}")
        return tuple(float(x) for x in value)

    def string(
        self,
        key: str,
        *,
        choices: Sequence[str] | None = None,
        default: Any = MISSING,
        max_len: int = 256,
        pattern: re.Pattern[str] | None = None,
        choice_error: type[ProtocolError] | None = None,
    ) -> str:
        """A string field; a string outside ``choices`` raises ``choice_error`` (default: the reader's error)."""
        value = self._get(key, default)
        if key not in self._data:
            return value
        if not isinstance(value, str):
            raise self.invalid(key, "a string", value)
        if choices is not None and value not in choices:
            error = choice_error or self._error
            raise error(f"field {self._name(key)} must be one of {', '.join(map(repr, choices))}, "
                        f"got {short_repr(value)}")
        if len(value) > max_len:
            raise self._error(f"field {self._name(key)} is longer than {max_len} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.invalid(key, f"a string matching {pattern.pattern}", value)
        return value

    def boolean(self, key: str, *, default: Any = MISSING) -> bool:
        value = self._get(key, default)
        if key in self._data and not isinstance(value, bool):
            raise self.invalid(key, "true or false", value)
        return value

    def mapping(self, key: str, *, error: type[ProtocolError] | None = None, default: Any = MISSING) -> Any:
        """A nested map as a :class:`FieldReader` reporting with ``error``, or ``default`` when absent."""
        error = error or self._error
        self._seen.add(key)
        if key not in self._data:
            if default is MISSING:
                raise error(f"missing field {self._name(key)}")
            return default
        value = self._data[key]
        if not isinstance(value, dict):
            raise error(f"field {self._name(key)} must be a map, got {short_repr(value)}")
        return FieldReader(value, f"{self._prefix}{key}.", error)

    def raw(self, key: str, *, default: Any = MISSING) -> Any:
        """A field's value unchecked (the caller validates it), or ``default`` when absent."""
        return self._get(key, default)

    def raw_map(self, key: str, *, default: Any = MISSING) -> dict[str, Any]:
        value = self._get(key, default)
        if key in self._data and not isinstance(value, dict):
            raise self.invalid(key, "a map", value)
        return value

    def done(self) -> None:
        """Reject keys nobody read."""
        unknown = [k for k in self._data if k not in self._seen]
        if unknown:
            names = ", ".join(repr(f"{self._prefix}{k[:40]}") for k in unknown[:5])
            raise self._error(f"unknown field{'s' if len(unknown) > 1 else ''} {names}")
