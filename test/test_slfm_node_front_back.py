"""slfm_node over real DDS, front/back from head motion: the head's yaw comes from TF (head_yaw_source tf), the audio
from a source behind a turning spherical head in a reverberant room. While the head holds still the node must say
front/back is unresolved (and answer the mirror in front); after a 25 deg turn it must place the source behind the
head. Without the head's TF it reports a diagnostic and stays up."""

import numpy as np
import pytest

from av_pose_ros.ros.conversions import Audio, audio_to_msg, ns_from_time

from ros_harness import REPO, NodeProcess, Probe

pytestmark = pytest.mark.skipif(not (REPO / "models" / "slfm_azimuth.pt").exists(), reason="no shipped SLfM models")

WINDOWS = 8
TURN_DEG = 25.0
SOURCE_DEG = 145.0  # behind the head, to the left


def _scenario():
    from av_pose_ros.slfm.sources import SourceBank
    from av_pose_ros.slfm.tracking_eval import make_scenario, render_windows, turn_profile

    sc = make_scenario(9_100_000, 0, SourceBank(None), WINDOWS, 1.0, azimuth=np.deg2rad(SOURCE_DEG),
                       rt60_range=(0.3, 0.5))
    yaws = turn_profile(WINDOWS, np.deg2rad(TURN_DEG))
    return sc, yaws, render_windows(sc, yaws, 1.0, 1)


def test_slfm_node_tells_front_from_back_as_the_head_turns(ros_context):
    from tf2_msgs.msg import TFMessage

    from av_pose_ros.msg import AudioFrame, SoundDirection
    from av_pose_ros.primitives.geometry import make_transform, rot_z
    from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
    from av_pose_ros.ros.tf import TF_QOS, transform_msg
    from av_pose_ros.slfm.tracking import wrap_angle

    sc, yaws, clips = _scenario()
    t0 = 2_000_000_000
    probe = Probe(ros_context)
    audio = probe.publisher(AudioFrame, "binaural/frames", SENSOR_QOS)
    tf = probe.publisher(TFMessage, "/tf", TF_QOS)
    directions = probe.collect(SoundDirection, "slfm/sound_direction", RESULT_QOS)

    def frame(k, stamp):
        return audio_to_msg(Audio(stamp, "head_link", np.ascontiguousarray(clips[k]), 16000, ["left_ear", "right_ear"],
                                  np.zeros((0, 0)), []))

    params = {"mode": "audio", "head_yaw_source": "tf", "audio_window_s": 1.0, "audio_hop_s": 1.0}
    with NodeProcess("slfm_node", params) as node:
        try:
            assert probe.spin_until(lambda: audio.get_subscription_count() > 0 and tf.get_subscription_count() > 0,
                                    60.0), node.stop()
            # no head TF yet: a diagnostic, no direction
            assert probe.publish_until(audio, frame(0, t0 - 1_000_000_000),
                                       lambda: "head yaw" in probe.diagnostic_message("slfm_node"), 30.0), node.stop()
            # the head's yaw every 0.1 s over the whole recording (window k covers t0 + k s .. t0 + (k + 1) s and
            # was rendered at yaws[k], the yaw at its middle)
            stamps = t0 + np.arange(0, WINDOWS * 10 + 1) * 100_000_000
            yaw_of = np.interp((stamps - t0) / 1e9, np.arange(WINDOWS) + 0.5, yaws)
            tf.publish(TFMessage(transforms=[transform_msg("head_base_link", "head_link", make_transform(rot_z(y)),
                                                           int(s)) for s, y in zip(stamps, yaw_of)]))
            probe.spin_for(0.5)
            for k in range(WINDOWS):
                audio.publish(frame(k, t0 + k * 1_000_000_000))
                assert probe.spin_until(lambda k=k: len(directions) >= k + 1, 30.0), (k, node.stop())
            assert node.alive(), node.stop()
        finally:
            probe.close()
    first, last = directions[0], directions[-1]
    print("azimuth deg", [round(float(np.degrees(d.azimuth)), 1) for d in directions],
          "confidence", [round(d.front_back_confidence, 3) for d in directions])
    assert ns_from_time(last.header.stamp) == t0 + (WINDOWS - 1) * 1_000_000_000
    # head still: unresolved, the mirror in front
    assert first.front_back_folded and first.front_back_confidence < 0.7 and abs(first.azimuth) <= np.pi / 2
    # after the turn: behind the head, resolved, in the head frame at the last yaw
    truth = wrap_angle(sc.source_azimuth - yaws[-1])
    assert not last.front_back_folded and last.front_back_confidence > 0.9
    assert abs(np.degrees(wrap_angle(last.azimuth - truth))) < 12.0, (np.degrees(last.azimuth), np.degrees(truth))
    np.testing.assert_allclose([last.direction.x, last.direction.y], [np.cos(last.azimuth), np.sin(last.azimuth)],
                               atol=1e-5)


def test_slfm_node_turns_its_own_head_yaw_into_front_back(ros_context):
    """mode both, head_yaw_source rotation: the head camera turns with the head (views of one scene 0 -> 25 deg),
    the node integrates the rotation, publishes it as head_link and uses it to place the source behind the head."""
    from sensor_msgs.msg import Image

    from av_pose_ros.msg import AudioFrame, HeadRotation, SoundDirection
    from av_pose_ros.ros.images import image_from_numpy
    from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
    from av_pose_ros.slfm.images import intrinsics, procedural_scene, render_view
    from av_pose_ros.slfm.tracking import wrap_angle

    sc, yaws, clips = _scenario()
    scene = procedural_scene(np.random.default_rng(2))
    k_src = intrinsics(scene.shape[1], scene.shape[0], 120.0)
    views = [render_view(scene, k_src, float(y), 0.0, 256, 192, 60.0) for y in yaws]
    t0 = 2_000_000_000
    probe = Probe(ros_context)
    images = probe.publisher(Image, "head_camera/image_raw", SENSOR_QOS)
    audio = probe.publisher(AudioFrame, "binaural/frames", SENSOR_QOS)
    rotations = probe.collect(HeadRotation, "slfm/head_rotation", RESULT_QOS)
    directions = probe.collect(SoundDirection, "slfm/sound_direction", RESULT_QOS)
    params = {"fov_deg": 60.0, "audio_window_s": 1.0, "audio_hop_s": 1.0}
    with NodeProcess("slfm_node", params) as node:
        try:
            assert probe.spin_until(lambda: images.get_subscription_count() > 0 and audio.get_subscription_count()
                                    > 0, 60.0), node.stop()
            for k in range(WINDOWS):
                # the view at the middle of window k, then window k (heard at the same yaw)
                img = image_from_numpy(views[k], "rgb8", t0 + k * 1_000_000_000 + 500_000_000, "head_camera")
                if k == 0:  # nothing is published for a first image: send it a few times (best effort may drop
                    for _ in range(3):  # one; a repeated stamp is ignored) so that its yaw is known at window 0
                        images.publish(img)
                        probe.spin_for(0.4)
                else:
                    assert probe.publish_until(images, img, lambda k=k: len(rotations) >= k, 20.0), node.stop()
                audio.publish(audio_to_msg(Audio(t0 + k * 1_000_000_000, "head_link", np.ascontiguousarray(clips[k]),
                                                 16000, ["left_ear", "right_ear"], np.zeros((0, 0)), [])))
                assert probe.spin_until(lambda k=k: len(directions) >= k + 1, 30.0), (k, node.stop())
            assert node.alive(), node.stop()
        finally:
            probe.close()
    integrated = rotations[-1].integrated_yaw
    print("integrated yaw deg", np.degrees(integrated), "last azimuth deg", np.degrees(directions[-1].azimuth),
          "confidence", directions[-1].front_back_confidence)
    assert abs(np.degrees(integrated) - TURN_DEG) < 3.0, np.degrees(integrated)
    first, last = directions[0], directions[-1]
    assert first.front_back_folded and first.front_back_confidence < 0.7
    truth = wrap_angle(sc.source_azimuth - yaws[-1])
    assert not last.front_back_folded and last.front_back_confidence > 0.9
    assert abs(np.degrees(wrap_angle(last.azimuth - truth))) < 15.0, (np.degrees(last.azimuth), np.degrees(truth))
