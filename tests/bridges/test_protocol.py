"""Tests of :mod:`bridges.protocol`: round trips, every error code, the docs' byte examples, and fuzzing."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridges import protocol as proto

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"
STAMP = 1_700_000_000_000_000_000
FUZZ = settings(max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
FUZZ_DEEP = settings(FUZZ, max_examples=3000)


def pack(header: object) -> bytes:
    return msgpack.packb(header, use_bin_type=True)


def rotation(axis, angle: float) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def pose(axis=(1.0, 2.0, 3.0), angle: float = 0.7, t=(0.5, -1.0, 2.0)) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation(axis, angle)
    m[:3, 3] = t
    return m


def camera(width: int = 4, height: int = 3, **kw) -> proto.CameraIntrinsics:
    args = {"fx": 3.5, "fy": 3.25, "cx": width / 2, "cy": height / 2, **kw}
    return proto.CameraIntrinsics(width=width, height=height, **args)


RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
IMAGE_RGBA = RNG.integers(0, 256, size=(3, 4, 4), dtype=np.uint8)
SMOOTH = np.ascontiguousarray(np.broadcast_to(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], (8, 16, 3)))
DEPTH = RNG.uniform(0.5, 4.0, size=(3, 4)).astype(np.float32)
FISHEYE = camera(model="OPENCV_FISHEYE", dist=(0.1, -0.02, 0.003, -0.0004))
OPENCV = camera(model="OPENCV", dist=(0.1, -0.02, 0.001, 0.002))

SAMPLE_REQUESTS: list[proto.Request] = [
    proto.Hello(seq=0, stamp_ns=STAMP, client="pytest/1"),
    proto.Hello(seq=2**64 - 1, stamp_ns=0),
    proto.Configure(
        seq=1,
        stamp_ns=STAMP,
        primitive="nerf",
        config={"encoding": {"otype": "HashGrid", "n_levels": 16}, "network": {"n_neurons": 64}},
        aabb_scale=4,
        scale=0.5,
        offset=(0.5, 0.25, 0.5),
        capacity=64,
        min_frames=8,
    ),
    proto.AddFrame(seq=2, stamp_ns=STAMP, image=IMAGE, intrinsics=camera(), pose=pose()),
    proto.AddFrame(
        seq=3, stamp_ns=STAMP, image=IMAGE_RGBA, intrinsics=OPENCV, pose=pose(), depth=DEPTH, encoding="rgba8"
    ),
    proto.Render(seq=4, stamp_ns=STAMP, pose=pose(), intrinsics=FISHEYE, encoding="png", depth=True, quality=80),
    proto.Status(seq=5, stamp_ns=STAMP),
    proto.Save(seq=6, stamp_ns=STAMP, path="/tmp/scene.ingp"),
    proto.Load(seq=7, stamp_ns=STAMP, path="relative/scene.ingp"),
    proto.Pause(seq=8, stamp_ns=STAMP),
    proto.Resume(seq=9, stamp_ns=STAMP),
    proto.ExportMesh(seq=10, stamp_ns=STAMP, resolution=128, format="obj", threshold=1.5),
    proto.SetView(seq=11, stamp_ns=STAMP, name="front.cam-1", rate=15.0, pose=pose(), intrinsics=camera(), depth=True),
    proto.ClearView(seq=12, stamp_ns=STAMP, name="front.cam-1"),
    proto.ClearView(seq=13, stamp_ns=STAMP),
]


def assert_same(a: object, b: object) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-6, atol=0, err_msg=f.name)
        else:
            assert x == y, f.name


# ---------------------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------------------


def test_samples_cover_every_request_type():
    assert {r.TYPE for r in SAMPLE_REQUESTS} == set(proto.REQUEST_TYPES)
    assert set(proto.REPLY_FIELDS) == set(proto.REQUEST_TYPES)


@pytest.mark.parametrize("request_", SAMPLE_REQUESTS, ids=lambda r: f"{r.TYPE}-{r.seq}")
def test_request_round_trip(request_):
    frames = request_.to_frames()
    assert all(isinstance(f, (bytes, memoryview)) for f in frames)
    parsed = proto.parse_request([bytes(f) for f in frames])
    assert_same(request_, parsed)


def test_to_frames_stamps_now_and_keeps_given_stamp():
    parsed = proto.parse_request(proto.Status(seq=1).to_frames())
    assert parsed.stamp_ns > STAMP
    assert proto.decode_header(proto.Status(seq=1, stamp_ns=5).to_frames()[0])["stamp_ns"] == 5


def _reply_values(kind: str) -> dict:
    values = {
        "server": "ngp-sdk 0.1.0",
        "protocol": 1,
        "capabilities": list(proto.CAPABILITIES),
        "limits": proto.DEFAULT_LIMITS.to_dict(),
        "primitive": "nerf",
        "capacity": 64,
        "min_frames": 4,
        "index": 3,
        "frame_count": 4,
        "image": {"encoding": "rgb8", "width": 4, "height": 3, "step": 12},
        "step": 1000,
        "state": "training",
        "loss": None,
        "samples_per_second": 1.5e6,
        "last_frame_seq": 17,
        "frames_rejected": 1,
        "last_frame_error": {"seq": 16, "code": "bad_pose", "message": "nope"},
        "path": "/tmp/x.ingp",
        "bytes": 1234,
        "format": "ply",
        "vertex_count": 8,
        "face_count": 12,
        "name": "front",
        "views": 1,
        "cleared": 2,
    }
    return {k: values[k] for k in proto.REPLY_FIELDS[kind]}


@pytest.mark.parametrize("kind", list(proto.REPLY_FIELDS))
def test_reply_round_trip(kind):
    fields = _reply_values(kind)
    frames = proto.encode_message(proto.make_reply(41, kind, stamp_ns=STAMP, v=1, **fields), [b"xyz"])
    reply = proto.parse_reply(frames)
    assert (reply.type, reply.seq, reply.stamp_ns, reply.version) == (f"{kind}_ok", 41, STAMP, 1)
    assert reply.fields == fields
    assert [bytes(p) for p in reply.payloads] == [b"xyz"]


def test_make_reply_checks_type_and_required_fields():
    with pytest.raises(ValueError, match="needs the fields"):
        proto.make_reply(1, "status", state="training")
    with pytest.raises(ValueError, match="unknown"):
        proto.make_reply(1, "status_ok")
    with pytest.raises(ValueError, match="unknown error code"):
        proto.make_error(1, "oops", "x")


@pytest.mark.parametrize("encoding", proto.RENDER_ENCODINGS)
def test_render_reply_image_round_trip(encoding):
    if encoding == "32FC3":
        image = RNG.uniform(0, 1, size=(3, 4, 3)).astype(np.float32)
    else:
        image = {"rgba8": IMAGE_RGBA, "png": IMAGE_RGBA, "jpeg": SMOOTH}.get(encoding, IMAGE)
    image_field, payload = proto.encode_image(image, encoding, quality=100)
    depth_field, depth_payload = proto.encode_depth(DEPTH)
    header = proto.make_reply(4, "render", image=image_field, depth=depth_field, step=12)
    reply = proto.parse_reply(proto.encode_message(header, [payload, depth_payload]))
    decoded = proto.decode_image(reply.fields["image"], reply.payloads[0])
    if encoding == "jpeg":
        assert decoded.shape == SMOOTH.shape and np.abs(decoded.astype(int) - SMOOTH).max() < 16
    else:
        np.testing.assert_array_equal(decoded, image)
    np.testing.assert_array_equal(proto.decode_depth(reply.fields["depth"], reply.payloads[1]), DEPTH)


def test_view_message_round_trip():
    topic = proto.view_topic("front")
    assert topic == b"view/front/"
    image_field, payload = proto.encode_image(IMAGE, "rgb8")
    frames = [topic, *proto.encode_message(proto.make_view(3, "front", step=9, image=image_field), [payload])]
    reply = proto.parse_reply(frames[1:])
    assert (reply.type, reply.seq, reply.fields["name"], reply.fields["step"]) == ("view", 3, "front", 9)
    np.testing.assert_array_equal(proto.decode_image(reply.fields["image"], reply.payloads[0]), IMAGE)
    with pytest.raises(ValueError):
        proto.view_topic("a/b")


def test_error_reply_raises_typed_error():
    frames = proto.encode_message(proto.make_error(9, "bad_pose", "last row"))
    with pytest.raises(proto.BadPoseError, match="last row") as info:
        proto.parse_reply(frames)
    assert (info.value.code, info.value.seq) == ("bad_pose", 9)
    with pytest.raises(proto.BadHeaderError) as info:
        proto.parse_reply(proto.encode_message(proto.make_error(None, "bad_header", "x")))
    assert info.value.seq is None
    with pytest.raises(proto.UnknownTypeError):
        proto.parse_reply([pack({"v": 1, "type": "render", "seq": 1, "stamp_ns": 0})])
    with pytest.raises(proto.BadVersionError):
        proto.parse_reply([pack({"v": 3, "type": "render_ok", "seq": 1, "stamp_ns": 0})])


def test_error_codes_are_unique_and_round_trip():
    classes = [c for c in vars(proto).values() if isinstance(c, type) and issubclass(c, proto.ProtocolError)]
    codes = {c.code for c in classes if c is not proto.ProtocolError}
    assert codes == set(proto.ERROR_CODES)
    assert len(codes) == len(classes) - 1
    for code, cls in proto.ERROR_CODES.items():
        err = proto.error_from_code(code, "m", 3)
        assert type(err) is cls and (err.code, err.message, err.seq) == (code, "m", 3)
    future = proto.error_from_code("rate_limited", "slow down")
    assert type(future) is proto.ProtocolError and future.code == "rate_limited"
    assert set(proto.ERROR_CODES) >= {
        "bad_header",
        "unknown_type",
        "bad_version",
        "payload_mismatch",
        "bad_pose",
        "bad_intrinsics",
        "too_large",
        "bad_field",
        "internal",
    }


def test_split_envelope():
    assert proto.split_envelope([b"id", b"\x80", b"p"]) == ([b"id"], [b"\x80", b"p"])
    assert proto.split_envelope([b"id", b"", b"\x80"]) == ([b"id", b""], [b"\x80"])


def test_importing_protocol_pulls_in_neither_warp_nor_zmq():
    code = "import sys, bridges.protocol; print(sorted(m for m in ('warp', 'zmq', 'imageio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------------
# add_frame decoding: encodings, zero-copy, conventions, depth
# ---------------------------------------------------------------------------------------------------------------


def add_frame(image: dict, payloads: list, **fields) -> list:
    header = {
        "v": 1,
        "type": "add_frame",
        "seq": 7,
        "stamp_ns": STAMP,
        "image": image,
        "intrinsics": {"model": "PINHOLE", "fx": 3.0, "fy": 3.0, "cx": 2.0, "cy": 1.5},
        "pose": proto.pose_to_wire(pose()),
        **fields,
    }
    return [pack(header), *payloads]


def raw_payload(pixels: np.ndarray, pad: int = 0) -> tuple[dict, bytes]:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((h, pad), 0xEE, np.uint8)], axis=1)
    return {"width": w, "height": h, "step": padded.shape[1]}, padded.tobytes()


def test_rgb8_with_row_padding_decodes_zero_copy():
    dims, payload = raw_payload(IMAGE, pad=5)
    frame = proto.parse_request(add_frame({"encoding": "rgb8", **dims}, [payload]))
    np.testing.assert_array_equal(frame.image, IMAGE)
    assert np.shares_memory(frame.image, np.frombuffer(payload, np.uint8))
    assert not frame.image.flags.writeable
    assert frame.encoding == "rgb8" and frame.intrinsics.width == 4 and frame.intrinsics.height == 3


def test_bgr8_is_swapped_mono8_replicated_rgba8_kept():
    dims, payload = raw_payload(np.ascontiguousarray(IMAGE[..., ::-1]))
    np.testing.assert_array_equal(proto.parse_request(add_frame({"encoding": "bgr8", **dims}, [payload])).image, IMAGE)
    gray = IMAGE[..., 0].copy()
    dims, payload = raw_payload(gray[..., None], pad=3)
    out = proto.parse_request(add_frame({"encoding": "mono8", **dims}, [payload])).image
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    dims, payload = raw_payload(IMAGE_RGBA)
    np.testing.assert_array_equal(
        proto.parse_request(add_frame({"encoding": "rgba8", **dims}, [payload])).image, IMAGE_RGBA
    )


def test_step_defaults_to_packed_rows():
    out = proto.parse_request(add_frame({"encoding": "rgb8", "width": 4, "height": 3}, [IMAGE.tobytes()]))
    np.testing.assert_array_equal(out.image, IMAGE)


@pytest.mark.parametrize("source", ["rgb", "rgba", "gray"])
def test_png_frames(source):
    pixels = {"rgb": IMAGE, "rgba": IMAGE_RGBA, "gray": IMAGE[..., 0]}[source]
    field_, data = proto.encode_image(pixels, "png")
    out = proto.parse_request(add_frame(field_, [data])).image
    expected = np.repeat(pixels[..., None], 3, axis=2) if source == "gray" else pixels
    np.testing.assert_array_equal(out, expected)


def test_jpeg_frame():
    field_, data = proto.encode_image(SMOOTH, "jpeg", quality=95)
    assert field_ == {"encoding": "jpeg", "width": 16, "height": 8}
    out = proto.parse_request(add_frame(field_, [data])).image
    assert out.shape == (8, 16, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - SMOOTH).max() < 16


def test_opencv_pose_is_converted_to_opengl():
    c2w = pose()
    out = proto.parse_request(
        add_frame(
            {"encoding": "rgb8", "width": 4, "height": 3}, [IMAGE.tobytes()], pose=proto.pose_to_wire(c2w, "opencv")
        )
    ).pose
    expected = c2w.copy()
    expected[:3, 1:3] *= -1
    np.testing.assert_array_equal(out, expected)
    # the viewing direction is preserved: opencv +z (forward) == opengl -z
    np.testing.assert_allclose(-out[:3, 2], c2w[:3, 2])
    np.testing.assert_array_equal(out[:3, 3], c2w[:3, 3])


def test_depth_16uc1_default_scale_and_invalid_pixels():
    raw = (DEPTH * 1000).astype(np.uint16)
    raw[0, 0] = 0
    dims, payload = raw_payload(raw[..., None], pad=2)
    depth = {"encoding": "16UC1", **dims}
    out = proto.parse_request(
        add_frame({"encoding": "rgb8", "width": 4, "height": 3}, [IMAGE.tobytes(), payload], depth=depth)
    ).depth
    expected = raw.astype(np.float32) * np.float32(0.001)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out[0, 0] == 0 and out.dtype == np.float32


def test_depth_32fc1_big_endian_with_nan_and_negative():
    values = DEPTH.copy()
    values[1, 2], values[2, 3] = np.nan, -1.0
    depth = {"encoding": "32FC1", "width": 4, "height": 3, "is_bigendian": True, "scale": 2.0}
    out = proto.parse_request(
        add_frame(
            {"encoding": "rgb8", "width": 4, "height": 3},
            [IMAGE.tobytes(), values.astype(">f4").tobytes()],
            depth=depth,
        )
    ).depth
    expected = np.where(np.isfinite(values) & (values > 0), values * 2, 0).astype(np.float32)
    np.testing.assert_array_equal(out, expected)


def test_intrinsics_models_and_pixel_fields():
    frames = add_frame(
        {"encoding": "rgb8", "width": 4, "height": 3},
        [IMAGE.tobytes()],
        intrinsics={"model": "OPENCV", "fx": 3, "fy": 4, "cx": 2, "cy": 1.5, "dist": []},
    )
    k = proto.parse_request(frames).intrinsics
    assert (k.model, k.fx, k.fy, k.cx, k.dist) == ("OPENCV", 3.0, 4.0, 2.0, (0.0,) * 4)
    assert isinstance(k.fx, float)


# ---------------------------------------------------------------------------------------------------------------
# Every error
# ---------------------------------------------------------------------------------------------------------------

HELLO = {"v": 1, "type": "hello", "seq": 7, "stamp_ns": STAMP}
RGB_FIELD = {"encoding": "rgb8", "width": 4, "height": 3, "step": 12}


def hello(**fields) -> list:
    return [pack({**HELLO, **fields})]


def without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


def frame_with(**fields) -> list:
    return add_frame(RGB_FIELD, [IMAGE.tobytes()], **fields)


def frame_pose(matrix, convention: str = "opengl") -> list:
    return frame_with(pose={"matrix": [float(x) for x in np.ravel(matrix)], "convention": convention})


def frame_intrinsics(**fields) -> list:
    return frame_with(intrinsics={"model": "PINHOLE", "fx": 3.0, "fy": 3.0, "cx": 2.0, "cy": 1.5, **fields})


def render(**fields) -> list:
    base = {
        **HELLO,
        "type": "render",
        "width": 4,
        "height": 3,
        "pose": proto.pose_to_wire(pose()),
        "intrinsics": {"fx": 3.0, "fy": 3.0, "cx": 2.0, "cy": 1.5},
    }
    return [pack({**base, **fields})]


def request(kind: str, **fields) -> list:
    return [pack({**HELLO, "type": kind, **fields})]


def deep(n: int) -> object:
    value: object = 1
    for _ in range(n):
        value = [value]
    return value


SCALED = pose()
SCALED[:3, :3] *= 1.01
SHEARED = pose()
SHEARED[0, 1] += 0.01
REFLECTED = pose()
REFLECTED[:3, 0] *= -1
LAST_ROW = pose()
LAST_ROW[3, 3] = 2.0
NAN_POSE = pose()
NAN_POSE[1, 3] = np.nan
INF_POSE = pose()
INF_POSE[0, 0] = np.inf
PNG_4x3 = proto.encode_image(IMAGE, "png")[1]
JPEG_4x3 = proto.encode_image(IMAGE, "jpeg")[1]

ERROR_CASES = {
    # bad_header
    "no frames": ([], "bad_header"),
    "empty header": ([b""], "bad_header"),
    "not msgpack": ([b"\xc1"], "bad_header"),
    "truncated msgpack": ([pack(HELLO)[:-3]], "bad_header"),
    "trailing bytes": ([pack(HELLO) + b"\x00"], "bad_header"),
    "not a map": ([pack([1, 2, 3])], "bad_header"),
    "int key": ([b"\x81\x01\x02"], "bad_header"),
    "bin key": ([b"\x81\xc4\x01v\x01"], "bad_header"),
    "duplicate key": ([b"\x82\xa1v\x01\xa1v\x01"], "bad_header"),
    "bin value": (hello(client=b"bytes"), "bad_header"),
    "ext value": (hello(client=msgpack.ExtType(5, b"ab")), "bad_header"),
    "timestamp value": (hello(client=msgpack.Timestamp(1, 0)), "bad_header"),
    "invalid utf-8": ([b"\x81\xa1v\xa2\xff\xfe"], "bad_header"),
    "nested too deep": (hello(client=deep(16)), "bad_header"),
    "nested past the msgpack stack": ([b"\x91" * 5000 + b"\x01"], "bad_header"),
    "string over max_str_len": (hello(client="x" * 5000), "bad_header"),
    "array over max_array_len": (hello(client=[0] * 2000), "bad_header"),
    "map over max_map_len": (hello(client={str(i): i for i in range(300)}), "bad_header"),
    "missing v": ([pack(without(HELLO, "v"))], "bad_header"),
    "v not an int": (hello(v="1"), "bad_header"),
    "missing type": ([pack(without(HELLO, "type"))], "bad_header"),
    "type not a string": (hello(type=1), "bad_header"),
    "missing seq": ([pack(without(HELLO, "seq"))], "bad_header"),
    "negative seq": (hello(seq=-1), "bad_header"),
    "bool seq": (hello(seq=True), "bad_header"),
    "missing stamp_ns": ([pack(without(HELLO, "stamp_ns"))], "bad_header"),
    "float stamp_ns": (hello(stamp_ns=1.5), "bad_header"),
    # bad_version / unknown_type
    "wrong version": (hello(v=3), "bad_version"),
    "version 0": (hello(v=0), "bad_version"),
    "unknown type": (hello(type="teleport"), "unknown_type"),
    "reply type as request": (hello(type="hello_ok"), "unknown_type"),
    # payload_mismatch
    "missing payload": (frame_with()[:1], "payload_mismatch"),
    "missing depth payload": (
        frame_with(depth={"encoding": "32FC1", "width": 4, "height": 3}),
        "payload_mismatch",
    ),
    "extra payload on add_frame": (frame_with() + [b"x"], "payload_mismatch"),
    "payload on status": (request("status") + [b"x"], "payload_mismatch"),
    "payload shorter than height*step": (add_frame(RGB_FIELD, [IMAGE.tobytes()[:-1]]), "payload_mismatch"),
    "payload longer than height*step": (add_frame(RGB_FIELD, [IMAGE.tobytes() + b"\0"]), "payload_mismatch"),
    "depth payload length": (
        add_frame(RGB_FIELD, [IMAGE.tobytes(), b"\0" * 47], depth={"encoding": "32FC1", "width": 4, "height": 3}),
        "payload_mismatch",
    ),
    "png garbage": (add_frame({"encoding": "png", "width": 4, "height": 3}, [b"not a png"]), "payload_mismatch"),
    "png size mismatch": (add_frame({"encoding": "png", "width": 5, "height": 3}, [PNG_4x3]), "payload_mismatch"),
    "png truncated": (add_frame({"encoding": "png", "width": 4, "height": 3}, [PNG_4x3[:40]]), "payload_mismatch"),
    "jpeg size mismatch": (add_frame({"encoding": "jpeg", "width": 4, "height": 4}, [JPEG_4x3]), "payload_mismatch"),
    "jpeg sent as png": (add_frame({"encoding": "png", "width": 4, "height": 3}, [JPEG_4x3]), "payload_mismatch"),
    # bad_pose
    "NaN in pose": (frame_pose(NAN_POSE), "bad_pose"),
    "inf in pose": (frame_pose(INF_POSE), "bad_pose"),
    "scaled rotation": (frame_pose(SCALED), "bad_pose"),
    "sheared rotation": (frame_pose(SHEARED), "bad_pose"),
    "reflection": (frame_pose(REFLECTED), "bad_pose"),
    "last row": (frame_pose(LAST_ROW), "bad_pose"),
    "12 numbers": (frame_pose(pose()[:3]), "bad_pose"),
    "unknown convention": (frame_pose(pose(), "blender"), "bad_pose"),
    "missing convention": (frame_with(pose={"matrix": proto.pose_to_wire(pose())["matrix"]}), "bad_pose"),
    "pose not a map": (frame_with(pose=[1, 0, 0]), "bad_pose"),
    "matrix of strings": (frame_with(pose={"matrix": ["1"] * 16, "convention": "opengl"}), "bad_pose"),
    "unknown pose field": (frame_with(pose={**proto.pose_to_wire(pose()), "scale": 1}), "bad_pose"),
    "render without pose": ([pack(without(msgpack.unpackb(render()[0]), "pose"))], "bad_pose"),
    # bad_intrinsics
    "negative fx": (frame_intrinsics(fx=-3.0), "bad_intrinsics"),
    "zero fy": (frame_intrinsics(fy=0), "bad_intrinsics"),
    "NaN cx": (frame_intrinsics(cx=float("nan")), "bad_intrinsics"),
    "missing fx": (frame_with(intrinsics={"fy": 3.0, "cx": 2.0, "cy": 1.5}), "bad_intrinsics"),
    "unknown model": (frame_intrinsics(model="KANNALA"), "bad_intrinsics"),
    "pinhole with dist": (frame_intrinsics(dist=[0.1, 0, 0, 0]), "bad_intrinsics"),
    "opencv with 5 coefficients": (frame_intrinsics(model="OPENCV", dist=[0.1] * 5), "bad_intrinsics"),
    "fisheye without dist": (frame_intrinsics(model="OPENCV_FISHEYE"), "bad_intrinsics"),
    "intrinsics not a map": (frame_with(intrinsics="K"), "bad_intrinsics"),
    "unknown intrinsics field": (frame_intrinsics(k1=0.0), "bad_intrinsics"),
    # too_large
    "header over 64 KiB": (hello(**{f"k{i}": "x" * 1000 for i in range(70)}), "too_large"),
    "image too wide": (add_frame({**RGB_FIELD, "width": 8193, "step": 8193 * 3}, [b""]), "too_large"),
    "image too tall": (add_frame({**RGB_FIELD, "height": 9000}, [b""]), "too_large"),
    "render too wide": (render(width=10000), "too_large"),
    "render over max_message_bytes": (render(width=8192, height=8192), "too_large"),
    "render with depth over max_message_bytes": (render(width=4096, height=4096, depth=True), "too_large"),
    "capacity over max_frames": (request("configure", primitive="nerf", capacity=10001), "too_large"),
    "mesh resolution": (request("export_mesh", resolution=2048), "too_large"),
    # bad_field
    "unknown field": (hello(bogus=1), "bad_field"),
    "missing image": ([pack(without(msgpack.unpackb(frame_with()[0]), "image"))] + [IMAGE.tobytes()], "bad_field"),
    "image not a map": (add_frame("rgb8", [IMAGE.tobytes()]), "bad_field"),
    "unknown encoding": (add_frame({**RGB_FIELD, "encoding": "yuv422"}, [IMAGE.tobytes()]), "bad_field"),
    "32FC3 frame": (add_frame({**RGB_FIELD, "encoding": "32FC3"}, [IMAGE.tobytes()]), "bad_field"),
    "width is a bool": (add_frame({**RGB_FIELD, "width": True}, [IMAGE.tobytes()]), "bad_field"),
    "width is a float": (add_frame({**RGB_FIELD, "width": 4.0}, [IMAGE.tobytes()]), "bad_field"),
    "zero height": (add_frame({**RGB_FIELD, "height": 0}, [b""]), "bad_field"),
    "step below a row": (add_frame({**RGB_FIELD, "step": 11}, [b"\0" * 33]), "bad_field"),
    "step on png": (add_frame({"encoding": "png", "width": 4, "height": 3, "step": 12}, [PNG_4x3]), "bad_field"),
    "depth size differs": (
        add_frame(RGB_FIELD, [IMAGE.tobytes(), b"\0" * 32], depth={"encoding": "32FC1", "width": 4, "height": 2}),
        "bad_field",
    ),
    "depth scale zero": (
        add_frame(
            RGB_FIELD, [IMAGE.tobytes(), b"\0" * 48], depth={"encoding": "32FC1", "width": 4, "height": 3, "scale": 0}
        ),
        "bad_field",
    ),
    "depth rgb8": (add_frame(RGB_FIELD, [IMAGE.tobytes()] * 2, depth=RGB_FIELD), "bad_field"),
    "primitive missing": (request("configure"), "bad_field"),
    "primitive unknown": (request("configure", primitive="sdf"), "bad_field"),
    "config not a map": (request("configure", primitive="nerf", config=[1]), "bad_field"),
    "aabb_scale not a power of two": (request("configure", primitive="nerf", aabb_scale=3), "bad_field"),
    "offset of 2": (request("configure", primitive="nerf", offset=[0.5, 0.5]), "bad_field"),
    "min_frames over capacity": (request("configure", primitive="nerf", capacity=4, min_frames=5), "bad_field"),
    "render encoding": (render(encoding="bmp"), "bad_field"),
    "render quality": (render(quality=0), "bad_field"),
    "render depth not bool": (render(depth=1), "bad_field"),
    "empty path": (request("save", path=""), "bad_field"),
    "path with NUL": (request("load", path="a\0b"), "bad_field"),
    "missing path": (request("save"), "bad_field"),
    "mesh format": (request("export_mesh", format="stl"), "bad_field"),
    "mesh resolution below 16": (request("export_mesh", resolution=8), "bad_field"),
    "view name with slash": (request("clear_view", name="a/b"), "bad_field"),
    "view rate zero": (
        [pack({**msgpack.unpackb(render()[0]), "type": "set_view", "name": "v", "rate": 0})],
        "bad_field",
    ),
    "view rate over the limit": (
        [pack({**msgpack.unpackb(render()[0]), "type": "set_view", "name": "v", "rate": 61})],
        "bad_field",
    ),
    "status with a field": (request("status", verbose=True), "bad_field"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_error_cases(case):
    frames, code = ERROR_CASES[case]
    with pytest.raises(proto.ProtocolError) as info:
        proto.parse_request(frames)
    assert info.value.code == code, info.value.message
    assert type(info.value) is proto.ERROR_CODES[code]
    # a readable seq is echoed into the error so the server can address its reply
    header = frames[0] if frames else b""
    try:
        seq = msgpack.unpackb(header).get("seq")
    except Exception:
        seq = None
    if code not in ("bad_header", "too_large") and isinstance(seq, int) and not isinstance(seq, bool):
        assert info.value.seq == seq
    # and the error reply always fits within the limits
    reply = proto.encode_message(proto.make_error(info.value.seq, info.value.code, info.value.message))
    assert len(reply[0]) < proto.DEFAULT_LIMITS.max_header_bytes


def test_oversize_message_with_default_limits():
    big = bytes(proto.DEFAULT_LIMITS.max_message_bytes)
    with pytest.raises(proto.TooLargeError):
        proto.parse_request(frame_with()[:1] + [big])


def test_custom_limits_are_enforced():
    limits = proto.Limits(max_message_bytes=1000, max_image_width=2, max_depth=3)
    with pytest.raises(proto.TooLargeError, match="max_message_bytes"):
        proto.parse_request(frame_with() + [b"\0" * 1000], limits)
    with pytest.raises(proto.TooLargeError, match="limit 2"):
        proto.parse_request(frame_with(), limits)
    with pytest.raises(proto.BadHeaderError, match="max_depth=3"):
        proto.decode_header(pack({"a": {"b": {"c": {}}}}), limits)
    assert proto.decode_header(pack({"a": {"b": {"c": 1}}}), limits) == {"a": {"b": {"c": 1}}}


def test_error_seq_is_attached_and_messages_name_the_field():
    with pytest.raises(proto.BadIntrinsicsError, match=r"'intrinsics\.fx' must be > 0") as info:
        proto.parse_request(frame_intrinsics(fx=-1.0))
    assert info.value.seq == 7
    with pytest.raises(proto.BadVersionError) as info:
        proto.parse_request(hello(v=3))
    assert info.value.seq == 7


# ---------------------------------------------------------------------------------------------------------------
# docs/protocol.md stays in sync
# ---------------------------------------------------------------------------------------------------------------

DOC_TEXT = DOC.read_text()
EXAMPLE = re.compile(r"<!-- wire-example: (\S+) -->\s*```json\n(.*?)\n```.*?```text\n(.*?)```", re.S)
PAYLOAD = re.compile(r"<!-- wire-example-payload: (\S+) -->\s*```text\n(.*?)```", re.S)


def _hex(text: str) -> str:
    return "".join(text.split())


def test_doc_byte_examples_match_the_code():
    examples = {m[1]: (json.loads(m[2]), _hex(m[3])) for m in EXAMPLE.finditer(DOC_TEXT)}
    payloads = {m[1]: bytes.fromhex(_hex(m[2])) for m in PAYLOAD.finditer(DOC_TEXT)}
    assert {"hello", "add_frame", "add_frame_ok"} <= set(examples)
    for name, (header, hexdump) in examples.items():
        assert pack(header).hex() == hexdump, name
    hello_request = proto.parse_request([bytes.fromhex(examples["hello"][1])])
    assert isinstance(hello_request, proto.Hello) and hello_request.client == "example/1.0"
    frame = proto.parse_request([bytes.fromhex(examples["add_frame"][1]), payloads["add_frame"]])
    np.testing.assert_array_equal(frame.image, [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]])
    np.testing.assert_array_equal(frame.pose[:3, 3], [0, 0, 3])
    reply = proto.parse_reply([bytes.fromhex(examples["add_frame_ok"][1])])
    assert reply.version == 2 and reply.fields == {"index": 0, "frame_count": 1, "kept": True, "refine_pose": False}


def test_doc_names_every_type_code_limit_and_field():
    names = [
        *proto.REQUEST_TYPES,
        *(f"{t}_ok" for t in proto.REQUEST_TYPES),
        *proto.ERROR_CODES,
        *proto.DEFAULT_LIMITS.to_dict(),
        *proto.CAPABILITIES,
        *proto.TRAINING_STATES,
        *proto.IMAGE_ENCODINGS,
        *proto.DEPTH_ENCODINGS,
        *proto.CAMERA_MODELS,
        *proto.POSE_CONVENTIONS,
        *proto.MESH_FORMATS,
        *(f for fields in proto.REPLY_FIELDS.values() for f in fields),
        proto.DEFAULT_REQUEST_ENDPOINT,
        proto.DEFAULT_FRAME_ENDPOINT,
        proto.DEFAULT_VIEW_ENDPOINT,
    ]
    missing = sorted({n for n in names if f"`{n}`" not in DOC_TEXT})
    assert not missing
    for name, value in proto.DEFAULT_LIMITS.to_dict().items():
        assert re.search(rf"`{name}` \| {value}", DOC_TEXT), name


# ---------------------------------------------------------------------------------------------------------------
# Fuzzing: only ProtocolError may come out
# ---------------------------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=10,
)
WITH_BIN = st.recursive(  # bin values are never valid in a header: keep them to a few cases
    st.binary(max_size=8), lambda kids: st.lists(kids, max_size=2) | st.dictionaries(st.text(max_size=4), kids)
)


def mostly(valid: st.SearchStrategy, other: st.SearchStrategy = JSON) -> st.SearchStrategy:
    """``valid`` nine times in ten, ``other`` otherwise."""
    return st.integers(0, 9).flatmap(lambda i: other if i == 0 else valid)


SMALL_INT = st.integers(-2, 8) | st.sampled_from([0, 8192, 8193, 2**32, 2**64 - 1])
NUMBER = st.floats() | st.integers(-5, 5)
IDENTITY = [float(x) for x in np.eye(4).ravel()]
PLAUSIBLE = {
    "image": st.fixed_dictionaries(
        {
            "encoding": st.sampled_from([*proto.IMAGE_ENCODINGS, *proto.DEPTH_ENCODINGS, "x"]),
            "width": SMALL_INT,
            "height": SMALL_INT,
        },
        optional={"step": SMALL_INT, "is_bigendian": st.booleans(), "scale": NUMBER},
    ),
    "intrinsics": st.fixed_dictionaries(
        {"fx": NUMBER, "fy": NUMBER, "cx": NUMBER, "cy": NUMBER},
        optional={"model": st.sampled_from([*proto.CAMERA_MODELS, "x"]), "dist": st.lists(NUMBER, max_size=5)},
    ),
    "pose": st.fixed_dictionaries(
        {
            # a fresh list each time: mutated() edits what it draws in place
            "matrix": st.builds(list, st.just(IDENTITY)) | st.lists(NUMBER, min_size=15, max_size=17),
            "convention": st.sampled_from([*proto.POSE_CONVENTIONS, "x"]),
        }
    ),
    "encoding": st.sampled_from([*proto.IMAGE_ENCODINGS, "x"]),
    "width": SMALL_INT,
    "height": SMALL_INT,
    "quality": SMALL_INT,
    "rate": NUMBER,
    "name": st.sampled_from(["v", "a/b", ""]),
    "path": st.text(max_size=4),
    "primitive": st.sampled_from(["nerf", "x"]),
    "capacity": SMALL_INT,
    "min_frames": SMALL_INT,
    "aabb_scale": SMALL_INT,
    "resolution": st.integers(0, 2000),
    "format": st.sampled_from([*proto.MESH_FORMATS, "x"]),
}
PLAUSIBLE["depth"] = PLAUSIBLE["image"] | st.booleans()
HEADERS = st.fixed_dictionaries(
    {
        "v": mostly(st.just(1)),
        "type": mostly(st.sampled_from(list(proto.REQUEST_TYPES)), st.text(max_size=6)),
        "seq": mostly(st.integers(0, 2**64 - 1)),
        "stamp_ns": mostly(st.integers(0, 2**63 - 1)),
    },
    optional={"extra": mostly(JSON, WITH_BIN), **{name: mostly(strategy) for name, strategy in PLAUSIBLE.items()}},
)
PAYLOADS = st.lists(st.binary(max_size=48), max_size=3)


def check(frames: list) -> None:
    """Parse ``frames``: success yields a sane request, failure only a ProtocolError with a known code."""
    try:
        parsed = proto.parse_request(frames)
    except proto.ProtocolError as e:
        assert e.code in proto.ERROR_CODES and isinstance(e.message, str)
        assert e.seq is None or 0 <= e.seq < 2**64
        return
    assert isinstance(parsed, proto.REQUEST_TYPES[parsed.TYPE])
    if isinstance(parsed, (proto.AddFrame, proto.Render, proto.SetView)):
        assert parsed.pose.shape == (4, 4) and np.all(np.isfinite(parsed.pose))
    if isinstance(parsed, proto.AddFrame):
        assert parsed.image.dtype == np.uint8 and parsed.image.shape[2] in (3, 4)


@FUZZ
@given(st.binary(max_size=64), PAYLOADS)
def test_fuzz_arbitrary_bytes(header, payloads):
    try:
        proto.decode_header(header)
    except proto.ProtocolError as e:
        assert e.code in ("bad_header", "too_large")
    check([header, *payloads])


@FUZZ
@given(HEADERS, PAYLOADS)
def test_fuzz_arbitrary_headers(header, payloads):
    check([pack(header), *payloads])


VALID = [
    (msgpack.unpackb(frames[0]), [bytes(p) for p in frames[1:]])
    for frames in [r.to_frames() for r in SAMPLE_REQUESTS] + [add_frame(proto.encode_image(IMAGE, "png")[0], [PNG_4x3])]
]


@st.composite
def mutated(draw) -> list:
    header, payloads = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        spare_common = draw(mostly(st.just(True), st.just(False)))
        keys = [k for k in sorted(header) if not (spare_common and k in ("v", "type", "seq", "stamp_ns"))]
        target, key = header, (draw(st.sampled_from(keys)) if keys else None)
        while key is not None and isinstance(target[key], (dict, list)) and target[key] and draw(st.booleans()):
            target = target[key]
            key = draw(st.sampled_from(sorted(target)) if isinstance(target, dict) else st.integers(0, len(target) - 1))
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if action == "set" and key is not None:
            target[key] = draw(mostly(PLAUSIBLE.get(key, NUMBER)) if isinstance(key, str) else mostly(NUMBER))
        elif action == "delete" and isinstance(target, dict) and key is not None:
            del target[key]
        elif isinstance(target, dict):
            target[draw(st.text(max_size=6))] = draw(JSON)
    broken = [payloads[:-1], [*payloads, b""], [p[:-1] for p in payloads]]
    payloads = draw(mostly(st.just(payloads), st.sampled_from(broken)))
    data = bytearray(pack(header))
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2]))):  # and sometimes corrupt a byte of the header
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return [bytes(data), *payloads]


@FUZZ_DEEP
@given(mutated())
def test_fuzz_mutated_valid_requests(frames):
    check(frames)
