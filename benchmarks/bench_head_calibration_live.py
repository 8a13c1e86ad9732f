"""The robot's calibration workflow, live over DDS: record the ears and the head's yaw, then `calibrate-head --bag`.

Per take: sim_node turns the head (steps of +-20 deg) and plays one steady source (`head_sound`), slfm_node
integrates the head's yaw from the head camera (the wide rotation model) and publishes it on `slfm/head_rotation`,
and `av-pose bag record` records `binaural/frames`, `slfm/head_rotation` and (for scoring only) `sim/head_yaw`.
Then the head calibration is fitted from the takes (the integrated yaw, no truth) and every method reads the
windows of a held-out take (the last): the plain spherical-head curve, the shipped calibration, the one just
fitted. The simulated head is the training sphere, so the shipped calibration is the reference here: this shows
that the workflow works end to end (bag, integrated yaw, fit), not what a new head gains (`eval-slfm` does).

    python benchmarks/bench_head_calibration_live.py [--seconds 60] [--sources 145 60 -100 -30 120] [--seed 21]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from av_pose_ros.primitives.paths import package_file  # noqa: E402

MOTION = {"head_motion": "steps", "head_motion_amplitude_deg": 20.0, "head_motion_period_s": 6.0,
          "head_camera_period_s": 0.3}
TOPICS = ["binaural/frames", "slfm/head_rotation", "sim/head_yaw"]


def record_take(out: Path, source_deg: float, seed: int, seconds: float) -> None:
    from av_pose_ros.app.launch_graphs import ResolvedNode
    from av_pose_ros.app.launcher import Launch

    def node(name: str, params: dict) -> ResolvedNode:
        return ResolvedNode(name, name, "", [package_file(f"config/{name}.yaml")], params, {})

    sim = {**MOTION, "head_sound": "noise", "head_sound_azimuth_deg": float(source_deg), "seed": int(seed)}
    slfm = {"mode": "vision", "rotation_model_path": str(package_file("models/slfm_rotation_wide.pt"))}
    launch = Launch([node("slfm_node", slfm), node("sim_node", sim)], quiet=True)
    launch.start()
    try:
        time.sleep(8.0)   # nodes up, the first images integrated
        subprocess.run([str(ROOT / ".venv" / "bin" / "av-pose"), "bag", "record", "-o", str(out), "--duration",
                        str(seconds), *TOPICS], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        launch.stop()


def score_take(bag: Path, source_deg: float, estimator, calibrations: dict) -> dict:
    """Front-folded reading errors (deg) of every window of ``bag`` against the truth, per calibration."""
    from av_pose_ros.slfm.calibration_bag import BagRecordingsConfig, read_ears_and_yaw
    from av_pose_ros.slfm.rooms import fold_front

    segments, t_true, yaw_true = read_ears_and_yaw(bag, BagRecordingsConfig(yaw_topic="sim/head_yaw"))
    clips, truth = [], []
    for start, fs, data in segments:
        for k in range(data.shape[1] // fs):
            centre = start + int((k + 0.5) * 1e9)
            if t_true[0] <= centre <= t_true[-1]:
                clips.append(data[:, k * fs:(k + 1) * fs])
                truth.append(fold_front(math.radians(source_deg) - np.interp(centre, t_true, yaw_true)))
    delays = estimator.delay_batch(clips, 16000)
    truth = np.asarray(truth)
    out = {"windows": len(clips)}
    for name, cal in calibrations.items():
        err = np.degrees(np.abs(cal.lateral(delays) - truth))
        out[name] = (float(err.mean()), float(np.median(err)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="recorded seconds per take")
    ap.add_argument("--sources", type=float, nargs="+", default=[145.0, 60.0, -100.0, -30.0, 120.0],
                    help="source direction per take (deg, head base frame); the last take is held out")
    ap.add_argument("--seed", type=int, default=21, help="rooms: seed + take index")
    args = ap.parse_args()

    from av_pose_ros.slfm.calibration_bag import BagRecordingsConfig, recordings_from_bag
    from av_pose_ros.slfm.estimators import AzimuthEstimator, model_path
    from av_pose_ros.slfm.head_calibration import HeadCalibration, fit_head_calibration

    estimator = AzimuthEstimator.load(model_path("slfm_azimuth.pt"), device="cpu", calibration=None)
    with tempfile.TemporaryDirectory() as tmp:
        bags = []
        for i, source in enumerate(args.sources):
            bags.append(Path(tmp) / f"take{i}")
            record_take(bags[-1], source, args.seed + i, args.seconds)
            print(f"take {i}: source {source:.0f} deg recorded", flush=True)
        parts = [recordings_from_bag(b, estimator, BagRecordingsConfig())[:2] for b in bags[:-1]]
        delays, turns = np.concatenate([d for d, _ in parts]), np.concatenate([t for _, t in parts])
        fitted = fit_head_calibration(delays, turns, head="sim takes")
        calibrations = {"plain": HeadCalibration.woodworth(),
                        "shipped": HeadCalibration.load(model_path("slfm_head_calibration.json")),
                        "from_takes": fitted}
        held = score_take(bags[-1], args.sources[-1], estimator, calibrations)
    print(f"fitted from {fitted.recordings} recordings of {len(bags) - 1} takes ({args.seconds:.0f} s each; the "
          f"integrated yaw of slfm_node, no truth): median residual {fitted.residual_us:.1f} us, "
          f"{'two curves' if fitted.back_delays_s else 'one curve'}")
    print(f"held-out take (source {args.sources[-1]:.0f} deg, {held['windows']} windows), front-folded reading "
          "error mean / median (deg):")
    for name in calibrations:
        print(f"  {name:11s} {held[name][0]:5.2f} / {held[name][1]:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
