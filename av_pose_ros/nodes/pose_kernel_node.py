"""pose_kernel_node: audio capture windows in, pose kernels (and optionally their spatial encoding) out.

Subscribes `audio/frames` (AudioFrame, sensor-data QoS) and, for the automatic empty-room update,
`human/keypoints_2d` (Keypoints2D) or `person_present` (std_msgs/Bool). Publishes `audio/pose_kernel` (PoseKernel,
stamped with the capture's acquisition time, in the frame of the AudioFrame header) and, when
`publish_encoding` is set, `audio/encoding` (sensor_msgs/PointCloud2: x, y, z, intensity float32 of the voxels
where the pairs' fused encoding is strong, same stamp and frame) for RViz. Service `audio/capture_empty_room`
(std_srvs/Trigger) starts an explicit empty-room capture over the next windows: the operator vouches that the
room is empty.

Speaker and mic positions come from TF (`speaker_<i>`, `mic_<i>` as named in the AudioFrame, looked up in the
header's frame); nothing about the rig is configured here. A probe of type `music` is deconvolved in continuous
mode (see `av_pose_ros.acoustics.kernel`); every other probe type in periodic mode.

Bad input (message that does not unpack, wrong channel count, NaN, clipping, sample-rate mismatch, a window
without the probe, missing TF) gives a throttled warning and a diagnostic with the reason code and publishes
nothing for that window; the node stays up and clears the diagnostic when good windows return. Every parameter
but `capture_on_start` may be changed at run time (the pipeline is rebuilt for the next window). When time goes
back (a looped bag, a restarted simulator) presence and the drift reference start over; the empty room stays.
The per-window work is `av_pose_ros.pipeline.kernel.KernelHandler`, which `av-pose reprocess` runs too.
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from av_pose_ros.msg import AudioFrame, Keypoints2D, PoseKernel
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.kernel import PARAMS, KernelHandler
from av_pose_ros.ros.conversions import MessageError, audio_from_msg
from av_pose_ros.ros.diagnostics import Health
from av_pose_ros.ros.messages import kernel_msg, point_cloud_msg
from av_pose_ros.ros.parameters import declare_parameters
from av_pose_ros.ros.qos import SENSOR_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfBuffer
from av_pose_ros.ros.time_jumps import TimeJumps

__all__ = ["PARAMS", "PoseKernelNode", "main"]


class PoseKernelNode(Node):
    def __init__(self):
        super().__init__("pose_kernel_node")
        self.p = declare_parameters(self, PARAMS)  # live: the handler reads them every window
        self.health = Health(self)
        self.tf = TfBuffer(self)
        self.handler = KernelHandler(self.p, self.tf.lookup)
        self.jumps = TimeJumps(self, self.on_time_jump)
        self.kernel_pub = self.create_publisher(PoseKernel, "audio/pose_kernel", SENSOR_QOS)
        self.encoding_pub = self.create_publisher(PointCloud2, "audio/encoding", SENSOR_QOS)
        self.create_subscription(AudioFrame, "audio/frames", self.on_audio, SENSOR_QOS)
        # both presence sources are listened to; `empty_room_update` (live) picks the one that counts
        self.create_subscription(Keypoints2D, "human/keypoints_2d",
                                 lambda m: self.on_presence("keypoints", m.num_people > 0), SENSOR_QOS)
        self.create_subscription(Bool, "person_present", lambda m: self.on_presence("person_present", bool(m.data)),
                                 SENSOR_QOS)
        self.create_service(Trigger, "audio/capture_empty_room", self.on_capture_request)
        self.rejected: dict[str, int] = {}

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_presence(self, source: str, present: bool) -> None:
        self.handler.on_presence(source, present, self.now_s())
        self.health.set(presence_reports=self.handler.presence.reports)

    def on_time_jump(self) -> None:
        self.handler.reset()
        self.tf.clear()

    def on_capture_request(self, request, response):
        response.message = self.handler.request_capture()
        response.success = True
        self.get_logger().info(response.message)
        return response

    def on_audio(self, msg: AudioFrame) -> None:
        try:
            self._process(msg)
        except Exception as err:  # noqa: BLE001 - one bad window must never take the node down
            self.health.exception("processing", err)

    def _reject(self, code: str, text: str) -> None:
        self.rejected[code] = self.rejected.get(code, 0) + 1
        self.health.problem(code, text)
        self.health.set(rejected=", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())))

    def _process(self, msg: AudioFrame) -> None:
        try:
            audio = audio_from_msg(msg)
        except MessageError as err:
            self._reject("input_audio", str(err))
            return
        self.jumps.stamp("audio/frames", audio.stamp_ns)
        try:
            out = self.handler.on_audio(audio, self.now_s())
        except StageError as err:
            self._reject(err.code, str(err))
            return
        if out.note:
            self.get_logger().info(out.note)
        self.health.apply(out.report)
        if out.kernels is None:
            return
        self.kernel_pub.publish(kernel_msg(out))
        if self.encoding_pub.get_subscription_count() > 0:
            cloud = self.handler.encoding(out)
            if cloud is not None:
                self.encoding_pub.publish(point_cloud_msg(*cloud, out.stamp_ns, out.frame_id))


def main(args=None) -> int:
    return run_node(PoseKernelNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
