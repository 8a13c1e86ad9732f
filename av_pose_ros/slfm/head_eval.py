"""The azimuth model on a head it never heard, and what a calibration from the head's own turns buys.

``turn_recordings`` makes the calibration input a robot would collect: a fixed source heard at four head yaws,
the turns known (from the camera or TF), the directions not. ``evaluate_measured_head`` reads held-out front
clips (``evaluate.evaluate_azimuth``: the same rooms, sources and signals as ``eval-slfm``'s azimuth table,
rendered through the measured head) with the plain spherical-head readout, the shipped calibration (learned on the
training head's turns) and a calibration learned on the measured head's own turns (other rooms), against GCC-PHAT.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .data import simulate_config
from .head_calibration import HeadCalibration, fit_head_calibration
from .heads import SphericalHead
from .sources import SourceBank

CALIBRATION_INDEX = 5_000_000  # room indices of calibration recordings (eval clips start at 1_000_000)


def turn_recordings(estimator, head, n: int, seed: int, progress: bool = False):
    """(delays (n, 4) s, turns (n, 4) rad, true azimuths (n, 4) rad, for audits only) of n simulated recordings:
    a fixed source anywhere around the head, heard at the base yaw and three turns of up to +-30 deg."""
    bank = SourceBank(None)
    delays, turns, azimuths = [], [], []
    for i in tqdm(range(n), desc=f"turn recordings ({getattr(head, 'name', 'head')})", disable=not progress):
        clips, t, az, _, _ = simulate_config(CALIBRATION_INDEX + i, seed, bank, views=4, head=head)
        delays.append(estimator.delay_batch(list(clips)))
        turns.append(t)
        azimuths.append(az)
    return np.array(delays), np.array(turns), np.array(azimuths)


def evaluate_measured_head(estimator, head, num: int, seed: int, *, shipped: HeadCalibration | None,
                           recordings: int = 150, levels=None, cache_dir=None, progress: bool = False) -> dict:
    """``evaluate_azimuth`` on ``head`` with the shipped calibration and one fitted on ``recordings`` of its own
    turns."""
    from .evaluate import evaluate_azimuth

    delays, turns, _ = turn_recordings(estimator, head, recordings, seed, progress)
    own = fit_head_calibration(delays, turns, head=head.name, symmetric=isinstance(head, SphericalHead))
    calibrations = {"own_turns": own} | ({"shipped": shipped} if shipped is not None else {})
    return {"head": head.name, "calibration_recordings": recordings, "own_calibration_residual_us": own.residual_us,
            "own_calibration_has_back_curve": bool(own.back_delays_s),
            "levels": evaluate_azimuth(estimator, num, seed, levels, cache_dir, calibrations, head)}


def format_measured_head(res: dict) -> str:
    methods = [m for m in res["levels"]["all"] if m != "chance"]
    lines = [f"Azimuth on a measured head ({res['head']}, never trained on), front sources, MAE / median (deg);",
             f"  model_own_turns: calibrated on {res['calibration_recordings']} recordings of its own turns "
             f"(other rooms, no labels; back curve: {res['own_calibration_has_back_curve']})",
             "  " + f"{'level':<8}" + "".join(f"{m:>20}" for m in methods)]
    for level, r in res["levels"].items():
        lines.append("  " + f"{level:<8}" + "".join(
            f"{r[m]['mae_deg']:>12.2f} / {r[m]['median_deg']:<5.2f}" for m in methods))
    return "\n".join(lines)


__all__ = ["turn_recordings", "evaluate_measured_head", "format_measured_head", "CALIBRATION_INDEX"]
