"""Rotation conventions of primitives.geometry against scipy's Rotation and against closed forms built here from
axis and angle (Rodrigues), for random rotations and the awkward ones: near 0, near and at 180 deg, gimbal lock."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from av_pose_ros.primitives.geometry import (
    interpolate_rotation,
    matrix_from_quaternion,
    matrix_from_rpy,
    quaternion_from_matrix,
    rot_x,
    rot_y,
    rot_z,
    rpy_from_matrix,
)


def rodrigues(axis, angle) -> np.ndarray:
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def cases():
    rng = np.random.default_rng(7)
    axes = [rng.normal(size=3) for _ in range(6)] + [np.array([1.0, 0, 0]), np.array([0, 0, 1.0]),
                                                     np.array([1.0, -2.0, 0.5])]
    angles = list(rng.uniform(0, np.pi, 6)) + [np.pi, np.pi - 1e-7, 1e-9]
    return [(a / np.linalg.norm(a), t) for a, t in zip(axes, angles)]


@pytest.mark.parametrize("axis, angle", cases())
def test_quaternion_round_trip_and_sign(axis, angle):
    r = rodrigues(axis, angle)
    q = quaternion_from_matrix(r)
    expected = np.append(axis * np.sin(angle / 2), np.cos(angle / 2))   # w = cos(angle / 2) >= 0
    assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
    if angle < np.pi - 1e-6:
        np.testing.assert_allclose(q, expected, atol=1e-9)
    else:   # at 180 deg w = 0 and q, -q are both canonical
        assert min(np.abs(q - expected).max(), np.abs(q + expected).max()) < 1e-6
    scipy_q = Rotation.from_matrix(r).as_quat()
    assert min(np.abs(q - scipy_q).max(), np.abs(q + scipy_q).max()) < 1e-12
    np.testing.assert_allclose(matrix_from_quaternion(q), r, atol=1e-9)
    np.testing.assert_allclose(matrix_from_quaternion(-3.0 * q), r, atol=1e-9)   # any scale and sign


def test_elementary_rotations_and_rpy_match_scipy():
    rng = np.random.default_rng(3)
    for roll, pitch, yaw in rng.uniform(-np.pi, np.pi, (8, 3)) * [1, 0.5, 1]:
        for fn, axis in ((rot_x, "x"), (rot_y, "y"), (rot_z, "z")):
            np.testing.assert_allclose(fn(yaw), Rotation.from_euler(axis, yaw).as_matrix(), atol=1e-12)
        r = matrix_from_rpy(roll, pitch, yaw)
        np.testing.assert_allclose(r, rot_z(yaw) @ rot_y(pitch) @ rot_x(roll), atol=1e-12)   # URDF: Rz Ry Rx
        np.testing.assert_allclose(rpy_from_matrix(r), (roll, pitch, yaw), atol=1e-9)
    assert rot_z(np.pi / 2) @ np.array([1.0, 0, 0]) == pytest.approx([0, 1.0, 0])   # + yaw turns x to the left


@pytest.mark.parametrize("pitch", [np.pi / 2, -np.pi / 2])
def test_rpy_at_gimbal_lock_folds_yaw_into_roll(pitch):
    r = matrix_from_rpy(0.4, pitch, 0.3)
    roll_back, pitch_back, yaw_back = rpy_from_matrix(r)
    assert yaw_back == 0.0 and pitch_back == pytest.approx(pitch)
    np.testing.assert_allclose(matrix_from_rpy(roll_back, pitch_back, yaw_back), r, atol=1e-9)


def test_interpolation_takes_the_shorter_arc():
    rng = np.random.default_rng(5)
    for _ in range(5):
        r0, r1 = Rotation.random(2, random_state=rng).as_matrix()
        slerp = Slerp([0.0, 1.0], Rotation.from_matrix([r0, r1]))
        for t in (0.0, 0.3, 1.0):
            np.testing.assert_allclose(interpolate_rotation(r0, r1, t), slerp(t).as_matrix(), atol=1e-9)
    # 270 deg one way is 90 deg the other: halfway is -45 deg
    np.testing.assert_allclose(interpolate_rotation(np.eye(3), rot_z(1.5 * np.pi), 0.5), rot_z(-np.pi / 4),
                               atol=1e-12)
    near_half_turn = rodrigues([0.2, 0.3, 0.9], np.pi - 1e-6)
    mid = interpolate_rotation(np.eye(3), near_half_turn, 0.5)
    assert np.degrees(Rotation.from_matrix(mid).magnitude()) == pytest.approx(90.0, abs=1e-3)
