"""Parametric COCO-17 body: anthropometric proportions scaled to a stature, a pose library and motions.

Body frame: x forward (the way the person faces), y to the person's left, z up, origin on the floor under the
mid-hip. Segment lengths follow adult anthropometric ratios (shoulder at ~0.82 H, hip joint at ~0.53 H, upper arm
0.19 H, forearm 0.15 H); the head takes a larger share of a child's stature (1/5.5 at 1 m, 1/7.5 for adults), so a
short adult and a child of the same height look different, which is exactly the ambiguity audio has to resolve.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from av_pose_ros.primitives.geometry import rot_z
from av_pose_ros.primitives.skeleton import JOINT_INDEX, NUM_JOINTS

POSE_NAMES = ("standing", "arms_raised", "reach_left", "reach_right", "offer_left", "offer_right",
              "sitting", "squatting", "walking")
# Scripted motions (not single poses), run by sim/choreography.py: "handover" is the demo world's visits (walk in,
# offer a hand to the manipulator, hold, take it back, walk away; both hands, several statures).
MOTION_NAMES = ("handover",)
# Poses drawn per person rather than taken from the library: uniformly within human joint limits.
GENERATED_POSES = ("joint_angles",)


@dataclass(frozen=True)
class Proportions:
    """Segment lengths (m) of one person."""

    stature: float
    head: float            # chin to crown
    neck: float
    trunk: float           # mid-hip to mid-shoulder
    thigh: float
    shank: float
    ankle_height: float
    upper_arm: float
    forearm: float
    shoulder_half_width: float
    hip_half_width: float

    @classmethod
    def for_stature(cls, stature_m: float) -> Proportions:
        h = float(stature_m)
        if not 0.5 <= h <= 2.5:
            raise ValueError(f"stature {h} m outside the modelled 0.5-2.5 m")
        head = h * float(np.clip(0.13 + 0.07 * (1.7 - h) / 0.7, 0.13, 0.18))
        neck, ankle = 0.052 * h, 0.039 * h
        below_neck = h - head - neck - ankle      # shared by trunk and legs in adult ratios
        return cls(stature=h, head=head, neck=neck, trunk=0.37 * below_neck, thigh=0.315 * below_neck,
                   shank=0.315 * below_neck, ankle_height=ankle, upper_arm=0.186 * h, forearm=0.146 * h,
                   shoulder_half_width=0.10 * h, hip_half_width=0.055 * h)


@dataclass(frozen=True)
class BodyPose:
    """Joint angles (radians). Limb directions: elevation from straight down (positive forward, pi = up) and
    azimuth from forward towards the limb's own side; absolute in the body frame, not relative to the parent."""

    trunk_lean: float = 0.0
    l_upper: tuple[float, float] = (0.14, 0.17)
    l_lower: tuple[float, float] = (0.21, 0.09)
    r_upper: tuple[float, float] = (0.14, 0.17)
    r_lower: tuple[float, float] = (0.21, 0.09)
    l_thigh: tuple[float, float] = (0.0, 0.03)
    l_shank: tuple[float, float] = (0.0, 0.0)
    r_thigh: tuple[float, float] = (0.0, 0.03)
    r_shank: tuple[float, float] = (0.0, 0.0)

    def mirrored(self) -> BodyPose:
        """The same pose with left and right exchanged."""
        return BodyPose(self.trunk_lean, self.r_upper, self.r_lower, self.l_upper, self.l_lower,
                        self.r_thigh, self.r_shank, self.l_thigh, self.l_shank)

    def jittered(self, rng: np.random.Generator, sigma_rad: float) -> BodyPose:
        """Every angle perturbed by N(0, sigma): natural variety around a library pose."""
        out = {}
        for f in fields(self):
            v = np.asarray(getattr(self, f.name), float)
            v = v + rng.normal(0.0, sigma_rad, v.shape)
            out[f.name] = float(v) if v.ndim == 0 else tuple(v.tolist())
        return BodyPose(**out)


def blend(a: BodyPose, b: BodyPose, w: float) -> BodyPose:
    """Angle-wise interpolation from ``a`` (w = 0) to ``b`` (w = 1)."""
    return BodyPose(**{f.name: (np.asarray(getattr(a, f.name)) * (1 - w) + np.asarray(getattr(b, f.name)) * w)
                       .tolist() if f.name != "trunk_lean" else a.trunk_lean * (1 - w) + b.trunk_lean * w
                       for f in fields(BodyPose)})


def _deg(*pairs):
    return tuple(tuple(np.radians(p).tolist()) for p in pairs)


_STANDING = BodyPose()
_REACH_LEFT = replace(_STANDING, trunk_lean=np.radians(5),
                      **dict(zip(("l_upper", "l_lower"), _deg((88, 40), (92, 40)))))
_OFFER_LEFT = replace(_STANDING, **dict(zip(("l_upper", "l_lower"), _deg((45, 8), (82, 0)))))
POSE_LIBRARY: dict[str, BodyPose] = {
    "standing": _STANDING,
    "arms_raised": replace(_STANDING, **dict(zip(("l_upper", "l_lower", "r_upper", "r_lower"),
                                                 _deg((165, 15), (172, 10), (165, 15), (172, 10))))),
    "reach_left": _REACH_LEFT,
    "reach_right": _REACH_LEFT.mirrored(),
    "offer_left": _OFFER_LEFT,
    "offer_right": _OFFER_LEFT.mirrored(),
    "sitting": replace(_STANDING, **dict(zip(("l_upper", "l_lower", "r_upper", "r_lower", "l_thigh", "l_shank",
                                              "r_thigh", "r_shank"),
                                             _deg((20, 10), (70, 5), (20, 10), (70, 5), (90, 6), (0, 0), (90, 6),
                                                  (0, 0))))),
    "squatting": replace(_STANDING, trunk_lean=np.radians(40),
                         **dict(zip(("l_upper", "l_lower", "r_upper", "r_lower", "l_thigh", "l_shank", "r_thigh",
                                     "r_shank"),
                                    _deg((40, 10), (65, 5), (40, 10), (65, 5), (105, 20), (-40, 10), (105, 20),
                                         (-40, 10))))),
}


def walking_pose(phase: float) -> BodyPose:
    """Gait at ``phase`` (radians, 2 pi per stride): thighs swing +-25 deg, knees bend in swing, arms counter-swing."""
    def leg(psi):
        thigh = np.radians(25) * np.sin(psi)
        knee = np.radians(8 + 50 * max(0.0, np.cos(psi)) ** 2)
        return (thigh, 0.03), (thigh - knee, 0.0)

    def arm(psi):
        upper = np.radians(20) * np.sin(psi)
        return (upper, 0.12), (upper + np.radians(18), 0.05)

    lt, ls = leg(phase)
    rt, rs = leg(phase + np.pi)
    lu, ll = arm(phase + np.pi)
    ru, rl = arm(phase)
    return BodyPose(np.radians(4), lu, ll, ru, rl, lt, ls, rt, rs)


POSE_LIBRARY["walking"] = walking_pose(0.6)


def library_pose(name: str) -> BodyPose:
    if name not in POSE_LIBRARY:
        raise ValueError(f"unknown pose {name!r}; known: {list(POSE_NAMES)}")
    return POSE_LIBRARY[name]


def _direction(angles, side: float) -> np.ndarray:
    elevation, azimuth = angles
    return np.array([np.sin(elevation) * np.cos(azimuth), side * np.sin(elevation) * np.sin(azimuth),
                     -np.cos(elevation)])


def body_joints(stature_m: float, pose: BodyPose | str = "standing", shoulder_width: float = 1.0,
                hip_width: float = 1.0) -> np.ndarray:
    """(17, 3) COCO-17 joints in the body frame for a person of ``stature_m`` in ``pose``.

    Legs are built down from the hips and the body is then lifted so the lower ankle sits at ankle height
    (the feet stay on the floor whatever the legs do). ``shoulder_width`` and ``hip_width`` scale the
    anthropometric widths (builds differ at one stature).
    """
    p = Proportions.for_stature(stature_m)
    p = replace(p, shoulder_half_width=p.shoulder_half_width * shoulder_width,
                hip_half_width=p.hip_half_width * hip_width)
    pose = library_pose(pose) if isinstance(pose, str) else pose
    j = np.zeros((NUM_JOINTS, 3))
    for side, name, thigh, shank in ((1.0, "left", pose.l_thigh, pose.l_shank),
                                     (-1.0, "right", pose.r_thigh, pose.r_shank)):
        hip = np.array([0.0, side * p.hip_half_width, 0.0])
        knee = hip + p.thigh * _direction(thigh, side)
        j[JOINT_INDEX[f"{name}_hip"]] = hip
        j[JOINT_INDEX[f"{name}_knee"]] = knee
        j[JOINT_INDEX[f"{name}_ankle"]] = knee + p.shank * _direction(shank, side)
    lift = p.ankle_height - min(j[JOINT_INDEX["left_ankle"], 2], j[JOINT_INDEX["right_ankle"], 2])
    j[:, 2] += lift
    mid_hip = np.array([0.0, 0.0, lift])
    up = np.array([np.sin(pose.trunk_lean), 0.0, np.cos(pose.trunk_lean)])
    mid_shoulder = mid_hip + p.trunk * up
    for side, name, upper, lower in ((1.0, "left", pose.l_upper, pose.l_lower),
                                     (-1.0, "right", pose.r_upper, pose.r_lower)):
        shoulder = mid_shoulder + np.array([0.0, side * p.shoulder_half_width, 0.0])
        elbow = shoulder + p.upper_arm * _direction(upper, side)
        j[JOINT_INDEX[f"{name}_shoulder"]] = shoulder
        j[JOINT_INDEX[f"{name}_elbow"]] = elbow
        j[JOINT_INDEX[f"{name}_wrist"]] = elbow + p.forearm * _direction(lower, side)
    head_centre = mid_shoulder + (p.neck + 0.5 * p.head) * up
    forward = np.array([np.cos(pose.trunk_lean), 0.0, -np.sin(pose.trunk_lean)])
    left = np.array([0.0, 1.0, 0.0])
    h = p.head
    j[JOINT_INDEX["nose"]] = head_centre + 0.45 * h * forward - 0.10 * h * up
    for side, name in ((1.0, "left"), (-1.0, "right")):
        j[JOINT_INDEX[f"{name}_eye"]] = head_centre + 0.38 * h * forward + 0.05 * h * up + side * 0.14 * h * left
        j[JOINT_INDEX[f"{name}_ear"]] = head_centre - 0.02 * h * forward + side * 0.33 * h * left
    return j


def place_in_world(joints_body: np.ndarray, position_xy, yaw: float) -> np.ndarray:
    """Body-frame joints to a world frame: rotate by ``yaw`` about z, then put the origin at ``position_xy``."""
    return joints_body @ rot_z(yaw).T + np.array([position_xy[0], position_xy[1], 0.0])


def facing_yaw(position_xy, target_xy) -> float:
    """Yaw that makes a body at ``position_xy`` face ``target_xy`` (e.g. the camera)."""
    d = np.asarray(target_xy, float)[:2] - np.asarray(position_xy, float)[:2]
    return float(np.arctan2(d[1], d[0]))


# -- poses in joint-angle space ---------------------------------------------------------------------------------
# Human range of motion (degrees), in this model's angles: limb elevation from straight down (forward positive),
# azimuth towards the limb's own side; elbow and knee flexion as the angle between the two segments of the limb.
JOINT_LIMITS_DEG = {
    "trunk_lean": (-15.0, 60.0),
    "upper_elevation": (-60.0, 180.0), "upper_azimuth": (-45.0, 135.0), "elbow_flexion": (-5.0, 150.0),
    "thigh_elevation": (-35.0, 125.0), "thigh_azimuth": (-25.0, 50.0), "knee_flexion": (-5.0, 150.0),
}
_LIMBS = (("l_upper", "l_lower", "upper", "elbow"), ("r_upper", "r_lower", "upper", "elbow"),
          ("l_thigh", "l_shank", "thigh", "knee"), ("r_thigh", "r_shank", "thigh", "knee"))


def _angles_of(direction: np.ndarray) -> tuple[float, float]:
    """Inverse of ``_direction`` (side +1): (elevation, azimuth) of a unit vector."""
    elevation = float(np.arccos(np.clip(-direction[2], -1, 1)))
    azimuth = float(np.arctan2(direction[1], direction[0])) if np.hypot(direction[0], direction[1]) > 1e-9 else 0.0
    return elevation, azimuth


def within_limits(pose: BodyPose, tolerance_deg: float = 0.5) -> bool:
    """Whether every angle of ``pose`` lies inside ``JOINT_LIMITS_DEG``."""
    lim = {k: np.radians(v) for k, v in JOINT_LIMITS_DEG.items()}
    tol = np.radians(tolerance_deg)

    def inside(value, key):
        return lim[key][0] - tol <= value <= lim[key][1] + tol

    ok = inside(pose.trunk_lean, "trunk_lean")
    for parent_name, child_name, kind, bend in _LIMBS:
        parent, child = getattr(pose, parent_name), getattr(pose, child_name)
        ok &= inside(parent[0], f"{kind}_elevation") and (abs(parent[0]) < 1e-3 or inside(parent[1], f"{kind}_azimuth"))
        flex = float(np.arccos(np.clip(_direction(parent, 1.0) @ _direction(child, 1.0), -1, 1)))
        if kind == "thigh":
            flex = flex if parent[0] - child[0] >= -1e-6 else -flex      # a knee only bends backwards
        ok &= inside(flex, f"{bend}_flexion")
    return bool(ok)


def _bend(parent_dir: np.ndarray, flexion: float, twist: float, reference: np.ndarray) -> np.ndarray:
    """Rotate ``parent_dir`` by ``flexion`` about an axis normal to it, chosen by ``twist`` about the segment."""
    u = np.cross(parent_dir, reference)
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(parent_dir, [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(parent_dir, u)
    axis = np.cos(twist) * u + np.sin(twist) * w
    # Rodrigues rotation of parent_dir about axis (axis is normal to it)
    return np.cos(flexion) * parent_dir + np.sin(flexion) * np.cross(axis, parent_dir)


def sample_joint_angle_pose(rng: np.random.Generator, stature_m: float = 1.7) -> BodyPose:
    """A pose drawn uniformly within ``JOINT_LIMITS_DEG`` (arms freely; legs mostly with one supporting leg).

    Elbows bend towards the front of the upper arm for any humeral twist within +-90 deg; knees bend backwards
    in the thigh's own plane. Three people in four stand on a near-vertical leg; the rest sit, kneel or squat.
    Poses that would put a joint through the floor (a hand or knee of a ``stature_m`` person) are redrawn.
    """
    for _ in range(100):
        pose = _draw_joint_angles(rng)
        if body_joints(stature_m, pose)[:, 2].min() >= 0.5 * Proportions.for_stature(stature_m).ankle_height:
            return pose
    return pose


def _draw_joint_angles(rng: np.random.Generator) -> BodyPose:
    lim = {k: np.radians(v) for k, v in JOINT_LIMITS_DEG.items()}
    out = {"trunk_lean": float(rng.uniform(*lim["trunk_lean"]))}
    for side in ("l", "r"):
        upper = (float(np.arccos(rng.uniform(-1, 1)) if rng.random() < 0.5 else rng.uniform(*lim["upper_elevation"])),
                 float(rng.uniform(*lim["upper_azimuth"])))
        upper_dir = _direction(upper, 1.0)
        flex = float(rng.uniform(0.0, lim["elbow_flexion"][1]))
        lower_dir = _bend(upper_dir, flex, float(rng.uniform(-np.pi / 2, np.pi / 2)), np.array([1.0, 0.0, 0.0]))
        out[f"{side}_upper"], out[f"{side}_lower"] = upper, _angles_of(lower_dir)
    support = rng.random() < 0.75
    stance = int(rng.integers(2))
    for i, side in enumerate(("l", "r")):
        if support and i == stance:
            thigh = (float(rng.uniform(np.radians(-10), np.radians(25))), float(rng.uniform(0.0, np.radians(15))))
            knee = float(rng.uniform(0.0, np.radians(30)))
        else:
            thigh = (float(rng.uniform(*lim["thigh_elevation"])), float(rng.uniform(*lim["thigh_azimuth"])))
            knee = float(rng.uniform(0.0, lim["knee_flexion"][1]))
        shank = max(thigh[0] - knee, -np.pi)       # bending backwards in the thigh's plane
        out[f"{side}_thigh"], out[f"{side}_shank"] = thigh, (shank, thigh[1])
    return BodyPose(**out)


def drifted(pose: BodyPose, seed: int, amplitude_rad: float, t: float) -> BodyPose:
    """``pose`` with every angle moving slowly (sum of two sinusoids, periods 2-9 s, random phases per seed):
    successive windows of a person who holds a pose still differ, as real people never hold still."""
    if amplitude_rad <= 0:
        return pose
    rng = np.random.default_rng([int(seed), 7])
    out = {}
    for f in fields(pose):
        v = np.asarray(getattr(pose, f.name), float)
        periods = rng.uniform(2.0, 9.0, (2,) + v.shape)
        phases = rng.uniform(0, 2 * np.pi, (2,) + v.shape)
        d = amplitude_rad / np.sqrt(2) * np.sin(2 * np.pi * t / periods + phases).sum(axis=0)
        out[f.name] = float(v + d) if v.ndim == 0 else tuple((v + d).tolist())
    return BodyPose(**out)
