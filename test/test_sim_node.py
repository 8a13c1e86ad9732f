"""sim_node over real DDS: the rig's static TF, audio frames, keypoints and ground truth sharing one stamp per
window, an empty room first and then the person."""

import numpy as np
import pytest

from av_pose_ros.ros.conversions import audio_from_msg, keypoints_from_msg, ns_from_time, pose3d_from_msg

from ros_harness import NodeProcess, Probe


def test_sim_node_publishes_a_consistent_world(ros_context):
    from av_pose_ros.msg import AudioFrame, HumanPose3D, Keypoints2D
    from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
    from av_pose_ros.ros.tf import TfBuffer, TransformError

    probe = Probe(ros_context)
    frames = probe.collect(AudioFrame, "audio/frames", SENSOR_QOS)
    keypoints = probe.collect(Keypoints2D, "human/keypoints_2d", SENSOR_QOS)
    truth = probe.collect(HumanPose3D, "sim/ground_truth", RESULT_QOS)
    tf = TfBuffer(probe.node)
    with NodeProcess("sim_node", {"sim_empty_room_s": 5.0, "seed": 3}) as node:
        try:
            assert probe.spin_until(lambda: len(truth) >= 5 and len(frames) >= 10, 60.0), node.stop()
            audio = audio_from_msg(frames[-1])
            assert audio.audio.shape == (4, 4800) and audio.probe.shape == (4, 4800)
            assert audio.mic_frames == [f"mic_{i}" for i in range(4)] and audio.frame_id == "camera_link"
            empty = [k for k in keypoints if k.num_people == 0]
            assert empty, "the first windows should show the empty room"
            by_stamp = {ns_from_time(k.header.stamp): k for k in keypoints}
            matched = [t for t in truth if ns_from_time(t.header.stamp) in by_stamp]
            assert matched, "ground truth and keypoints should share stamps"
            gt = pose3d_from_msg(matched[-1])
            kp = keypoints_from_msg(by_stamp[gt.stamp_ns])
            assert gt.frame_id == "base_link" and kp.frame_id == "camera_optical_frame" and kp.undistorted
            assert 0.5 < gt.joints[:, 0].mean() < 4.5  # the person stands in front of the robot
            found = None
            for _ in range(100):
                try:
                    found = tf.lookup("base_link", "mic_0")
                    break
                except TransformError:
                    probe.spin_for(0.05)
            assert found is not None and found[2, 3] > 0.5  # microphones are mounted around the camera
            optical = tf.lookup("base_link", "camera_optical_frame")
            assert optical[:3, 2] == pytest.approx([1, 0, 0], abs=0.2)  # optical z looks forward (+x)
            assert np.isfinite(kp.keypoints).all()
        finally:
            probe.close()
