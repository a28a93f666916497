"""Errors a pipelined client can match: a header that breaks a limit still gets its ``seq`` (and ``type``) back."""

from __future__ import annotations

import msgpack
import pytest

from bridges import protocol as P
from bridges.protocol.framing import recover_seq_and_type

LIMITS = P.DEFAULT_LIMITS
SEQ = 2**40 + 7


def _pack(v) -> bytes:
    return msgpack.packb(v, use_bin_type=True, datetime=False)


def _map(entries: list[tuple[str, bytes]]) -> bytes:
    """A msgpack map from already-encoded values (so a value may be anything, even undecodable by msgpack)."""
    assert len(entries) < 16
    return bytes([0x80 | len(entries)]) + b"".join(_pack(k) + v for k, v in entries)


def _header(bad: bytes, *, seq_first: bool = True) -> bytes:
    common = [("v", _pack(1)), ("type", _pack("status")), ("seq", _pack(SEQ)), ("stamp_ns", _pack(1))]
    if seq_first:
        return _map([*common, ("x", bad)])
    return _map([("v", _pack(1)), ("stamp_ns", _pack(1)), ("x", bad), ("type", _pack("status")), ("seq", _pack(SEQ))])


def _deep(depth: int) -> bytes:
    return b"\x91" * depth + b"\x01"


# every limit class of the strict decoder, as the offending value of an otherwise valid status request
BAD_VALUES = {
    "nesting deeper than max_depth": _deep(LIMITS.max_depth + 5),
    "very deep nesting (beyond msgpack's own stack)": _deep(3000),
    "string over max_str_len": _pack("a" * (LIMITS.max_str_len + 1)),
    "array over max_array_len": _pack(list(range(LIMITS.max_array_len + 1))),
    "map over max_map_len": _pack({str(i): i for i in range(LIMITS.max_map_len + 1)}),
    "bin value": _pack(b"\x00\x01"),
    "ext value": _pack(msgpack.ExtType(5, b"abc")),
    "timestamp ext": _pack(msgpack.Timestamp(1, 2)),
    "non-str key": b"\x81\x05\x01",
    "header over max_header_bytes": _pack("b" * LIMITS.max_header_bytes),
}
WHOLE_HEADERS = {
    "trailing bytes": _header(_pack(1)) + b"\x01\x02",
    "duplicate key": _map([("v", _pack(1)), ("type", _pack("status")), ("seq", _pack(SEQ)), ("stamp_ns", _pack(1)),
                           ("seq", _pack(SEQ))]),
}


def _frames(case: str, seq_first: bool = True) -> bytes:
    return WHOLE_HEADERS[case] if case in WHOLE_HEADERS else _header(BAD_VALUES[case], seq_first=seq_first)


@pytest.mark.parametrize("case", [*BAD_VALUES, *WHOLE_HEADERS])
def test_every_limit_class_echoes_the_readable_seq(case):
    with pytest.raises(P.ProtocolError) as info:
        P.parse_request([_frames(case)])
    assert info.value.code in ("bad_header", "too_large")
    assert info.value.seq == SEQ and info.value.request_type == "status"
    reply = P.make_error(info.value.seq, info.value.code, info.value.message, request_type=info.value.request_type)
    assert reply["seq"] == SEQ and reply["request_type"] == "status"
    with pytest.raises(P.ProtocolError) as back:  # a client's parse_reply raises it with the seq
        P.parse_reply(P.encode_message(reply))
    assert back.value.seq == SEQ


@pytest.mark.parametrize("case", [c for c in BAD_VALUES if c != "header over max_header_bytes"])
def test_seq_after_the_offending_value_is_found_too(case):
    with pytest.raises(P.ProtocolError) as info:
        P.parse_request([_frames(case, seq_first=False)])
    assert info.value.seq == SEQ and info.value.request_type == "status"


@pytest.mark.parametrize("frame, expected", [
    (b"", (None, None)),
    (msgpack.packb([1, 2, 3]), (None, None)),                     # not a map
    (msgpack.packb({"seq": -1, "type": 5}), (None, None)),       # seq out of range, type not a str
    (msgpack.packb({"seq": 1.5}), (None, None)),
    (b"\x81\xa3seq\xcf" + b"\xff" * 8, (2**64 - 1, None)),
    (_header(_pack(1))[:-3], (SEQ, "status")),                  # cut after seq
    (msgpack.packb({"x": "a" * 10})[:5], (None, None)),         # cut inside the first value
    (b"\x81\xc1\x00", (None, None)),                              # never-used byte
])
def test_recovery_edge_cases(frame, expected):
    assert recover_seq_and_type(frame) == expected


def test_valid_requests_are_unchanged():
    req = P.parse_request(P.Status(seq=3).to_frames())
    assert req.seq == 3
