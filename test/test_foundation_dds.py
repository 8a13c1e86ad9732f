"""Every custom message type crosses real DDS between two processes with its content intact."""

import subprocess
import sys
from pathlib import Path

from av_pose_ros.ros.qos import RESULT_QOS

from conftest import child_env, spin_until
from sample_messages import sample_messages


def test_every_custom_message_crosses_dds(ros_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    expected = sample_messages()
    received = {}
    node = rclpy.create_node("dds_test_listener", context=ros_context)
    for name, msg in expected.items():
        node.create_subscription(type(msg), f"dds_test/{name}", lambda m, n=name: received.setdefault(n, m),
                                 RESULT_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    publisher = subprocess.Popen([sys.executable, str(Path(__file__).with_name("dds_publisher.py"))],
                                 env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert spin_until(executor, lambda: len(received) == len(expected), timeout_s=30.0), (
            f"received only {sorted(received)} of {sorted(expected)}")
    finally:
        publisher.terminate()
        output = publisher.communicate(timeout=10)[0]
        executor.shutdown()
        node.destroy_node()
    for name, msg in expected.items():
        assert received[name] == msg, f"{name} differs after DDS: {output}"
