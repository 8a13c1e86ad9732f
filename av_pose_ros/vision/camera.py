"""Pinhole camera with lens distortion, built from ``sensor_msgs/CameraInfo`` fields (no ROS import).

Pixel conventions: *raw* pixels are where things appear in the camera image (with distortion); *ideal* pixels are
what an undistorted pinhole camera with the same ``K`` would see. Detectors see raw pixels; everything downstream
(keypoint messages, ray encodings, lifting) uses ideal pixels of ``K``, so one matrix describes the geometry.
``R`` and ``P`` (stereo rectification) are kept for reference but not applied: a monocular keypoint stream needs
neither, and using ``P`` would tie the keypoints to a rectified image that the node never produces.
All 3D points are in the optical frame (z forward, x right, y down) unless a transform says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from av_pose_ros.primitives.geometry import apply_transform

# Number of distortion coefficients each CameraInfo distortion model carries (OpenCV order).
DISTORTION_COEFFICIENTS: dict[str, int] = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}

# Undistortion is iterative; OpenCV's default (5 iterations) leaves pixel-level errors on strong lenses.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Intrinsics (3x3 ``K``), distortion ``D`` and image size of one calibrated camera."""

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str = "plumb_bob"
    R: np.ndarray | None = None
    P: np.ndarray | None = None

    def __post_init__(self):
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        k = np.asarray(self.K, dtype=float)
        if k.shape != (3, 3) or not np.all(np.isfinite(k)):
            raise ValueError(f"K must be a finite 3x3 matrix, got shape {k.shape}")
        if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.allclose(k[2], [0.0, 0.0, 1.0]):
            raise ValueError(f"K is not an intrinsic matrix (need fx, fy > 0 and last row 0 0 1): {k.tolist()}")
        if self.distortion_model not in DISTORTION_COEFFICIENTS:
            raise ValueError(f"unknown distortion model {self.distortion_model!r}; "
                             f"supported: {sorted(DISTORTION_COEFFICIENTS)}")
        expected = DISTORTION_COEFFICIENTS[self.distortion_model]
        d = np.asarray(self.D, dtype=float).ravel()
        if d.size == 0:  # CameraInfo of an uncalibrated lens leaves D empty: no distortion.
            d = np.zeros(expected)
        if d.size != expected or not np.all(np.isfinite(d)):
            raise ValueError(f"{self.distortion_model} needs {expected} finite distortion coefficients, got {d.size}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "K", k)
        object.__setattr__(self, "D", d)
        for name, shape in (("R", (3, 3)), ("P", (3, 4))):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=float)
                if value.shape != shape:
                    raise ValueError(f"{name} must be {shape}, got {value.shape}")
                object.__setattr__(self, name, value)

    @classmethod
    def from_camera_info_fields(cls, width, height, distortion_model, d, k, r=None, p=None) -> CameraModel:
        """Build from the fields of a ``sensor_msgs/CameraInfo`` (flat ``k`` of 9, ``r`` of 9, ``p`` of 12).

        An all-zero ``K`` is how ROS drivers say "not calibrated"; it is refused. All-zero ``R``/``P`` become None.
        """
        k = np.asarray(k, dtype=float)
        if k.size != 9:
            raise ValueError(f"CameraInfo k must have 9 values, got {k.size}")
        if not np.any(k):
            raise ValueError("CameraInfo k is all zeros: the camera is not calibrated")

        def optional(values, size, shape):
            if values is None:
                return None
            values = np.asarray(values, dtype=float)
            if values.size != size:
                raise ValueError(f"CameraInfo matrix of shape {shape} needs {size} values, got {values.size}")
            return values.reshape(shape) if np.any(values) else None

        return cls(width=width, height=height, K=k.reshape(3, 3), D=d,
                   distortion_model=str(distortion_model), R=optional(r, 9, (3, 3)), P=optional(p, 12, (3, 4)))

    @property
    def is_fisheye(self) -> bool:
        return self.distortion_model == "equidistant"

    def project_ideal(self, points_optical: np.ndarray) -> np.ndarray:
        """(N, 3) optical-frame points -> (N, 2) ideal pixels; NaN for points not in front of the camera."""
        p = np.asarray(points_optical, dtype=float).reshape(-1, 3)
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = p[:, :2] / p[:, 2:3]
        uv = xy @ self.K[:2, :2].T + self.K[:2, 2]
        uv[p[:, 2] <= 0] = np.nan
        return uv

    def project(self, points_optical: np.ndarray) -> np.ndarray:
        """(N, 3) optical-frame points -> (N, 2) raw (distorted) pixels; NaN for points not in front."""
        p = np.asarray(points_optical, dtype=float).reshape(-1, 3)
        uv = np.full((len(p), 2), np.nan)
        front = np.isfinite(p).all(axis=1) & (p[:, 2] > 0)
        if front.any():
            obj = p[front].reshape(-1, 1, 3)
            zero = np.zeros(3)
            if self.is_fisheye:
                projected, _ = cv2.fisheye.projectPoints(obj, zero, zero, self.K, self.D)
            else:
                projected, _ = cv2.projectPoints(obj, zero, zero, self.K, self.D)
            uv[front] = projected.reshape(-1, 2)
        return uv

    def distort_points(self, uv_ideal: np.ndarray) -> np.ndarray:
        """(N, 2) ideal pixels -> (N, 2) raw pixels (the inverse of :meth:`undistort_points`)."""
        return self.project(self.rays(uv_ideal))

    def undistort_points(self, uv_raw: np.ndarray) -> np.ndarray:
        """(N, 2) raw pixels -> (N, 2) ideal pixels of ``K`` (OpenCV, ``P=K``); NaN rows stay NaN."""
        uv = np.asarray(uv_raw, dtype=float).reshape(-1, 2)
        out = np.full_like(uv, np.nan)
        valid = np.isfinite(uv).all(axis=1)
        if valid.any():
            src = uv[valid].reshape(-1, 1, 2)
            if self.is_fisheye:
                ideal = cv2.fisheye.undistortPoints(src, self.K, self.D, R=np.eye(3), P=self.K,
                                                    criteria=_UNDISTORT_CRITERIA)
            else:
                ideal = cv2.undistortPointsIter(src, self.K, self.D, np.eye(3), self.K, _UNDISTORT_CRITERIA)
            out[valid] = ideal.reshape(-1, 2)
        return out

    def backproject(self, uv_ideal: np.ndarray, depth) -> np.ndarray:
        """(N, 2) ideal pixels and depth (scalar or (N,), the optical z, not the range) -> (N, 3) optical points."""
        uv = np.asarray(uv_ideal, dtype=float).reshape(-1, 2)
        xy = (uv - self.K[:2, 2]) @ np.linalg.inv(self.K[:2, :2]).T
        z = np.broadcast_to(np.asarray(depth, dtype=float), (len(uv),))
        return np.column_stack([xy * z[:, None], z])

    def rays(self, uv_ideal: np.ndarray) -> np.ndarray:
        """(N, 2) ideal pixels -> (N, 3) unit viewing directions in the optical frame."""
        directions = self.backproject(uv_ideal, 1.0)
        return directions / np.linalg.norm(directions, axis=1, keepdims=True)

    def rays_in_frame(self, uv_ideal: np.ndarray, frame_from_optical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays in another frame (e.g. from TF): origin (3,) = camera centre, directions (N, 3) unit vectors."""
        transform = np.asarray(frame_from_optical, dtype=float)
        origin = apply_transform(transform, np.zeros(3))
        return origin, self.rays(uv_ideal) @ transform[:3, :3].T
