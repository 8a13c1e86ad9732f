"""`av-pose demo`: the whole simulated system as separate ROS 2 processes, watched live, recorded, and reported.

Starts the `sim` graph (sim_node, pose_kernel_node, lifter_node, handover_node) like `av-pose launch sim`, and in
this process a monitor that records every topic into a rosbag (mcap) and prints a live status line: the rate of
each topic, the current MPJPE and wrist error of `human/pose_3d` against `sim/ground_truth`, and the handover:
the state (idle / offered / ready / withdrawn), reachable targets so far and their error against the true offered
wrist. The simulated world is a handover: visitors walk in, offer a hand to the arm (`arm_base_link`), hold it,
take it back and walk away. At the end it writes `demo_out/summary.md` and `demo_out/demo.png` from the bag.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

WATCHED = ("audio/frames", "human/keypoints_2d", "audio/pose_kernel", "human/pose_3d", "handover/target_info")


class Monitor:
    """Live figures from the running graph: per-topic rates and pose errors against the ground truth."""

    def __init__(self, node):
        from std_msgs.msg import String

        from av_pose_ros.msg import HandoverTarget, HumanPose3D
        from av_pose_ros.ros.conversions import ns_from_time
        from av_pose_ros.ros.qos import RESULT_QOS, STATIC_QOS

        self.node = node
        self.arrivals = {t: deque(maxlen=200) for t in WATCHED}
        self.truth: dict[int, np.ndarray] = {}
        self.errors: deque = deque(maxlen=20)
        self.handover = "none"
        self.state = "idle"
        self.reachable_errors: list[float] = []
        self.false_reachable = 0
        self._stamp = ns_from_time
        node.create_subscription(HumanPose3D, "sim/ground_truth", self.on_truth, RESULT_QOS)
        node.create_subscription(HumanPose3D, "human/pose_3d", self.on_pose, RESULT_QOS)
        node.create_subscription(HandoverTarget, "handover/target_info", self.on_handover, RESULT_QOS)
        node.create_subscription(String, "handover/state", self.on_state, STATIC_QOS)

    def count(self, topic: str) -> None:
        if topic in self.arrivals:
            self.arrivals[topic].append(time.monotonic())

    def on_truth(self, msg) -> None:
        self.truth[self._stamp(msg.header.stamp)] = np.array([[p.x, p.y, p.z] for p in msg.positions])
        if len(self.truth) > 300:
            self.truth.pop(next(iter(self.truth)))

    def on_pose(self, msg) -> None:
        truth = self.truth.get(self._stamp(msg.header.stamp))
        if truth is not None:
            pred = np.array([[p.x, p.y, p.z] for p in msg.positions])
            err = np.linalg.norm(pred - truth, axis=1)
            self.errors.append((err.mean(), err[[9, 10]].mean()))

    def on_handover(self, msg) -> None:
        from av_pose_ros.sim.choreography import offered_hands

        self.handover = f"{msg.hand} hand {'reachable' if msg.reachable else 'not reachable'}"
        truth = self.truth.get(self._stamp(msg.header.stamp))
        if msg.reachable and truth is not None:
            wrist = truth[10 if msg.hand == "right" else 9]
            p = msg.pose.position
            self.reachable_errors.append(float(np.linalg.norm(np.array([p.x, p.y, p.z]) - wrist)))
            self.false_reachable += msg.hand not in offered_hands(truth)

    def on_state(self, msg) -> None:
        self.state = msg.data
        if msg.data == "idle":
            self.handover = "none"

    def rate(self, topic: str) -> float:
        now = time.monotonic()
        recent = [t for t in self.arrivals[topic] if now - t <= 2.0]
        return len(recent) / 2.0

    def line(self, elapsed: float) -> str:
        rates = " ".join(f"{t.split('/')[-1]} {self.rate(t):4.1f}" for t in WATCHED)
        if self.errors:
            mpjpe, wrist = np.median(np.array(self.errors), axis=0) * 1e3
            errors = f"MPJPE {mpjpe:5.0f} mm  wrist {wrist:5.0f} mm"
        else:
            errors = "MPJPE   --- (waiting for poses)"
        if self.reachable_errors:
            err = np.array(self.reachable_errors) * 1e3
            reach = (f"reachable {len(err)} ({len(err) / max(elapsed, 1.0) * 60:.0f}/min) to true wrist "
                     f"median {np.median(err):.0f} p90 {np.percentile(err, 90):.0f} mm, "
                     f"not offered {self.false_reachable}")
        else:
            reach = "reachable 0"
        return (f"t={elapsed:4.0f}s  Hz: {rates}  |  {errors}  |  handover {self.state}: {self.handover}; "
                f"{reach}")


def run_demo(duration_s: float, out_dir: Path, seed: int, scenario: str = "handover") -> int:
    import rclpy

    from av_pose_ros.app.demo_report import write_report
    from av_pose_ros.app.launch_graphs import parse_arguments, resolve
    from av_pose_ros.app.launcher import Launch
    from av_pose_ros.bag.recorder import BagRecorder

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    bag_path = out_dir / "demo_bag"
    nodes = resolve("sim", parse_arguments([f"scenario:={scenario}"], "sim"))
    for node in nodes:
        if node.executable == "sim_node":
            node.params["seed"] = seed
    launch = Launch(nodes, quiet=True)
    rclpy.init()
    node = rclpy.create_node("demo_monitor")
    monitor = Monitor(node)
    recorder = BagRecorder(node, bag_path, on_message=lambda topic: monitor.count(topic.lstrip("/")))
    interactive = sys.stdout.isatty()
    print(f"demo: running the simulated system for {duration_s:.0f} s (Ctrl-C stops early); recording {bag_path}")
    code = 0
    try:
        launch.start()
        start = last_print = time.monotonic()
        while time.monotonic() - start < duration_s:
            rclpy.spin_once(node, timeout_sec=0.05)
            died = launch.dead()
            if died:
                print(f"\ndemo: {died[0]} exited with code {died[1]}; stopping", flush=True)
                code = 1
                break
            if time.monotonic() - last_print >= (0.5 if interactive else 5.0):
                last_print = time.monotonic()
                line = monitor.line(last_print - start)
                print(f"\r{line}" if interactive else line, end="" if interactive else "\n", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        print()
        launch.stop()
        recorder.close()
        node.destroy_node()
        rclpy.try_shutdown()
    counts = {t: n for t, n in sorted(recorder.counts.items())}
    print("demo: recorded " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    summary, figure = write_report(bag_path, out_dir, seed=seed)
    print(f"demo: wrote {summary} and {figure}")
    return code


def cmd_demo(args) -> int:
    if args.domain_id is not None:
        if not 0 <= args.domain_id <= 232:
            print(f"demo: --domain-id {args.domain_id} is outside the DDS range 0..232", file=sys.stderr)
            return 2
        # before rclpy and the node processes start: they all read it from the environment
        import os

        os.environ["ROS_DOMAIN_ID"] = str(args.domain_id)
    return run_demo(args.duration, Path(args.out), args.seed, args.scenario)


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the simulated system, watch it live, record and report it",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out; replaced)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated world (default 0)")
    p.add_argument("--scenario", default="handover", help="scenario of the simulated world (default handover; "
                                                           "music: the same graph with a music probe)")
    p.add_argument("--domain-id", type=int, default=None, metavar="N",
                   help="ROS_DOMAIN_ID for the demo's graph (default: the environment's); give another graph on "
                        "the same machine (a second demo, a test) a different one, or their topics mix")
    p.set_defaults(func=cmd_demo)
