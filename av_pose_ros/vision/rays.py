"""Voxel encoding of 2D keypoints: how well each voxel agrees with each joint's viewing ray.

A keypoint constrains its joint to the ray through its pixel; the encoding spreads that constraint over a 3D grid so
a 3D CNN can fuse it with the acoustic encodings. For joint j with undistorted keypoint (u_j, v_j) and confidence c_j,
a voxel whose ideal pinhole projection lies d pixels from the keypoint gets

    value = c_j * exp(-d^2 / (2 sigma_j^2)),   sigma_j = sigma_px / sqrt(max(c_j, MIN_CONFIDENCE))

i.e. confidence acts as an inverse variance: a doubtful keypoint gives a wider, lower ridge around its ray, a sure one
a narrow ridge of height c_j. The value is 0 for voxels behind the camera (optical z <= min_depth), for voxels that
project outside the image, and for missing joints (confidence 0 or not finite, or non-finite pixels).
"""

from __future__ import annotations

import numpy as np

from av_pose_ros.primitives.geometry import invert_transform

# Lower bound on the confidence used for the width, so a barely-seen joint's ridge stays a few sigma wide, not infinite.
MIN_CONFIDENCE = 0.05


def ray_encoding(keypoints: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, points: np.ndarray,
                 sigma_px, image_size: tuple[int, int] | None = None, min_depth: float = 1e-3) -> np.ndarray:
    """Encode (J, 3) keypoints [u, v, confidence] (ideal pixels of K) on (V, 3) world points -> (J, V) float32.

    ``world_from_camera`` (4, 4) maps optical-frame points into the world frame. ``sigma_px`` is a scalar or (J,)
    array. ``image_size`` is (width, height) in pixels; the default (2 cx, 2 cy) assumes a centred principal point,
    pass the real size from the camera info whenever it is known.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)
    K = np.asarray(K, dtype=np.float64)
    if image_size is None:
        image_size = (2.0 * K[0, 2], 2.0 * K[1, 2])
    width, height = image_size

    # Voxel projection, computed once and shared by every joint.
    camera_from_world = invert_transform(world_from_camera)
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    p = points @ camera_from_world[:3, :3].T.astype(np.float32) + camera_from_world[:3, 3].astype(np.float32)
    z = p[:, 2]
    in_front = z > min_depth
    inv_z = np.where(in_front, 1.0 / np.where(in_front, z, 1.0), 0.0).astype(np.float32)
    fx, skew, cx, fy, cy = (float(K[i, j]) for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2)))  # keep float32
    u = (fx * p[:, 0] + skew * p[:, 1]) * inv_z + cx
    v = fy * p[:, 1] * inv_z + cy
    visible = in_front & (u >= 0) & (u < width) & (v >= 0) & (v < height)

    confidence = np.nan_to_num(keypoints[:, 2], nan=0.0)
    present = (confidence > 0) & np.isfinite(keypoints[:, :2]).all(axis=1)
    confidence = np.where(present, np.clip(confidence, 0.0, 1.0), 0.0)
    sigma = np.broadcast_to(np.asarray(sigma_px, dtype=np.float64), confidence.shape)
    # -1 / (2 sigma_j^2) with sigma_j^2 = sigma^2 / c_j.
    neg_half_precision = (-0.5 * np.maximum(confidence, MIN_CONFIDENCE) / sigma**2).astype(np.float32)
    ku = np.where(present, keypoints[:, 0], 0.0).astype(np.float32)
    kv = np.where(present, keypoints[:, 1], 0.0).astype(np.float32)

    du = u[None, :] - ku[:, None]
    dv = v[None, :] - kv[:, None]
    du *= du
    dv *= dv
    du += dv
    du *= neg_half_precision[:, None]
    encoding = np.exp(du, out=du)
    encoding *= confidence.astype(np.float32)[:, None]
    encoding *= visible[None, :]
    return encoding
