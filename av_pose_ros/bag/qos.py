"""QoS of recorded and played topics: rclpy profiles to and from rosbag2's offered_qos_profiles, and the profile a
player offers per topic."""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS, STATIC_QOS

# Types that are streams (a late sample is worth less than the next one): sensor-data QoS when the bag has no QoS.
STREAM_TYPES = {"av_pose_ros/msg/AudioFrame", "av_pose_ros/msg/Keypoints2D", "av_pose_ros/msg/PoseKernel",
                "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/PointCloud2",
                "sensor_msgs/msg/LaserScan", "sensor_msgs/msg/Imu", "av_pose_ros/msg/SoundDirection",
                "av_pose_ros/msg/HeadRotation"}
_INFINITE = QosTime(2147483647, 4294967295)   # how rosbag2 writes an infinite duration


def _qos_time(d: Duration) -> QosTime:
    sec, nsec = divmod(int(d.nanoseconds), 1_000_000_000)
    return _INFINITE if sec > 2147483647 else QosTime(sec, nsec)


def to_bag_qos(p: QoSProfile) -> Qos:
    """An rclpy profile in rosbags' form, for the offered_qos_profiles of a recorded topic."""
    return Qos(QosHistory(int(p.history)), int(p.depth), QosReliability(int(p.reliability)),
               QosDurability(int(p.durability)), _qos_time(p.deadline), _qos_time(p.lifespan),
               QosLiveliness(int(p.liveliness)), _qos_time(p.liveliness_lease_duration),
               bool(p.avoid_ros_namespace_conventions))


def default_qos(topic: str, msgtype: str) -> QoSProfile:
    """Without recorded QoS: latched for /tf_static and calibration, sensor data for streams, reliable otherwise."""
    if topic.endswith("tf_static") or topic.endswith("camera_info") or msgtype == "sensor_msgs/msg/CameraInfo":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=STATIC_QOS.depth if not topic.endswith(
            "tf_static") else 100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    if msgtype in STREAM_TYPES:
        return SENSOR_QOS
    return RESULT_QOS


def playback_qos(topic: str, msgtype: str, offered: list[Qos]) -> QoSProfile:
    """From the recording's publishers: best effort if any was (a reliable subscriber would not have matched it
    anyway), transient local only if all were (late joiners get every latched sample: depth covers them)."""
    usable = [q for q in offered if q.reliability in (QosReliability.RELIABLE, QosReliability.BEST_EFFORT)]
    if not usable:
        return default_qos(topic, msgtype)
    best_effort = any(q.reliability == QosReliability.BEST_EFFORT for q in usable)
    latched = all(q.durability == QosDurability.TRANSIENT_LOCAL for q in usable)
    depth = max(max(q.depth for q in usable), 100)  # a player bursts (--rate): keep slow readers' samples
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
                      liveliness=LivelinessPolicy.AUTOMATIC)
