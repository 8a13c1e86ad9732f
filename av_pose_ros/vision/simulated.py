"""Simulated 2D detections: ground-truth joints seen through the camera model with a detector's typical errors.

The simulator and training need keypoints that look like ``keypoint_node`` output without rendering images. The
errors are made where a detector makes them, in the raw (distorted) image, and look like a real detector's:
heavy-tailed jitter (Student-t), gross outliers, missed joints, left/right confusions, joints outside the image
missing (a truncated body at close range), whole frames without a detection, and a confidence that falls with the
error (a detector is less sure where it is wrong, imperfectly). Then the pixels are undistorted as the node does, so
the result is in ideal pixels of ``K`` with a confidence, exactly like a real detection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from av_pose_ros.primitives.geometry import apply_transform, invert_transform
from av_pose_ros.primitives.skeleton import JOINT_INDEX, LEFT_RIGHT_SWAP
from av_pose_ros.vision.camera import CameraModel

_SWAP = np.array(LEFT_RIGHT_SWAP)
_LEFT_OF_PAIR = np.flatnonzero(_SWAP > np.arange(len(_SWAP)))
_RIGHT_OF_PAIR = _SWAP[_LEFT_OF_PAIR]
_HIPS = (JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"])
_SHOULDERS = (JOINT_INDEX["left_shoulder"], JOINT_INDEX["right_shoulder"])
_EARS = (JOINT_INDEX["left_ear"], JOINT_INDEX["right_ear"])
_FACE = tuple(JOINT_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))


@dataclass(frozen=True)
class DetectionNoise:
    """Detector error model; field names are the keys of the scenario file's ``camera:`` section.

    keypoint_noise_px: standard deviation of the per-axis jitter (raw pixels).
    tail_dof: degrees of freedom of the Student-t jitter (heavier tails than a Gaussian, same standard deviation;
        0 = Gaussian). Detector errors are heavy-tailed: mostly a few pixels, sometimes a joint on the wrong limb.
    miss_rate: probability that a joint is not detected (confidence 0, pixels NaN).
    swap_rate: probability, per left/right pair (eyes, ears, shoulders, ...), that the pair's labels are exchanged.
    outlier_rate: probability that a joint is a gross error, displaced by a further Gaussian of ``outlier_px``.
    confidence_range: the confidence of an exact detection is drawn uniformly from this range.
    confidence_error_px: confidence falls as exp(-(e' / confidence_error_px)^2 / 2) with the joint's error e'
        (the true error times a log-normal factor: detectors misjudge their own errors); 0 = independent of error.
    out_of_image_confidence: joints that land outside the image: 0 = missing (a top-down detector sees only its
        crop), else detected, extrapolated, with this confidence.
    frame_miss_rate: probability that the detector finds nobody in a frame (every joint missing).
    scale_noise: further jitter as a share of the person's size in the image (bounding-box diagonal), added in
        quadrature: detector errors grow with the person's scale (COCO's keypoint similarity is scale-relative).
    occluded_noise_factor, occluded_miss_rate, occluded_confidence_factor: joints hidden behind the torso from the
        camera (the far arm of a person turned side-on) are located worse, missed more often and less trusted.
    """

    keypoint_noise_px: float = 3.0
    tail_dof: float = 4.0
    miss_rate: float = 0.05
    swap_rate: float = 0.02
    outlier_rate: float = 0.02
    outlier_px: float = 50.0
    confidence_range: tuple[float, float] = (0.6, 1.0)
    confidence_error_px: float = 20.0
    out_of_image_confidence: float = 0.0
    frame_miss_rate: float = 0.02
    scale_noise: float = 0.01
    occluded_noise_factor: float = 3.0
    occluded_miss_rate: float = 0.3
    occluded_confidence_factor: float = 0.5

    def __post_init__(self):
        for name in ("miss_rate", "swap_rate", "outlier_rate", "out_of_image_confidence", "frame_miss_rate",
                     "occluded_miss_rate", "occluded_confidence_factor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if min(self.keypoint_noise_px, self.outlier_px, self.confidence_error_px, self.scale_noise) < 0:
            raise ValueError("keypoint_noise_px, outlier_px, confidence_error_px and scale_noise must be non-negative")
        if self.occluded_noise_factor < 1:
            raise ValueError(f"occluded_noise_factor must be >= 1, got {self.occluded_noise_factor}")
        if self.tail_dof != 0 and self.tail_dof <= 2:
            raise ValueError(f"tail_dof must be 0 (Gaussian) or > 2 (finite variance), got {self.tail_dof}")
        low, high = self.confidence_range
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"confidence_range must satisfy 0 < low <= high <= 1, got {self.confidence_range}")
        object.__setattr__(self, "confidence_range", (float(low), float(high)))

    @classmethod
    def from_scenario(cls, camera_section: Mapping) -> DetectionNoise:
        """Read the error model from a scenario's ``camera:`` mapping; keys it does not know (intrinsics) are left
        to their owners, missing ones keep their defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in camera_section.items() if key in known})


def simulate_detections(joints_world: np.ndarray, camera: CameraModel, world_from_camera: np.ndarray,
                        noise: DetectionNoise, rng: np.random.Generator) -> np.ndarray:
    """(J, 3) world-frame joints -> (J, 3) [u, v, confidence] in ideal pixels of ``camera.K``, like keypoint_node.

    Joints behind the camera and missed joints have confidence 0 and NaN pixels. ``J`` must be 17 (COCO-17) for the
    left/right swaps.
    """
    joints_optical = apply_transform(invert_transform(world_from_camera), joints_world)
    count = len(joints_optical)
    exact = camera.project(joints_optical)
    finite = np.isfinite(exact).all(axis=1)
    size_px = float(np.linalg.norm(np.ptp(exact[finite], axis=0))) if finite.sum() > 1 else 0.0
    sigma = np.full(count, np.hypot(noise.keypoint_noise_px, noise.scale_noise * size_px))
    occluded = behind_torso(joints_optical) if count == len(_SWAP) else np.zeros(count, bool)
    sigma[occluded] *= noise.occluded_noise_factor
    raw = exact + _unit_jitter(noise, rng, exact.shape) * sigma[:, None]
    is_outlier = rng.random(count) < noise.outlier_rate
    raw[is_outlier] += rng.normal(0.0, noise.outlier_px, (int(is_outlier.sum()), 2))

    confidence = rng.uniform(*noise.confidence_range, count)
    if noise.confidence_error_px > 0:
        error = np.linalg.norm(raw - exact, axis=1) * rng.lognormal(0.0, 0.5, count)
        confidence *= np.exp(-0.5 * (np.nan_to_num(error) / noise.confidence_error_px) ** 2)
    seen = np.isfinite(raw).all(axis=1)
    in_image = seen & (raw[:, 0] >= 0) & (raw[:, 0] < camera.width) & (raw[:, 1] >= 0) & (raw[:, 1] < camera.height)
    confidence[seen & ~in_image] = noise.out_of_image_confidence
    confidence[occluded] *= noise.occluded_confidence_factor
    missed = ~seen | (rng.random(count) < np.where(occluded, max(noise.miss_rate, noise.occluded_miss_rate),
                                                   noise.miss_rate))
    if noise.out_of_image_confidence <= 0:
        missed |= ~in_image
    if rng.random() < noise.frame_miss_rate:
        missed[:] = True
    confidence[missed] = 0.0
    raw[missed] = np.nan

    detections = np.column_stack([camera.undistort_points(raw), confidence])
    order = np.arange(count)
    swapped = rng.random(len(_LEFT_OF_PAIR)) < noise.swap_rate
    order[_LEFT_OF_PAIR[swapped]] = _RIGHT_OF_PAIR[swapped]
    order[_RIGHT_OF_PAIR[swapped]] = _LEFT_OF_PAIR[swapped]
    return detections[order]


def _unit_jitter(noise: DetectionNoise, rng: np.random.Generator, shape) -> np.ndarray:
    """Per-axis jitter of unit standard deviation: Student-t with ``tail_dof`` (rescaled) or Gaussian."""
    if noise.tail_dof > 0:
        return rng.standard_t(noise.tail_dof, shape) * np.sqrt((noise.tail_dof - 2) / noise.tail_dof)
    return rng.normal(0.0, 1.0, shape)


def behind_torso(joints_optical: np.ndarray) -> np.ndarray:
    """(17,) bool: COCO-17 joints the torso hides from the camera (optical frame, camera at the origin).

    The torso is a capsule from mid-hip to mid-shoulder, its radius 0.4 of the shoulder span (a torso's depth);
    a joint is hidden when the line of sight to it passes through that capsule more than half a radius before it.
    The head (a sphere between the ears) hides the far eye and ear the same way.
    """
    j = np.asarray(joints_optical, float)
    hip = 0.5 * (j[_HIPS[0]] + j[_HIPS[1]])
    shoulder = 0.5 * (j[_SHOULDERS[0]] + j[_SHOULDERS[1]])
    radius = 0.4 * np.linalg.norm(j[_SHOULDERS[0]] - j[_SHOULDERS[1]])
    axis = shoulder - hip
    out = np.zeros(len(j), bool)
    for k, p in enumerate(j):
        if not np.all(np.isfinite(p)) or p[2] <= 0:
            continue
        # closest points between the sight line 0 -> p (parameter s) and the axis hip -> shoulder (parameter t)
        a, b, e = p @ p, p @ axis, axis @ axis
        c, f = -(p @ hip), -(axis @ hip)
        denom = a * e - b * b
        s = np.clip((b * f - c * e) / denom, 0, 1) if denom > 1e-12 else 0.0
        t = np.clip((b * s + f) / e, 0, 1) if e > 1e-12 else 0.0
        s = np.clip((b * t - c) / a, 0, 1)
        gap = np.linalg.norm(s * p - (hip + t * axis))
        out[k] = gap < radius and (1 - s) * np.linalg.norm(p) > 0.5 * radius
    # the head hides the far eye and ear: a sphere between the ears, as wide as they are apart
    head = 0.5 * (j[_EARS[0]] + j[_EARS[1]])
    head_r = 0.5 * np.linalg.norm(j[_EARS[0]] - j[_EARS[1]])
    for k in _FACE:
        p = j[k]
        if not np.all(np.isfinite(p)) or p[2] <= 0:
            continue
        s = float(np.clip(p @ head / (p @ p), 0, 1))
        out[k] |= np.linalg.norm(s * p - head) < head_r and (1 - s) * np.linalg.norm(p) > 0.5 * head_r
    return out
