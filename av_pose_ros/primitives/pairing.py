"""Pairs two stamped streams by nearest stamp within a slop: the approximate-time policy of message_filters for
exactly two inputs, as plain Python so it runs (and is tested) without ROS.

The first stream leads (camera keypoints): each of its items is paired with the second stream's item nearest in
stamp, once that choice can no longer improve (a later second-stream item has arrived, or `max_wait_ns` passed).
Leading items without a partner within `slop_ns` are reported as unmatched, so a node can say that audio is missing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class Stamped:
    stamp_ns: int
    item: Any


class NearestPairer:
    def __init__(self, slop_ns: int, max_wait_ns: int | None = None, history: int = 50):
        self._fixed_wait = max_wait_ns is not None
        self.set_slop(slop_ns, max_wait_ns)
        self.leading: deque[Stamped] = deque(maxlen=history)
        self.following: deque[Stamped] = deque(maxlen=history)
        self.reset()

    def set_slop(self, slop_ns: int, max_wait_ns: int | None = None) -> None:
        """A new pairing window (a parameter changed); the wait follows it unless it was given explicitly."""
        self.slop_ns = int(slop_ns)
        if max_wait_ns is not None or not self._fixed_wait:
            self.max_wait_ns = int(max_wait_ns) if max_wait_ns is not None else 2 * self.slop_ns

    def reset(self) -> None:
        """Forget everything waiting and the newest stamps: time went back (a bag loops, a simulator restarted),
        and items of the old timeline would otherwise pair with, or time out, the new ones."""
        self.leading.clear()
        self.following.clear()
        self.newest_ns = 0
        self.newest_following_ns = 0

    def add_leading(self, stamp_ns: int, item) -> None:
        self.leading.append(Stamped(stamp_ns, item))
        self.newest_ns = max(self.newest_ns, stamp_ns)

    def add_following(self, stamp_ns: int, item) -> None:
        self.following.append(Stamped(stamp_ns, item))
        self.newest_ns = max(self.newest_ns, stamp_ns)
        self.newest_following_ns = max(self.newest_following_ns, stamp_ns)

    def pop_ready(self) -> tuple[list[tuple[Stamped, Stamped]], list[Stamped]]:
        """(pairs, unmatched): leading items whose partner is settled, and those that will never get one."""
        pairs, unmatched = [], []
        while self.leading:
            lead = self.leading[0]
            later_partner = any(f.stamp_ns >= lead.stamp_ns for f in self.following)
            waited = self.newest_ns - lead.stamp_ns >= self.max_wait_ns
            if not (later_partner or waited):
                break
            self.leading.popleft()
            best = min(self.following, key=lambda f: abs(f.stamp_ns - lead.stamp_ns), default=None)
            if best is not None and abs(best.stamp_ns - lead.stamp_ns) <= self.slop_ns:
                pairs.append((lead, best))
            else:
                unmatched.append(lead)
        # following items far older than anything still waiting can no longer pair
        horizon = (self.leading[0].stamp_ns if self.leading else self.newest_ns) - self.slop_ns
        while self.following and self.following[0].stamp_ns < horizon:
            self.following.popleft()
        return pairs, unmatched
