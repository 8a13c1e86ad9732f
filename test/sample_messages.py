"""One filled-in instance of every custom message type, built from numpy through the package's conversions."""

from __future__ import annotations

import numpy as np

from av_pose_ros.primitives.skeleton import NUM_JOINTS
from av_pose_ros.ros import conversions as cv

STAMP_NS = 1_700_000_000_123_456_789


def sample_messages() -> dict:
    rng = np.random.default_rng(7)
    audio = cv.Audio(STAMP_NS, "camera_link", rng.uniform(-0.5, 0.5, (4, 4800)).astype(np.float32), 48000,
                     [f"mic_{i}" for i in range(4)], rng.uniform(-1, 1, (4, 240)).astype(np.float32),
                     [f"speaker_{i}" for i in range(4)], "chirp", 42)
    kernels = cv.Kernels(STAMP_NS, "camera_link", rng.uniform(0, 1, (4, 1500)).astype(np.float32), 48000,
                         [f"speaker_{i}" for i in range(4)], [f"mic_{i}" for i in range(4)], 343.2, True, 31.5, 42)
    kp = rng.uniform(0, 1, (2, NUM_JOINTS, 3)).astype(np.float32) * [640, 480, 1]
    keypoints = cv.Keypoints(STAMP_NS, "camera_optical_frame", kp, 640, 480, ["a1", "b2"], True)
    cov = np.tile(np.eye(3) * 1e-3, (NUM_JOINTS, 1, 1))
    pose = cv.Pose3D(STAMP_NS, "base_link", "a1", rng.normal(0, 1, (NUM_JOINTS, 3)),
                     rng.uniform(0, 1, NUM_JOINTS).astype(np.float32), cov, "cnn")
    handover = cv.Handover(STAMP_NS, "base_link", "a1", "right", np.array([0.6, -0.2, 1.1]),
                           np.array([0.0, 0.0, 0.0, 1.0]), np.array([0.01, 0.0, -0.02]), 0.9, True, 1.27)
    return {
        "AudioFrame": cv.audio_to_msg(audio),
        "PoseKernel": cv.kernels_to_msg(kernels),
        "Keypoints2D": cv.keypoints_to_msg(keypoints),
        "HumanPose3D": cv.pose3d_to_msg(pose),
        "HandoverTarget": cv.handover_to_msg(handover),
        "SoundDirection": cv.sound_direction_to_msg(STAMP_NS, "head_link", 0.4, 0.8),
        "HeadRotation": cv.head_rotation_to_msg(STAMP_NS, STAMP_NS - 33_000_000, "head_link", -0.05, 1.2, 0.7),
    }
