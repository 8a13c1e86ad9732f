"""sim_node's turning head (`head_motion` != none): every `head_camera_period_s` of scene time, the head camera's
view at the head's yaw (`slfm.head_motion`) on `head_camera/image_raw` + `head_camera/camera_info` (frame
`head_camera`), and the true yaw on `sim/head_yaw` (HeadRotation in `head_link`: `integrated_yaw` is the yaw in
`head_base_link`, `relative_yaw` the turn since the previous image). slfm_node's rotation model integrates the same
turn and publishes it on TF; tests compare the two."""

from __future__ import annotations

from types import SimpleNamespace

from sensor_msgs.msg import CameraInfo, Image

from av_pose_ros.msg import HeadRotation
from av_pose_ros.ros.conversions import head_rotation_to_msg
from av_pose_ros.ros.images import image_from_numpy
from av_pose_ros.ros.messages import camera_info_msg
from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
from av_pose_ros.slfm.head_motion import HeadCamera, HeadMotion

HEAD_CAMERA_FRAME = "head_camera"


class SimHead:
    def __init__(self, node, seed: int, window_s: float):
        p = node.p
        self.node = node
        self.motion = HeadMotion(p.head_motion, float(p.head_motion_amplitude_deg), float(p.head_motion_period_s))
        self.camera = HeadCamera(seed)
        self.window_s = window_s
        self.period_s = float(p.head_camera_period_s)
        self.image_pub = node.create_publisher(Image, "head_camera/image_raw", SENSOR_QOS)
        self.info_pub = node.create_publisher(CameraInfo, "head_camera/camera_info", SENSOR_QOS)
        self.truth_pub = node.create_publisher(HeadRotation, "sim/head_yaw", RESULT_QOS)
        self.last: tuple[int, float] | None = None  # (stamp, yaw) of the previous image
        self.next_t = 0.0

    def _info(self, stamp_ns: int) -> CameraInfo:
        lens = self.camera.lens
        model = SimpleNamespace(width=lens.width, height=lens.height, distortion_model="plumb_bob", K=lens.K,
                                D=[lens.k1, lens.k2, 0.0, 0.0, 0.0])
        return camera_info_msg(model, stamp_ns, HEAD_CAMERA_FRAME)

    def on_window(self, sequence: int, stamp_ns: int) -> None:
        t = sequence * self.window_s
        if t + 1e-9 < self.next_t:
            return
        self.next_t = t + self.period_s
        yaw = self.motion.yaw(t)
        self.info_pub.publish(self._info(stamp_ns))
        self.image_pub.publish(image_from_numpy(self.camera.view(yaw), "rgb8", stamp_ns, HEAD_CAMERA_FRAME))
        prev_stamp, prev_yaw = self.last or (stamp_ns, yaw)
        self.truth_pub.publish(head_rotation_to_msg(stamp_ns, prev_stamp, "head_link", yaw - prev_yaw, yaw, 1.0))
        self.last = (stamp_ns, yaw)
