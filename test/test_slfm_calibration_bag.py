"""`av-pose calibrate-head --bag`: a robot's own recording (the two ears on binaural/frames, the head's yaw on a
HeadRotation topic) becomes calibration recordings. The bag here is written with real serialized messages from a
simulated head that turns in steps while a source plays; its windows get the right turns and the delays read the
source where it is; the CLI writes a calibration file, and a bag without the head's yaw is refused clearly."""

import math

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer

from av_pose_ros.bag.typestore import typestore
from av_pose_ros.ros.conversions import Audio, audio_to_msg, head_rotation_to_msg
from av_pose_ros.slfm.calibration_bag import BagRecordingsConfig, recordings_from_bag
from av_pose_ros.slfm.head_calibration import HeadCalibration
from av_pose_ros.slfm.head_motion import HeadMotion
from av_pose_ros.slfm.head_sound import HeadSoundConfig, HeadSoundScene

from ros_harness import REPO

AZIMUTH = REPO / "models" / "slfm_azimuth.pt"
pytestmark = pytest.mark.skipif(not AZIMUTH.exists(), reason="no shipped azimuth model")
T0 = 5_000_000_000


def _write_bag(path, seconds: float, with_yaw: bool = True) -> tuple[HeadSoundScene, HeadMotion]:
    scene = HeadSoundScene(3, HeadSoundConfig(kind="noise", azimuth_rad=math.radians(40.0)))
    motion = HeadMotion("steps", 15.0, 4.0)
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    audio = writer.add_connection("/binaural/frames", "av_pose_ros/msg/AudioFrame", typestore=typestore())
    yaw = writer.add_connection("/slfm/head_rotation", "av_pose_ros/msg/HeadRotation", typestore=typestore())
    n = 1600  # 100 ms frames
    for k in range(int(seconds * 10)):
        t = k * 0.1
        ears = scene.render(k * n, n, motion.yaw(t + 0.05))
        stamp = T0 + k * 100_000_000
        frame = Audio(stamp, "head_link", ears, 16000, ["left_ear", "right_ear"], np.zeros((0, 0), np.float32), [])
        writer.write(audio, stamp, serialize_message(audio_to_msg(frame)))
        if with_yaw and k % 3 == 0:
            writer.write(yaw, stamp, serialize_message(head_rotation_to_msg(stamp, stamp - 300_000_000, "head_link",
                                                                            0.0, motion.yaw(t), 1.0)))
    writer.close()
    return scene, motion


def test_a_robot_bag_gives_recordings_at_known_turns(tmp_path):
    from av_pose_ros.slfm.estimators import AzimuthEstimator

    scene, motion = _write_bag(tmp_path / "b", 24.0)
    cal = HeadCalibration.load(REPO / "models" / "slfm_head_calibration.json")
    estimator = AzimuthEstimator.load(AZIMUTH)
    delays, turns, stamps = recordings_from_bag(tmp_path / "b", estimator, BagRecordingsConfig())
    assert delays.shape == turns.shape == stamps.shape and delays.shape[1] == 4 and delays.shape[0] >= 15
    assert np.all(np.ptp(turns, axis=1) >= math.radians(5.0))
    # the turns are the head's yaw at each window's centre (the bag's yaw is sampled every 0.3 s) from view 0's
    true_yaw = np.vectorize(motion.yaw)((stamps - T0) * 1e-9)
    assert np.max(np.abs(turns - (true_yaw - true_yaw[:, :1]))) < math.radians(1.5)
    # a fixed source at 40 deg heard with the head turned: each window reads 40 deg minus the head's yaw
    readings = np.degrees(cal.lateral(delays))
    assert np.median(np.abs(readings - (40.0 - np.degrees(true_yaw)))) < 5.0


def test_calibrate_head_cli_from_a_bag_and_a_bag_without_yaw(tmp_path, capsys):
    from av_pose_ros.slfm.cli import main

    _write_bag(tmp_path / "b", 30.0)
    out = tmp_path / "head.json"
    assert main(["calibrate-head", "--bag", str(tmp_path / "b"), "--out", str(out), "--name", "test_head"]) == 0
    cal = HeadCalibration.load(out)
    assert cal.head == "test_head" and cal.recordings >= 20
    _write_bag(tmp_path / "noyaw", 3.0, with_yaw=False)        # the yaw topic is there, with nothing on it
    assert main(["calibrate-head", "--bag", str(tmp_path / "noyaw"), "--out", str(tmp_path / "x.json")]) == 2
    assert "head-yaw messages on slfm/head_rotation" in capsys.readouterr().err
