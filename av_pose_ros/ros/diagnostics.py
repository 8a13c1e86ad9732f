"""A node's health on /diagnostics plus throttled log lines: what is wrong now, said once per period, never a crash.

Thread-safe: nodes report from the executor and from worker threads (lifting, detection, audio capture) at once."""

from __future__ import annotations

import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from av_pose_ros.pipeline.common import Report
from av_pose_ros.ros.qos import RESULT_QOS

# DiagnosticStatus levels as ints (the message constants are single bytes).
OK, WARN, ERROR, STALE = (int.from_bytes(level, "little") for level in (
    DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE))


class Health:
    """Keeps the current problems of a node (by code) and publishes them as one DiagnosticStatus.

    `problem(code, text)` records an issue, publishes at once when the code is new, and logs it at most once per
    `throttle_s` per code; `clear(code)` removes it, and `good(...)` removes input problems (codes `input*`) that
    have not recurred for `hold_s`, so a bad message among good ones stays visible for a moment and the diagnostic
    still recovers by itself. `exception(code, err)` is for what a stage did not expect: ERROR, and the traceback
    logged once per code (later ones only as the throttled line). One lock guards every table.
    """

    def __init__(self, node, name: str | None = None, period_s: float = 1.0, throttle_s: float = 5.0,
                 hold_s: float = 3.0):
        self._node = node
        self._name = name or node.get_fully_qualified_name()
        self._throttle_s = throttle_s
        self._hold_s = hold_s
        self._lock = threading.RLock()
        self._problems: dict[str, tuple[int, str]] = {}
        self._raised: dict[str, float] = {}
        self._last_logged: dict[str, float] = {}
        self._traced: set[str] = set()
        self._values: dict[str, str] = {}
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", RESULT_QOS)
        self._timer = node.create_timer(period_s, self.publish)

    def problem(self, code: str, text: str, level: int = WARN) -> None:
        now = time.monotonic()
        with self._lock:
            new = code not in self._problems
            self._problems[code] = (level, text)
            self._raised[code] = now
            log = now - self._last_logged.get(code, -1e9) >= self._throttle_s
            if log:
                self._last_logged[code] = now
        if new:
            self.publish()
        if log:
            # rclpy fixes a call site's severity at its first call: one call site per severity
            logger = self._node.get_logger()
            if level >= ERROR:
                logger.error(f"[{code}] {text}")
            else:
                logger.warning(f"[{code}] {text}")

    def exception(self, code: str, err: BaseException) -> None:
        """An unexpected exception in a stage: ERROR diagnostic, traceback in the log the first time per code."""
        with self._lock:
            first = code not in self._traced
            self._traced.add(code)
        if first:
            trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            self._node.get_logger().error(f"[{code}] unexpected {type(err).__name__} (traceback shown once):\n{trace}")
        self.problem(code, f"{type(err).__name__}: {err}", ERROR)

    def guard(self, code: str, callback):
        """`callback` wrapped so that an unexpected exception becomes `exception(code, err)` instead of stopping the
        executor (for subscription and timer callbacks)."""
        def guarded(*args):
            try:
                return callback(*args)
            except Exception as err:  # noqa: BLE001 - one bad message must never take the node down
                self.exception(code, err)
        return guarded

    def clear(self, *codes: str) -> None:
        with self._lock:
            for code in codes:
                self._problems.pop(code, None)

    def good(self, **values) -> None:
        """Good data arrived: clear input problems older than the hold and record the latest figures."""
        now = time.monotonic()
        with self._lock:
            self.clear(*[c for c in self._problems if c.startswith("input") and now - self._raised[c] >= self._hold_s])
            self.set(**values)

    def set(self, **values) -> None:
        with self._lock:
            self._values.update({k: str(v) for k, v in values.items()})

    def apply(self, report: Report, good: bool = True) -> None:
        """A stage's report: its problems raised, its cleared codes cleared, its figures recorded (through `good`
        unless `good` is false, so held input problems expire)."""
        for code, text in report.problems.items():
            self.problem(code, text)
        self.clear(*report.cleared)
        (self.good if good else self.set)(**report.values)

    @property
    def level(self) -> int:
        with self._lock:
            return max((lvl for lvl, _ in self._problems.values()), default=OK)

    def codes(self) -> set[str]:
        with self._lock:
            return set(self._problems)

    def status(self) -> DiagnosticStatus:
        with self._lock:
            level = max((lvl for lvl, _ in self._problems.values()), default=OK)
            message = "; ".join(f"{code}: {text}" for code, (_, text) in sorted(self._problems.items())) or "ok"
            values = [KeyValue(key=k, value=v) for k, v in sorted(self._values.items())]
        return DiagnosticStatus(level=bytes([level]), name=self._name, message=message,
                                hardware_id=self._node.get_name(), values=values)

    def publish(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        array.status = [self.status()]
        self._pub.publish(array)
