"""Lifter stage: keypoints + pose kernels + camera model + TF -> metric joints (no rclpy)."""

from __future__ import annotations

import numpy as np

from av_pose_ros.pipeline.common import Lookup, StageError


def camera_matrix(k) -> np.ndarray:
    """K (3x3) from CameraInfo.k; StageError when it is zero or not finite (an uncalibrated camera)."""
    K = np.asarray(k, dtype=float).reshape(3, 3)
    if not np.any(K) or not np.all(np.isfinite(K)):
        raise StageError("no_camera_info", "camera info K is zero or not finite (uncalibrated camera)")
    return K


def lift_pose(lifter, kp, kernels, K: np.ndarray, lookup: Lookup, output_frame: str, position_std_m: float):
    """Metric joints of the first person of `kp` with `kernels`: (joints (17, 3), confidence (17,),
    covariance (17, 3, 3)) in `output_frame`. StageError with the diagnostic code when it cannot."""
    try:
        world_from_camera = lookup(output_frame, kp.frame_id, kp.stamp_ns)
        speakers = np.array([lookup(output_frame, f, kernels.stamp_ns)[:3, 3] for f in kernels.speaker_frames])
        mics = np.array([lookup(output_frame, f, kernels.stamp_ns)[:3, 3] for f in kernels.mic_frames])
    except LookupError as err:
        raise StageError("tf", str(err)) from err
    try:
        joints, confidence = lifter.predict(kp.keypoints[0], K, world_from_camera, kernels.kernels, speakers, mics,
                                            kernels.sample_rate, speed_of_sound=kernels.speed_of_sound)
    except ValueError as err:
        raise StageError("input_lifting", str(err)) from err
    if not np.all(np.isfinite(joints)):
        raise StageError("lifting", "the lifter returned non-finite joints; not published")
    std = position_std_m / np.maximum(confidence, 0.05)
    covariance = np.eye(3)[None] * (std**2)[:, None, None]
    return joints, confidence, covariance
