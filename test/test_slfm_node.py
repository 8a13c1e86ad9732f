"""slfm_node over real DDS with the shipped models: a turned head camera gives the head rotation (sign and size)
and the head's TF (head_base_link -> head_link turned by the integrated yaw, at the image's stamp), a binaural clip
gives the sound direction; bad images and audio give diagnostics."""

import numpy as np
import pytest

from av_pose_ros.ros.conversions import Audio, audio_to_msg, ns_from_time

from ros_harness import REPO, NodeProcess, Probe

pytestmark = pytest.mark.skipif(not (REPO / "models" / "slfm_rotation.pt").exists(), reason="no shipped SLfM models")


def test_slfm_node_estimates_rotation_and_direction(ros_context):
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    from av_pose_ros.msg import AudioFrame, HeadRotation, SoundDirection
    from av_pose_ros.ros.images import image_from_numpy
    from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
    from av_pose_ros.ros.tf import TF_QOS, matrix_from_transform_msg
    from av_pose_ros.slfm.images import load_real_photos, sample_pair
    from av_pose_ros.slfm.rooms import render_view, sample_room
    from av_pose_ros.slfm.sources import music_like

    rng = np.random.default_rng(5)
    yaw = np.deg2rad(12.0)
    img_a, img_b = sample_pair(load_real_photos("test")[0], yaw, rng, width=256, height=192)
    room = sample_room(rng)
    room.source = room.head + np.array([np.cos(room.base_yaw + 0.6), np.sin(room.base_yaw + 0.6), 0.0]) * 1.5
    from av_pose_ros.slfm.rooms import _image_sources  # the room's image sources for the moved source

    _image_sources(room)
    clip = render_view(room, room.base_yaw, music_like(16000 * 3, rng), rng)
    true_azimuth = room.azimuth(room.base_yaw)

    probe = Probe(ros_context)
    images = probe.publisher(Image, "head_camera/image_raw", SENSOR_QOS)
    audio = probe.publisher(AudioFrame, "binaural/frames", SENSOR_QOS)
    rotations = probe.collect(HeadRotation, "slfm/head_rotation", RESULT_QOS)
    directions = probe.collect(SoundDirection, "slfm/sound_direction", RESULT_QOS)
    tf = probe.collect(TFMessage, "/tf", TF_QOS)
    with NodeProcess("slfm_node", {"fov_deg": 60.0}) as node:
        try:
            probe.spin_until(lambda: images.get_subscription_count() > 0, 60.0)
            sent = {}  # stamp -> which view; best effort may drop any image, so alternate a and b
            for k in range(20):
                stamp, view = 1_000_000_000 + k * 100_000_000, "ab"[k % 2]
                sent[stamp] = view
                images.publish(image_from_numpy(img_a if view == "a" else img_b, "rgb8", stamp, "head_camera"))
                if probe.spin_until(lambda: bool(rotations), 1.5):
                    break
            assert rotations, node.stop()
            r = rotations[0]
            order = (sent[ns_from_time(r.previous_stamp)], sent[ns_from_time(r.header.stamp)])
            expected = 12.0 if order == ("a", "b") else -12.0
            assert abs(np.degrees(r.relative_yaw) - expected) < 3.0 and r.integrated_yaw == pytest.approx(
                r.relative_yaw, abs=1e-5)
            assert 0.0 <= r.confidence <= 1.0 and r.header.frame_id == "head_link"

            def head_tf():  # the head's TF sent with this rotation
                return [t for m in tf for t in m.transforms
                        if t.child_frame_id == "head_link" and t.header.stamp == r.header.stamp]

            assert probe.spin_until(lambda: bool(head_tf()), 5.0), node.stop()
            head = head_tf()[0]
            m = matrix_from_transform_msg(head)
            assert head.header.frame_id == "head_base_link"
            assert np.arctan2(m[1, 0], m[0, 0]) == pytest.approx(r.integrated_yaw, abs=1e-5)

            n = clip.shape[1] // 10
            for k in range(10):
                part = np.asarray(clip[:, k * n:(k + 1) * n], dtype=np.float32)
                audio.publish(audio_to_msg(Audio(2_000_000_000 + k * int(n / 16000 * 1e9), "head_link", part, 16000,
                                                 ["left_ear", "right_ear"], np.zeros((0, 0)), [])))
                probe.spin_for(0.1)
            assert probe.spin_until(lambda: len(directions) >= 1, 30.0), node.stop()
            folded = np.arcsin(np.sin(true_azimuth))
            assert abs(np.degrees(directions[-1].azimuth - folded)) < 10.0

            bad = image_from_numpy(img_a, "rgb8", 3_000_000_000, "head_camera")
            bad.encoding = "yuv422"
            assert probe.publish_until(images, bad, lambda: "not supported" in probe.diagnostic_message("slfm_node"))
            silent = Audio(8_000_000_000, "head_link", np.zeros((2, 16000), np.float32), 16000, ["l", "r"],
                           np.zeros((0, 0)), [])
            assert probe.publish_until(audio, audio_to_msg(silent),
                                       lambda: "silent" in probe.diagnostic_message("slfm_node"), 30.0)
            assert node.alive()
        finally:
            probe.close()
