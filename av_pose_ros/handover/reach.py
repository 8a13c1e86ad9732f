"""The manipulator's reach envelope: a spherical shell about the arm's own frame (its shoulder, e.g.
`arm_base_link`, whose origin handover_node looks up through TF and passes in base-frame coordinates), cut by
height limits in the base frame. A target outside it is still published, with `reachable: false`, so the robot can
ask the person to come closer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReachEnvelope:
    center: tuple[float, float, float] = (0.0, 0.0, 1.0)   # the reach frame's origin, in the base frame (m)
    min_radius_m: float = 0.25
    max_radius_m: float = 0.85
    min_z_m: float = 0.4
    max_z_m: float = 1.8

    def distance(self, point_in_base: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(point_in_base) - np.asarray(self.center)))

    def contains(self, point_in_base: np.ndarray) -> bool:
        r = self.distance(point_in_base)
        return self.min_radius_m <= r <= self.max_radius_m and self.min_z_m <= point_in_base[2] <= self.max_z_m
