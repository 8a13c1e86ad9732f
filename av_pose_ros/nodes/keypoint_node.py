"""keypoint_node: camera images in, 2D COCO-17 body keypoints (undistorted pixels) out.

Subscribes `camera/image_raw` and `camera/camera_info` (sensor-data QoS); publishes `human/keypoints_2d`
(Keypoints2D, stamped with the image's acquisition time, in the image's optical frame) and optionally
`camera/image_keypoints` (the image with the skeleton drawn). The detector runs in its own thread on the newest
image only: when it falls behind, older images are dropped (and counted), never queued.

Without camera info the node still publishes, with raw (distorted) pixels and `undistorted: false`, and warns:
a robot whose camera info is late should still see people, and consumers can tell the difference.
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from av_pose_ros.msg import Keypoints2D
from av_pose_ros.primitives.skeleton import BONE_INDICES
from av_pose_ros.ros.conversions import Keypoints, MessageError, keypoints_to_msg, ns_from_time
from av_pose_ros.ros.diagnostics import Health
from av_pose_ros.ros.images import image_from_numpy, image_to_rgb
from av_pose_ros.ros.latest_worker import LatestWorker
from av_pose_ros.ros.parameters import Param, declare_parameters
from av_pose_ros.ros.qos import SENSOR_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.vision.camera import CameraModel
from av_pose_ros.vision.keypoints import PoseDetector

PARAMS = [
    Param("tracking", True, "Follow the person from frame to frame (video); false treats every image alone."),
    Param("min_detection_confidence", 0.5, "Person detector score needed to report a person.", 0.0, 1.0),
    Param("body_id", "person0", "REP-155 body id given to the detected person (one person per image)."),
    Param("publish_annotated", False, "Also publish camera/image_keypoints with the skeleton drawn."),
    Param("camera_info_timeout_s", 5.0, "Camera info older than this is treated as missing.", 0.0, 3600.0),
]


def draw_skeleton(rgb: np.ndarray, keypoints: np.ndarray, min_confidence: float = 0.3) -> np.ndarray:
    """A copy of `rgb` with the COCO-17 skeleton drawn (joints under `min_confidence` left out)."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    ok = keypoints[:, 2] >= min_confidence
    points = np.round(keypoints[:, :2]).astype(int)
    for a, b in BONE_INDICES:
        if ok[a] and ok[b]:
            cv2.line(out, tuple(points[a]), tuple(points[b]), (0, 255, 0), 2)
    for j in np.flatnonzero(ok):
        cv2.circle(out, tuple(points[j]), 4, (255, 0, 0), -1)
    return out


class KeypointNode(Node):
    def __init__(self):
        super().__init__("keypoint_node")
        self.p = declare_parameters(self, PARAMS)
        self.health = Health(self)
        self.detector = PoseDetector(tracking=self.p.tracking, min_detection_confidence=self.p.min_detection_confidence)
        self.camera: CameraModel | None = None
        self.camera_stamp = 0.0
        self.pub = self.create_publisher(Keypoints2D, "human/keypoints_2d", SENSOR_QOS)
        self.annotated_pub = self.create_publisher(Image, "camera/image_keypoints", SENSOR_QOS)
        self.create_subscription(Image, "camera/image_raw", self.on_image, SENSOR_QOS)
        self.create_subscription(CameraInfo, "camera/camera_info", self.on_camera_info, SENSOR_QOS)
        self.processed = 0
        self.worker = LatestWorker(self.process, lambda err: self.health.problem(
            "detector", f"{type(err).__name__}: {err}"), "keypoint_detector")

    def on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.camera = CameraModel.from_camera_info_fields(msg.width, msg.height, msg.distortion_model, msg.d,
                                                              msg.k, msg.r, msg.p)
            self.camera_stamp = time.monotonic()
            self.health.clear("input_camera_info", "no_camera_info")
        except ValueError as err:
            self.health.problem("input_camera_info", f"camera info unusable: {err}")

    def on_image(self, msg: Image) -> None:
        self.worker.submit(msg)  # the detector is slower than the camera: keep only the newest image

    def process(self, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg)
        except MessageError as err:
            self.health.problem("input_image", str(err))
            return
        keypoints = self.detector.detect(rgb)
        self.processed += 1
        camera = self.camera if time.monotonic() - self.camera_stamp <= self.p.camera_info_timeout_s else None
        if camera is None:
            self.health.problem("no_camera_info", "no recent camera/camera_info: publishing distorted pixels "
                                                  "(undistorted=false)")
        elif (camera.width, camera.height) != (msg.width, msg.height):
            self.health.problem("input_camera_info", f"camera info is {camera.width}x{camera.height} but the "
                                                     f"image is {msg.width}x{msg.height}; not undistorting")
            camera = None
        else:
            self.health.clear("input_camera_info")
        self.health.good(processed=self.processed, dropped=self.worker.dropped, person_seen=keypoints is not None)
        people = np.zeros((0, 17, 3), np.float32)
        if keypoints is not None:
            if self.p.publish_annotated:
                self.annotated_pub.publish(image_from_numpy(draw_skeleton(rgb, keypoints), "rgb8",
                                                            ns_from_time(msg.header.stamp), msg.header.frame_id))
            if camera is not None:
                keypoints[:, :2] = camera.undistort_points(keypoints[:, :2])
            people = keypoints[None]
        body_ids = [self.p.body_id] if keypoints is not None else []
        self.pub.publish(keypoints_to_msg(Keypoints(ns_from_time(msg.header.stamp), msg.header.frame_id, people,
                                                    msg.width, msg.height, body_ids,
                                                    undistorted=camera is not None)))

    def destroy_node(self) -> None:
        self.worker.stop()
        self.detector.close()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(KeypointNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
