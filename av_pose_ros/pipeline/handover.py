"""Handover stage handler: 3D poses -> the offered hand, filtered, in the manipulator base frame, with reach and
the handover state (no rclpy).

Interface (handover_node and `av-pose reprocess` drive it the same way)::

    stage = HandoverTracker(p)                 # p: handover_node parameters (read on every call: live changes hold)
    out = stage.on_pose(pose, lookup)          # -> HandoverOutput(target | None, state, state_changed)
    out = stage.on_clock(now_ns)               # periodically: tracks without poses expire, state decays to idle
    stage.reset()                              # time jumped back: forget every track, state idle

`lookup(target, source, stamp_ns) -> target_from_source` (4x4) is a TF buffer's or an offline TransformTree's;
it raises LookupError (TransformError) when the transform is missing, which becomes StageError("tf").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from av_pose_ros.handover import (
    IDLE,
    OFFERED,
    READY,
    ConstantVelocityFilter,
    HandoverState,
    HandSelector,
    ReachEnvelope,
    Readiness,
    ReadyRule,
    StateRule,
    approach_orientation,
    most_urgent,
)
from av_pose_ros.handover.arm import BoneLengths, reconstruct_arm
from av_pose_ros.handover.readiness import plausible_arm, position_std
from av_pose_ros.pipeline.common import Lookup, StageError, require_coco17
from av_pose_ros.pipeline.params import Param
from av_pose_ros.primitives.geometry import apply_transform
from av_pose_ros.primitives.skeleton import JOINT_INDEX

# handover_node's parameters (here, next to the handler, so `av-pose reprocess` reads them without the node)
PARAMS = [
    Param("base_frame", "base_link", "Manipulator base frame the target is expressed in."),
    Param("reach_frame", "arm_base_link", "TF frame the reach envelope is centred on (the arm's shoulder link); the "
          "offer score's 'towards the robot' cue points at it too."),
    Param("min_offer_score", 0.6, "How clearly a hand must be offered (0..1) before a target is published (the "
          "enter threshold).", 0.0, 1.0),
    Param("leave_offer_score", 0.45, "An offered hand stays offered while it scores at least this (the leave "
          "threshold; at or above min_offer_score: no score hysteresis).", 0.0, 1.0),
    Param("enter_dwell_s", 0.3, "The offer must be seen this long before the state says 'offered' (s).", 0.0, 10.0),
    Param("leave_dwell_s", 0.4, "No offered hand this long before the state says 'withdrawn' (s); a real "
          "withdrawal is reported within it.", 0.0, 10.0),
    Param("switch_margin", 0.15, "Score margin the other hand needs before the chosen hand switches.", 0.0, 1.0),
    Param("min_joint_confidence", 0.2, "Wrist/elbow confidence below which a hand is ignored.", 0.0, 1.0),
    Param("accel_std", 0.5, "Kalman process noise: how fast a hand may change velocity (m/s^2); a held hand "
          "barely accelerates, and lower values smooth the lifter's frame-to-frame noise more (a reach lags).",
          0.01, 50.0),
    Param("measurement_std_m", 0.03, "Wrist position noise used when the pose carries no covariance (m).",
          0.001, 1.0),
    Param("track_timeout_s", 1.0, "A body unseen this long (clock time) is dropped and counts as withdrawn at "
          "once; its next pose starts a fresh track.",
          0.05, 60.0),
    Param("reach_min_radius_m", 0.25, "Reach envelope: minimum distance from the reach frame (m).", 0.0, 5.0),
    Param("reach_max_radius_m", 0.85, "Reach envelope: maximum distance from the reach frame (m).", 0.0, 5.0),
    Param("reach_min_z_m", 0.4, "Reach envelope: lowest target height in the base frame (m).", -5.0, 5.0),
    Param("reach_max_z_m", 1.8, "Reach envelope: highest target height in the base frame (m).", -5.0, 5.0),
    Param("hold_s", 0.5, "Reachable only after the hand was inside, confident and still this long (s).", 0.0, 10.0),
    Param("max_speed_mps", 0.15, "Filtered hand speed below which the hand counts as still (m/s).", 0.0, 5.0),
    Param("min_reach_confidence", 0.5, "Wrist and elbow lifter confidence a reachable target needs.", 0.0, 1.0),
    Param("max_position_std_m", 0.08, "Largest wrist standard deviation (from the pose covariance) a reachable "
          "target may have (m).", 0.0, 5.0),
    Param("forearm_ratio_range", [0.6, 1.0], "Forearm / upper-arm length ratio a reachable target's lifted arm must "
          "have (human arms: about 0.8); outside it the arm is implausible whatever the lifter's confidence."),
    Param("ready_grace_s", 0.3, "Failing frames this short do not restart the hold_s count and do not end "
          "'ready' (a failing frame's own target is never reachable); 0: any failure restarts the hold.", 0.0, 5.0),
    Param("withdrawn_s", 1.0, "How long the state says 'withdrawn' after an offered hand went away (s).", 0.0, 60.0),
    Param("arm_from_bone_lengths", True, "Place each arm's elbow and wrist on their camera rays at the person's own "
          "bone lengths (measured while the bone was seen across the view) instead of the lifter's depth, which is "
          "worst for an arm held out towards the camera; the wrist covariance follows (handover/arm.py)."),
    Param("camera_frame", "camera_optical_frame", "TF frame of the camera the poses were lifted from (its origin "
          "is the rays' origin); used by arm_from_bone_lengths."),
    Param("arm_covariance_scale", 0.39, "Variance factor on the rebuilt wrist's covariance: its calibration (fitted "
          "so that the 1-sigma ellipsoid holds 68 % of the true wrists on validation demo runs; "
          "benchmarks/bench_handover.py breaks the errors down).", 0.01, 100.0),
    Param("min_bone_samples", 5, "Across-view measurements each bone of an arm needs before its lengths are "
          "trusted (until then the lifted arm is used).", 1, 1000),
    Param("require_bone_lengths", True, "With arm_from_bone_lengths: a hand is reachable only once its arm was "
          "rebuilt from the person's bone lengths. Until they are measured (someone already in front of the camera "
          "when tracking started) the target is published but not reachable: the lifter's own depth of an arm held "
          "out towards the camera is 0.1-0.2 m off at handover range (benchmarks/bench_handover.py)."),
    Param("bone_window", 30, "Across-view measurements kept per bone (the newest): the person in front of the camera "
          "now, not an earlier visitor tracked under the same body id.", 1, 10000),
]


@dataclass
class HandoverResult:
    hand: str
    position: np.ndarray        # (3,) filtered wrist, base frame (m)
    orientation: np.ndarray     # (x, y, z, w): x axis along the forearm (elbow -> wrist)
    velocity: np.ndarray        # (3,) m/s, base frame
    confidence: float           # offer score x joint confidence, 0..1
    reachable: bool             # inside the envelope, confident and held still for hold_s
    distance: float             # m from the reach frame's origin
    state: str = IDLE           # this body's handover state
    held_s: float = 0.0         # how long the hand has been inside, confident and still (s)
    position_std_m: float = 0.0  # worst-direction standard deviation of the measured wrist (m)
    gates: dict = field(default_factory=dict)   # each condition of `reachable` (readiness.gates), for breakdowns


@dataclass
class HandoverOutput:
    target: HandoverResult | None   # the target to publish, None while no hand is offered
    state: str                      # the handover state over all tracked people (ready > offered > withdrawn > idle)
    state_changed: bool             # `state` differs from the previous output's
    time_jumped: bool = False       # the pose's stamp went back by more than track_timeout_s: tracks were reset
    note: str | None = None         # a degraded but working stage (no camera frame for the arm rebuild)


class _Track:
    def __init__(self, p):
        self.selector = HandSelector(p.min_offer_score, p.switch_margin, p.min_joint_confidence,
                                     p.leave_offer_score)
        self.filter = ConstantVelocityFilter(p.accel_std, p.track_timeout_s)
        self.readiness = Readiness()
        self.state = HandoverState()
        self.bones = BoneLengths(int(p.bone_window))
        self.hand: str | None = None
        self.last_ns = 0                     # stamp of its newest pose
        self.fresh = True                    # a pose arrived since the last on_clock
        self.seen_clock_ns: int | None = None  # clock time of the on_clock that last found it fresh


def _state_rule(p) -> StateRule:
    return StateRule(p.enter_dwell_s, p.leave_dwell_s, p.withdrawn_s, p.ready_grace_s)


def _rule(p) -> ReadyRule:
    ratio = tuple(float(v) for v in p.forearm_ratio_range)
    ratio = ratio if len(ratio) == 2 else (0.0, float("inf"))   # not [low, high]: no proportion check
    return ReadyRule(p.hold_s, p.max_speed_mps, p.min_reach_confidence, p.max_position_std_m, ratio, p.ready_grace_s,
                     bool(p.arm_from_bone_lengths and p.require_bone_lengths))


class HandoverTracker:
    """Per body: the offered hand (with hysteresis), a constant-velocity filter of its wrist in the base frame, its
    readiness and state; the reach envelope is centred on the `reach_frame` TF frame (handover_node parameters)."""

    def __init__(self, p):
        self.p = p
        self.tracks: dict[str, _Track] = {}
        self.state = IDLE

    def reset(self) -> None:
        """Forget every track (a backwards time jump: bag loop, sim restart); the state returns to idle."""
        self.tracks.clear()
        self.state = IDLE

    def on_pose(self, pose, lookup: Lookup) -> HandoverOutput:
        """Handle one HumanPose3D (unpacked). StageError("tf") when the base or reach frame cannot be looked up,
        StageError("input_pose") for joints not in COCO-17."""
        p = self.p
        require_coco17(pose.joint_names, "input_pose")
        try:
            base_from_pose = lookup(p.base_frame, pose.frame_id, pose.stamp_ns)
            base_from_reach = lookup(p.base_frame, p.reach_frame, pose.stamp_ns)
        except LookupError as err:
            raise StageError("tf", f"no transform to {p.base_frame} from {pose.frame_id} or the reach frame "
                                   f"{p.reach_frame}: {err}") from err
        camera, note = None, None
        if p.arm_from_bone_lengths:
            try:
                camera = lookup(p.base_frame, p.camera_frame, pose.stamp_ns)[:3, 3]
            except LookupError as err:   # still a target, with the lifter's (worse) arm depth, and said so
                note = (f"no transform to {p.base_frame} from the camera frame {p.camera_frame}: the offered arm "
                        f"keeps the lifter's depth ({err})")
        newest = max((t.last_ns for t in self.tracks.values()), default=pose.stamp_ns)
        jumped = pose.stamp_ns + p.track_timeout_s * 1e9 < newest
        if jumped:
            self.reset()
        target = self.update(pose, base_from_pose, base_from_reach[:3, 3], camera)
        out = self._output(target)
        out.time_jumped, out.note = jumped, note
        return out

    def on_clock(self, now_ns: int) -> HandoverOutput:
        """Time passes (call it periodically with the node clock): a track that got no pose for track_timeout_s of
        clock time counts as withdrawn, then goes. Arrival, not the stamp, is timed: poses arrive a lifting latency
        after their acquisition stamp, and that latency must not count as the person being gone."""
        timeout_ns = self.p.track_timeout_s * 1e9
        for body, track in list(self.tracks.items()):
            if track.fresh or track.seen_clock_ns is None:
                track.fresh, track.seen_clock_ns = False, now_ns
            elif now_ns - track.seen_clock_ns > timeout_ns:
                state = track.state.lost(now_ns, _state_rule(self.p))
                if state == IDLE:
                    del self.tracks[body]
        return self._output(None)

    def _output(self, target: HandoverResult | None) -> HandoverOutput:
        state = most_urgent(t.state.state for t in self.tracks.values())
        changed, self.state = state != self.state, state
        return HandoverOutput(target, state, changed)

    def update(self, pose, base_from_pose: np.ndarray, reach_center: np.ndarray,
               camera: np.ndarray | None = None) -> HandoverResult | None:
        """The target for this pose given the transforms (base <- pose frame, reach frame origin and, for
        arm_from_bone_lengths, the camera origin in the base frame), or None while no hand is offered (the state
        is not offered or ready)."""
        p = self.p
        joints = apply_transform(base_from_pose, pose.joints)
        rotation = base_from_pose[:3, :3]
        covariance = None if pose.covariance is None else rotation @ pose.covariance @ rotation.T
        track = self._track(pose)
        joints, covariance, arms = self._arms(track, pose, joints, covariance, camera)
        selector = track.selector
        selector.min_score, selector.switch_margin, selector.min_confidence, selector.leave_score = (
            p.min_offer_score, p.switch_margin, p.min_joint_confidence, p.leave_offer_score)
        choice = selector.select(joints, pose.confidence, np.asarray(reach_center, float))
        if choice is None:
            if track.state.update(pose.stamp_ns, False, False, _state_rule(p)) not in (OFFERED, READY):
                track.hand = None        # withdrawn (not merely a frame without the hand): forget the hand
                track.filter.reset()
                track.readiness.reset()
            return None
        if choice.hand != track.hand:
            track.filter.reset()
            track.readiness.reset()
            track.hand = choice.hand
        wrist = JOINT_INDEX[f"{choice.hand}_wrist"]
        wrist_cov = covariance[wrist] if covariance is not None else None
        if wrist_cov is None or not np.any(wrist_cov):
            wrist_cov = np.eye(3) * p.measurement_std_m**2
        track.filter.accel_std, track.filter.reset_after_s = p.accel_std, p.track_timeout_s
        position, velocity = track.filter.update(choice.wrist, wrist_cov, pose.stamp_ns)
        envelope = ReachEnvelope(tuple(float(v) for v in reach_center), p.reach_min_radius_m, p.reach_max_radius_m,
                                 p.reach_min_z_m, p.reach_max_z_m)
        std = position_std(wrist_cov)
        rule = _rule(p)
        shoulder = joints[JOINT_INDEX[f"{choice.hand}_shoulder"]]
        if choice.hand in arms:   # rebuilt from the body's bones: those must look human, and the rays meet them
            lengths, consistent = arms[choice.hand]
            ratio = lengths.fore_m / max(lengths.upper_m, 1e-3)
            plausible = consistent and rule.forearm_ratio[0] <= ratio <= rule.forearm_ratio[1]
        else:
            plausible = plausible_arm(shoulder, choice.elbow, choice.wrist, rule.forearm_ratio)
        reachable = track.readiness.update(pose.stamp_ns, envelope.contains(position), choice.confidence, std,
                                           float(np.linalg.norm(velocity)), rule, plausible, choice.hand in arms)
        state = track.state.update(pose.stamp_ns, True, reachable, _state_rule(p))
        if state not in (OFFERED, READY):
            return None                  # seen, not yet for enter_dwell_s: no target (the filter is warming up)
        return HandoverResult(choice.hand, position, approach_orientation(choice.elbow, choice.wrist), velocity,
                              choice.score * choice.confidence, reachable, envelope.distance(position), state,
                              track.readiness.held_s(pose.stamp_ns), std, dict(track.readiness.gates))

    def _arms(self, track: _Track, pose, joints: np.ndarray, covariance: np.ndarray | None,
              camera: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """arm_from_bone_lengths: the body's bone lengths learn from this pose, then each arm whose lengths are
        known gets its elbow and wrist from them (handover/arm.py). Returns the joints and covariances (base
        frame) with those arms replaced, and {side: (lengths, rays met the bone spheres)} of the rebuilt arms."""
        if camera is None:
            return joints, covariance, {}
        p = self.p
        track.bones.resize(int(p.bone_window))
        source = str(getattr(pose, "source", ""))
        if not (source.endswith("_flagged") or source == "vision_only"):   # a refused or unheard lift measures none
            track.bones.add(joints, pose.confidence, camera, p.min_joint_confidence)
        joints = joints.copy()
        covariance = (np.tile(np.eye(3) * p.measurement_std_m**2, (len(joints), 1, 1)) if covariance is None
                      else covariance.copy())
        arms = {}
        for side in ("left", "right"):
            lengths = track.bones.lengths(side, int(p.min_bone_samples))
            if lengths is None:
                continue
            s, e, w = (JOINT_INDEX[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist"))
            fix = reconstruct_arm(camera, joints[s], joints[e], joints[w], (covariance[s], covariance[e],
                                                                            covariance[w]), lengths)
            joints[e], joints[w], covariance[w] = fix.elbow, fix.wrist, fix.wrist_cov * p.arm_covariance_scale
            arms[side] = (lengths, fix.consistent)
        return joints, covariance, arms

    def _track(self, pose) -> _Track:
        """This body's track: a fresh one when it was unseen for track_timeout_s or time went back."""
        timeout_ns = self.p.track_timeout_s * 1e9
        track = self.tracks.get(pose.body_id)
        if track is not None and abs(pose.stamp_ns - track.last_ns) > timeout_ns:
            track = None
        if track is None:
            track = self.tracks[pose.body_id] = _Track(self.p)
        track.last_ns, track.fresh = pose.stamp_ns, True
        return track
