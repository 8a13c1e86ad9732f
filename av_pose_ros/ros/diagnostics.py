"""A node's health on /diagnostics plus throttled log lines: what is wrong now, said once per period, never a crash."""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from av_pose_ros.ros.qos import RESULT_QOS

# DiagnosticStatus levels as ints (the message constants are single bytes).
OK, WARN, ERROR, STALE = (int.from_bytes(level, "little") for level in (
    DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE))


class Health:
    """Keeps the current problems of a node (by code) and publishes them as one DiagnosticStatus.

    `problem(code, text)` records an issue, publishes at once when the code is new, and logs it at most once per
    `throttle_s` per code; `clear(code)` removes it, and `good(...)` removes input problems (codes `input*`) that
    have not recurred for `hold_s`, so a bad message among good ones stays visible for a moment and the diagnostic
    still recovers by itself.
    """

    def __init__(self, node, name: str | None = None, period_s: float = 1.0, throttle_s: float = 5.0,
                 hold_s: float = 3.0):
        self._node = node
        self._name = name or node.get_fully_qualified_name()
        self._throttle_s = throttle_s
        self._hold_s = hold_s
        self._problems: dict[str, tuple[int, str]] = {}
        self._raised: dict[str, float] = {}
        self._last_logged: dict[str, float] = {}
        self._values: dict[str, str] = {}
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", RESULT_QOS)
        self._timer = node.create_timer(period_s, self.publish)

    def problem(self, code: str, text: str, level: int = WARN) -> None:
        new = code not in self._problems
        self._problems[code] = (level, text)
        now = time.monotonic()
        self._raised[code] = now
        if new:
            self.publish()
        if now - self._last_logged.get(code, -1e9) >= self._throttle_s:
            self._last_logged[code] = now
            log = self._node.get_logger()
            (log.error if level >= ERROR else log.warning)(f"[{code}] {text}")

    def clear(self, *codes: str) -> None:
        for code in codes:
            self._problems.pop(code, None)

    def good(self, **values) -> None:
        """Good data arrived: clear input problems older than the hold and record the latest figures."""
        now = time.monotonic()
        self.clear(*[c for c in self._problems if c.startswith("input") and now - self._raised[c] >= self._hold_s])
        self.set(**values)

    def set(self, **values) -> None:
        self._values.update({k: str(v) for k, v in values.items()})

    @property
    def level(self) -> int:
        return max((lvl for lvl, _ in self._problems.values()), default=OK)

    def status(self) -> DiagnosticStatus:
        level = self.level
        message = "; ".join(f"{code}: {text}" for code, (_, text) in sorted(self._problems.items())) or "ok"
        values = [KeyValue(key=k, value=v) for k, v in sorted(self._values.items())]
        return DiagnosticStatus(level=bytes([level]), name=self._name, message=message,
                                hardware_id=self._node.get_name(), values=values)

    def publish(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        array.status = [self.status()]
        self._pub.publish(array)
