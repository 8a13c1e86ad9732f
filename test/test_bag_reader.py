"""The bag reader and QoS choices without DDS: zstd-compressed and truncated MCAP, a recording never closed, QoS
from a robot bag's metadata, and the defaults for a bag without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from rclpy.serialization import serialize_message
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from av_pose_ros.bag.qos import default_qos, playback_qos, to_bag_qos
from av_pose_ros.bag.reader import BagError, BagReader
from av_pose_ros.bag.typestore import typestore

from sample_messages import sample_messages

T = QosTime(0, 0)


def write_bag(path: Path, n: int, compress: bool, storage=StoragePlugin.MCAP) -> list[bytes]:
    """n rounds of every custom sample message, chunk-compressed with zstd when asked (as `ros2 bag record` does)."""
    writer = Writer(path, version=9, storage_plugin=storage)
    if compress:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    writer.open()
    samples = sample_messages()
    conns = {name: writer.add_connection(f"/s/{name}", f"av_pose_ros/msg/{name}", typestore=typestore())
             for name in samples}
    written = []
    for i in range(n):
        for name, msg in samples.items():
            data = serialize_message(msg)
            writer.write(conns[name], 1_000_000_000 + i * 10_000_000, data)
            written.append(data)
    writer.close()
    return written


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_and_unindexed_mcap_read_up_to_the_damage(tmp_path, compress):
    written = write_bag(tmp_path / "b", 300, compress)   # several 1 MiB chunks
    with BagReader(tmp_path / "b") as bag:
        assert bag.notes == [] and bag.message_count == len(written)
        assert [d for _, _, d in bag.messages()] == written
    mcap = next((tmp_path / "b").glob("*.mcap"))
    with mcap.open("r+b") as f:
        f.truncate(int(mcap.stat().st_size * 0.7))
    for damaged in (tmp_path / "b", mcap):     # the folder (metadata.yaml of the whole bag) or the bare file
        with BagReader(damaged) as bag:
            readable = [d for _, _, d in bag.messages()]
            assert 0 < len(readable) < len(written) and readable == written[:len(readable)]
            assert bag.message_count == len(readable) and "cut short" in bag.error
            assert any("damaged or truncated" in n for n in bag.notes)
    (tmp_path / "b" / "metadata.yaml").unlink()
    with BagReader(tmp_path / "b") as bag:
        assert any("no metadata.yaml" in n for n in bag.notes) and bag.message_count == len(readable)


def test_truncated_sqlite3_reads_up_to_the_damage(tmp_path):
    written = write_bag(tmp_path / "s", 100, False, StoragePlugin.SQLITE3)
    db = next((tmp_path / "s").glob("*.db3"))
    with db.open("r+b") as f:
        f.truncate(int(db.stat().st_size * 0.6))
    damaged = db.read_bytes()
    with BagReader(tmp_path / "s") as bag:
        readable = [d for _, _, d in bag.messages()]
        assert 0 < len(readable) < len(written) and readable == written[:len(readable)]
        assert bag.error and any("damaged or truncated" in n for n in bag.notes)
    assert db.read_bytes() == damaged  # recovery works on a copy: the user's file is left as it was


def test_nothing_readable_is_an_error_that_says_so(tmp_path):
    (tmp_path / "x.mcap").write_bytes(b"\x89MCAP0\r\n\x01\xff\xff")
    with pytest.raises(BagError, match="cut short"):
        BagReader(tmp_path / "x.mcap")
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "missing")


def test_qos_from_a_robot_bag_and_the_defaults():
    def q(rel, dur, depth=10):
        return Qos(QosHistory.KEEP_LAST, depth, rel, dur, T, T, QosLiveliness.AUTOMATIC, T, False)

    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    latched = playback_qos("/tf_static", "tf2_msgs/msg/TFMessage",
                           [q(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, 1)] * 2)
    assert latched.durability == DurabilityPolicy.TRANSIENT_LOCAL and latched.depth >= 2
    mixed = playback_qos("/x", "std_msgs/msg/String", [q(QosReliability.RELIABLE, QosDurability.VOLATILE),
                                                       q(QosReliability.BEST_EFFORT, QosDurability.VOLATILE)])
    assert mixed.reliability == ReliabilityPolicy.BEST_EFFORT and mixed.durability == DurabilityPolicy.VOLATILE
    assert default_qos("/tf_static", "tf2_msgs/msg/TFMessage").durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert default_qos("/camera/camera_info", "sensor_msgs/msg/CameraInfo").durability == \
        DurabilityPolicy.TRANSIENT_LOCAL
    assert default_qos("/audio/frames", "av_pose_ros/msg/AudioFrame").reliability == ReliabilityPolicy.BEST_EFFORT
    assert default_qos("/human/pose_3d", "av_pose_ros/msg/HumanPose3D").reliability == ReliabilityPolicy.RELIABLE
    assert playback_qos("/a", "av_pose_ros/msg/AudioFrame", []) == default_qos("/a", "av_pose_ros/msg/AudioFrame")
    from av_pose_ros.ros.qos import STATIC_QOS

    back = to_bag_qos(STATIC_QOS)
    assert back.durability == QosDurability.TRANSIENT_LOCAL and back.reliability == QosReliability.RELIABLE


def test_core_modules_do_without_rclpy():
    """The reader and the nodes' shared per-message code are plain Python (usable in notebooks and offline tools)."""
    import subprocess
    import sys

    from conftest import child_env

    code = ("import sys; import av_pose_ros.pipeline.kernel, av_pose_ros.pipeline.lifter, "
            "av_pose_ros.pipeline.handover, "
            "av_pose_ros.bag.reader, av_pose_ros.bag.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
