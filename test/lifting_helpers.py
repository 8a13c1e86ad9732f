"""Helpers shared by the lifting tests."""

from __future__ import annotations

import math

from av_pose_ros.lifting.calibration import FEATURES, Calibration


def flag_moves(conf_ok: float, conf_flagged: float, along: tuple, across: tuple) -> Calibration:
    """A calibration whose only inputs are the bias and the flag: (confidence, along std, across std) per state."""
    def coef(ok, flagged):
        c = [0.0] * len(FEATURES)
        c[0], c[FEATURES.index("flagged")] = ok, flagged - ok
        return c

    def logit(p: float) -> float:
        return math.log(p / (1 - p))

    return Calibration(0.1, coef(logit(conf_ok), logit(conf_flagged)), coef(*map(math.log, along)),
                       coef(*map(math.log, across)), {})
