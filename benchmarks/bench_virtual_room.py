"""The robot graph on the virtual room next to the sim graph, in one run: pose rate, latency and accuracy.

The sim graph (`av-pose launch sim`) renders audio windows and keypoints in one process; the robot graph with
`virtual_room:=true` runs audio_io_node's device backend through PulseAudio against virtual_room_node, which plays
the same simulated scenario acoustically and publishes the simulator's keypoints. For each graph, after its first
pose: poses per second, latency from the pose's stamp (acquisition) to its arrival here, and MPJPE against
`sim/ground_truth` matched by stamp; for the virtual room also audio_io_node's round trip and dropped windows.

    python benchmarks/bench_virtual_room.py [--seconds 30] [--repeats 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

GRAPHS = {"sim": ("sim", []), "robot+virtual_room": ("robot", ["virtual_room:=true"])}


def run_once(graph: str, arguments: list[str], seconds: float, warmup_timeout_s: float = 150.0) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from av_pose_ros.app.launch_graphs import parse_arguments, resolve
    from av_pose_ros.app.launcher import Launch
    from av_pose_ros.msg import HumanPose3D
    from av_pose_ros.ros.conversions import ns_from_time, pose3d_from_msg
    from av_pose_ros.ros.qos import RESULT_QOS

    launch = Launch(resolve(graph, parse_arguments(arguments, graph)), quiet=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_virtual_room", context=context)
    poses, truth, diagnostics = [], {}, {}
    node.create_subscription(HumanPose3D, "human/pose_3d", lambda m: poses.append((m, time.time_ns())), RESULT_QOS)
    node.create_subscription(HumanPose3D, "sim/ground_truth", lambda m: truth.__setitem__(
        ns_from_time(m.header.stamp), pose3d_from_msg(m).joints), RESULT_QOS)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diagnostics.update(
        {s.hardware_id: {kv.key: kv.value for kv in s.values} for s in m.status}), RESULT_QOS)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        launch.start()
        start = time.monotonic()
        while not poses and time.monotonic() - start < warmup_timeout_s and not launch.dead():
            executor.spin_once(timeout_sec=0.1)
        if not poses:
            raise RuntimeError(f"{graph}: no pose within {warmup_timeout_s:.0f} s (dead node: {launch.dead()})")
        first_pose_s = time.monotonic() - start
        poses.clear()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            executor.spin_once(timeout_sec=0.05)
        wall = time.monotonic() - t0
    finally:
        launch.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    latency = [(arrive - ns_from_time(m.header.stamp)) * 1e-6 for m, arrive in poses]
    errors = [1e3 * float(np.linalg.norm(pose3d_from_msg(m).joints - truth[s], axis=1).mean())
              for m, _ in poses if (s := ns_from_time(m.header.stamp)) in truth]
    audio = diagnostics.get("audio_io_node", {})
    return {"first_pose_s": round(first_pose_s, 1), "rate_hz": round(len(poses) / wall, 2),
            "latency_median_ms": round(float(np.median(latency)), 1) if latency else None,
            "latency_p95_ms": round(float(np.percentile(latency, 95)), 1) if latency else None,
            "mpjpe_median_mm": round(float(np.median(errors)), 1) if errors else None,
            "mpjpe_p90_mm": round(float(np.percentile(errors, 90)), 1) if errors else None, "matched": len(errors),
            "round_trip_samples": audio.get("latency_samples"), "audio_published": audio.get("published"),
            "audio_dropped": audio.get("dropped"), "latency_changes": audio.get("latency_changes")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per run, after the first pose")
    parser.add_argument("--repeats", type=int, default=1, help="runs per graph (fresh graph each); medians shown")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    runs = {name: [run_once(graph, arguments, args.seconds) for _ in range(args.repeats)]
            for name, (graph, arguments) in GRAPHS.items()}
    result = {"runs": runs, "load_average": os.getloadavg(), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result))
        return 0
    keys = ("rate_hz", "latency_median_ms", "latency_p95_ms", "mpjpe_median_mm", "mpjpe_p90_mm", "first_pose_s")
    print(f"Pose graphs ({args.repeats} run(s) of {args.seconds:.0f} s each, {os.cpu_count()} CPUs, load average "
          f"{result['load_average'][0]:.1f}); medians over runs:")
    print(f"  {'graph':20s} " + " ".join(f"{k:>18s}" for k in keys))
    for name, rs in runs.items():
        cells = []
        for k in keys:
            values = [r[k] for r in rs if r[k] is not None]
            cells.append(f"{statistics.median(values):18.1f}" if values else f"{'-':>18s}")
        print(f"  {name:20s} " + " ".join(cells))
    for r in runs["robot+virtual_room"]:
        print(f"  virtual room audio: round trip {r['round_trip_samples']} samples, {r['audio_published']} windows "
              f"published, {r['audio_dropped']} dropped, {r['latency_changes']} round-trip changes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
