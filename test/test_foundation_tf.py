"""The transform tree (chains, interpolation, errors) and TF over real DDS with the standard tf2_msgs type."""

import subprocess
import sys

import numpy as np
import pytest

from av_pose_ros.primitives.geometry import make_transform, rot_z
from av_pose_ros.primitives.transform_tree import TransformError, TransformTree

from conftest import child_env


def test_chain_through_common_ancestor():
    tree = TransformTree()
    tree.set_transform("base_link", "camera_link", make_transform(rot_z(np.pi / 2), (0.1, 0, 1.2)), 0, static=True)
    tree.set_transform("base_link", "mic_0", make_transform(None, (0.0, 0.3, 1.0)), 0, static=True)
    camera_from_mic = tree.lookup("camera_link", "mic_0")
    # mic origin in base (0, .3, 1) -> camera frame: subtract (0.1, 0, 1.2), rotate by -90 deg about z
    assert camera_from_mic[:3, 3] == pytest.approx([0.3, 0.1, -0.2])
    assert tree.lookup("mic_0", "camera_link") @ camera_from_mic == pytest.approx(np.eye(4))


def test_dynamic_links_interpolate_and_refuse_to_extrapolate():
    tree = TransformTree(cache_s=10.0)
    tree.set_transform("odom", "base_link", make_transform(None, (0, 0, 0)), 1_000_000_000)
    tree.set_transform("odom", "base_link", make_transform(rot_z(0.2), (1.0, 0, 0)), 2_000_000_000)
    mid = tree.lookup("odom", "base_link", 1_500_000_000)
    assert mid[:3, 3] == pytest.approx([0.5, 0, 0])
    assert np.arctan2(mid[1, 0], mid[0, 0]) == pytest.approx(0.1)
    assert tree.lookup("odom", "base_link", 0)[:3, 3] == pytest.approx([1.0, 0, 0])  # 0 = latest
    with pytest.raises(TransformError, match="no transform at"):
        tree.lookup("odom", "base_link", 3_000_000_000)


@pytest.mark.parametrize("target, source, fragment", [("base_link", "nowhere", "does not exist"),
                                                       ("base_link", "island", "not connected")])
def test_missing_frames_say_why(target, source, fragment):
    tree = TransformTree()
    tree.set_transform("base_link", "camera_link", np.eye(4), 0, static=True)
    tree.set_transform("elsewhere", "island", np.eye(4), 0, static=True)
    with pytest.raises(TransformError, match=fragment):
        tree.lookup(target, source)


STATIC_SENDER = """
import rclpy, time
from av_pose_ros.primitives.geometry import make_transform
from av_pose_ros.ros.tf import TfPublisher, transform_msg
rclpy.init()
node = rclpy.create_node("static_sender")
tf = TfPublisher(node)
tf.send_static([transform_msg("base_link", "camera_link", make_transform(None, (0.2, 0.0, 1.2)), 0)])
tf.send_static([transform_msg("camera_link", "mic_0", make_transform(None, (0.0, 0.35, 0.25)), 0)])
print("sent", flush=True)
rclpy.spin(node)
"""


def test_static_tf_reaches_a_late_listener_over_dds(ros_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from av_pose_ros.ros.tf import TfBuffer

    sender = subprocess.Popen([sys.executable, "-c", STATIC_SENDER], env=child_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert sender.stdout.readline().strip() == "sent"  # both sent before the listener exists: latched
        node = rclpy.create_node("tf_listener", context=ros_context)
        buffer = TfBuffer(node)
        executor = SingleThreadedExecutor(context=ros_context)
        executor.add_node(node)
        found = None
        for _ in range(400):
            executor.spin_once(timeout_sec=0.05)
            try:
                found = buffer.lookup("base_link", "mic_0")
                break
            except TransformError:
                continue
        assert found is not None, "static transforms never arrived"
        assert found[:3, 3] == pytest.approx([0.2, 0.35, 1.45])
        executor.shutdown()
        node.destroy_node()
    finally:
        sender.terminate()
        sender.wait(timeout=10)
