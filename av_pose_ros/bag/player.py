"""Plays a bag onto the ROS graph: raw serialized bytes (nothing is deserialised), original inter-message timing
scaled by a rate, optional /clock so nodes with use_sim_time follow the bag, and per-topic QoS taken from what the
recording's publishers offered (rosbag2 metadata), else a default by kind of topic."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy

from av_pose_ros.bag.qos import playback_qos
from av_pose_ros.bag.reader import BagReader
from av_pose_ros.bag.typestore import message_class


@dataclass
class PlayResult:
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    loops: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class BagPlayer:
    """Publishers for the bag's topics on `node`; `play()` runs until the end (or `stop` is set)."""

    def __init__(self, node, bag: BagReader, topics: list[str] | None = None, rate: float = 1.0,
                 loop: bool = False, clock: bool = False, start_offset_s: float = 0.0, clock_hz: float = 100.0,
                 status=None):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.node, self.bag, self.rate, self.loop = node, bag, rate, loop
        self.start_offset_ns = int(start_offset_s * 1e9)
        self.clock_period = 1.0 / clock_hz
        self.status = status
        self.warnings: list[str] = []
        self.publishers = {}
        wanted = bag.topics if topics is None else {t: bag.topics[t] for t in topics if t in bag.topics}
        for name in (topics or []):
            if name not in bag.topics:
                self.warnings.append(f"{name} is not in the bag (topics: {', '.join(sorted(bag.topics))})")
        for name, info in sorted(wanted.items()):
            try:
                cls = message_class(info.msgtype)
            except (ImportError, AttributeError, ValueError) as err:
                self.warnings.append(f"not playing {name}: message type {info.msgtype} is not installed ({err})")
                continue
            self.publishers[name] = node.create_publisher(cls, name, playback_qos(name, info.msgtype, info.qos))
        self.clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self._clock_cls = Clock
            self.clock_pub = node.create_publisher(
                Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))

    def _publish_clock(self, bag_ns: int) -> None:
        if self.clock_pub is not None:
            msg = self._clock_cls()
            msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
            self.clock_pub.publish(msg)

    def play(self, stop: threading.Event | None = None) -> PlayResult:
        stop = stop or threading.Event()
        result = PlayResult({t: 0 for t in self.publishers})
        if not self.publishers:
            result.error = "nothing to play"
            return result
        first_ns = self.bag.start_ns + self.start_offset_ns
        span_s = max(self.bag.end_ns - first_ns, 0) * 1e-9
        while not stop.is_set():
            wall0 = time.monotonic()
            last_status = last_clock = 0.0
            bag_ns = first_ns
            for topic, stamp, data in self.bag.messages(list(self.publishers), start_ns=first_ns):
                while True:  # wait for the message's time, publishing /clock meanwhile
                    now = time.monotonic()
                    due = wall0 + (stamp - first_ns) * 1e-9 / self.rate
                    if self.clock_pub is not None and now - last_clock >= self.clock_period:
                        self._publish_clock(first_ns + int((now - wall0) * self.rate * 1e9) if now < due else stamp)
                        last_clock = now
                    if now >= due or stop.is_set():
                        break
                    stop.wait(min(due - now, self.clock_period if self.clock_pub is not None else 0.05))
                if stop.is_set():
                    break
                bag_ns = max(bag_ns, stamp)
                self.publishers[topic].publish(data)
                result.counts[topic] += 1
                if self.status is not None and time.monotonic() - last_status >= 0.5:
                    last_status = time.monotonic()
                    self.status(f"{(bag_ns - first_ns) * 1e-9:7.2f} / {span_s:.2f} s  {result.total} messages"
                                f"{f'  loop {result.loops + 1}' if self.loop else ''}")
            self._publish_clock(bag_ns)
            if self.bag.error:
                result.error = (f"the bag is damaged: played its readable part ({result.total} messages) and "
                                f"stopped at {self.bag.error}")
                break
            result.loops += 1
            if not self.loop:
                break
        self.flush()
        return result

    def flush(self, timeout_s: float = 3.0) -> None:
        """Wait until reliable subscribers have acknowledged what was published: a player that exits right after
        its last message would otherwise take it with it."""
        deadline = time.monotonic() + timeout_s
        for pub in self.publishers.values():
            pub.wait_for_all_acked(Duration(nanoseconds=int(max(deadline - time.monotonic(), 0.0) * 1e9)))


def print_status(line: str) -> None:
    if sys.stdout.isatty():
        print(f"\r[play] {line}", end="", flush=True)
    else:
        print(f"[play] {line}", flush=True)
