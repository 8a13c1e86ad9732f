"""The offered arm's depth from its bone lengths, not from the lifter's guess.

An arm held out towards a robot points at the robot's camera, so the camera sees it foreshortened: the image gives
each joint's bearing well, but the depth of the elbow and wrist is what a monocular lifter is worst at. In the demo
world the lifted offered wrist lies 16 mm (median) from its true camera ray but 320 mm too far along it, while the
shoulder is within 43 mm (benchmarks/bench_handover.py). The arm's bone lengths settle that depth (Taylor's
reconstruction from known segment lengths): the elbow lies on its camera ray at the upper-arm length from the
shoulder, the wrist on its ray at the forearm length from the elbow; of the two points where a ray meets that
sphere, the one on the lifted joint's side of its parent (nearer or farther from the camera) is taken, so only the
depth order comes from the lifter.

The bone lengths are the same person's, measured by the lifter when the bone lies across the camera's view (its
direction at least ~70 degrees from the camera ray, e.g. an arm hanging while the person walks in), where the lifted
length is not foreshortened. Their spread and the lifted joints' covariances go through an unscented transform, so
the reconstructed wrist comes with a covariance the readiness gates can trust.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from av_pose_ros.primitives.skeleton import JOINT_INDEX

# A bone whose direction is within this |cos| of perpendicular to the camera ray is seen at (nearly) full length.
ACROSS_VIEW_COS = 0.3
MIN_BONE_SPREAD_M = 0.01     # floor of a bone length's standard deviation (the lifter's scale is not exact)


@dataclass
class ArmLengths:
    upper_m: float
    fore_m: float
    upper_std_m: float
    fore_std_m: float


class BoneLengths:
    """Per arm of one body: upper-arm and forearm lengths from the frames where each bone was seen across the
    view (median and robust spread of the last `keep` samples)."""

    def __init__(self, keep: int = 30):
        self.keep = keep
        self.samples = {(side, bone): deque(maxlen=keep) for side in ("left", "right") for bone in (0, 1)}

    def resize(self, keep: int) -> None:
        """Keep the newest `keep` samples from now on (a changed parameter)."""
        if keep != self.keep:
            self.keep = keep
            self.samples = {k: deque(v, maxlen=keep) for k, v in self.samples.items()}

    def add(self, joints: np.ndarray, confidence: np.ndarray, camera: np.ndarray, min_confidence: float) -> None:
        for side in ("left", "right"):
            idx = [JOINT_INDEX[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist")]
            for bone, (a, b) in enumerate(((idx[0], idx[1]), (idx[1], idx[2]))):
                if min(confidence[a], confidence[b]) < min_confidence:
                    continue
                vec, ray = joints[b] - joints[a], 0.5 * (joints[a] + joints[b]) - camera
                length, ray_len = float(np.linalg.norm(vec)), float(np.linalg.norm(ray))
                if length > 1e-3 and ray_len > 1e-3 and abs(vec @ ray) / (length * ray_len) < ACROSS_VIEW_COS:
                    self.samples[(side, bone)].append(length)

    def lengths(self, side: str, min_samples: int) -> ArmLengths | None:
        """None until both bones of this arm have `min_samples` across-view samples."""
        stats = []
        for bone in (0, 1):
            s = np.asarray(self.samples[(side, bone)])
            if len(s) < max(min_samples, 1):
                return None
            med = float(np.median(s))
            stats.append((med, max(1.4826 * float(np.median(np.abs(s - med))), MIN_BONE_SPREAD_M)))
        return ArmLengths(stats[0][0], stats[1][0], stats[0][1], stats[1][1])


def point_on_ray(camera: np.ndarray, through: np.ndarray, parent: np.ndarray, length: float,
                 nearer: bool) -> tuple[np.ndarray, bool]:
    """The point on the camera ray through `through` at `length` from `parent`: the root nearer the camera when
    `nearer`, else the farther one. (point, True), or the ray's closest point to `parent` and False when the ray
    passes farther than `length` from it (the lifted geometry and the bone length disagree)."""
    ray = through - camera
    ray = ray / max(float(np.linalg.norm(ray)), 1e-9)
    oc = camera - parent
    b = float(ray @ oc)
    disc = b * b - (float(oc @ oc) - length * length)
    if disc < 0.0:
        return camera - b * ray, False
    t = -b - np.sqrt(disc) if nearer else -b + np.sqrt(disc)
    return camera + t * ray, True


def _arm(camera, x: np.ndarray, order: tuple[bool, bool]) -> tuple[np.ndarray, np.ndarray, bool]:
    shoulder, elbow, wrist, upper, fore = x[0:3], x[3:6], x[6:9], x[9], x[10]
    elbow2, ok_e = point_on_ray(camera, elbow, shoulder, upper, order[0])
    wrist2, ok_w = point_on_ray(camera, wrist, elbow2, fore, order[1])
    return elbow2, wrist2, ok_e and ok_w


@dataclass
class ArmFix:
    elbow: np.ndarray            # (3,) reconstructed elbow
    wrist: np.ndarray            # (3,) reconstructed wrist
    wrist_cov: np.ndarray        # (3, 3) its covariance (unscented transform of the inputs' uncertainty)
    consistent: bool             # both rays met their bone-length spheres


def reconstruct_arm(camera: np.ndarray, shoulder: np.ndarray, elbow: np.ndarray, wrist: np.ndarray,
                    covariances: tuple[np.ndarray, np.ndarray, np.ndarray], lengths: ArmLengths) -> ArmFix:
    """Elbow and wrist on their camera rays at the body's bone lengths (module docstring). The depth order of each
    joint against its parent (nearer or farther from the camera) is the lifter's."""
    def nearer(child, parent):
        return bool(np.linalg.norm(child - camera) < np.linalg.norm(parent - camera))

    order = (nearer(elbow, shoulder), nearer(wrist, elbow))
    x = np.concatenate([shoulder, elbow, wrist, [lengths.upper_m, lengths.fore_m]])
    cov = np.zeros((11, 11))
    for k, c in enumerate(covariances):
        cov[3 * k:3 * k + 3, 3 * k:3 * k + 3] = 0.5 * (c + c.T)
    cov[9, 9], cov[10, 10] = lengths.upper_std_m ** 2, lengths.fore_std_m ** 2
    n = len(x)
    values, vectors = np.linalg.eigh(cov * n)     # a square root that tolerates a non-positive input covariance
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    points = [x] + [x + s * root[:, k] for k in range(n) for s in (1.0, -1.0)]
    arms = [_arm(camera, p, order) for p in points]
    elbow2, wrist2, ok = arms[0]
    spread = np.array([a[1] for a in arms[1:]]) - wrist2
    return ArmFix(elbow2, wrist2, spread.T @ spread / len(spread), ok)
