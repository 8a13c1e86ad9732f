"""keypoint_node: camera images in, 2D COCO-17 body keypoints (undistorted pixels) out.

Subscribes `camera/image_raw` and `camera/camera_info` (sensor-data QoS); publishes `human/keypoints_2d`
(Keypoints2D, stamped with the image's acquisition time, in the image's optical frame) and optionally
`camera/image_keypoints` (the image with the skeleton drawn). The detector runs in its own thread on the newest
image only: when it falls behind, older images are dropped (and counted), never queued.

Without camera info the node still publishes, with raw (distorted) pixels and `undistorted: false`, and warns:
a robot whose camera info is late should still see people, and consumers can tell the difference. Every parameter
may be changed at run time (a new `tracking` or `min_detection_confidence` rebuilds the detector). The per-image
work is `av_pose_ros.pipeline.keypoints.KeypointHandler`.
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from av_pose_ros.msg import Keypoints2D
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.keypoints import PARAMS, KeypointHandler, draw_skeleton
from av_pose_ros.ros.conversions import MessageError, ns_from_time
from av_pose_ros.ros.diagnostics import Health
from av_pose_ros.ros.images import image_from_numpy, image_to_rgb
from av_pose_ros.ros.latest_worker import LatestWorker
from av_pose_ros.ros.messages import keypoints_msg
from av_pose_ros.ros.parameters import declare_parameters
from av_pose_ros.ros.qos import SENSOR_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.time_jumps import TimeJumps

__all__ = ["PARAMS", "KeypointNode", "draw_skeleton", "main"]


class KeypointNode(Node):
    def __init__(self):
        super().__init__("keypoint_node")
        self.p = declare_parameters(self, PARAMS, self.on_parameters)
        self.health = Health(self)
        self.handler = KeypointHandler(self.p)
        self.jumps = TimeJumps(self, self.handler.reset)
        self.pub = self.create_publisher(Keypoints2D, "human/keypoints_2d", SENSOR_QOS)
        self.annotated_pub = self.create_publisher(Image, "camera/image_keypoints", SENSOR_QOS)
        self.create_subscription(Image, "camera/image_raw", self.health.guard("detector", self.on_image),
                                 SENSOR_QOS)
        self.create_subscription(CameraInfo, "camera/camera_info", self.health.guard("detector", self.on_camera_info),
                                 SENSOR_QOS)
        self.worker = LatestWorker(self.process, lambda err: self.health.exception("detector", err),
                                   "keypoint_detector")
        self.health.set(**self.handler.settings)

    def on_parameters(self, names: set[str]) -> None:
        self.handler.configure()
        self.health.set(**self.handler.settings)

    def on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.handler.on_camera_info(msg, self.get_clock().now().nanoseconds)
        except StageError as err:
            self.health.problem(err.code, str(err))

    def on_image(self, msg: Image) -> None:
        self.jumps.stamp("camera/image_raw", ns_from_time(msg.header.stamp))
        self.worker.submit(msg)  # the detector is slower than the camera: keep only the newest image

    def process(self, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg)
        except MessageError as err:
            self.health.problem("input_image", str(err))
            return
        out = self.handler.on_image(rgb, self.get_clock().now().nanoseconds)
        self.health.apply(out.report)
        self.health.set(dropped=self.worker.dropped)
        stamp_ns = ns_from_time(msg.header.stamp)
        if out.annotated is not None:
            self.annotated_pub.publish(image_from_numpy(out.annotated, "rgb8", stamp_ns, msg.header.frame_id))
        self.pub.publish(keypoints_msg(out, stamp_ns, msg.header.frame_id, msg.width, msg.height))

    def destroy_node(self) -> None:
        self.worker.stop()
        self.handler.close()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(KeypointNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
