"""Rigid transforms and the fixed rotation between a camera's body frame and its optical frame (REP-103).

Rotation conversions (axis angles, roll/pitch/yaw, quaternions, interpolation) are scipy's
``scipy.spatial.transform.Rotation`` (the maths tf-transformations wraps); this module fixes the conventions: ROS
quaternion order (x, y, z, w) with w >= 0, URDF fixed-axis roll/pitch/yaw."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial.transform import Rotation

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


# The elementary rotations stay closed forms: they are definitions rather than conversions, run per joint and per
# frame in the simulator, and cost a tenth of a scipy Rotation round trip (test_geometry checks them against it).
def rot_z(angle: float) -> np.ndarray:
    """3x3 rotation by ``angle`` (rad) about z, counter-clockwise seen from +z (REP-103: + yaw turns left)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def matrix_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation of fixed-axis roll (x), pitch (y), yaw (z) angles, as URDF and tf2 use them: Rz @ Ry @ Rx
    (scipy's extrinsic "xyz")."""
    return Rotation.from_euler("xyz", [roll, pitch, yaw]).as_matrix()


def rpy_from_matrix(rotation: np.ndarray) -> tuple[float, float, float]:
    """URDF's fixed-axis roll, pitch, yaw of a 3x3 rotation (R = Rz(yaw) Ry(pitch) Rx(roll)), pitch in
    [-pi/2, pi/2]. At gimbal lock (pitch = +-pi/2) only roll - yaw (or roll + yaw) is defined: yaw is set to 0 and
    the whole turn folded into roll."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # scipy's "Gimbal lock detected": handled as documented
        roll, pitch, yaw = Rotation.from_matrix(np.asarray(rotation, float)).as_euler("xyz")
    return float(roll), float(pitch), float(yaw)


def quaternion_from_matrix(r: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion of a 3x3 rotation matrix (ROS order), with w >= 0 (of q and -q, the one whose
    rotation angle is in [0, pi])."""
    q = Rotation.from_matrix(np.asarray(r, dtype=float)).as_quat()
    return -q if q[3] < 0 else q


def matrix_from_quaternion(q) -> np.ndarray:
    """3x3 rotation from an (x, y, z, w) quaternion (normalised first; a zero quaternion raises ValueError)."""
    return Rotation.from_quat(np.asarray(q, dtype=float)).as_matrix()


def interpolate_rotation(r0: np.ndarray, r1: np.ndarray, t: float) -> np.ndarray:
    """3x3 rotation a fraction ``t`` in [0, 1] of the way from ``r0`` to ``r1`` along the shorter arc (slerp), as
    tf2 interpolates between two stamped transforms."""
    start, end = Rotation.from_matrix(np.asarray(r0, float)), Rotation.from_matrix(np.asarray(r1, float))
    step = end * start.inv()                       # as_rotvec: angle in [0, pi], i.e. the shorter arc
    return (Rotation.from_rotvec(float(t) * step.as_rotvec()) * start).as_matrix()


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (transpose the rotation instead of a general matrix inverse)."""
    transform = np.asarray(transform, dtype=float)
    rotation_t = transform[:3, :3].T
    return make_transform(rotation_t, -rotation_t @ transform[:3, 3])
