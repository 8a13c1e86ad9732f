"""config/av_pose.rviz: valid RViz2 YAML, fixed frame base_link, and every topic it shows is one this package's nodes
publish (or, for the raw camera image, one a camera driver publishes into keypoint_node), with a QoS that matches."""

import re

import yaml

from conftest import REPO

PUBLISHER = re.compile(r'create_publisher\(\s*\w+,\s*"([^"]+)",\s*(\w+)')
SUBSCRIPTION = re.compile(r'create_subscription\(\s*\w+,\s*"([^"]+)"')


def node_topics() -> tuple[dict[str, str], set[str]]:
    """(topic -> QoS constant of its publisher, topics some node subscribes) from the node sources."""
    published, subscribed = {}, set()
    for path in sorted((REPO / "av_pose_ros" / "nodes").glob("*_node.py")) + [REPO / "av_pose_ros/ros/tf.py"]:
        text = path.read_text()
        published.update({"/" + t.lstrip("/"): qos for t, qos in PUBLISHER.findall(text)})
        subscribed.update("/" + t.lstrip("/") for t in SUBSCRIPTION.findall(text))
    return published, subscribed


def test_rviz_config_is_valid_and_shows_published_topics():
    config = yaml.safe_load((REPO / "config" / "av_pose.rviz").read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "base_link"
    displays = manager["Displays"]
    classes = {d["Class"] for d in displays}
    assert {"rviz_default_plugins/TF", "rviz_default_plugins/MarkerArray", "rviz_default_plugins/Pose",
            "rviz_default_plugins/PointCloud2", "rviz_default_plugins/Image"} <= classes
    published, subscribed = node_topics()
    driver_inputs = subscribed - set(published)   # e.g. camera/image_raw from the camera driver
    shown = {d["Topic"]["Value"]: d["Topic"] for d in displays if "Topic" in d}
    assert {"/human/markers", "/handover/target", "/audio/encoding", "/camera/image_raw",
            "/camera/image_keypoints"} <= set(shown)
    for topic, qos in shown.items():
        assert topic in published or topic in driver_inputs, f"{topic}: no node publishes or expects it"
        if published.get(topic) == "SENSOR_QOS":  # a reliable RViz subscription would not match best effort
            assert qos["Reliability Policy"] == "Best Effort", topic


def test_cmake_installs_the_config_folder():
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert re.search(r"install\(DIRECTORY [^)]*\bconfig\b[^)]*DESTINATION share/\$\{PROJECT_NAME\}", cmake)
