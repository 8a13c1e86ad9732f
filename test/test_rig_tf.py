"""Rig TF on a robot: the frame tree of a rig file, its URDF form, rig_tf_node over DDS, the robot graph's switch."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from av_pose_ros.app.launch_graphs import parse_arguments, resolve
from av_pose_ros.primitives.geometry import apply_transform, make_transform, matrix_from_rpy
from av_pose_ros.sim.rig import load_rig
from av_pose_ros.sim.rig_frames import FrameNames, rig_static_frames, rig_urdf, rpy_from_matrix

from ros_harness import NodeProcess, Probe

TILTED = {"name": "tilted", "speakers": [[0.0, 0.3, 0.2], [0.0, -0.3, 0.2]], "mics": [[0.0, 0.25, 0.2],
                                                                                     [0.05, -0.25, -0.1]],
          "camera": {"mount": {"xyz": [0.1, -0.05, 1.4], "rpy": [0.05, 0.3, -0.4]}},
          "frames": {"arm_base_link": {"xyz": [0.25, 0.1, 0.9], "rpy": [0.0, 0.0, 1.2]},
                     "tool_rest": {"xyz": [0.4, 0.0, 0.7], "rpy": [0.3, -0.2, 0.1]}}}


def _base_from(frames, child: str) -> np.ndarray:
    """Compose the static frames from base_link down to `child`."""
    by_child = {f.child: f for f in frames}
    out = np.eye(4)
    while child in by_child:
        out = by_child[child].parent_from_child @ out
        child = by_child[child].parent
    assert child == "base_link", f"chain does not end in base_link but {child}"
    return out


def test_every_rig_frame_is_published_where_the_rig_says():
    rig = load_rig(TILTED)
    frames = rig_static_frames(rig)
    children = [f.child for f in frames]
    assert children[:2] == ["camera_link", "camera_optical_frame"]
    assert {"speaker_0", "speaker_1", "mic_0", "mic_1", "arm_base_link", "tool_rest"} <= set(children)
    for i, xyz in enumerate(rig.speakers_base()):
        np.testing.assert_allclose(_base_from(frames, f"speaker_{i}")[:3, 3], xyz, atol=1e-12)
    for i, xyz in enumerate(rig.mics_base()):
        np.testing.assert_allclose(_base_from(frames, f"mic_{i}")[:3, 3], xyz, atol=1e-12)
    np.testing.assert_allclose(_base_from(frames, "camera_optical_frame"), rig.base_from_optical, atol=1e-12)
    np.testing.assert_allclose(_base_from(frames, "tool_rest"), rig.frames["tool_rest"], atol=1e-12)
    # optical frame: z forward = camera_link x, x right = camera_link -y (REP-103)
    optical = _base_from(frames, "camera_optical_frame")
    camera = _base_from(frames, "camera_link")
    np.testing.assert_allclose(optical[:3, 2], camera[:3, 0], atol=1e-12)
    np.testing.assert_allclose(optical[:3, 0], -camera[:3, 1], atol=1e-12)


def test_frame_names_follow_the_parameters_and_duplicates_are_refused():
    names = FrameNames(base="base_footprint", camera="head_cam", optical="head_cam_optical",
                       speaker_prefix="spk", mic_prefix="mic")
    frames = rig_static_frames(load_rig("default"), names)
    assert frames[0].parent == "base_footprint" and frames[0].child == "head_cam"
    assert {"spk0", "mic3", "head_cam_optical"} <= {f.child for f in frames}
    clash = dict(TILTED, frames={"mic_1": {"xyz": [0.0, 0.0, 1.0]}})
    with pytest.raises(ValueError, match="twice"):
        rig_static_frames(load_rig(clash))


def test_urdf_snippet_describes_the_same_tree():
    rig = load_rig(TILTED)
    frames = {f.child: f for f in rig_static_frames(rig)}
    robot = ET.fromstring(f"<robot name='r'>{rig_urdf(rig)}</robot>")
    joints = robot.findall("joint")
    assert {link.get("name") for link in robot.findall("link")} == set(frames)
    assert len(joints) == len(frames) and all(j.get("type") == "fixed" for j in joints)
    for joint in joints:
        child, parent = joint.find("child").get("link"), joint.find("parent").get("link")
        origin = joint.find("origin")
        xyz = [float(v) for v in origin.get("xyz").split()]
        rpy = [float(v) for v in origin.get("rpy").split()]
        assert parent == frames[child].parent
        np.testing.assert_allclose(make_transform(matrix_from_rpy(*rpy), xyz), frames[child].parent_from_child,
                                   atol=1e-5)


@pytest.mark.parametrize("rpy", [(0.1, -0.4, 2.5), (0.0, np.pi / 2, 0.3), (-2.0, 0.2, -3.0)])
def test_rpy_round_trip(rpy):
    r = matrix_from_rpy(*rpy)
    np.testing.assert_allclose(matrix_from_rpy(*rpy_from_matrix(r)), r, atol=1e-9)


def test_robot_graph_runs_rig_tf_node_with_the_rig_argument_and_can_switch_it_off():
    nodes = {n.executable: n for n in resolve("robot", parse_arguments(["rig:=compact"], "robot"))}
    assert nodes["rig_tf_node"].params["rig"] == "compact"
    assert nodes["audio_io_node"].params["rig"] == "compact"
    off = resolve("robot", parse_arguments(["publish_rig_tf:=false"], "robot"))
    assert "rig_tf_node" not in [n.executable for n in off]
    assert "rig_tf_node" not in [n.executable for n in resolve("sim", parse_arguments([], "sim"))]


def _static_frames(probe, timeout_s: float) -> dict:
    from tf2_msgs.msg import TFMessage

    from av_pose_ros.ros.tf import TF_STATIC_LISTEN_QOS

    messages = probe.collect(TFMessage, "/tf_static", TF_STATIC_LISTEN_QOS)
    probe.spin_until(lambda: bool(messages), timeout_s)
    return {t.child_frame_id: t for m in messages for t in m.transforms}


def test_rig_tf_node_publishes_the_rig_on_tf_static_for_late_subscribers(ros_context):
    from av_pose_ros.ros.tf import matrix_from_transform_msg

    rig = load_rig("compact")
    expected = {f.child: f for f in rig_static_frames(rig)}
    with NodeProcess("rig_tf_node", {"rig": "compact"}) as node:
        probe = Probe(ros_context)
        try:
            # join only once the node is up and has published: the latched (transient local) message must still come
            assert probe.spin_until(lambda: "rig_tf_node" in probe.node.get_node_names(), 30.0), node.stop()
            probe.spin_for(1.0)
            got = _static_frames(probe, 15.0)
        finally:
            probe.close()
        assert node.alive(), node.stop()
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    for child, t in got.items():
        assert t.header.frame_id == expected[child].parent
        np.testing.assert_allclose(matrix_from_transform_msg(t), expected[child].parent_from_child, atol=1e-9)
    base_from_mic = expected["camera_link"].parent_from_child @ matrix_from_transform_msg(got["mic_0"])
    np.testing.assert_allclose(apply_transform(base_from_mic, np.zeros((1, 3)))[0], rig.mics_base()[0], atol=1e-9)


def test_rig_tf_node_with_a_missing_rig_reports_and_stays_up(ros_context):
    from diagnostic_msgs.msg import DiagnosticStatus

    with NodeProcess("rig_tf_node", {"rig": "no_such_rig"}) as node:
        probe = Probe(ros_context)
        try:
            assert probe.spin_until(lambda: probe.diagnostic_level("rig_tf_node") is not None, 30.0), node.stop()
            level = probe.diagnostic_level("rig_tf_node")
            message = probe.diagnostic_message("rig_tf_node")
        finally:
            probe.close()
        assert node.alive(), node.stop()
    assert level == int.from_bytes(DiagnosticStatus.ERROR, "little") and "no_such_rig" in message, message
