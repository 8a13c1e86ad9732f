"""Propagation constants shared by the probe, kernel, encoding and simulator code."""

from __future__ import annotations

import numpy as np


def speed_of_sound(temperature_c: float) -> float:
    """Speed of sound in dry air (m/s) at ``temperature_c`` degrees Celsius: 331.3 * sqrt(1 + T / 273.15).

    Every delay <-> distance conversion in the package goes through this one formula, so the simulator, the
    kernel's range gate and the voxel delay tables agree on what a tap means.
    """
    if temperature_c <= -273.15:
        raise ValueError(f"temperature {temperature_c} degC is below absolute zero")
    return float(331.3 * np.sqrt(1.0 + temperature_c / 273.15))


def bistatic_delay_s(points: np.ndarray, speaker: np.ndarray, mic: np.ndarray, c: float) -> np.ndarray:
    """Travel time (s) speaker -> point -> mic for (..., 3) points: the ellipsoid a kernel tap stands for."""
    points = np.asarray(points, dtype=float)
    path = np.linalg.norm(points - np.asarray(speaker, float), axis=-1) + np.linalg.norm(
        points - np.asarray(mic, float), axis=-1)
    return path / c
