"""Reading ROS bags with ``rosbags`` (no ROS installation): ROS 1 ``.bag``, ROS 2 sqlite3 and MCAP.

:class:`Bag` opens one recording (a ``.bag`` file, a ROS 2 bag folder with ``metadata.yaml``, or a lone
``.db3`` / ``.mcap`` file), lists its topics and yields deserialised messages in log-time order. Every failure a
user can cause (missing or truncated file, unknown topic, a topic of the wrong type, a message that does not
deserialise) is a :class:`BagError` that names the bag and the topic.

Needs the optional extra ``ros`` (``pip install ngp-sdk[ros]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ngp_sdk.core.errors import DataError

__all__ = ["BagError", "BagMessage", "Bag", "IMAGE_TYPES", "CAMERA_INFO_TYPE", "TF_TYPE", "POSE_TYPES"]

#: Message types of image topics.
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
TF_TYPE = "tf2_msgs/msg/TFMessage"
#: Message types of a ``--pose-topic``.
POSE_TYPES = ("geometry_msgs/msg/PoseStamped", "nav_msgs/msg/Odometry")


class BagError(DataError):
    """A bag cannot be read, or lacks a topic the job needs."""


@dataclass(frozen=True)
class BagMessage:
    """One message: ``topic``, ``msgtype``, ``log_time_ns`` (when it was recorded) and the deserialised ``msg``."""

    topic: str
    msgtype: str
    log_time_ns: int
    msg: Any


def _import_rosbags():
    try:
        from rosbags.highlevel import AnyReader
    except ImportError as e:  # pragma: no cover - depends on the install
        raise BagError("reading bags needs the 'rosbags' package: pip install 'ngp-sdk[ros]'") from e
    return AnyReader


class Bag:
    """An open recording; use as a context manager.

    Args:
        path: ``.bag`` file, ROS 2 bag folder, ``.db3`` or ``.mcap`` file.

    Raises:
        BagError: the path does not exist or is not a readable bag (truncated, corrupt, foreign format).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        any_reader = _import_rosbags()
        try:
            self._reader = any_reader([self.path])
            self._reader.open()
        except Exception as e:  # rosbags raises several unrelated types for damaged files
            raise BagError(f"cannot read bag {self.path}: {type(e).__name__}: {e} "
                           f"(truncated or not a ROS 1 / ROS 2 bag)") from None

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def topics(self) -> dict[str, str]:
        """``{topic: message type}`` of every topic in the bag."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def time_range_ns(self) -> tuple[int, int]:
        """``(start, end)`` log time of the recording."""
        return int(self._reader.start_time), int(self._reader.end_time)

    def message_count(self, topics: Iterable[str]) -> int:
        """Number of messages on ``topics``."""
        wanted = set(topics)
        return sum(int(c.msgcount) for c in self._reader.connections if c.topic in wanted)

    def require(self, topic: str, types: tuple[str, ...] | str, *, what: str) -> str:
        """Check ``topic`` exists with one of ``types``; returns its type.

        Raises:
            BagError: naming the topics the bag does have (and their types).
        """
        types = (types,) if isinstance(types, str) else types
        have = self.topics
        if topic not in have:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(have.items())) or "none"
            raise BagError(f"{what} topic {topic} is not in bag {self.path}; its topics: {listing}")
        if have[topic] not in types:
            raise BagError(f"{what} topic {topic} carries {have[topic]}, expected {' or '.join(types)}")
        return have[topic]

    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage]:
        """Deserialised messages on ``topics`` in log-time order.

        Raises:
            BagError: a message cannot be read or deserialised (e.g. a chunk of a truncated file).
        """
        wanted = set(topics)
        conns = [c for c in self._reader.connections if c.topic in wanted]
        if not conns:
            return
        it = self._reader.messages(connections=conns)
        while True:
            try:
                conn, stamp, raw = next(it)
            except StopIteration:
                return
            except Exception as e:
                raise BagError(f"bag {self.path} is damaged while reading {', '.join(sorted(wanted))}: "
                               f"{type(e).__name__}: {e}") from None
            try:
                msg = self._reader.deserialize(raw, conn.msgtype)
            except Exception as e:
                raise BagError(f"bag {self.path}: a {conn.msgtype} message on {conn.topic} at "
                               f"{stamp / 1e9:.3f} s does not deserialise ({type(e).__name__}: {e})") from None
            yield BagMessage(conn.topic, conn.msgtype, int(stamp), msg)
