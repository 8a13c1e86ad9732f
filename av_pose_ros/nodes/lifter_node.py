"""lifter_node: 2D keypoints + pose kernels -> metric 3D joints (HumanPose3D), an RViz skeleton and REP-155 TF.

Subscribes `human/keypoints_2d`, `audio/pose_kernel`, `camera/camera_info` (sensor-data QoS) and TF. Each
Keypoints2D is paired with the PoseKernel nearest in stamp within `sync_slop_s` (message_filters' approximate-time
policy for two inputs, `av_pose_ros.primitives.pairing`); camera, speaker and microphone poses come from TF at the
keypoints' stamp, expressed in `output_frame`. Publishes `human/pose_3d` (stamp = image acquisition time),
`human/markers` (MarkerArray, joints coloured by confidence) and TF frames `body_<id>` (mid-hip) and `<joint>_<id>`
(REP-155) under `output_frame`. Lifting runs in its own thread on the newest pair only: when it falls behind, older
pairs are dropped (counted in diagnostics), never queued; it waits up to `tf_timeout_s` for transforms at the
keypoints' stamp. A frame without a usable pose kernel (audio refused, dropped or stopped) is published from the
vision-only fallback (`fallback_model_path`): `source` "vision_only", flagged `no_audio`, low confidence and wide
covariance, with a `no_audio` diagnostic; with no fallback, nothing is published and the diagnostic says so. A frame
outside what the lifter can measure (the refusal rule of `av_pose_ros.lifting.refusal`, the one `eval-lifter`
applies: beyond the kernel window's range, audio and vision disagreeing, too few keypoints, ...) is still published
but marked: `source` "cnn_flagged", low calibrated confidence, wide covariance, a WARN diagnostic
`outside_measurable` naming the failed checks and a throttled log line; it clears on the next frame that passes.
Parameters are live except the model, its device and threads (read-only). When time goes back (a looped bag, a
restarted simulator) pairing, the camera model and the TF buffer start over. The per-message work is
`av_pose_ros.pipeline.lifter.LifterHandler`, which `av-pose reprocess` runs too.
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo
from visualization_msgs.msg import MarkerArray

from av_pose_ros.msg import HumanPose3D, Keypoints2D, PoseKernel
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.lifter import PARAMS, LifterHandler, load_fallback, load_lifter
from av_pose_ros.primitives.paths import package_file
from av_pose_ros.ros.conversions import MessageError, kernels_from_msg, keypoints_from_msg
from av_pose_ros.ros.diagnostics import ERROR, WARN, Health
from av_pose_ros.ros.latest_worker import LatestWorker
from av_pose_ros.ros.messages import pose_messages
from av_pose_ros.ros.parameters import declare_parameters
from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfBuffer, TfPublisher
from av_pose_ros.ros.time_jumps import TimeJumps

__all__ = ["PARAMS", "LifterNode", "main"]


class LifterNode(Node):
    def __init__(self):
        super().__init__("lifter_node")
        self.p = declare_parameters(self, PARAMS, self.on_parameters)
        self.health = Health(self)
        self.tf = TfBuffer(self)
        self.tf_out = TfPublisher(self)
        self.handler = LifterHandler(self.p, self.tf.lookup, self._load_lifter(), self._load_fallback())
        self.flagged = 0     # poses published flagged (outside what the lifter can measure)
        self.jumps = TimeJumps(self, self.on_time_jump)
        self.pose_pub = self.create_publisher(HumanPose3D, "human/pose_3d", RESULT_QOS)
        self.marker_pub = self.create_publisher(MarkerArray, "human/markers", RESULT_QOS)
        self.create_subscription(Keypoints2D, "human/keypoints_2d", self.health.guard("lifter", self.on_keypoints),
                                 SENSOR_QOS)
        self.create_subscription(PoseKernel, "audio/pose_kernel", self.health.guard("lifter", self.on_kernel),
                                 SENSOR_QOS)
        self.create_subscription(CameraInfo, "camera/camera_info", self.health.guard("lifter", self.on_camera_info),
                                 SENSOR_QOS)
        self.worker = LatestWorker(lambda pair: self.lift(*pair),
                                   lambda err: self.health.exception("lifting", err), "lifter")
        self.health.set(sync_slop_ms=self.handler.pairer.slop_ns * 1e-6)

    def on_parameters(self, names: set[str]) -> None:
        self.handler.configure()
        self.health.set(sync_slop_ms=self.handler.pairer.slop_ns * 1e-6)

    def _load_lifter(self):
        """The lifter, or None with an ERROR diagnostic (the node stays up so the problem is visible)."""
        try:
            return load_lifter(self.p)
        except (OSError, ValueError, RuntimeError) as err:
            self.health.problem("model", f"cannot load lifter weights {package_file(self.p.model_path)}: {err} "
                                         "(train them with `av-pose train-lifter` or set model_path)", level=ERROR)
            return None

    def _load_fallback(self):
        """The vision-only fallback, or None with a WARN diagnostic (frames without audio then publish nothing)."""
        try:
            return load_fallback(self.p)
        except (OSError, ValueError, RuntimeError) as err:
            self.health.problem("fallback_model", f"cannot load the vision-only fallback "
                                                  f"{package_file(self.p.fallback_model_path)}: {err} (frames "
                                                  "without audio publish nothing; set fallback_model_path)")
            return None

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_time_jump(self) -> None:
        self.handler.reset()
        self.tf.clear()

    def on_camera_info(self, msg: CameraInfo) -> None:
        self.handler.on_camera_info(msg.k, self.now_ns())

    def on_keypoints(self, msg: Keypoints2D) -> None:
        self._on_input(msg, keypoints_from_msg, "input_keypoints", self.handler.on_keypoints)

    def on_kernel(self, msg: PoseKernel) -> None:
        self._on_input(msg, kernels_from_msg, "input_kernel", self.handler.on_kernels)

    def _on_input(self, msg, unpack, code: str, handle) -> None:
        """Unpack, watch the stamps for a jump back, pair; bad input becomes a diagnostic."""
        try:
            item = unpack(msg)
            self.jumps.stamp(type(msg).__name__, item.stamp_ns)
            self._submit(*handle(item))
        except MessageError as err:
            self.health.problem(code, str(err))
        except StageError as err:
            self.health.problem(err.code, str(err))

    def _submit(self, pairs: list, report) -> None:
        self.health.apply(report, good=False)
        self.health.set(sync_slop_ms=self.handler.pairer.slop_ns * 1e-6)
        if pairs:
            self.worker.dropped += len(pairs) - 1
            self.worker.submit(pairs[-1])  # the lifter is slower than the inputs: keep only the newest pair

    def lift(self, kp, kernels) -> None:
        """On the worker thread: lift one pair and publish the pose, its markers and (optionally) its TF."""
        try:
            pose = self.handler.lift(kp, kernels, self.now_ns())
        except StageError as err:
            if err.code != "tf":
                self.health.clear("tf")  # the transforms were found; the lifter refused the input
            self.health.problem(err.code, str(err), ERROR if err.code == "model" else WARN)
            return
        self.health.clear("tf", "no_camera_info")
        if pose is None:
            return
        if pose.flagged:
            self.flagged += 1
            self.health.problem("outside_measurable", f"pose published flagged ({', '.join(pose.flag_reasons)}): "
                                                      f"{pose.flag_message}")
        else:
            self.health.clear("outside_measurable")
        pose_msg, markers, transforms = pose_messages(pose, self.p.min_joint_confidence, self.p.publish_tf)
        self.pose_pub.publish(pose_msg)
        self.marker_pub.publish(markers)
        if transforms:
            self.tf_out.send(transforms)
        self.health.good(published=self.handler.published, dropped_pairs=self.worker.dropped, flagged=self.flagged,
                         mean_confidence=f"{float(pose.confidence.mean()):.2f}")

    def destroy_node(self) -> None:
        self.worker.stop()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(LifterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
