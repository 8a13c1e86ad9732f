"""Handover stage: 3D poses -> the offered hand, filtered, in the base frame, with reach (no rclpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pose_ros.handover import ConstantVelocityFilter, HandSelector, ReachEnvelope, approach_orientation
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.primitives.geometry import apply_transform
from av_pose_ros.primitives.skeleton import COCO17_JOINTS, JOINT_INDEX


@dataclass
class HandoverResult:
    hand: str
    position: np.ndarray
    orientation: np.ndarray
    velocity: np.ndarray
    confidence: float
    reachable: bool
    distance: float


class _Track:
    def __init__(self, p):
        self.selector = HandSelector(p.min_offer_score, p.switch_margin, p.min_joint_confidence)
        self.filter = ConstantVelocityFilter(p.accel_std, p.track_timeout_s)
        self.hand: str | None = None
        self.last_ns = 0


class HandoverTracker:
    """Per body: the offered hand (with hysteresis) and a constant-velocity filter of its wrist, in the base frame
    (handover_node parameters)."""

    def __init__(self, p):
        self.p = p
        self.tracks: dict[str, _Track] = {}

    def update(self, pose, base_from_pose: np.ndarray) -> HandoverResult | None:
        """The target for this pose, or None while no hand is offered. StageError for joints not in COCO-17."""
        p = self.p
        if tuple(pose.joint_names) != COCO17_JOINTS:
            raise StageError("input_pose", "joint_names are not COCO-17 in order")
        joints = apply_transform(base_from_pose, pose.joints)
        timeout_ns = p.track_timeout_s * 1e9
        self.tracks = {b: t for b, t in self.tracks.items() if pose.stamp_ns - t.last_ns <= timeout_ns}
        track = self.tracks.get(pose.body_id)
        if track is None:
            track = self.tracks[pose.body_id] = _Track(p)
        track.last_ns = pose.stamp_ns
        choice = track.selector.select(joints, pose.confidence)
        if choice is None:
            track.hand = None
            track.filter.reset()
            return None
        if choice.hand != track.hand:
            track.filter.reset()
            track.hand = choice.hand
        rotation = base_from_pose[:3, :3]
        wrist_cov = pose.covariance[JOINT_INDEX[f"{choice.hand}_wrist"]] if pose.covariance is not None else None
        if wrist_cov is None or not np.any(wrist_cov):
            wrist_cov = np.eye(3) * p.measurement_std_m**2
        position, velocity = track.filter.update(choice.wrist, rotation @ wrist_cov @ rotation.T, pose.stamp_ns)
        envelope_ = ReachEnvelope(tuple(p.reach_center), p.reach_min_radius_m, p.reach_max_radius_m,
                                  p.reach_min_z_m, p.reach_max_z_m)
        return HandoverResult(choice.hand, position, approach_orientation(choice.elbow, choice.wrist), velocity,
                              choice.score * choice.confidence, envelope_.contains(position),
                              envelope_.distance(position))
