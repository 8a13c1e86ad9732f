"""End-to-end speed of the running system: the sim graph as separate processes (as `av-pose launch sim` starts it),
watched by an independent subscriber in this process.

For every stage it prints the latency from the audio window's acquisition stamp to the moment the stage's
message arrives here (median, p95) and the stage's sustained rate, plus each node's CPU share. Baseline in the same
run: the audio frame itself, which cannot arrive before its capture window has ended, so `pose - audio frame` is
what the pipeline adds (pose kernel, pairing, lifting, DDS). Targets (issue 6): pose latency median <= 150 ms,
pose rate >= 5 Hz on 2 cores.

    python benchmarks/bench_system.py [--seconds 40] [--repeats 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

STAGES = (("audio/frames", "AudioFrame"), ("human/keypoints_2d", "Keypoints2D"), ("audio/pose_kernel", "PoseKernel"),
          ("human/pose_3d", "HumanPose3D"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def run_once(seconds: float, warmup_timeout_s: float = 120.0, launch_args: list[str] | None = None) -> dict:
    """Start the graph (with `av-pose launch sim` arguments `launch_args`, e.g. model_path:=...), wait for the first
    pose, then watch every stage for `seconds`."""
    import rclpy

    import av_pose_ros.msg as msgs
    from av_pose_ros.app.launch_graphs import parse_arguments, resolve
    from av_pose_ros.app.launcher import Launch
    from av_pose_ros.ros.conversions import ns_from_time
    from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS

    launch = Launch(resolve("sim", parse_arguments(list(launch_args or []), "sim")), quiet=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_system", context=context)
    arrivals: dict[str, list[tuple[int, int]]] = {topic: [] for topic, _ in STAGES}
    recording = [False]

    def watcher(topic):
        def on_message(msg):
            if recording[0]:
                arrivals[topic].append((ns_from_time(msg.header.stamp), time.time_ns()))
        return on_message

    for topic, type_name in STAGES:
        qos = RESULT_QOS if topic == "human/pose_3d" else SENSOR_QOS
        node.create_subscription(getattr(msgs, type_name), topic, watcher(topic), qos)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    first_pose = []
    node.create_subscription(msgs.HumanPose3D, "human/pose_3d", lambda m: first_pose.append(1), RESULT_QOS)
    try:
        launch.start()
        deadline = time.monotonic() + warmup_timeout_s
        while not first_pose and time.monotonic() < deadline and not launch.dead():
            executor.spin_once(timeout_sec=0.1)
        if not first_pose:
            raise RuntimeError(f"no pose within {warmup_timeout_s:.0f} s (dead node: {launch.dead()})")
        pids = {name: proc.pid for name, proc in launch.procs.items()}
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        recording[0] = True
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            executor.spin_once(timeout_sec=0.05)
        wall = time.monotonic() - t0
        cpu = {name: (cpu_seconds(pid) - cpu0[name]) / wall for name, pid in pids.items()}
        if launch.dead():
            raise RuntimeError(f"a node died during the run: {launch.dead()}")
    finally:
        launch.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return summarise(arrivals, wall, cpu)


def summarise(arrivals: dict, wall_s: float, cpu: dict) -> dict:
    """Latency (ms) per stage from the acquisition stamp, rate (Hz) per stage, and what the pipeline adds."""
    out = {"seconds": round(wall_s, 1), "stages": {}, "cpu_share": {k: round(v, 2) for k, v in cpu.items()}}
    for topic, items in arrivals.items():
        lat = np.array([(arrive - stamp) * 1e-6 for stamp, arrive in items])
        out["stages"][topic] = {"n": len(items), "rate_hz": round(len(items) / wall_s, 2),
                                "median_ms": round(float(np.median(lat)), 1) if len(lat) else None,
                                "p95_ms": round(float(np.percentile(lat, 95)), 1) if len(lat) else None}
    audio = dict(arrivals["audio/frames"])
    added = [(arrive - audio[stamp]) * 1e-6 for stamp, arrive in arrivals["human/pose_3d"] if stamp in audio]
    out["pipeline_added_ms"] = {"median": round(float(np.median(added)), 1) if added else None,
                                "p95": round(float(np.percentile(added, 95)), 1) if added else None}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40.0, help="measured time per run, after the first pose")
    parser.add_argument("--repeats", type=int, default=1, help="runs (fresh graph each); medians are reported")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("launch_args", nargs="*", metavar="name:=value",
                        help="`av-pose launch sim` arguments, e.g. model_path:=/tmp/other_lifter.pt")
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    runs = [run_once(args.seconds, launch_args=args.launch_args) for _ in range(args.repeats)]
    pose = [r["stages"]["human/pose_3d"] for r in runs]
    result = {"runs": runs, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
              "pose_latency_median_ms": statistics.median(p["median_ms"] for p in pose),
              "pose_latency_p95_ms": statistics.median(p["p95_ms"] for p in pose),
              "pose_rate_hz": statistics.median(p["rate_hz"] for p in pose)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"System (sim graph, {len(runs)} run(s) of {args.seconds:.0f} s, {os.cpu_count()} CPUs, "
          f"load average {result['load_average'][0]:.1f}):")
    print(f"  {'stage':22s} {'rate Hz':>8s} {'latency median ms':>18s} {'p95 ms':>8s}")
    for topic, _ in STAGES:
        rows = [r["stages"][topic] for r in runs]
        med = [x["median_ms"] for x in rows if x["median_ms"] is not None]
        p95 = [x["p95_ms"] for x in rows if x["p95_ms"] is not None]
        print(f"  {topic:22s} {statistics.median(x['rate_hz'] for x in rows):8.2f} "
              f"{statistics.median(med) if med else float('nan'):18.1f} "
              f"{statistics.median(p95) if p95 else float('nan'):8.1f}")
    added = [r["pipeline_added_ms"]["median"] for r in runs if r["pipeline_added_ms"]["median"] is not None]
    audio_rate = statistics.median(r["stages"]["audio/frames"]["rate_hz"] for r in runs)
    print(f"  pose after its audio frame (what the pipeline adds): median "
          f"{statistics.median(added) if added else float('nan'):.1f} ms; pose rate / audio rate "
          f"x{result['pose_rate_hz'] / audio_rate if audio_rate else float('nan'):.2f}")
    shares = {k: statistics.median(r["cpu_share"].get(k, 0.0) for r in runs) for k in runs[0]["cpu_share"]}
    print("  CPU share per node (1.0 = one core): " + ", ".join(f"{k} {v:.2f}" for k, v in shares.items()))
    print(f"  targets: latency median <= 150 ms: {'yes' if result['pose_latency_median_ms'] <= 150 else 'NO'}; "
          f"rate >= 5 Hz: {'yes' if result['pose_rate_hz'] >= 5 else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
