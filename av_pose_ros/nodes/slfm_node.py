"""slfm_node: head rotation from the head camera and sound direction from a binaural pair (SLfM models).

Subscribes `head_camera/image_raw` (Image, sensor-data QoS), `head_camera/camera_info` (for the field of view) and
`binaural/frames` (AudioFrame with the two ear channels). Publishes `slfm/head_rotation` (HeadRotation: the yaw
between the previous and the newest processed image, its running sum, a confidence), `slfm/sound_direction`
(SoundDirection in `head_frame`: full-circle azimuth with `front_back_confidence` when `track_front_back`, else
front-folded) and, on TF, `yaw_parent_frame` -> `head_frame` rotated by the integrated yaw, so that frames mounted
on `head_frame` (a head camera, the lifter's camera pose) follow the turning head. `mode` runs vision, audio or
both; each half works alone.

Front/back: the head's yaw at each audio window (the integrated rotation, or `yaw_parent_frame` -> `head_frame`
from TF with `head_yaw_source: tf`, when something else turns the head and publishes it; slfm_node then publishes
no head TF) feeds `av_pose_ros.slfm.SourceTracker`: a source in front and its mirror behind move oppositely in the
head frame as the head turns.

Confidence: for the rotation, the shipped model's own symmetry (the turn from b to a must be the negative of a to b;
the disagreement sets it), or the wide model's overlap and alignment; for the sound, how concentrated the azimuth
model's delay distribution is around its peak (a reverberant or noisy window spreads it). Parameters
are live except `mode` and the model paths (read-only). The per-message work is
`av_pose_ros.pipeline.slfm.SlfmHandler`.
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from av_pose_ros.msg import AudioFrame, HeadRotation, SoundDirection
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.slfm import PARAMS, SlfmHandler
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
from av_pose_ros.ros.parameters import declare_parameters
from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfBuffer, TfPublisher, transform_msg
from av_pose_ros.ros.time_jumps import TimeJumps

__all__ = ["PARAMS", "SlfmNode", "main"]


class SlfmNode(Node):
    def __init__(self):
        super().__init__("slfm_node")
        self.p = declare_parameters(self, PARAMS)  # live: the handler reads them per message
        self.health = Health(self)
        rotation = self._load("rotation", self.p.rotation_model_path) if self.p.mode != "audio" else None
        azimuth = self._load("azimuth", self.p.azimuth_model_path) if self.p.mode != "vision" else None
        self.tf_buffer = TfBuffer(self) if self.p.head_yaw_source == "tf" else None
        self.handler = SlfmHandler(self.p, rotation, azimuth, self.tf_buffer.lookup if self.tf_buffer else None)
        self.jumps = TimeJumps(self, self.reset)
        self.tf = TfPublisher(self)
        self.rotation_pub = self.create_publisher(HeadRotation, "slfm/head_rotation", RESULT_QOS)
        self.direction_pub = self.create_publisher(SoundDirection, "slfm/sound_direction", RESULT_QOS)
        self.worker = None
        if self.p.mode != "audio":
            self.worker = LatestWorker(self.process_image, lambda err: self.health.exception("vision", err),
                                       "slfm_vision")
            self.create_subscription(Image, "head_camera/image_raw", self.health.guard("vision", self.on_image),
                                     SENSOR_QOS)
            self.create_subscription(CameraInfo, "head_camera/camera_info",
                                     lambda m: self.handler.on_camera_info(m.width, m.k), SENSOR_QOS)
        if self.p.mode != "vision":
            self.create_subscription(AudioFrame, "binaural/frames", self.health.guard("audio", self.on_audio),
                                     SENSOR_QOS)

    def reset(self) -> None:
        """Time went back: the handler's state and the TF history belong to the old timeline."""
        self.handler.reset()
        if self.tf_buffer is not None:
            self.tf_buffer.clear()

    def _load(self, kind: str, path: str):
        from av_pose_ros.slfm import AzimuthEstimator, SlfmModelError
        from av_pose_ros.slfm.head_calibration import HeadCalibration
        from av_pose_ros.slfm.rotation_wide import load_rotation_estimator

        load = load_rotation_estimator if kind == "rotation" else AzimuthEstimator.load
        try:
            estimator = load(package_file(path))
        except (SlfmModelError, OSError) as err:
            self.health.problem(f"model_{kind}", f"cannot load the {kind} model {path}: {err}", ERROR)
            return None
        if kind == "azimuth" and self.p.head_calibration_path:
            try:
                estimator.calibration = HeadCalibration.load(package_file(self.p.head_calibration_path))
            except ValueError as err:
                estimator.calibration = None
                self.health.problem("head_calibration", f"{err}; using the spherical-head curve")
            else:
                if not estimator.calibration.fits_model(estimator.path):
                    self.health.problem("head_calibration", f"{self.p.head_calibration_path} was fitted on another "
                                        "azimuth model's delays; run `av-pose calibrate-head` for this one")
        elif kind == "azimuth":
            estimator.calibration = None
        return estimator

    def on_image(self, msg: Image) -> None:
        self.jumps.stamp("head_camera/image_raw", ns_from_time(msg.header.stamp))
        self.worker.submit(msg)

    def process_image(self, msg: Image) -> None:
        try:
            out = self.handler.on_image(image_to_rgb(msg), ns_from_time(msg.header.stamp))
        except (MessageError, StageError) as err:
            self.health.problem(getattr(err, "code", "input_image"), str(err))
            return
        if out is None:
            return
        p = self.p
        self.rotation_pub.publish(head_rotation_to_msg(out.stamp_ns, out.previous_stamp_ns, p.head_frame,
                                                       out.relative_yaw, out.integrated_yaw, out.confidence))
        if p.publish_tf and p.head_yaw_source == "rotation":
            self.tf.send([transform_msg(p.yaw_parent_frame, p.head_frame, make_transform(rot_z(out.integrated_yaw)),
                                        out.stamp_ns)])
        self.health.good(integrated_yaw_deg=f"{np.degrees(out.integrated_yaw):.1f}")

    def on_audio(self, msg: AudioFrame) -> None:
        try:
            frame = audio_from_msg(msg)
            self.jumps.stamp("binaural/frames", frame.stamp_ns)
            out = self.handler.on_audio(frame)
        except MessageError as err:
            self.health.problem("input_audio", str(err))
            return
        except StageError as err:
            self.health.problem(err.code, str(err))
            return
        if out is None:
            return
        self.direction_pub.publish(sound_direction_to_msg(out.stamp_ns, self.p.head_frame, out.azimuth,
                                                          out.confidence, front_back_folded=out.folded,
                                                          front_back_confidence=out.front_back_confidence))
        self.health.good(azimuth_deg=f"{np.degrees(out.azimuth):.1f}",
                         front_back_confidence=f"{out.front_back_confidence:.2f}",
                         head_yaw_deg=f"{np.degrees(out.head_yaw):.1f}")

    def destroy_node(self) -> None:
        if self.worker is not None:
            self.worker.stop()  # newest image only: the estimate compares it with the last processed one
        super().destroy_node()


def main(args=None) -> int:
    return run_node(SlfmNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
