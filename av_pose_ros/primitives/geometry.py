"""Rigid transforms and the fixed rotation between a camera's body frame and its optical frame (REP-103)."""

from __future__ import annotations

import numpy as np

# Maps a point from camera_link (x forward, y left, z up) into camera_optical_frame (z forward, x right, y down).
OPTICAL_FROM_LINK_R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
OPTICAL_FROM_LINK = np.eye(4)
OPTICAL_FROM_LINK[:3, :3] = OPTICAL_FROM_LINK_R
LINK_FROM_OPTICAL = np.linalg.inv(OPTICAL_FROM_LINK)


def make_transform(rotation: np.ndarray | None = None, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a translation."""
    t = np.eye(4)
    if rotation is not None:
        t[:3, :3] = rotation
    t[:3, 3] = translation
    return t


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (..., 3) points."""
    points = np.asarray(points, dtype=float)
    return points @ transform[:3, :3].T + transform[:3, 3]


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def matrix_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation of fixed-axis roll (x), pitch (y), yaw (z) angles, as URDF and tf2 use them: Rz @ Ry @ Rx."""
    return rot_z(yaw) @ rot_y(pitch) @ rot_x(roll)


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def quaternion_from_matrix(r: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion of a 3x3 rotation matrix (ROS order)."""
    m = np.asarray(r, dtype=float)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q)
    return q / np.linalg.norm(q)


def matrix_from_quaternion(q) -> np.ndarray:
    """3x3 rotation from an (x, y, z, w) quaternion."""
    x, y, z, w = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (transpose the rotation instead of a general matrix inverse)."""
    transform = np.asarray(transform, dtype=float)
    rotation_t = transform[:3, :3].T
    return make_transform(rotation_t, -rotation_t @ transform[:3, 3])
