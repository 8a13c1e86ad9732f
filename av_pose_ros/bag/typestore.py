"""A rosbags type store that knows the standard ROS 2 Kilted types plus this package's messages (read from the
`msg/` files that rosidl builds, so the stored definitions are exactly the ones on the wire)."""

from __future__ import annotations

import importlib
from functools import lru_cache

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from av_pose_ros.primitives.paths import package_file


@lru_cache(maxsize=1)
def typestore():
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(package_file("msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"av_pose_ros/msg/{path.stem}"))
    store.register(types)
    return store


def stamp_ns(stamp) -> int:
    """Nanoseconds of a deserialized builtin_interfaces/Time (sec, nanosec)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def message_class(msgtype: str) -> type:
    """The generated Python class of 'pkg/msg/Name' (what rosidl_runtime_py.get_message does)."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)
