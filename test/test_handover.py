"""Handover core: the offered hand is chosen and kept, the filter tracks a moving hand, the envelope holds; and
handover_node over real DDS: target in the base frame through TF, diagnostics for bad input and missing TF."""

import numpy as np
import pytest

from av_pose_ros.handover import ConstantVelocityFilter, HandSelector, ReachEnvelope, approach_orientation
from av_pose_ros.handover.selection import offer_score
from av_pose_ros.primitives.geometry import apply_transform, make_transform, rot_z
from av_pose_ros.primitives.skeleton import JOINT_INDEX
from av_pose_ros.sim.body import body_joints, place_in_world

ROBOT = np.zeros(3)


def person(pose: str, x: float = 1.2) -> np.ndarray:
    """A 1.7 m person at (x, 0) facing the robot at the origin."""
    return place_in_world(body_joints(1.7, pose), (x, 0.0), np.pi)


@pytest.mark.parametrize("pose, hand", [("offer_right", "right"), ("offer_left", "left"), ("standing", None)])
def test_selector_finds_the_offered_hand(pose, hand):
    choice = HandSelector().select(person(pose), np.ones(17), ROBOT)
    assert (choice.hand if choice else None) == hand
    if choice:
        assert choice.wrist == pytest.approx(person(pose)[JOINT_INDEX[f"{hand}_wrist"]])


def test_offer_needs_the_arm_towards_the_robot():
    facing = person("offer_right")
    away = place_in_world(body_joints(1.7, "offer_right"), (1.2, 0.0), 0.0)  # back turned to the robot
    assert offer_score(facing, "right", ROBOT) > offer_score(away, "right", ROBOT) + 0.3


def test_selector_hysteresis_and_low_confidence():
    selector = HandSelector(switch_margin=0.5)
    joints = person("offer_right")
    assert selector.select(joints, np.ones(17), ROBOT).hand == "right"
    both = joints.copy()
    both[[JOINT_INDEX["left_elbow"], JOINT_INDEX["left_wrist"]]] = person("offer_left")[
        [JOINT_INDEX["left_elbow"], JOINT_INDEX["left_wrist"]]]
    assert selector.select(both, np.ones(17), ROBOT).hand == "right"  # left is as good, not better by the margin
    conf = np.ones(17)
    conf[JOINT_INDEX["right_wrist"]] = 0.0
    assert selector.select(both, conf, ROBOT).hand == "left"  # an unseen right wrist cannot be the offered hand


def test_filter_tracks_constant_velocity_and_resets_after_a_gap():
    f = ConstantVelocityFilter(accel_std=0.1)
    rng = np.random.default_rng(0)
    v = np.array([0.3, -0.1, 0.05])
    for k in range(60):
        t = k * 0.1
        pos, vel = f.update(np.array([1.0, 0.0, 1.0]) + v * t + rng.normal(0, 0.01, 3), np.eye(3) * 1e-4,
                            int(t * 1e9))
    assert vel == pytest.approx(v, abs=0.05)
    assert pos == pytest.approx(np.array([1.0, 0.0, 1.0]) + v * 5.9, abs=0.02)
    pos, vel = f.update(np.array([5.0, 5.0, 5.0]), np.eye(3) * 1e-4, int(9e9))  # 3 s later: a new track
    assert pos == pytest.approx([5, 5, 5]) and vel == pytest.approx([0, 0, 0])


def test_reach_envelope_and_orientation():
    env = ReachEnvelope((0.0, 0.0, 0.3), 0.25, 0.85, 0.2, 1.8)
    assert env.contains(np.array([0.6, 0.0, 0.4]))
    assert not env.contains(np.array([1.2, 0.0, 0.4])) and not env.contains(np.array([0.3, 0.0, 0.1]))
    assert env.distance(np.array([0.0, 0.4, 0.3])) == pytest.approx(0.4)
    q = approach_orientation(np.array([1.0, 0.0, 1.0]), np.array([0.7, 0.0, 1.0]))  # forearm points at -x
    from av_pose_ros.primitives.geometry import matrix_from_quaternion

    r = matrix_from_quaternion(q)
    assert r[:, 0] == pytest.approx([-1, 0, 0]) and r[:, 2] == pytest.approx([0, 0, 1])


def test_handover_node_over_dds(ros_context):
    from av_pose_ros.msg import HandoverTarget, HumanPose3D
    from av_pose_ros.ros.conversions import Pose3D, handover_from_msg, pose3d_to_msg
    from av_pose_ros.ros.diagnostics import OK
    from av_pose_ros.ros.qos import RESULT_QOS
    from av_pose_ros.ros.tf import TfPublisher, transform_msg

    from ros_harness import NodeProcess, Probe, wait_for_subscriber

    probe = Probe(ros_context)
    poses = probe.publisher(HumanPose3D, "human/pose_3d", RESULT_QOS)
    infos = probe.collect(HandoverTarget, "handover/target_info", RESULT_QOS)
    tf = TfPublisher(probe.node)
    base_from_cam = make_transform(rot_z(0.3), (0.1, -0.05, 0.9))
    joints_base = person("offer_right", x=0.9)
    joints_cam = apply_transform(np.linalg.inv(base_from_cam), joints_base)
    with NodeProcess("handover_node") as node:
        try:
            wait_for_subscriber(probe, poses, 60.0)
            stamp = [1_000_000_000]

            def pose_msg(frame="camera_link", joints=joints_cam):
                stamp[0] += 100_000_000
                return pose3d_to_msg(Pose3D(stamp[0], frame, "b1", joints, np.ones(17, np.float32)))

            # Missing TF: a diagnostic, no target.
            assert probe.publish_until(poses, pose_msg(), lambda: "tf" in probe.diagnostic_message("handover_node"))
            assert not infos
            tf.send_static([transform_msg("base_link", "camera_link", base_from_cam, 0)])
            for _ in range(10):
                poses.publish(pose_msg())
                probe.spin_for(0.1)
            assert probe.spin_until(lambda: len(infos) >= 3, 20.0), node.stop()
            target = handover_from_msg(infos[-1])
            assert target.frame_id == "base_link" and target.hand == "right" and target.body_id == "b1"
            assert target.position == pytest.approx(joints_base[JOINT_INDEX["right_wrist"]], abs=0.01)
            shoulder = np.array([0.0, 0.0, 1.0])  # config/handover_node.yaml reach_center
            assert target.distance == pytest.approx(np.linalg.norm(target.position - shoulder), abs=1e-4)
            assert target.reachable == (0.25 <= target.distance <= 0.85)
            assert probe.spin_until(lambda: probe.diagnostic_level("handover_node") == OK, 10.0)

            # Malformed pose (NaN): a diagnostic, the node stays up and recovers.
            bad = pose_msg()
            bad.positions[3].x = float("nan")
            assert probe.publish_until(poses, bad, lambda: "NaN" in probe.diagnostic_message("handover_node"))
            count = len(infos)
            assert probe.publish_until(poses, pose_msg(), lambda: len(infos) > count)
            assert node.alive()
        finally:
            probe.close()
