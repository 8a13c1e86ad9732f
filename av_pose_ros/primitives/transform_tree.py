"""A small transform tree with time: what a TF buffer does, as plain Python (no rclpy), so it is testable alone.

Frames form a forest through parent links. Static transforms hold for all time; dynamic ones are kept for
`cache_s` seconds and interpolated (linear translation, spherical rotation) at the requested stamp. A lookup
outside a dynamic link's history raises `TransformError` rather than extrapolating; a lookup may wait a bounded
time (`timeout_s`) for the transforms to arrive from another thread. `clear()` drops the dynamic history (time went
back) and keeps the static transforms.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict

import numpy as np

from av_pose_ros.primitives.geometry import interpolate_rotation


class TransformError(LookupError):
    """A transform that cannot be looked up: unknown frame, no common root, or stamp outside the history."""


class _Link:
    """History of one child frame's transform from its parent, sorted by stamp."""

    def __init__(self, parent: str, static: bool):
        self.parent = parent
        self.static = static
        self.stamps: list[int] = []
        self.transforms: list[np.ndarray] = []

    def add(self, stamp_ns: int, transform: np.ndarray, cache_ns: int) -> None:
        if self.static:
            self.stamps, self.transforms = [stamp_ns], [transform]
            return
        i = bisect.bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            self.transforms[i] = transform
        else:
            self.stamps.insert(i, stamp_ns)
            self.transforms.insert(i, transform)
        cut = bisect.bisect_left(self.stamps, self.stamps[-1] - cache_ns)
        del self.stamps[:cut], self.transforms[:cut]

    def at(self, stamp_ns: int, child: str) -> np.ndarray:
        if self.static or stamp_ns == 0:
            return self.transforms[-1]
        if not self.stamps[0] <= stamp_ns <= self.stamps[-1]:
            raise TransformError(f"{self.parent} -> {child}: no transform at {stamp_ns * 1e-9:.3f} s (history "
                                 f"{self.stamps[0] * 1e-9:.3f} .. {self.stamps[-1] * 1e-9:.3f} s)")
        i = bisect.bisect_left(self.stamps, stamp_ns)
        if self.stamps[i] == stamp_ns:
            return self.transforms[i]
        t0, t1 = self.stamps[i - 1], self.stamps[i]
        a, b = self.transforms[i - 1], self.transforms[i]
        w = (stamp_ns - t0) / (t1 - t0)
        out = np.eye(4)
        out[:3, 3] = (1 - w) * a[:3, 3] + w * b[:3, 3]
        out[:3, :3] = interpolate_rotation(a[:3, :3], b[:3, :3], w)
        return out


class TransformTree:
    """Transforms between named frames at a time, from parent->child transforms fed in as they arrive."""

    def __init__(self, cache_s: float = 10.0):
        self._cache_ns = int(cache_s * 1e9)
        self._links: dict[str, _Link] = {}
        self._children: dict[str, set[str]] = defaultdict(set)
        self._changed = threading.Condition()

    def set_transform(self, parent: str, child: str, parent_from_child: np.ndarray, stamp_ns: int,
                      static: bool = False) -> None:
        """Record `parent_from_child` (4x4, maps child-frame points into the parent frame) at `stamp_ns`."""
        if not parent or not child or parent == child:
            raise TransformError(f"invalid transform {parent!r} -> {child!r}")
        transform = np.asarray(parent_from_child, dtype=float)
        if transform.shape != (4, 4) or not np.all(np.isfinite(transform)):
            raise TransformError(f"{parent} -> {child}: transform is not a finite 4x4 matrix")
        with self._changed:
            link = self._links.get(child)
            if link is None or link.parent != parent or link.static != static:
                if link is not None:
                    self._children[link.parent].discard(child)
                link = self._links[child] = _Link(parent, static)
                self._children[parent].add(child)
            link.add(int(stamp_ns), transform, self._cache_ns)
            self._changed.notify_all()

    def clear(self) -> None:
        """Forget every dynamic transform (time went back: their stamps are in the future now); static ones stay."""
        with self._changed:
            for child in [c for c, link in self._links.items() if not link.static]:
                self._children[self._links.pop(child).parent].discard(child)

    def frames(self) -> set[str]:
        return set(self._links) | {link.parent for link in self._links.values()}

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self._links:
            path.append(self._links[path[-1]].parent)
            if len(path) > 1000:
                raise TransformError(f"cycle in the transform tree above {frame}")
        return path

    def _root_from(self, path: list[str], stamp_ns: int) -> np.ndarray:
        """Transform mapping points of path[0] into path[k] for the given ancestor path (k = len - 1)."""
        out = np.eye(4)
        for child in path[:-1]:
            out = self._links[child].at(stamp_ns, child) @ out
        return out

    def lookup(self, target: str, source: str, stamp_ns: int = 0, timeout_s: float = 0.0) -> np.ndarray:
        """`target_from_source` (4x4) at `stamp_ns` (0 = latest of every link), waiting up to `timeout_s` for
        transforms that have not arrived yet (another thread feeds them)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                try:
                    return self._lookup(target, source, stamp_ns)
                except TransformError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise
                    self._changed.wait(left)

    def _lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        if target == source:
            return np.eye(4)
        known = self.frames()
        for frame in (target, source):
            if frame not in known:
                raise TransformError(f"frame '{frame}' does not exist (known: {', '.join(sorted(known)) or 'none'})")
        up_source, up_target = self._path_to_root(source), self._path_to_root(target)
        common = next((f for f in up_source if f in set(up_target)), None)
        if common is None:
            raise TransformError(f"'{target}' and '{source}' are not connected (roots '{up_target[-1]}' and "
                                 f"'{up_source[-1]}')")
        common_from_source = self._root_from(up_source[: up_source.index(common) + 1], stamp_ns)
        common_from_target = self._root_from(up_target[: up_target.index(common) + 1], stamp_ns)
        return np.linalg.inv(common_from_target) @ common_from_source
