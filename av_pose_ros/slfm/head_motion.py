"""A turning head for the simulated graph: a head-yaw motion and the head camera's view of a textured 3D room.

sim_node's rig (camera, speakers, microphones on `base_link`) never moves; the head camera that slfm_node reads is
a second camera on the robot's head. With `head_motion` set, sim_node turns that head (`HeadMotion.yaw(t)`),
renders what its camera sees at that yaw (`HeadCamera.view`: a seeded textured shoebox room from `scenes3d`, the
held-out photographs and procedural scenes as textures, a slightly distorted lens) and publishes the image with the
true yaw, so that slfm_node's rotation model, its integrated yaw on TF (`head_base_link -> head_link`) and
everything that reads that TF are exercised live against the truth.

Yaw is + left (REP-103), radians, in the frame the head turns in (`head_base_link`). No rclpy here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MOTIONS = ("none", "sine", "steps")


@dataclass(frozen=True)
class HeadMotion:
    """``sine``: ``amplitude * sin(2 pi t / period)``. ``steps``: hold 0, +amplitude, 0, -amplitude for a quarter
    period each, turning between them in ``ramp_s`` (a head cannot jump). ``none``: 0."""

    kind: str = "none"
    amplitude_deg: float = 20.0
    period_s: float = 8.0
    ramp_s: float = 0.4

    def __post_init__(self):
        if self.kind not in MOTIONS:
            raise ValueError(f"head motion must be one of {MOTIONS}, got {self.kind!r}")
        if not (self.period_s > 0 and 0 <= self.ramp_s < self.period_s / 4):
            raise ValueError("head motion needs period_s > 0 and 0 <= ramp_s < period_s / 4")

    def yaw(self, t_s: float) -> float:
        a = math.radians(self.amplitude_deg)
        if self.kind == "none":
            return 0.0
        if self.kind == "sine":
            return a * math.sin(2 * math.pi * t_s / self.period_s)
        quarter = self.period_s / 4
        levels = (0.0, a, 0.0, -a)
        k = int(math.floor(t_s / quarter))
        into = t_s - k * quarter
        now, before = levels[k % 4], levels[(k - 1) % 4]
        if self.ramp_s > 0 and into < self.ramp_s:  # smooth (cosine) turn from the previous level
            w = 0.5 - 0.5 * math.cos(math.pi * into / self.ramp_s)
            return before + (now - before) * w
        return now


class HeadCamera:
    """The head camera's view of one seeded textured room at any head yaw (``width x height``, ``fov_deg``)."""

    def __init__(self, seed: int = 0, width: int = 160, height: int = 120, fov_deg: float = 60.0, k1: float = -0.02):
        from .images import ImageBank, load_real_photos
        from .scenes3d import Lens, sample_room3d

        rng = np.random.default_rng([seed, 515])
        bank = ImageBank(load_real_photos("eval"), n_procedural=4, seed=seed + 1, p_real=0.5)
        self.room = sample_room3d(rng, bank, n_boxes=(2, 4))
        self.lens = Lens(width=width, height=height, hfov_deg=fov_deg, k1=k1)
        self.origin = np.array([self.room.dims[0] / 2, self.room.dims[1] / 2, 1.4])
        self.base_yaw = float(rng.uniform(-math.pi, math.pi))

    @property
    def fx(self) -> float:
        return float(self.lens.K[0, 0])

    def view(self, yaw: float) -> np.ndarray:
        """(H, W, 3) uint8: what the camera sees with the head turned by ``yaw`` (rad, + left)."""
        from .scenes3d import camera_rotation, render

        return render(self.room, self.lens, self.origin, camera_rotation(self.base_yaw + yaw), supersample=1)
