"""Calibrates the lifter's per-joint confidence so it means what consumers read it as: the chance that the joint is
within `radius_m` of the truth.

The network's confidence is exp(-spread / scale), spread being the RMS width of the joint's heatmap. Training
leaves `scale` at a default that ranks joints but is not a probability; this fits `scale` on validation samples
(minimum Brier score against the indicator "error < radius") and stores it in the model file.

    python -m av_pose_ros.lifting.calibration --model models/lifter.pt --scenario config/scenarios/default.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def fit_confidence_scale(spreads: np.ndarray, errors: np.ndarray, radius_m: float = 0.1) -> tuple[float, float]:
    """(scale, Brier score) minimising mean((exp(-spread / scale) - [error < radius])^2) over a log grid."""
    hit = (np.asarray(errors) < radius_m).astype(float)
    spreads = np.asarray(spreads, dtype=float)
    scales = np.geomspace(1e-3, 10.0, 400)
    brier = [np.mean((np.exp(-spreads / s) - hit) ** 2) for s in scales]
    best = int(np.argmin(brier))
    return float(scales[best]), float(brier[best])


def collect(model: str, scenario: str, num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Heatmap spreads and errors (m) of every joint on `num` validation samples."""
    from tqdm import tqdm

    from . import dataset as ds
    from .features import LiftingInputError
    from .lifter import Lifter, snap

    lifter = Lifter.load(model)
    data = ds.generate(scenario, "val", seed, num)
    spreads, errors = [], []
    for i in tqdm(range(num), desc="calibrating"):
        s = ds.sample_at(data, i)
        args = (s["keypoints"].astype(float), s["K"].astype(float), s["world_from_camera"].astype(float),
                s["kernels"], s["speakers"].astype(float), s["mics"].astype(float), float(s["fs"]))
        try:
            grid, rays, audio = lifter.prepare(*args, speed_of_sound=float(s["c"]))
        except LiftingInputError:
            continue
        local, conf = lifter.run_network(rays, audio)
        joints = grid.to_world(local)
        if lifter.snap_to_rays:
            joints = snap(joints, *args[:3])
        spreads.append(-lifter.config.confidence_scale_m * np.log(np.clip(conf, 1e-12, 1.0)))
        errors.append(np.linalg.norm(joints - s["joints"], axis=1))
    return np.concatenate(spreads), np.concatenate(errors)


def write_scale(model: str | Path, scale: float, brier: float, radius_m: float) -> None:
    import torch

    payload = torch.load(model, map_location="cpu", weights_only=True)
    payload["config"]["confidence_scale_m"] = scale
    payload.setdefault("metrics", {})["confidence_calibration"] = {"radius_m": radius_m, "brier": brier,
                                                                   "scale_m": scale}
    torch.save(payload, model)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/lifter.pt")
    parser.add_argument("--scenario", default="config/scenarios/default.yaml")
    parser.add_argument("--num", type=int, default=200, help="validation samples (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--radius-m", type=float, default=0.1, help="a joint counts as right within this (m)")
    args = parser.parse_args(argv)
    spreads, errors = collect(args.model, args.scenario, args.num, args.seed)
    scale, brier = fit_confidence_scale(spreads, errors, args.radius_m)
    confidence = np.exp(-spreads / scale)
    print(f"scale {scale:.4f} m, Brier {brier:.4f}; mean confidence {confidence.mean():.3f} vs share of joints "
          f"within {args.radius_m * 100:.0f} cm {np.mean(errors < args.radius_m):.3f}")
    for lo, hi in ((0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01)):
        sel = (confidence >= lo) & (confidence < hi)
        if sel.any():
            print(f"  confidence {lo:.2f}-{min(hi, 1):.2f}: {sel.sum():5d} joints, "
                  f"{np.mean(errors[sel] < args.radius_m):.2f} within {args.radius_m * 100:.0f} cm")
    write_scale(args.model, scale, brier, args.radius_m)
    print(f"wrote confidence_scale_m={scale:.4f} into {args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
