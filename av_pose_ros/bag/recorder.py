"""Records topics into a rosbag2 (mcap by default) from raw serialized subscriptions, so nothing is deserialised
on the way: the bytes on the wire are the bytes in the bag. Topics are found by discovery, and each is subscribed
with a QoS compatible with its publishers (best effort for sensor streams, transient local for /tf_static)."""

from __future__ import annotations

import threading
from pathlib import Path

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer

from av_pose_ros.bag.qos import to_bag_qos
from av_pose_ros.bag.typestore import message_class, typestore

STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def subscription_qos(node, topic: str) -> QoSProfile:
    """Best effort if any publisher is best effort (it would not match a reliable reader); transient local if
    every publisher is (latched data such as /tf_static)."""
    infos = node.get_publishers_info_by_topic(topic)
    best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
    latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else
                      ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else
                      DurabilityPolicy.VOLATILE)


class BagRecorder:
    """Subscribe to `topics` (or every topic when None) on `node` and write what arrives to `path`;
    `on_message(topic)` is called after each write."""

    def __init__(self, node, path: str | Path, topics: list[str] | None = None, storage: str = "mcap",
                 on_message=None):
        if storage not in STORAGE:
            raise ValueError(f"storage must be one of {', '.join(STORAGE)}")
        self.node = node
        self.topics = topics
        self.on_message = on_message
        self.writer = Writer(Path(path), version=9, storage_plugin=STORAGE[storage])
        self.writer.open()
        self.store = typestore()
        self.connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._timer = node.create_timer(0.5, self.discover)
        self.discover()

    def discover(self) -> None:
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self.connections or (self.topics is not None and topic not in self.topics):
                continue
            if topic in ("/rosout", "/parameter_events") and self.topics is None:
                continue
            publishers = self.node.get_publishers_info_by_topic(topic)
            if not publishers:
                continue  # only subscribers so far: wait for a publisher to choose a compatible QoS
            msgtype = types[0]
            try:
                python_type = message_class(msgtype)
                conn = self.writer.add_connection(topic, msgtype, typestore=self.store,
                                                  offered_qos_profiles=[to_bag_qos(i.qos_profile) for i in publishers])
            except (AttributeError, ModuleNotFoundError, ValueError, KeyError) as err:
                self.node.get_logger().warning(f"not recording {topic} ({msgtype}): {err}")
                self.connections[topic] = None
                continue
            self.connections[topic] = conn
            self.counts[topic] = 0
            self.node.create_subscription(python_type, topic, lambda data, c=conn, t=topic: self._write(c, t, data),
                                          subscription_qos(self.node, topic), raw=True)

    def _write(self, connection, topic: str, data: bytes) -> None:
        with self._lock:
            if self.writer is None:
                return
            self.writer.write(connection, self.node.get_clock().now().nanoseconds, data)
            self.counts[topic] += 1
        if self.on_message is not None:
            self.on_message(topic)

    def close(self) -> None:
        with self._lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        self._timer.cancel()
