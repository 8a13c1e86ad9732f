"""`av-pose demo`: the simulated system end to end.

Until the full simulated graph lands, the demo runs the simplest real thing: a talker process publishes a moving
HumanPose3D over DDS and this process listens, printing the received rate and the wrist height live.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

TOPIC = "human/pose_3d"


def _standing_pose(t: float) -> np.ndarray:
    """A 1.7 m person 2 m in front of the robot, raising the right hand and lowering it again."""
    z = np.array([1.62, 1.66, 1.66, 1.64, 1.64, 1.42, 1.42, 1.12, 1.12, 0.85, 0.85, 0.92, 0.92, 0.5, 0.5, 0.08, 0.08])
    y = np.array([0.0, 0.03, -0.03, 0.07, -0.07, 0.19, -0.19, 0.22, -0.22, 0.23, -0.23, 0.1, -0.1, 0.1, -0.1, 0.1,
                  -0.1])
    joints = np.stack([np.full(17, 2.0), y, z], axis=1)
    joints[10, 2] = 0.85 + 0.5 * (1 - np.cos(t))  # right wrist rises and falls
    return joints


def _talk(duration_s: float) -> int:
    import rclpy

    from av_pose_ros.msg import HumanPose3D
    from av_pose_ros.ros.conversions import Pose3D, pose3d_to_msg
    from av_pose_ros.ros.qos import RESULT_QOS

    rclpy.init()
    node = rclpy.create_node("demo_talker")
    pub = node.create_publisher(HumanPose3D, TOPIC, RESULT_QOS)
    start = time.monotonic()

    def tick():
        t = time.monotonic() - start
        stamp = node.get_clock().now().nanoseconds
        pub.publish(pose3d_to_msg(Pose3D(stamp, "base_link", "demo", _standing_pose(t), np.ones(17), None,
                                         "ground_truth")))

    node.create_timer(0.1, tick)
    try:
        while rclpy.ok() and time.monotonic() - start < duration_s:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _listen(duration_s: float) -> int:
    import rclpy

    from av_pose_ros.msg import HumanPose3D
    from av_pose_ros.ros.conversions import pose3d_from_msg
    from av_pose_ros.ros.qos import RESULT_QOS

    talker = subprocess.Popen([sys.executable, "-m", "av_pose_ros.demo", "--talk", str(duration_s + 2)])
    rclpy.init()
    node = rclpy.create_node("demo_listener")
    stamps: list[float] = []
    latest = {}

    def on_pose(msg):
        stamps.append(time.monotonic())
        latest["pose"] = pose3d_from_msg(msg)

    node.create_subscription(HumanPose3D, TOPIC, on_pose, RESULT_QOS)
    start = time.monotonic()
    try:
        while time.monotonic() - start < duration_s:
            rclpy.spin_once(node, timeout_sec=0.1)
            recent = [s for s in stamps if s > time.monotonic() - 2.0]
            wrist = latest["pose"].joints[10, 2] if latest else float("nan")
            print(f"\r{TOPIC}: {len(recent) / 2.0:4.1f} Hz, {len(stamps):4d} received, right wrist z {wrist:4.2f} m",
                  end="", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        print()
        talker.terminate()
        talker.wait(timeout=10)
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"demo: {len(stamps)} poses received over DDS from a separate process")
    return 0 if stamps else 1


def cmd_demo(args) -> int:
    return _listen(args.duration)


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the simulated system and show it live",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    p.set_defaults(func=cmd_demo)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--talk", type=float, required=True)
    sys.exit(_talk(parser.parse_args().talk))
