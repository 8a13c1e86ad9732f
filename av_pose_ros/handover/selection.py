"""Which hand is offered: extended, raised and reaching towards the robot, with hysteresis so the choice is stable."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pose_ros.primitives.skeleton import JOINT_INDEX

_ARM = {side: (JOINT_INDEX[f"{side}_shoulder"], JOINT_INDEX[f"{side}_elbow"], JOINT_INDEX[f"{side}_wrist"],
               JOINT_INDEX[f"{side}_hip"]) for side in ("left", "right")}


@dataclass
class HandChoice:
    hand: str                 # "left" or "right"
    wrist: np.ndarray         # (3,) metres, in the pose's frame
    elbow: np.ndarray         # (3,)
    score: float              # 0..1, how clearly this hand is offered
    confidence: float         # 0..1, joint confidence of the wrist and elbow


def offer_score(joints: np.ndarray, side: str, robot_position: np.ndarray) -> float:
    """0..1: how much the arm on `side` looks like an offered hand.

    Three cues, each 0..1: extension (wrist far from the shoulder relative to the arm length), height (wrist at or
    above the hip, below the head), and direction (forearm pointing towards the robot). Their product is the score,
    so a hanging arm (no extension, wrist at hip) or an arm stretched away from the robot scores near zero.
    """
    shoulder, elbow, wrist, hip = (joints[i] for i in _ARM[side])
    arm_length = np.linalg.norm(elbow - shoulder) + np.linalg.norm(wrist - elbow)
    if arm_length < 1e-3:
        return 0.0
    torso = max(np.linalg.norm(shoulder - hip), 1e-3)
    extension = np.clip((np.linalg.norm(wrist - shoulder) / arm_length - 0.45) / 0.45, 0.0, 1.0)
    height = np.clip((wrist[2] - hip[2]) / (0.5 * torso) + 0.5, 0.0, 1.0)
    to_robot = robot_position - shoulder
    to_robot[2] = 0.0
    reach = wrist - shoulder
    reach[2] = 0.0
    denom = np.linalg.norm(to_robot) * np.linalg.norm(reach)
    direction = np.clip(np.dot(to_robot, reach) / denom, 0.0, 1.0) if denom > 1e-6 else 0.0
    return float(extension * height * (0.3 + 0.7 * direction))


class HandSelector:
    """Picks the offered hand; switches only when the other hand scores `switch_margin` higher. A hand becomes
    offered at `min_score` and stays offered down to `leave_score` (two thresholds, so a score hovering near one of
    them does not toggle the choice; `leave_score` None: the same threshold both ways)."""

    def __init__(self, min_score: float = 0.6, switch_margin: float = 0.15, min_confidence: float = 0.2,
                 leave_score: float | None = None):
        self.min_score = min_score
        self.switch_margin = switch_margin
        self.min_confidence = min_confidence
        self.leave_score = leave_score
        self.current: str | None = None

    def select(self, joints: np.ndarray, confidence: np.ndarray,
               robot_position: np.ndarray = np.zeros(3)) -> HandChoice | None:
        scores = {}
        for side in ("left", "right"):
            _, e, w, _ = _ARM[side]
            conf = float(min(confidence[e], confidence[w]))
            scores[side] = (offer_score(joints, side, robot_position) if conf >= self.min_confidence else 0.0, conf)
        best = max(scores, key=lambda s: scores[s][0])
        if self.current in scores and best != self.current:
            if scores[best][0] < scores[self.current][0] + self.switch_margin:
                best = self.current
        keep = self.leave_score if self.leave_score is not None else self.min_score
        if scores[best][0] < (min(keep, self.min_score) if best == self.current else self.min_score):
            self.current = None
            return None
        self.current = best
        _, e, w, _ = _ARM[best]
        return HandChoice(best, joints[w].copy(), joints[e].copy(), scores[best][0], scores[best][1])


def approach_orientation(elbow: np.ndarray, wrist: np.ndarray) -> np.ndarray:
    """(x, y, z, w) quaternion whose x axis runs along the forearm (elbow to wrist) and whose z axis is as close
    to up as that allows: the direction a gripper meets the hand from."""
    from av_pose_ros.primitives.geometry import quaternion_from_matrix

    x = wrist - elbow
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0.0, 0.0])
    x = x / np.linalg.norm(x)
    up = np.array([0.0, 0.0, 1.0]) if abs(x[2]) < 0.95 else np.array([1.0, 0.0, 0.0])
    y = np.cross(up, x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return quaternion_from_matrix(np.stack([x, y, z], axis=1))
