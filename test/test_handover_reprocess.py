"""`av-pose reprocess --stages handover` gives what the live handover_node gave: a real handover_node over DDS is
fed a noisy offer (and then nothing, so the body times out), everything is recorded, and the offline stage on the
recorded poses must publish the same targets and the same handover/state sequence."""

import time

import numpy as np
from test_handover import ARM, BASE_FROM_CAM, person
from test_handover_state import noisy_offer

from av_pose_ros.bag.reader import BagReader
from av_pose_ros.handover import IDLE, OFFERED, WITHDRAWN
from av_pose_ros.primitives.geometry import apply_transform, make_transform

TOPICS = ["/human/pose_3d", "/tf_static", "/handover/target", "/handover/target_info", "/handover/state"]


def read(path, topic: str) -> list:
    from rclpy.serialization import deserialize_message

    from av_pose_ros.bag.typestore import message_class

    with BagReader(path) as bag:
        if topic not in bag.topics:
            return []
        cls = message_class(bag.topics[topic].msgtype)
        return [deserialize_message(d, cls) for _, _, d in bag.messages([topic])]


def info_key(m) -> tuple:
    p = m.pose.position
    return (m.header.stamp.sec, m.header.stamp.nanosec, m.hand, m.reachable, m.state, round(p.x, 9), round(p.y, 9),
            round(p.z, 9), round(float(m.confidence), 6))


def record_live(ros_context, path) -> None:
    from std_msgs.msg import String

    from av_pose_ros.bag.recorder import BagRecorder
    from av_pose_ros.msg import HumanPose3D
    from av_pose_ros.ros.conversions import Pose3D, pose3d_to_msg
    from av_pose_ros.ros.diagnostics import OK
    from av_pose_ros.ros.qos import RESULT_QOS, STATIC_QOS
    from av_pose_ros.ros.tf import TfPublisher, transform_msg

    from ros_harness import NodeProcess, Probe, wait_for_subscriber

    probe = Probe(ros_context)
    poses = probe.publisher(HumanPose3D, "human/pose_3d", RESULT_QOS)
    states = probe.collect(String, "handover/state", STATIC_QOS)
    tf = TfPublisher(probe.node)

    def pose_msg(joints_base, conf, body="b1"):
        joints = apply_transform(np.linalg.inv(BASE_FROM_CAM), joints_base)
        return pose3d_to_msg(Pose3D(time.time_ns(), "camera_link", body, joints, conf.astype(np.float32),
                                    np.tile(np.eye(3) * 0.03**2, (17, 1, 1))))

    with NodeProcess("handover_node"):
        try:
            wait_for_subscriber(probe, poses, 60.0)
            assert probe.spin_until(lambda: [m.data for m in states] == [IDLE], 20.0)
            tf.send_static([transform_msg("base_link", "camera_link", BASE_FROM_CAM, 0),
                            transform_msg("base_link", "camera_optical_frame", BASE_FROM_CAM, 0),
                            transform_msg("base_link", "arm_base_link", make_transform(None, ARM), 0)])
            # the node has the TF before the recorded part (a standing warm-up body, never offered)
            assert probe.publish_until(poses, pose_msg(person("standing"), np.full(17, 0.9), "warmup"),
                                       lambda: probe.diagnostic_level("handover_node") == OK, 20.0)
            recorder = BagRecorder(probe.node, path, topics=TOPICS)
            assert probe.spin_until(lambda: all(recorder.connections.get(t) for t in TOPICS), 20.0), \
                recorder.connections
            probe.spin_for(0.5)
            for _, _, joints, conf in noisy_offer(1, hold_s=3.0):      # 10 Hz, stamps from the clock
                poses.publish(pose_msg(joints, conf))
                probe.spin_for(0.1)
            probe.spin_for(2.5)                     # no poses: the body times out (track_timeout_s), then idle
            recorder.close()
        finally:
            probe.close()


def test_reprocess_handover_matches_the_live_node(ros_context, tmp_path):
    from av_pose_ros.bag.reprocess import reprocess

    live = tmp_path / "live"
    record_live(ros_context, live)
    with BagReader(live) as bag:
        summary = reprocess(bag, tmp_path / "offline", ["handover"], progress=False)
    assert summary.error is None and not summary.problems, summary.text()
    live_states = [m.data for m in read(live, "/handover/state")]
    offline_states = [m.data for m in read(tmp_path / "offline", "/handover/state")]
    assert {OFFERED, WITHDRAWN} <= set(live_states) and live_states[-1] == IDLE, live_states
    assert offline_states == live_states
    live_infos = [info_key(m) for m in read(live, "/handover/target_info")]
    offline_infos = [info_key(m) for m in read(tmp_path / "offline", "/handover/target_info")]
    assert len(live_infos) >= 20 and offline_infos == live_infos
    assert len(read(tmp_path / "offline", "/handover/target")) == len(read(live, "/handover/target"))
