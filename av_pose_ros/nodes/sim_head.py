"""sim_node's turning head (`head_motion` != none): every `head_camera_period_s` of scene time, the head camera's
view at the head's yaw (`slfm.head_motion`) on `head_camera/image_raw` + `head_camera/camera_info` (frame
`head_camera`), and the true yaw on `sim/head_yaw` (HeadRotation in `head_link`: `integrated_yaw` is the yaw in
`head_base_link`, `relative_yaw` the turn since the previous image). slfm_node's rotation model integrates the same
turn and publishes it on TF; tests compare the two. With `head_sound`, every window also carries what the head's
ears hear of a steady source at the window's yaw (`slfm.head_sound`) on `binaural/frames`."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from av_pose_ros.msg import AudioFrame, HeadRotation
from av_pose_ros.ros.conversions import Audio, audio_to_msg, head_rotation_to_msg
from av_pose_ros.ros.images import image_from_numpy
from av_pose_ros.ros.messages import camera_info_msg
from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
from av_pose_ros.slfm.head_motion import HeadCamera, HeadMotion
from av_pose_ros.slfm.head_sound import HeadSoundConfig, HeadSoundScene

HEAD_CAMERA_FRAME = "head_camera"
HEAD_FRAME = "head_link"
EAR_FRAMES = ["left_ear", "right_ear"]


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
        self.sound = None
        if p.head_sound != "none":
            self.sound = HeadSoundScene(seed, HeadSoundConfig(kind=p.head_sound,
                                                              azimuth_rad=float(np.deg2rad(p.head_sound_azimuth_deg))))
            self.sound_pub = node.create_publisher(AudioFrame, "binaural/frames", SENSOR_QOS)

    def _info(self, stamp_ns: int) -> CameraInfo:
        lens = self.camera.lens
        model = SimpleNamespace(width=lens.width, height=lens.height, distortion_model="plumb_bob", K=lens.K,
                                D=[lens.k1, lens.k2, 0.0, 0.0, 0.0])
        return camera_info_msg(model, stamp_ns, HEAD_CAMERA_FRAME)

    def on_window(self, sequence: int, stamp_ns: int) -> None:
        t = sequence * self.window_s
        if self.sound is not None:
            self._hear(sequence, stamp_ns, t)
        if t + 1e-9 < self.next_t:
            return
        self.next_t = t + self.period_s
        yaw = self.motion.yaw(t)
        self.info_pub.publish(self._info(stamp_ns))
        self.image_pub.publish(image_from_numpy(self.camera.view(yaw), "rgb8", stamp_ns, HEAD_CAMERA_FRAME))
        prev_stamp, prev_yaw = self.last or (stamp_ns, yaw)
        self.truth_pub.publish(head_rotation_to_msg(stamp_ns, prev_stamp, HEAD_FRAME, yaw - prev_yaw, yaw, 1.0))
        self.last = (stamp_ns, yaw)

    def _hear(self, sequence: int, stamp_ns: int, t: float) -> None:
        """The window's sound at the ears, rendered at the head's yaw in the middle of the window."""
        n = int(round(self.window_s * self.sound.fs))
        ears = self.sound.render(sequence * n, n, self.motion.yaw(t + 0.5 * self.window_s))
        self.sound_pub.publish(audio_to_msg(Audio(stamp_ns, HEAD_FRAME, ears, self.sound.fs, EAR_FRAMES,
                                                  np.zeros((0, 0)), [], probe_type="", sequence=sequence)))
