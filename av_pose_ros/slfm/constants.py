"""Shared constants of the SLfM data and models."""

from __future__ import annotations

SAMPLE_RATE = 16000          # Hz, everything audio in SLfM runs at this rate
HEAD_RADIUS = 0.0875         # m, spherical-head radius (ears at +-90 deg on the sphere)
SPEED_OF_SOUND = 343.0       # m/s (20 degC; see acoustics.physics.speed_of_sound for the general formula)
CAMERA_FOV_DEG = 60.0        # horizontal field of view of the head camera the rotation model was trained for
