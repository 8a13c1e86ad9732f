"""Constant-velocity Kalman filter for a 3D point: smooths the hand and estimates its velocity."""

from __future__ import annotations

import numpy as np


class ConstantVelocityFilter:
    """State [position, velocity] (6,). `accel_std` is the process noise (m/s^2): how quickly a hand can change its
    velocity; `update` takes the measurement's covariance, so a low-confidence joint moves the estimate less."""

    def __init__(self, accel_std: float = 2.0, reset_after_s: float = 1.0):
        self.accel_std = accel_std
        self.reset_after_s = reset_after_s
        self.x: np.ndarray | None = None
        self.P = np.eye(6)
        self.stamp_ns = 0

    def reset(self) -> None:
        self.x = None

    def update(self, position: np.ndarray, covariance: np.ndarray, stamp_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Fuse a measured position at `stamp_ns`; returns the filtered (position, velocity)."""
        position = np.asarray(position, dtype=float)
        dt = (stamp_ns - self.stamp_ns) * 1e-9
        if self.x is None or dt <= 0.0 or dt > self.reset_after_s:
            if self.x is not None and dt <= 0.0:
                return self.x[:3].copy(), self.x[3:].copy()  # out-of-order measurement: keep the estimate
            self.x = np.concatenate([position, np.zeros(3)])
            self.P = np.block([[covariance, np.zeros((3, 3))], [np.zeros((3, 3)), np.eye(3) * 0.25]])
            self.stamp_ns = stamp_ns
            return self.x[:3].copy(), self.x[3:].copy()
        F = np.eye(6)
        F[:3, 3:] = np.eye(3) * dt
        g = np.concatenate([np.full(3, 0.5 * dt * dt), np.full(3, dt)])
        Q = np.outer(g, g) * np.kron(np.ones((2, 2)), np.eye(3)) * self.accel_std**2
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + Q
        H = np.hstack([np.eye(3), np.zeros((3, 3))])
        S = H @ self.P @ H.T + covariance
        K = self.P @ H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (position - H @ self.x)
        self.P = (np.eye(6) - K @ H) @ self.P
        self.stamp_ns = stamp_ns
        return self.x[:3].copy(), self.x[3:].copy()
