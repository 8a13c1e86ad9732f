"""When an offered hand may be taken, and the small state a task layer reacts to.

A manipulator should only plan to a hand that is inside its reach envelope, measured confidently and held still:
a hand on its way out or back is a moving target, and a wrist the lifter is unsure of (low confidence, wide
covariance, an arm without human proportions) is a guess. ``Readiness``
turns those three conditions into one `reachable` flag that needs ``hold_s`` of stillness; ``HandoverState`` keeps
``idle`` -> ``offered`` -> ``ready`` -> ``withdrawn`` -> ``idle``, with dwell times (``StateRule``) so a noisy offer
does not make the state flicker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IDLE, OFFERED, READY, WITHDRAWN = "idle", "offered", "ready", "withdrawn"
STATES = (IDLE, OFFERED, READY, WITHDRAWN)
_PRIORITY = {IDLE: 0, WITHDRAWN: 1, OFFERED: 2, READY: 3}


def most_urgent(states) -> str:
    """The state a task layer should see when several people are tracked: ready before offered before withdrawn."""
    return max(states, key=_PRIORITY.__getitem__, default=IDLE)


@dataclass(frozen=True)
class ReadyRule:
    """What `reachable` demands beyond the envelope (handover_node parameters of the same names)."""

    hold_s: float = 0.5               # held still at least this long
    max_speed_mps: float = 0.15       # filtered hand speed below this counts as still
    min_confidence: float = 0.5       # lifter confidence of wrist and elbow
    max_position_std_m: float = 0.08  # largest standard deviation of the wrist's measured covariance
    forearm_ratio: tuple[float, float] = (0.6, 1.0)   # plausible forearm / upper-arm length (anatomy: about 0.8)
    grace_s: float = 0.0              # failures this short do not restart the hold (the failing frames never count)
    require_bone_lengths: bool = False  # the arm must have been rebuilt from the person's bone lengths (arm.py)


def plausible_arm(shoulder: np.ndarray, elbow: np.ndarray, wrist: np.ndarray, ratio: tuple[float, float]) -> bool:
    """Whether the lifted arm has human proportions (forearm / upper arm within ``ratio``): a check that does not
    rely on the lifter's own confidence, which can stay high where it is wrong (conditions it was not trained on)."""
    upper = float(np.linalg.norm(elbow - shoulder))
    return upper > 1e-3 and ratio[0] <= float(np.linalg.norm(wrist - elbow)) / upper <= ratio[1]


def position_std(covariance: np.ndarray) -> float:
    """Largest standard deviation (m) of a 3x3 position covariance: its worst direction."""
    return float(np.sqrt(max(np.linalg.eigvalsh(0.5 * (covariance + covariance.T)).max(), 0.0)))


def gates(inside: bool, confidence: float, std_m: float, speed_mps: float, rule: ReadyRule,
          plausible: bool = True, rebuilt: bool = True) -> dict[str, bool]:
    """Each condition `reachable` needs, by name (what a breakdown of refused targets counts). `rebuilt`: the arm
    was placed at the person's own bone lengths (needed only when the rule requires it)."""
    return {"inside": bool(inside), "confident": confidence >= rule.min_confidence,
            "certain": std_m <= rule.max_position_std_m, "still": speed_mps <= rule.max_speed_mps,
            "plausible": bool(plausible), "bones": bool(rebuilt) or not rule.require_bone_lengths}


class Readiness:
    """Tracks since when a hand has been inside, confident and still; `update` says whether it is reachable."""

    def __init__(self):
        self.still_since_ns: int | None = None
        self.last_ok_ns: int | None = None
        self.gates: dict[str, bool] = {}     # the last update's conditions

    def reset(self) -> None:
        self.still_since_ns = self.last_ok_ns = None

    def update(self, stamp_ns: int, inside: bool, confidence: float, std_m: float, speed_mps: float,
               rule: ReadyRule, plausible: bool = True, rebuilt: bool = True) -> bool:
        """Reachable: every gate passes on this frame and the hold (gaps up to ``grace_s`` of failing frames
        bridged: one frame of a lifter's noise is not the hand moving away) has lasted ``hold_s``."""
        self.gates = gates(inside, confidence, std_m, speed_mps, rule, plausible, rebuilt)
        if not all(self.gates.values()):
            if not _within(self.last_ok_ns, stamp_ns, rule.grace_s):
                self.reset()
            return False
        if self.still_since_ns is None or stamp_ns < self.still_since_ns:
            self.still_since_ns = stamp_ns
        self.last_ok_ns = stamp_ns
        return (stamp_ns - self.still_since_ns) * 1e-9 >= rule.hold_s

    def held_s(self, stamp_ns: int) -> float:
        """How long the hand has been still and inside (s), 0 when it is not."""
        return 0.0 if self.still_since_ns is None else max(0.0, (stamp_ns - self.still_since_ns) * 1e-9)


@dataclass(frozen=True)
class StateRule:
    """How the state debounces a noisy offer (handover_node parameters of the same names).

    A lifted arm near the offer threshold scores above and below it from frame to frame; a task layer that saw
    every crossing would start and abort a handover twice a second. So the offer evidence (the selector's, with
    its own enter/leave score thresholds) must persist before the state follows it: ``enter_dwell_s`` of evidence
    before ``offered``, ``leave_dwell_s`` without it before ``withdrawn``. Each state therefore lasts at least its
    exit dwell, and a real withdrawal is reported at most ``leave_dwell_s`` after the evidence went (plus one frame).
    ``ready`` is left when published targets have not been reachable for ``ready_grace_s`` (moving, outside,
    unsure; 0: at once), so a planner following a held hand is not aborted by one noisy frame, while every target
    still says whether it is reachable itself; a frame without any target (no usable arm) does not end it."""

    enter_dwell_s: float = 0.3
    leave_dwell_s: float = 0.4
    withdrawn_s: float = 1.0     # 'withdrawn' this long, then 'idle'
    ready_grace_s: float = 0.0   # 'ready' survives unreachable targets this long (ReadyRule.grace_s)


def _lasted(since_ns: int | None, now_ns: int, duration_s: float) -> bool:
    """At least `duration_s` from `since_ns` to `now_ns` (1 us of slack: stamps a 10 Hz clock gives 0.2 s apart
    must count as 0.2 s, whatever the float rounding of the parameter)."""
    return since_ns is not None and now_ns - since_ns >= duration_s * 1e9 - 1e3


def _within(since_ns: int | None, now_ns: int, duration_s: float) -> bool:
    """At most `duration_s` from `since_ns` to `now_ns` (same slack)."""
    return since_ns is not None and now_ns - since_ns <= duration_s * 1e9 + 1e3


class HandoverState:
    """``idle`` (no hand offered), ``offered`` (a hand is out, not yet takeable), ``ready`` (reachable),
    ``withdrawn`` (an offered hand went away; for ``withdrawn_s``, then ``idle``), debounced by a ``StateRule``."""

    def __init__(self):
        self.state = IDLE
        self._withdrawn_ns = 0
        self._against_ns: int | None = None   # since when the evidence has disagreed with the state
        self._ready_ns: int | None = None     # the last frame whose target was reachable

    @property
    def engaged(self) -> bool:
        """A hand is (still) counted as offered: offered or ready, including a leave dwell in progress."""
        return self.state in (OFFERED, READY)

    def update(self, stamp_ns: int, offered: bool, ready: bool, rule: StateRule) -> str:
        """One frame's evidence: `offered` (the selector found an offered hand), `ready` (its target is
        reachable)."""
        if offered == self.engaged:
            self._against_ns = None
        elif self._against_ns is None or stamp_ns < self._against_ns:
            self._against_ns = stamp_ns
        if ready:
            self._ready_ns = stamp_ns
        if self.engaged:
            if offered:
                recently = self.state == READY and _within(self._ready_ns, stamp_ns, rule.ready_grace_s)
                self.state = READY if ready or recently else OFFERED
            elif _lasted(self._against_ns, stamp_ns, rule.leave_dwell_s):
                self._withdraw(stamp_ns)
            # else: a gap in the evidence shorter than the dwell (a frame without a usable arm) keeps the state
        elif offered and _lasted(self._against_ns, stamp_ns, rule.enter_dwell_s):
            self.state, self._against_ns = (READY if ready else OFFERED), None
        elif self.state == WITHDRAWN and not offered and _lasted(self._withdrawn_ns, stamp_ns, rule.withdrawn_s):
            self.state = IDLE
        return self.state

    def lost(self, now_ns: int, rule: StateRule) -> str:
        """The body has not been seen for the track timeout (the timeout is its own dwell): withdrawn at once if a
        hand was offered, then idle after ``withdrawn_s``."""
        if self.engaged:
            self._withdraw(now_ns)
        elif self.state == WITHDRAWN and _lasted(self._withdrawn_ns, now_ns, rule.withdrawn_s):
            self.state = IDLE
        self._against_ns = None
        return self.state

    def _withdraw(self, stamp_ns: int) -> None:
        self.state, self._withdrawn_ns, self._against_ns = WITHDRAWN, stamp_ns, None
