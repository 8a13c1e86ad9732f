"""What the simulated person does over scene time: library poses that move, and the demo world's handover visits.

The demo world (motion ``handover``) is a robot being handed things: a visitor walks in along the line towards
the camera, stops where the offered hand will be 0.55-0.65 m from the manipulator frame (the rig's
``manipulator_frame``, e.g. ``arm_base_link``), stands a moment, reaches out with one hand, holds it still, takes it
back, turns and walks away; then the next visitor comes. Visitors alternate hands and differ in stature (+-10 % of
the scene's person), so a minute holds about five offers with both hands and several statures. The stop is chosen
so that the offered wrist and elbow stay inside the camera image while the hand is out.

``Motion.at(t)`` returns the pose, an (x, y) displacement in the body's *initial* frame and a yaw change;
``Motion.stature_at(t)`` the stature of whoever is there; ``Motion.offer_at(t)`` which hand is out and how far
(the truth a handover evaluation needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from av_pose_ros.primitives.geometry import apply_transform, invert_transform
from av_pose_ros.primitives.skeleton import JOINT_INDEX
from av_pose_ros.sim.body import (
    MOTION_NAMES,
    POSE_LIBRARY,
    BodyPose,
    blend,
    body_joints,
    library_pose,
    place_in_world,
    walking_pose,
)

# Offered wrist to the manipulator frame's origin at the hold (m): each visit draws a target from this range, the
# middle of 0.4-0.8 m, so that pose jitter and drift keep the held hand inside 0.4-0.8 m.
HANDOVER_HAND_M = (0.55, 0.65)
# Each visitor's stature relative to the scene's person.
VISIT_STATURE_SPREAD = 0.10
# Phases of a visit after walking in (s): stand, reach out, hold, take back, stand, then walk away, rest.
STAND_S, REACH_S, HOLD_S, RETRACT_S, AFTER_S, REST_S = 0.8, 1.0, 3.0, 1.0, 0.7, 1.0
# Nobody walks closer to the camera than this (m, body origin to camera, horizontally).
MIN_CAMERA_DISTANCE_M = 0.7
# The offered wrist and elbow stay this far inside the image border (pixels).
IMAGE_MARGIN_PX = 30.0
# A hand counts as offered (for evaluation) once the blend towards the offer pose passes this weight.
OFFERED_WEIGHT = 0.5
VISITS = 12                      # visits drawn per scene, then repeated


@dataclass(frozen=True)
class Visit:
    """One visitor of the handover script."""

    stature_m: float
    hand: str            # "left" or "right": the hand offered
    path_m: float        # walked from the start position to the handover spot
    hand_distance_m: float   # offered wrist to the manipulator frame at the hold (what the stop was solved for)


def _smooth(w: float) -> float:
    return 0.5 - 0.5 * np.cos(np.pi * float(np.clip(w, 0.0, 1.0)))


class Motion:
    """A library pose that moves over time: ``walking`` paces back and forth along its facing direction over
    ``path_length_m`` centred on the start position, ``offer_*`` reach out, hold and retract every period, and
    ``handover`` runs ``visits`` (one default right-hand visit of ``path_length_m`` when none are given)."""

    def __init__(self, pose_name: str, stature_m: float, path_length_m: float = 1.5, offer_period_s: float = 4.0,
                 visits: tuple[Visit, ...] | None = None):
        if pose_name not in MOTION_NAMES:
            library_pose(pose_name)
        self.pose_name = pose_name
        self.stature_m = float(stature_m)
        self.speed = self.walking_speed(stature_m)
        self.stride = 1.4 * stature_m / 1.7                 # m per full gait cycle
        self.path_length = float(path_length_m)
        self.offer_period = float(offer_period_s)
        self.visits = tuple(visits) if visits else (Visit(self.stature_m, "right", self.path_length, float("nan")),)
        self._starts = np.cumsum([0.0] + [self.visit_period_s(v) for v in self.visits])

    @staticmethod
    def walking_speed(stature_m: float) -> float:
        return 1.1 * np.sqrt(stature_m / 1.7)              # m/s, scales like leg length

    @staticmethod
    def visit_period_s(visit: Visit) -> float:
        walk = visit.path_m / Motion.walking_speed(visit.stature_m)
        return 2 * walk + STAND_S + REACH_S + HOLD_S + RETRACT_S + AFTER_S + REST_S

    @property
    def handover_period_s(self) -> float:
        """Length of one pass through all visits (s)."""
        return float(self._starts[-1])

    def _visit(self, t: float) -> tuple[Visit, float]:
        """The visit at scene time ``t`` and the time since it began."""
        t = t % self.handover_period_s
        k = int(np.clip(np.searchsorted(self._starts, t, side="right") - 1, 0, len(self.visits) - 1))
        return self.visits[k], t - self._starts[k]

    @staticmethod
    def _offer_weight(u: float) -> float:
        """0..1 blend towards the offer pose, ``u`` seconds after arriving at the handover spot."""
        out = (u - STAND_S) / REACH_S
        back = (STAND_S + REACH_S + HOLD_S + RETRACT_S - u) / RETRACT_S
        return _smooth(min(out, back))

    def _handover(self, t: float) -> tuple[BodyPose, np.ndarray, float]:
        visit, u = self._visit(t)
        speed = self.walking_speed(visit.stature_m)
        stride = 1.4 * visit.stature_m / 1.7
        walk_s = visit.path_m / speed
        if u < walk_s:
            return walking_pose(2 * np.pi * speed * u / stride), np.array([speed * u, 0.0]), 0.0
        u -= walk_s
        at_spot = STAND_S + REACH_S + HOLD_S + RETRACT_S + AFTER_S
        if u < at_spot:
            pose = blend(POSE_LIBRARY["standing"], POSE_LIBRARY[f"offer_{visit.hand}"], self._offer_weight(u))
            return pose, np.array([visit.path_m, 0.0]), 0.0
        u -= at_spot
        if u < walk_s:
            return walking_pose(2 * np.pi * speed * u / stride), np.array([visit.path_m - speed * u, 0.0]), np.pi
        return POSE_LIBRARY["standing"], np.zeros(2), np.pi

    def at(self, t: float) -> tuple[BodyPose, np.ndarray, float]:
        if self.pose_name == "handover":
            return self._handover(t)
        if self.pose_name == "walking":
            travelled = self.speed * t
            if self.path_length <= 0.0:                     # no room to walk (<= 0.8 m away): step on the spot
                return walking_pose(2 * np.pi * travelled / self.stride), np.zeros(2), 0.0
            leg, lap = np.modf(travelled / self.path_length)
            outward = int(lap) % 2 == 0                     # towards the camera first, then back
            along = (leg if outward else 1 - leg) * self.path_length - 0.5 * self.path_length
            phase = 2 * np.pi * travelled / self.stride
            return walking_pose(phase), np.array([along, 0.0]), (0.0 if outward else np.pi)
        if self.pose_name.startswith("offer_"):
            return blend(POSE_LIBRARY["standing"], POSE_LIBRARY[self.pose_name],
                         self._periodic_offer_weight(t)), np.zeros(2), 0.0
        return POSE_LIBRARY[self.pose_name], np.zeros(2), 0.0

    def _periodic_offer_weight(self, t: float) -> float:
        cycle = (t % self.offer_period) / self.offer_period
        return _smooth(1.5 - abs(4 * cycle - 2))            # rest, reach, hold, retract

    def stature_at(self, t: float) -> float:
        """Stature (m) of the person present at scene time ``t``."""
        return self._visit(t)[0].stature_m if self.pose_name == "handover" else self.stature_m

    def offer_at(self, t: float) -> tuple[str | None, float]:
        """(hand, weight): the hand being offered at ``t`` and how far out it is (0 at rest, 1 fully offered);
        (None, 0.0) when no hand is offered."""
        if self.pose_name.startswith("offer_"):
            return self.pose_name.split("_")[1], self._periodic_offer_weight(t)
        if self.pose_name != "handover":
            return None, 0.0
        visit, u = self._visit(t)
        u -= visit.path_m / self.walking_speed(visit.stature_m)
        if u < 0.0 or u > STAND_S + REACH_S + HOLD_S + RETRACT_S:
            return None, 0.0
        w = self._offer_weight(u)
        return (visit.hand, w) if w > 0.0 else (None, 0.0)


def _in_image(points_base: np.ndarray, rig) -> np.ndarray:
    """Per point: inside the rig camera's image by ``IMAGE_MARGIN_PX`` (pinhole, distortion ignored: it moves the
    edge by a few pixels only)."""
    optical = apply_transform(invert_transform(rig.base_from_optical), points_base)
    z = optical[:, 2]
    K = rig.intrinsics.K
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * optical[:, 0] / z + K[0, 2]
        v = K[1, 1] * optical[:, 1] / z + K[1, 2]
    m = IMAGE_MARGIN_PX
    return (z > 0.1) & (u >= m) & (u <= rig.intrinsics.width - 1 - m) & (v >= m) & (v <= rig.intrinsics.height - 1 - m)


def solve_stop(start_xy, yaw: float, stature_m: float, hand: str, hand_distance_m: float, rig,
               samples: int = 400, offer: BodyPose | None = None, shoulder_width: float = 1.0) -> float:
    """Path length (m) from ``start_xy`` along ``yaw`` at which the fully offered ``hand``'s wrist is closest to
    ``hand_distance_m`` from the manipulator frame while wrist and elbow stay in the camera image. ``offer`` is the
    pose as rendered (the library's offer pose with the person's jitter); falls back to the nearest in-view stop
    (or no walking at all) when nothing fits."""
    start = np.asarray(start_xy, float)
    direction = np.array([np.cos(yaw), np.sin(yaw)])
    camera = rig.base_from_camera_link[:2, 3]
    # the body origin's distance to the camera shrinks along the path; stop before MIN_CAMERA_DISTANCE_M
    s = np.linspace(0.0, 8.0, samples)
    body = start[None] + s[:, None] * direction[None]
    s = s[(np.linalg.norm(body - camera, axis=1) >= MIN_CAMERA_DISTANCE_M)
          & (np.arange(samples) <= np.argmin(np.linalg.norm(body - camera, axis=1)))]
    if len(s) == 0:
        return 0.0
    offer = POSE_LIBRARY[f"offer_{hand}"] if offer is None else offer
    joints = place_in_world(body_joints(stature_m, offer, shoulder_width=shoulder_width), (0.0, 0.0), yaw)
    arm = joints[[JOINT_INDEX[f"{hand}_wrist"], JOINT_INDEX[f"{hand}_elbow"]]]
    shift = np.zeros((len(s), 3))
    shift[:, :2] = start[None] + s[:, None] * direction[None]
    wrist, elbow = arm[0][None] + shift, arm[1][None] + shift
    visible = _in_image(wrist, rig) & _in_image(elbow, rig)
    if not visible.any():
        return 0.0
    miss = np.abs(np.linalg.norm(wrist - rig.manipulator_position()[None], axis=1) - hand_distance_m)
    miss[~visible] = np.inf
    return float(s[int(np.argmin(miss))])


@lru_cache(maxsize=64)
def handover_visits(person, rig, count: int = VISITS) -> tuple[Visit, ...]:
    """The visits of a scene's handover script, drawn from the person's jitter seed (repeatable)."""
    rng = np.random.default_rng([person.jitter_seed, 14])
    first = int(rng.integers(2))
    visits = []
    for k in range(count):
        stature = float(np.clip(person.stature_m * (1 + rng.uniform(-VISIT_STATURE_SPREAD, VISIT_STATURE_SPREAD)),
                                0.9, 2.1))
        hand = ("right", "left")[(first + k) % 2]
        target = float(rng.uniform(*HANDOVER_HAND_M))
        offer = POSE_LIBRARY[f"offer_{hand}"]
        if person.pose_jitter_rad > 0:               # as the renderer jitters it (sim/render.py joints_at)
            offer = offer.jittered(np.random.default_rng(person.jitter_seed), person.pose_jitter_rad)
        path = solve_stop(person.position_xy, person.yaw, stature, hand, target, rig, offer=offer,
                          shoulder_width=float(getattr(person, "shoulder_width", 1.0)))
        visits.append(Visit(stature, hand, path, target))
    return tuple(visits)


@lru_cache(maxsize=64)
def _motion(person, rig) -> Motion:
    if person.pose == "handover":
        return Motion("handover", person.stature_m, visits=handover_visits(person, rig))
    distance = float(np.hypot(*(np.asarray(person.position_xy) - rig.base_from_camera_link[:2, 3])))
    return Motion(person.pose, person.stature_m, path_length_m=float(np.clip(2 * (distance - 0.8), 0, 1.5)))


def scene_motion(scene) -> Motion:
    """The motion of a scene's person (cached per person and rig: the handover stops are solved once)."""
    return _motion(scene.person, scene.rig)


# Forward reach of the wrist beyond the shoulder, as a share of the arm's length, above which a hand counts as
# offered (0.83 when fully offered, 0.46 at most for an arm swinging while walking, about 0.5 halfway out).
OFFERED_REACH = 0.55


def offered_hands(joints: np.ndarray) -> set[str]:
    """Which hands of a (17, 3) pose are out towards the front (above the hip, forward reach beyond
    ``OFFERED_REACH`` of the arm's length): the truth a handover evaluation compares against, from joints alone."""
    left_dir = joints[JOINT_INDEX["left_hip"]] - joints[JOINT_INDEX["right_hip"]]
    forward = np.cross(left_dir, [0.0, 0.0, 1.0])
    forward[2] = 0.0
    if np.linalg.norm(forward) < 1e-6:
        return set()
    forward /= np.linalg.norm(forward)
    out = set()
    for side in ("left", "right"):
        shoulder, elbow, wrist, hip = (joints[JOINT_INDEX[f"{side}_{j}"]]
                                       for j in ("shoulder", "elbow", "wrist", "hip"))
        arm = np.linalg.norm(elbow - shoulder) + np.linalg.norm(wrist - elbow)
        if arm > 1e-6 and wrist[2] > hip[2] and np.dot(wrist - shoulder, forward) >= OFFERED_REACH * arm:
            out.add(side)
    return out
