"""Confidence calibration: the fitted scale makes exp(-spread / scale) track the chance of a joint being right."""

import numpy as np

from av_pose_ros.lifting.calibration import fit_confidence_scale


def test_fitted_scale_recovers_a_known_relation():
    rng = np.random.default_rng(0)
    spreads = rng.uniform(0.0, 0.6, 20000)
    right = rng.uniform(size=spreads.size) < np.exp(-spreads / 0.2)  # the truth: P(right) = exp(-spread / 0.2)
    errors = np.where(right, 0.05, 0.3)
    scale, brier = fit_confidence_scale(spreads, errors, radius_m=0.1)
    assert abs(scale - 0.2) < 0.02
    constant = np.mean((right.mean() - right) ** 2)
    assert brier < constant  # better than saying the base rate every time
