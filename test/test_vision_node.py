"""keypoint_node as its own process with real rclpy: a real photo in, keypoints out with the image's stamp and
frame; bad encodings, empty images and missing camera info produce diagnostics, not crashes."""

import numpy as np
import pytest

from av_pose_ros.ros.diagnostics import OK, WARN

from ros_harness import NodeProcess, Probe, wait_for_subscriber

NODE = "keypoint_node"


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.astronaut()  # 512x512 RGB, a person from the chest up


def camera_info(width, height, stamp, frame):
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.header.stamp, msg.header.frame_id = stamp, frame
    msg.k = [400.0, 0.0, width / 2, 0.0, 400.0, height / 2, 0.0, 0.0, 1.0]
    msg.d = [-0.1, 0.01, 0.0, 0.0, 0.0]
    return msg


def test_keypoint_node_end_to_end(ros_context, photo):
    from sensor_msgs.msg import CameraInfo, Image

    from av_pose_ros.msg import Keypoints2D
    from av_pose_ros.ros.conversions import keypoints_from_msg, ns_from_time
    from av_pose_ros.ros.images import image_from_numpy
    from av_pose_ros.ros.qos import SENSOR_QOS

    probe = Probe(ros_context)
    images = probe.publisher(Image, "camera/image_raw", SENSOR_QOS)
    infos = probe.publisher(CameraInfo, "camera/camera_info", SENSOR_QOS)
    out = probe.collect(Keypoints2D, "human/keypoints_2d", SENSOR_QOS)
    with NodeProcess(NODE, {"tracking": False}) as node:
        try:
            wait_for_subscriber(probe, images, 60.0)
            assert probe.spin_until(lambda: probe.node.count_publishers("human/keypoints_2d") > 0, 60.0), (
                "the probe never discovered the keypoint publisher")
            frame = "camera_optical_frame"

            def send(pixels, encoding, stamp_ns, with_info=True):
                """Publish until keypoints with this stamp arrive (best effort may drop the first ones)."""
                msg = image_from_numpy(pixels, encoding, stamp_ns, frame)
                for _ in range(30):  # best effort; before config/fastdds_large_data.xml this took up to 2 min
                    if with_info:
                        infos.publish(camera_info(msg.width, msg.height, msg.header.stamp, frame))
                        probe.spin_for(0.1)
                    images.publish(msg)
                    if probe.spin_until(lambda: any(ns_from_time(m.header.stamp) == stamp_ns for m in out), 4.0):
                        return next(m for m in out if ns_from_time(m.header.stamp) == stamp_ns)
                raise AssertionError(f"no keypoints for stamp {stamp_ns}: {node.stop()}")

            # 1. Missing camera info: raw pixels, flagged, and a warning on /diagnostics.
            msg = send(photo, "rgb8", 1_000, with_info=False)
            assert not msg.undistorted and msg.num_people == 1
            assert probe.spin_until(lambda: probe.diagnostic_level(NODE) == WARN)
            assert "camera_info" in probe.diagnostic_message(NODE)

            # 2. With camera info: stamp and frame of the image, undistorted pixels, a plausible person.
            stamp = 1_700_000_000_500_000_000
            msg = send(photo[..., ::-1].copy(), "bgr8", stamp)
            assert msg.header.frame_id == frame and msg.undistorted
            kp = keypoints_from_msg(msg).keypoints[0]
            nose, l_sh, r_sh = kp[0], kp[5], kp[6]
            assert nose[1] < (l_sh[1] + r_sh[1]) / 2 and l_sh[0] > r_sh[0]  # her left shoulder is on image right
            assert probe.spin_until(lambda: probe.diagnostic_level(NODE) == OK, 10.0), probe.diagnostic_message(NODE)

            # 3. Bad encoding and empty image: diagnostics, no output, node stays up.
            count = len(out)
            bad = image_from_numpy(photo, "rgb8", 2_000, frame)
            bad.encoding = "16UC1"
            assert probe.publish_until(images, bad, lambda: "not supported" in probe.diagnostic_message(NODE))
            empty = image_from_numpy(np.zeros((1, 1, 3), np.uint8), "rgb8", 3_000, frame)
            empty.height = empty.width = 0
            empty.data = b""
            assert probe.publish_until(images, empty, lambda: "empty" in probe.diagnostic_message(NODE))
            assert len(out) == count and node.alive()

            # 4. Good images again: the node recovers once the bad input has not recurred for the diagnostics' hold.
            for i in range(10):
                send(photo, "rgb8", 4_000 + i)
                if probe.spin_until(lambda: probe.diagnostic_level(NODE) == OK, 1.0):
                    break
            assert probe.diagnostic_level(NODE) == OK, probe.diagnostic_message(NODE)
        finally:
            probe.close()
