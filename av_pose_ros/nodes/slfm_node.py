"""slfm_node: head rotation from the head camera and sound direction from a binaural pair (SLfM models).

Subscribes `head_camera/image_raw` (Image, sensor-data QoS), `head_camera/camera_info` (for the field of view) and
`binaural/frames` (AudioFrame with the two ear channels). Publishes `slfm/head_rotation` (HeadRotation: the yaw
between the previous and the newest processed image, its running sum, a confidence), `slfm/sound_direction`
(SoundDirection in `head_frame`, front-folded azimuth) and, on TF, `yaw_parent_frame` -> `head_frame` rotated by the
integrated yaw. `mode` runs vision, audio or both; each half works alone.

Confidence comes from the models' own symmetry, as SLfM trains them: the rotation from b to a must be the negative of
a to b, and swapping the ears must mirror the azimuth; the disagreement (degrees) sets the confidence.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from av_pose_ros.msg import AudioFrame, HeadRotation, SoundDirection
from av_pose_ros.primitives.geometry import make_transform, rot_z
from av_pose_ros.primitives.paths import package_file
from av_pose_ros.ros.conversions import (
    MessageError,
    audio_from_msg,
    head_rotation_to_msg,
    ns_from_time,
    sound_direction_to_msg,
)
from av_pose_ros.ros.diagnostics import ERROR, Health
from av_pose_ros.ros.images import image_to_rgb
from av_pose_ros.ros.latest_worker import LatestWorker
from av_pose_ros.ros.parameters import Param, declare_parameters
from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfPublisher, transform_msg

PARAMS = [
    Param("mode", "both", "Which estimates to run.", choices=("both", "vision", "audio"), read_only=True),
    Param("rotation_model_path", "models/slfm_rotation.pt", "Visual rotation model.", read_only=True),
    Param("azimuth_model_path", "models/slfm_azimuth.pt", "Binaural azimuth model.", read_only=True),
    Param("head_frame", "head_link", "Frame of the head (sound directions are in it)."),
    Param("yaw_parent_frame", "head_base_link", "Parent of head_frame for the integrated-yaw TF."),
    Param("publish_tf", True, "Publish yaw_parent_frame -> head_frame rotated by the integrated yaw."),
    Param("fov_deg", 0.0, "Horizontal field of view of the head camera (deg); 0 = from camera info.", 0.0, 179.0),
    Param("left_channel", 0, "Channel of the left ear in the AudioFrame.", 0, 64),
    Param("right_channel", 1, "Channel of the right ear in the AudioFrame.", 0, 64),
    Param("audio_window_s", 1.0, "Audio used for one azimuth estimate (s).", 0.25, 10.0),
    Param("audio_hop_s", 0.5, "Time between azimuth estimates (s).", 0.05, 10.0),
    Param("symmetry_scale_deg", 3.0, "Symmetry disagreement (deg) at which confidence falls to 1/e.", 0.1, 90.0),
]


def symmetry_confidence(forward: float, mirrored: float, scale_deg: float) -> float:
    """exp(-|forward + mirrored| / scale): 1 when the mirrored estimate is exactly the negative of the forward one."""
    return float(np.exp(-abs(np.degrees(forward + mirrored)) / scale_deg))


class SlfmNode(Node):
    def __init__(self):
        super().__init__("slfm_node")
        self.p = declare_parameters(self, PARAMS)
        self.health = Health(self)
        self.rotation = self._load("rotation", self.p.rotation_model_path) if self.p.mode != "audio" else None
        self.azimuth = self._load("azimuth", self.p.azimuth_model_path) if self.p.mode != "vision" else None
        self.tf = TfPublisher(self)
        self.rotation_pub = self.create_publisher(HeadRotation, "slfm/head_rotation", RESULT_QOS)
        self.direction_pub = self.create_publisher(SoundDirection, "slfm/sound_direction", RESULT_QOS)
        self.fov_from_info: float | None = None
        self.previous: tuple[int, np.ndarray] | None = None
        self.integrated_yaw = 0.0
        self.audio: deque = deque()
        self.audio_fs = 0
        self.last_audio_estimate_ns = 0
        self.worker = None
        if self.p.mode != "audio":
            self.worker = LatestWorker(self.process_image, lambda err: self.health.problem(
                "vision", f"{type(err).__name__}: {err}", ERROR), "slfm_vision")
            self.create_subscription(Image, "head_camera/image_raw", self.worker.submit, SENSOR_QOS)
            self.create_subscription(CameraInfo, "head_camera/camera_info", self.on_camera_info, SENSOR_QOS)
        if self.p.mode != "vision":
            self.create_subscription(AudioFrame, "binaural/frames", self.on_audio, SENSOR_QOS)

    def _load(self, kind: str, path: str):
        from av_pose_ros.slfm import AzimuthEstimator, RotationEstimator, SlfmModelError

        estimator = RotationEstimator if kind == "rotation" else AzimuthEstimator
        try:
            return estimator.load(package_file(path))
        except (SlfmModelError, OSError) as err:
            self.health.problem(f"model_{kind}", f"cannot load the {kind} model {path}: {err}", ERROR)
            return None

    # -- vision -----------------------------------------------------------------------------------------------
    def on_camera_info(self, msg: CameraInfo) -> None:
        fx = float(msg.k[0])
        if fx > 0 and msg.width > 0:
            self.fov_from_info = float(np.degrees(2 * np.arctan(msg.width / (2 * fx))))

    def process_image(self, msg: Image) -> None:
        from av_pose_ros.slfm import SlfmInputError

        if self.rotation is None:
            return
        try:
            rgb = image_to_rgb(msg)
        except MessageError as err:
            self.health.problem("input_image", str(err))
            return
        fov = self.p.fov_deg or self.fov_from_info
        if not fov:
            self.health.problem("input_fov", "no field of view: set fov_deg or publish head_camera/camera_info")
            return
        stamp = ns_from_time(msg.header.stamp)
        previous, self.previous = self.previous, (stamp, rgb)
        if previous is None or previous[0] >= stamp:
            return
        try:
            forward, backward = self.rotation.estimate_batch([previous[1], rgb], [rgb, previous[1]], fov)
        except SlfmInputError as err:
            self.health.problem("input_image", str(err))
            return
        self.integrated_yaw += float(forward)
        confidence = symmetry_confidence(forward, backward, self.p.symmetry_scale_deg)
        self.rotation_pub.publish(head_rotation_to_msg(stamp, previous[0], self.p.head_frame, float(forward),
                                                       self.integrated_yaw, confidence))
        if self.p.publish_tf:
            self.tf.send([transform_msg(self.p.yaw_parent_frame, self.p.head_frame,
                                        make_transform(rot_z(self.integrated_yaw)), stamp)])
        self.health.good(integrated_yaw_deg=f"{np.degrees(self.integrated_yaw):.1f}")

    # -- audio ------------------------------------------------------------------------------------------------
    def on_audio(self, msg: AudioFrame) -> None:
        from av_pose_ros.slfm import SlfmInputError

        if self.azimuth is None:
            return
        try:
            frame = audio_from_msg(msg)
        except MessageError as err:
            self.health.problem("input_audio", str(err))
            return
        left, right = self.p.left_channel, self.p.right_channel
        if max(left, right) >= frame.audio.shape[0]:
            self.health.problem("input_audio", f"ear channels {left}, {right} but the frame has "
                                               f"{frame.audio.shape[0]} channels")
            return
        if frame.sample_rate != self.audio_fs:
            self.audio.clear()  # a new rate: start the buffer again
            self.audio_fs = frame.sample_rate
        self.audio.append((frame.stamp_ns, frame.audio[[left, right]]))
        window = int(self.p.audio_window_s * self.audio_fs)
        while sum(a.shape[1] for _, a in self.audio) - self.audio[0][1].shape[1] >= window:
            self.audio.popleft()
        have = sum(a.shape[1] for _, a in self.audio)
        if have < window or frame.stamp_ns - self.last_audio_estimate_ns < self.p.audio_hop_s * 1e9:
            return
        clip = np.concatenate([a for _, a in self.audio], axis=1)[:, -window:]
        try:
            forward, mirrored = self.azimuth.estimate_batch([clip, clip[::-1]], self.audio_fs)
        except SlfmInputError as err:
            self.health.problem("input_audio", str(err))
            return
        self.last_audio_estimate_ns = frame.stamp_ns
        confidence = symmetry_confidence(forward, mirrored, self.p.symmetry_scale_deg)
        start_ns = frame.stamp_ns + int(frame.audio.shape[1] / self.audio_fs * 1e9) - int(window / self.audio_fs * 1e9)
        self.direction_pub.publish(sound_direction_to_msg(start_ns, self.p.head_frame, float(forward), confidence))
        self.health.good(azimuth_deg=f"{np.degrees(forward):.1f}")

    def destroy_node(self) -> None:
        if self.worker is not None:
            self.worker.stop()  # newest image only: the estimate compares it with the last processed one
        super().destroy_node()


def main(args=None) -> int:
    return run_node(SlfmNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
