"""Front/back from head motion, live over DDS: sim_node's head turns (steps of +-20 deg) and hears one steady source
(`head_sound`), slfm_node integrates the turn from the head camera (the wide rotation model) and tells a source
behind the head from its mirror in front. Per source direction, over the directions published after the first:
the fraction resolved (front_back_folded false), front/back correct among those, and the azimuth error against the
truth (the source's direction in head_base_link minus the true head yaw at the middle of the window).

    python benchmarks/bench_slfm_live.py [--seconds 30] [--sources 145 -120 100 30 -60 170] [--seed 11]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from av_pose_ros.primitives.paths import package_file  # noqa: E402

MOTION = {"head_motion": "steps", "head_motion_amplitude_deg": 20.0, "head_motion_period_s": 6.0,
          "head_camera_period_s": 0.3}


def run_once(source_deg: float, kind: str, seed: int, seconds: float, warmup_timeout_s: float = 90.0) -> dict:
    import rclpy

    from av_pose_ros.app.launch_graphs import ResolvedNode
    from av_pose_ros.app.launcher import Launch
    from av_pose_ros.msg import HeadRotation, SoundDirection
    from av_pose_ros.ros.conversions import ns_from_time
    from av_pose_ros.ros.qos import RESULT_QOS
    from av_pose_ros.slfm.tracking import wrap_angle

    def node(name: str, params: dict) -> ResolvedNode:
        return ResolvedNode(name, name, "", [package_file(f"config/{name}.yaml")], params, {})

    sim = {**MOTION, "head_sound": kind, "head_sound_azimuth_deg": float(source_deg), "seed": int(seed)}
    slfm = {"rotation_model_path": str(package_file("models/slfm_rotation_wide.pt"))}
    launch = Launch([node("slfm_node", slfm), node("sim_node", sim)], quiet=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node("bench_slfm_live", context=context)
    truth, directions = [], []
    probe.create_subscription(HeadRotation, "sim/head_yaw", truth.append, RESULT_QOS)
    probe.create_subscription(SoundDirection, "slfm/sound_direction", directions.append, RESULT_QOS)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    try:
        launch.start()
        start = time.monotonic()
        while not directions and time.monotonic() - start < warmup_timeout_s and not launch.dead():
            executor.spin_once(timeout_sec=0.1)
        if not directions:
            raise RuntimeError(f"no sound direction within {warmup_timeout_s:.0f} s (dead node: {launch.dead()})")
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            executor.spin_once(timeout_sec=0.05)
    finally:
        launch.stop()
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    stamps = np.array([ns_from_time(t.header.stamp) for t in truth], float)
    yaws = np.array([t.integrated_yaw for t in truth])
    half_window = 5e8   # ns, half of slfm_node's audio_window_s (1 s): a direction is stamped at its window's start
    resolved, errors, right_side = [], [], []
    for d in directions[1:]:
        true = float(wrap_angle(math.radians(source_deg) - np.interp(ns_from_time(d.header.stamp) + half_window,
                                                                      stamps, yaws)))
        resolved.append(not d.front_back_folded)
        if not d.front_back_folded:
            errors.append(math.degrees(abs(float(wrap_angle(d.azimuth - true)))))
            right_side.append((math.cos(d.azimuth) > 0) == (math.cos(true) > 0))
    return {"source_deg": source_deg, "kind": kind, "seed": seed, "directions": len(directions) - 1,
            "resolved": float(np.mean(resolved)) if resolved else float("nan"),
            "front_back_correct": float(np.mean(right_side)) if right_side else float("nan"),
            "errors": errors, "right_side": right_side}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per source, after the first "
                                                                    "direction")
    parser.add_argument("--sources", type=float, nargs="+", default=[145.0, -120.0, 100.0, 30.0, -60.0, 170.0],
                        help="source directions in head_base_link (deg, + left); noise and music alternate")
    parser.add_argument("--seed", type=int, default=11, help="seed of the first source's room (then +1 each)")
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rows = [run_once(az, ("noise", "music")[k % 2], args.seed + k, args.seconds) for k, az in enumerate(args.sources)]
    print(f"front/back live ({len(rows)} sources, {args.seconds:.0f} s each, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"  {'source':>7s} {'kind':>6s} {'directions':>10s} {'resolved':>9s} {'f/b correct':>12s} {'MAE':>6s} "
          f"{'median':>7s}")
    for r in rows:
        e = r["errors"]
        print(f"  {r['source_deg']:7.0f} {r['kind']:>6s} {r['directions']:10d} {r['resolved']:9.2f} "
              f"{r['front_back_correct']:12.2f} {np.mean(e) if e else float('nan'):6.1f} "
              f"{np.median(e) if e else float('nan'):7.1f}")
    errors = [x for r in rows for x in r["errors"]]
    sides = [x for r in rows for x in r["right_side"]]
    print(f"  all: resolved {np.mean([r['resolved'] for r in rows]):.2f} (mean over sources), front/back correct "
          f"{np.mean(sides):.2f}, azimuth error mean {np.mean(errors):.1f} deg, median {np.median(errors):.1f} deg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
