"""Soak test of the running system: the sim graph (as `av-pose launch sim` starts it) for a long time, watched by an
independent subscriber in this process, to show that memory stays flat and the pose rate and accuracy do not decay.

Prints per-node RSS and CPU share in the first and the last bin, and per bin (`--bin-minutes`, default 5) the pose
rate and the MPJPE of the published poses against `sim/ground_truth` (same stamps). Flags memory growth of more
than `--max-growth` (10 %) between the end of the warm-up (the first bin) and the end, and a pose rate in the last
bin below `--min-rate-ratio` (0.8) of the first. Exit code 1 when a flag is raised, 2 when the graph fails.

    python benchmarks/bench_soak.py [--minutes 30] [--bin-minutes 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_system import cpu_seconds  # noqa: E402 - the same CPU accounting as the system benchmark


def rss_mb(pid: int) -> float:
    """Resident set size of a process (Linux /proc), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


@dataclass
class Bin:
    start_s: float
    seconds: float = 0.0
    poses: int = 0
    errors_mm: list[float] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)      # at the end of the bin
    cpu_share: dict[str, float] = field(default_factory=dict)   # over the bin (1.0 = one core)

    def row(self) -> dict:
        err = np.array(self.errors_mm)
        return {"start_min": round(self.start_s / 60, 2),
                "pose_rate_hz": round(self.poses / max(self.seconds, 1e-9), 2), "poses": self.poses,
                "matched": len(err),
                "mpjpe_mm": round(float(err.mean()), 1) if len(err) else None,
                "mpjpe_median_mm": round(float(np.median(err)), 1) if len(err) else None,
                "rss_mb": {k: round(v, 1) for k, v in self.rss_mb.items()},
                "cpu_share": {k: round(v, 2) for k, v in self.cpu_share.items()}}


class Watcher:
    """Poses and ground truth as they arrive; pairs them by stamp (the simulator stamps both with the window's)."""

    def __init__(self, keep: int = 2000):
        self.truth: dict[int, np.ndarray] = {}
        self.pending: dict[int, np.ndarray] = {}
        self.keep = keep
        self.poses = 0
        self.errors: list[float] = []

    def on_truth(self, msg) -> None:
        from av_pose_ros.ros.conversions import pose3d_from_msg

        p = pose3d_from_msg(msg)
        self.truth[p.stamp_ns] = p.joints
        self._match(p.stamp_ns)
        while len(self.truth) > self.keep:
            self.truth.pop(next(iter(self.truth)))

    def on_pose(self, msg) -> None:
        from av_pose_ros.ros.conversions import pose3d_from_msg

        p = pose3d_from_msg(msg)
        self.poses += 1
        self.pending[p.stamp_ns] = p.joints
        self._match(p.stamp_ns)
        while len(self.pending) > self.keep:
            self.pending.pop(next(iter(self.pending)))

    def _match(self, stamp: int) -> None:
        if stamp in self.truth and stamp in self.pending:
            joints = self.pending.pop(stamp)
            self.errors.append(float(np.linalg.norm(joints - self.truth[stamp], axis=1).mean() * 1e3))

    def take(self) -> tuple[int, list[float]]:
        poses, errors, self.poses, self.errors = self.poses, self.errors, 0, []
        return poses, errors


def run(minutes: float, bin_minutes: float, warmup_timeout_s: float = 180.0) -> list[Bin]:
    import rclpy

    import av_pose_ros.msg as msgs
    from av_pose_ros.app.launch_graphs import parse_arguments, resolve
    from av_pose_ros.app.launcher import Launch
    from av_pose_ros.ros.qos import RESULT_QOS

    launch = Launch(resolve("sim", parse_arguments([], "sim")), quiet=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_soak", context=context)
    watcher = Watcher()
    node.create_subscription(msgs.HumanPose3D, "human/pose_3d", watcher.on_pose, RESULT_QOS)
    node.create_subscription(msgs.HumanPose3D, "sim/ground_truth", watcher.on_truth, RESULT_QOS)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    bins: list[Bin] = []
    try:
        launch.start()
        deadline = time.monotonic() + warmup_timeout_s
        while watcher.poses == 0 and time.monotonic() < deadline and not launch.dead():
            executor.spin_once(timeout_sec=0.1)
        if watcher.poses == 0:
            raise RuntimeError(f"no pose within {warmup_timeout_s:.0f} s (dead node: {launch.dead()})")
        watcher.take()
        pids = {name: proc.pid for name, proc in launch.procs.items()}
        t0 = time.monotonic()
        n_bins = max(1, round(minutes / bin_minutes))
        for k in range(n_bins):
            start = time.monotonic()
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            end = t0 + (k + 1) * bin_minutes * 60
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
                if launch.dead():
                    raise RuntimeError(f"a node died during the soak: {launch.dead()}")
            b = Bin(start - t0, seconds=time.monotonic() - start)
            b.poses, b.errors_mm = watcher.take()
            b.cpu_share = {name: (cpu_seconds(pid) - cpu0[name]) / b.seconds for name, pid in pids.items()}
            b.rss_mb = {name: rss_mb(pid) for name, pid in pids.items()}
            bins.append(b)
            row = b.row()
            print(f"[soak] {row['start_min']:6.1f} min  {row['pose_rate_hz']:5.2f} Hz  MPJPE "
                  f"{row['mpjpe_mm'] if row['mpjpe_mm'] is not None else float('nan'):6.1f} mm  RSS "
                  + ", ".join(f"{n} {v:.0f}" for n, v in row["rss_mb"].items()) + " MB", flush=True)
    finally:
        launch.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return bins


def verdict(bins: list[Bin], max_growth: float, min_rate_ratio: float) -> list[str]:
    """Flags: a node whose RSS grew more than `max_growth` after the first (warm-up) bin; a last-bin pose rate
    below `min_rate_ratio` of the first."""
    flags = []
    first, last = bins[0], bins[-1]
    for name, start in first.rss_mb.items():
        end = last.rss_mb.get(name, 0.0)
        if start > 0 and end > start * (1 + max_growth):
            flags.append(f"memory: {name} grew {100 * (end / start - 1):.1f} % ({start:.0f} -> {end:.0f} MB)")
    rate0, rate1 = (b.poses / max(b.seconds, 1e-9) for b in (first, last))
    if len(bins) > 1 and rate1 < min_rate_ratio * rate0:
        flags.append(f"rate: pose rate fell from {rate0:.2f} to {rate1:.2f} Hz")
    return flags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="soak length after the first pose")
    parser.add_argument("--bin-minutes", type=float, default=5.0, help="length of one reporting bin")
    parser.add_argument("--max-growth", type=float, default=0.10, help="allowed RSS growth after the first bin")
    parser.add_argument("--min-rate-ratio", type=float, default=0.8, help="last-bin / first-bin pose rate floor")
    parser.add_argument("--json", action="store_true", help="also print one JSON object at the end")
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    print(f"[soak] sim graph for {args.minutes:g} min in {args.bin_minutes:g}-min bins, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    try:
        bins = run(args.minutes, args.bin_minutes)
    except RuntimeError as err:
        print(f"[soak] failed: {err}", file=sys.stderr)
        return 2
    first, last = bins[0].row(), bins[-1].row()
    print("  node                 RSS MB first bin -> end   CPU share first bin -> last bin")
    for name in first["rss_mb"]:
        print(f"  {name:20s} {first['rss_mb'][name]:8.1f} -> {last['rss_mb'][name]:8.1f}"
              f"        {first['cpu_share'][name]:5.2f} -> {last['cpu_share'][name]:5.2f}")
    print("  bin start (min)  pose rate (Hz)  MPJPE mean / median (mm)  matched")
    for b in bins:
        r = b.row()
        print(f"  {r['start_min']:14.1f}  {r['pose_rate_hz']:14.2f}  {r['mpjpe_mm']!s:>10} / "
              f"{r['mpjpe_median_mm']!s:<10}  {r['matched']}")
    flags = verdict(bins, args.max_growth, args.min_rate_ratio)
    print("  " + ("; ".join(flags) if flags else f"flat: no node grew > {100 * args.max_growth:.0f} % after the first "
                                                   f"bin, last-bin rate >= {args.min_rate_ratio:g} x first"))
    if args.json:
        print(json.dumps({"bins": [b.row() for b in bins], "flags": flags, "load_average": os.getloadavg()}))
    return 1 if flags else 0


if __name__ == "__main__":
    raise SystemExit(main())
