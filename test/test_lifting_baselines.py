"""Baseline sanity: vision-only is exact for the person it assumes; time of flight finds a point reflector."""

import numpy as np

from av_pose_ros.lifting.baselines import SURFACE_TO_JOINT_M, tof, vision_only
from av_pose_ros.primitives.geometry import apply_transform, invert_transform
from av_pose_ros.sim.body import body_joints, facing_yaw, place_in_world
from av_pose_ros.sim.rig import load_rig

FS, C = 48000, 343.0


def _view(joints_world, rig):
    camera = rig.intrinsics.camera_model()
    uv = camera.project_ideal(apply_transform(invert_transform(rig.base_from_optical), joints_world))
    return np.column_stack([uv, np.ones(len(uv))]), camera.K


def test_vision_only_exact_for_assumed_person():
    rig = load_rig("default")
    cam_xy = rig.base_from_camera_link[:2, 3]
    for position in ((2.5, 0.0), (3.2, 1.0), (1.6, -0.6)):
        joints = place_in_world(body_joints(1.7, "standing"), position, facing_yaw(position, cam_xy))
        keypoints, K = _view(joints, rig)
        pred = vision_only(keypoints, K, rig.base_from_optical)
        err = np.linalg.norm(pred - joints, axis=1)
        root = np.linalg.norm((pred[11] + pred[12] - joints[11] - joints[12]) / 2)
        print(position, "MPJPE mm", 1000 * err.mean(), "root mm", 1000 * root)
        # exact up to the canonical pose's own depth relief (nose, eyes and elbows stand out of the body plane)
        assert root < 0.02 and err.mean() < 0.045


def test_vision_only_scale_error_is_the_stature_ratio():
    rig = load_rig("default")
    position = (3.0, 0.0)
    joints = place_in_world(body_joints(1.2, "standing"), position, facing_yaw(position, (0.0, 0.0)))
    keypoints, K = _view(joints, rig)
    pred = vision_only(keypoints, K, rig.base_from_optical)
    cam = rig.base_from_optical[:3, 3]
    ratio = np.linalg.norm(pred[11] - cam) / np.linalg.norm(joints[11] - cam)
    assert abs(ratio - 1.7 / 1.2) < 0.06


def test_tof_finds_point_reflector_depth():
    rig = load_rig("default")
    speakers, mics = rig.pair_positions("base_link")
    origin = rig.base_from_optical[:3, 3]
    taps = 1200
    for target in (np.array([1.8, 0.3, 1.0]), np.array([3.4, -0.5, 1.5])):
        delay = (np.linalg.norm(target - speakers, axis=1) + np.linalg.norm(target - mics, axis=1)) / C * FS
        kernels = np.exp(-0.5 * ((np.arange(taps)[None] - delay[:, None]) / 2.0) ** 2).astype(np.float32)
        keypoints, K = _view(np.repeat(target[None], 17, axis=0), rig)
        pred = tof(keypoints, K, rig.base_from_optical, kernels, speakers, mics, FS, speed_of_sound=C)
        found = np.linalg.norm(pred - origin, axis=1) - SURFACE_TO_JOINT_M
        assert np.all(np.abs(found - np.linalg.norm(target - origin)) < 0.015), found
