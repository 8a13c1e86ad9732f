"""Backwards time jumps for a node: `bag play --loop --clock` starting over, a simulator restarted, /clock reset.

Two signs of the same event, whichever comes first: the node's clock jumping back (rclpy jump callback; under
use_sim_time that is /clock) and the stamps of an input stream going back by more than a tolerance (also without
/clock, e.g. a bag looped onto a node on system time). Either calls the node's `on_jump` (with one info line per
event), so stage handlers, pairing and the TF buffer can drop the future they hold."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rclpy.clock import ClockChange, JumpThreshold
from rclpy.duration import Duration

from av_pose_ros.pipeline.common import BackwardsTime


class TimeJumps:
    def __init__(self, node, on_jump: Callable[[], None], tolerance_s: float = 1.0, debounce_s: float = 2.0):
        self._node = node
        self._on_jump = on_jump
        self._tolerance_s = tolerance_s
        self._debounce_s = debounce_s
        self._streams: dict[str, BackwardsTime] = {}
        self._lock = threading.Lock()
        self._last_jump = -1e9
        self._clock_target_ns: int | None = None   # the clock's time just after its last jump back
        self.jumps = 0
        threshold = JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-int(tolerance_s * 1e9)),
                                  on_clock_change=False)
        self._handle = node.get_clock().create_jump_callback(threshold, post_callback=self._on_clock_jump)

    def _on_clock_jump(self, jump) -> None:
        if jump.clock_change == ClockChange.ROS_TIME_NO_CHANGE:
            self._clock_target_ns = self._node.get_clock().now().nanoseconds
            self._fire(f"the clock went back {-jump.delta.nanoseconds * 1e-9:.1f} s")

    def stamp(self, stream: str, stamp_ns: int) -> bool:
        """Note an input stamp; True (after handling the jump) when it went back by more than the tolerance.

        Stamps that go back from the old timeline (ahead of where the clock jumped to) to the new one are the clock
        jump seen again, however late a lagging upstream node delivers them: the reset runs, the line is not
        repeated."""
        with self._lock:
            watch = self._streams.setdefault(stream, BackwardsTime(self._tolerance_s))
            back = watch.newest_ns is not None and stamp_ns < watch.newest_ns - watch.tolerance_ns
            newest = watch.newest_ns
            watch.jumped(stamp_ns)
        if back:
            target, tol = self._clock_target_ns, watch.tolerance_ns
            seen = target is not None and newest > target + tol and stamp_ns >= target - tol
            self._fire(f"{stream} stamps went back {(newest - stamp_ns) * 1e-9:.1f} s", keep=stream, seen=seen)
        return back

    def _fire(self, why: str, keep: str | None = None, seen: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            for name, watch in self._streams.items():
                if name != keep:
                    watch.reset()   # the other streams will start over too; their old newest is the future now
            repeated = seen or now - self._last_jump < self._debounce_s
            self._last_jump = now
        if not repeated:  # one line per event; the reset itself runs every time (late messages of the old timeline)
            self.jumps += 1
            self._node.get_logger().info(f"time jumped back ({why}): resetting pairing, stage state and the TF "
                                         "buffer")
        self._on_jump()
