"""TF for the nodes: look up transforms and broadcast them on /tf and /tf_static with the standard message type.

On a robot `tf2_ros` is importable and used. Where it is not (ROS 2 from the Python registry), the same interface is
served by `av_pose_ros.primitives.transform_tree.TransformTree`
fed from /tf and /tf_static with tf2's QoS, so other ROS tools see
and send ordinary `tf2_msgs/TFMessage` traffic either way.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from av_pose_ros.primitives.geometry import matrix_from_quaternion, quaternion_from_matrix
from av_pose_ros.primitives.transform_tree import TransformError, TransformTree
from av_pose_ros.ros.conversions import make_header, ns_from_time

try:
    import tf2_ros
except ImportError:
    tf2_ros = None

TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
TF_STATIC_LISTEN_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.TRANSIENT_LOCAL)

__all__ = ["TfBuffer", "TfPublisher", "TransformError", "transform_msg", "matrix_from_transform_msg"]


def transform_msg(parent: str, child: str, parent_from_child: np.ndarray, stamp_ns: int) -> TransformStamped:
    t = np.asarray(parent_from_child, dtype=float)
    x, y, z = (float(v) for v in t[:3, 3])
    qx, qy, qz, qw = (float(v) for v in quaternion_from_matrix(t[:3, :3]))
    return TransformStamped(header=make_header(stamp_ns, parent), child_frame_id=child,
                            transform=Transform(translation=Vector3(x=x, y=y, z=z),
                                                rotation=Quaternion(x=qx, y=qy, z=qz, w=qw)))


def matrix_from_transform_msg(msg: TransformStamped | Transform) -> np.ndarray:
    t = msg.transform if isinstance(msg, TransformStamped) else msg
    out = np.eye(4)
    r = t.rotation
    out[:3, :3] = matrix_from_quaternion([r.x, r.y, r.z, r.w])
    out[:3, 3] = [t.translation.x, t.translation.y, t.translation.z]
    return out


class TfBuffer:
    """`lookup(target, source, stamp_ns, timeout_s) -> target_from_source` (4x4); raises TransformError when
    unavailable after waiting up to `timeout_s` (wait only on a worker thread: the executor feeds the buffer).
    Built with the node, so it follows the node's clock (/clock under use_sim_time); `clear()` after time went back
    drops the dynamic history and keeps static transforms."""

    def __init__(self, node, cache_s: float = 10.0):
        self._node = node
        if tf2_ros is not None:
            from rclpy.duration import Duration

            self._buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cache_s), node=node)
            self._listener = tf2_ros.TransformListener(self._buffer, node)
            return
        self._tree = TransformTree(cache_s)
        node.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), TF_QOS)
        node.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True), TF_STATIC_LISTEN_QOS)

    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        for t in msg.transforms:
            try:
                self._tree.set_transform(t.header.frame_id, t.child_frame_id, matrix_from_transform_msg(t),
                                         ns_from_time(t.header.stamp), static)
            except TransformError as err:
                self._node.get_logger().warning(f"ignoring transform: {err}", throttle_duration_sec=5.0)

    def clear(self) -> None:
        if tf2_ros is None:
            self._tree.clear()
        else:
            self._buffer.clear()

    def lookup(self, target: str, source: str, stamp_ns: int = 0, timeout_s: float = 0.0) -> np.ndarray:
        if tf2_ros is None:
            return self._tree.lookup(target, source, stamp_ns, timeout_s)
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            msg = self._buffer.lookup_transform(target, source, Time(nanoseconds=stamp_ns),
                                                timeout=Duration(nanoseconds=int(timeout_s * 1e9)))
        except (tf2_ros.LookupException, tf2_ros.ConnectivityException, tf2_ros.ExtrapolationException) as err:
            raise TransformError(str(err)) from err
        return matrix_from_transform_msg(msg)


class TfPublisher:
    """Sends transforms on /tf, and static ones on /tf_static (all static transforms of this node in one latched
    message, as tf2's static broadcaster does)."""

    def __init__(self, node):
        self._static: dict[str, TransformStamped] = {}
        if tf2_ros is not None:
            self._dynamic_pub = tf2_ros.TransformBroadcaster(node)
            self._static_pub = tf2_ros.StaticTransformBroadcaster(node)
        else:
            self._dynamic_pub = node.create_publisher(TFMessage, "/tf", TF_QOS)
            self._static_pub = node.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)

    def send(self, transforms: list[TransformStamped]) -> None:
        if tf2_ros is not None:
            self._dynamic_pub.sendTransform(transforms)
        else:
            self._dynamic_pub.publish(TFMessage(transforms=transforms))

    def send_static(self, transforms: list[TransformStamped]) -> None:
        self._static.update({t.child_frame_id: t for t in transforms})
        if tf2_ros is not None:
            self._static_pub.sendTransform(list(self._static.values()))
        else:
            self._static_pub.publish(TFMessage(transforms=list(self._static.values())))
