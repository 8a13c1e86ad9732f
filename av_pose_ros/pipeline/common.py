"""What every stage handler shares: the error a stage raises for input it cannot use, the report it hands back
(figures and problems for diagnostics), the checks several stages make, and the backwards-time detector. Plain
Python, no rclpy.

A handler is driven by `on_<input>(...)` calls and says what went wrong by raising `StageError(code, text)`; a node
turns that into a throttled warning and a diagnostic, `av-pose reprocess` into a count in its summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from av_pose_ros.primitives.skeleton import COCO17_JOINTS

Lookup = Callable[..., np.ndarray]  # lookup(target, source, stamp_ns) -> target_from_source (4x4), LookupError


class StageError(Exception):
    """Input a stage cannot use; `code` names the diagnostic (input_tf, input_lifting, lifting, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Report:
    """What one call found, for diagnostics: figures to show, problems (code -> text), codes that are fine again."""

    values: dict = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    cleared: list[str] = field(default_factory=list)

    def problem(self, code: str, text: str) -> None:
        self.problems[code] = text

    def clear(self, *codes: str) -> None:
        self.cleared += [c for c in codes if c not in self.problems]


def require_coco17(joint_names, code: str) -> None:
    """StageError unless `joint_names` are the COCO-17 joints in order (what every stage downstream indexes by)."""
    if tuple(joint_names) != COCO17_JOINTS:
        raise StageError(code, "joint_names are not COCO-17 in order")


def require_probe(probe: np.ndarray) -> None:
    """StageError unless an audio window carries the emitted probe (deconvolution needs the samples played)."""
    if np.size(probe) == 0:
        raise StageError("input_no_probe", "AudioFrame carries no probe: the emitted samples are needed to "
                                           "deconvolve")


class BackwardsTime:
    """Says when the stamps of one stream go back by more than `tolerance_s`: a bag that loops, a simulator that
    restarted. Small steps back (reordering, a resynchronised device clock) are not a jump."""

    def __init__(self, tolerance_s: float = 1.0):
        self.tolerance_ns = int(tolerance_s * 1e9)
        self.newest_ns: int | None = None

    def jumped(self, stamp_ns: int) -> bool:
        back = self.newest_ns is not None and stamp_ns < self.newest_ns - self.tolerance_ns
        self.newest_ns = stamp_ns if back or self.newest_ns is None else max(self.newest_ns, stamp_ns)
        return back

    def reset(self) -> None:
        self.newest_ns = None
