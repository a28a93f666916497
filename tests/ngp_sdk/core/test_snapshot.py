"""Snapshot container: round trips, atomic writes, typed errors for damaged or foreign files."""

from __future__ import annotations

import os
import zlib

import msgpack
import numpy as np
import pytest

from ngp_sdk.core.errors import SnapshotError
from ngp_sdk.core.snapshot import FORMAT_VERSION, read_snapshot, write_snapshot


@pytest.mark.parametrize("suffix", [".ingp", ".msgpack"])
def test_round_trip(tmp_path, suffix):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    p = write_snapshot(tmp_path / f"s{suffix}", {"primitive": "image", "state": {"a": a, "n": np.int64(3)}})
    raw = p.read_bytes()
    assert (raw[:1] == b"\x78") == (suffix == ".ingp")
    doc = read_snapshot(p)
    assert doc["version"] == FORMAT_VERSION and doc["primitive"] == "image"
    np.testing.assert_array_equal(doc["state"]["a"], a)
    assert doc["state"]["n"] == 3
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == []  # no temp file left behind


def test_truncated_and_foreign_files(tmp_path):
    good = write_snapshot(tmp_path / "good.ingp", {"state": {"a": np.zeros(1000, np.float32)}})
    raw = good.read_bytes()
    (tmp_path / "trunc.ingp").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SnapshotError, match="truncated or corrupt"):
        read_snapshot(tmp_path / "trunc.ingp")
    plain = write_snapshot(tmp_path / "good.msgpack", {"state": {"a": np.zeros(1000, np.float32)}})
    (tmp_path / "trunc.msgpack").write_bytes(plain.read_bytes()[:-100])
    with pytest.raises(SnapshotError, match="not an ngp-sdk snapshot"):
        read_snapshot(tmp_path / "trunc.msgpack")
    (tmp_path / "img.ingp").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(SnapshotError, match="not an ngp-sdk snapshot"):
        read_snapshot(tmp_path / "img.ingp")
    (tmp_path / "other.msgpack").write_bytes(msgpack.packb({"hello": 1}))
    with pytest.raises(SnapshotError, match="format marker"):
        read_snapshot(tmp_path / "other.msgpack")
    (tmp_path / "empty.ingp").write_bytes(b"")
    with pytest.raises(SnapshotError, match="empty"):
        read_snapshot(tmp_path / "empty.ingp")
    with pytest.raises(SnapshotError, match="not found"):
        read_snapshot(tmp_path / "nope.ingp")


def test_newer_version_and_bad_array(tmp_path):
    p = tmp_path / "v.ingp"
    p.write_bytes(zlib.compress(msgpack.packb({"format": "ngp-sdk", "version": FORMAT_VERSION + 1})))
    with pytest.raises(SnapshotError, match="version"):
        read_snapshot(p)
    bad = {"format": "ngp-sdk", "version": 1,
           "a": {"__ndarray__": True, "dtype": "<f4", "shape": [10], "data": b"\0" * 8}}
    p.write_bytes(zlib.compress(msgpack.packb(bad, use_bin_type=True)))
    with pytest.raises(SnapshotError, match="does not match shape"):
        read_snapshot(p)
    bad["a"]["dtype"] = "|O"
    p.write_bytes(zlib.compress(msgpack.packb(bad, use_bin_type=True)))
    with pytest.raises(SnapshotError, match="dtype"):
        read_snapshot(p)


def test_failed_write_keeps_previous_file(tmp_path):
    p = write_snapshot(tmp_path / "s.ingp", {"state": {"x": 1}})
    before = p.read_bytes()
    with pytest.raises(TypeError):
        write_snapshot(p, {"state": {"x": object()}})
    assert p.read_bytes() == before


@pytest.mark.parametrize("suffix", [".msgpack", ".ingp"])
def test_streamed_file_is_byte_identical_to_packb(tmp_path, suffix):
    """Arrays are streamed from their memory; the bytes are what msgpack.packb of the whole document gives."""
    from ngp_sdk.core.snapshot import FORMAT_NAME, _encode

    payload = {"primitive": "image", "config": {"a": [1, 2.5, "x"], "b": None},
               "state": {"params": {"grid": np.arange(10, dtype=np.float32), "empty": np.zeros((0, 3), np.float32),
                                    "u8": np.arange(300, dtype=np.uint8)},
                         "step": np.int64(3), "flag": np.bool_(True), "f": np.float32(1.5)},
               "big": np.arange(1 << 17, dtype=np.float32).reshape(-1, 2)[::2]}  # > 64 KiB, non-contiguous
    raw = write_snapshot(tmp_path / f"a{suffix}", payload).read_bytes()
    if suffix == ".ingp":
        raw = zlib.decompress(raw)
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **payload}
    assert raw == msgpack.packb(doc, default=_encode, use_bin_type=True)


def test_atomic_writers_leave_ordinary_file_permissions(tmp_path):
    from ngp_sdk.core.files import default_file_mode
    from ngp_sdk.core.images import save_image

    snap = write_snapshot(tmp_path / "a.ingp", {"x": 1})
    img = save_image(tmp_path / "a.png", np.zeros((2, 2, 3), np.float32))
    for p in (snap, img):
        assert os.stat(p).st_mode & 0o777 == default_file_mode()  # not mkstemp's 0o600
