"""lifter_node: 2D keypoints + pose kernels -> metric 3D joints (HumanPose3D), an RViz skeleton and REP-155 TF.

Subscribes `human/keypoints_2d`, `audio/pose_kernel`, `camera/camera_info` (sensor-data QoS) and TF. Each
Keypoints2D is paired with the PoseKernel nearest in stamp within `sync_slop_s` (message_filters' approximate-time
policy for two inputs,
`av_pose_ros.primitives.pairing`); camera, speaker and microphone poses come from TF at the keypoints'
stamp, expressed in `output_frame`. Publishes `human/pose_3d` (stamp = image acquisition time), `human/markers`
(MarkerArray, joints coloured by confidence) and TF frames `body_<id>` (mid-hip) and `<joint>_<id>` (REP-155) under
`output_frame`. Lifting runs in its own thread on the newest pair only: when it falls behind, older pairs are
dropped (counted in diagnostics), never queued. Without audio it publishes nothing metric and says so.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from av_pose_ros.msg import HumanPose3D, Keypoints2D, PoseKernel
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.lifter import camera_matrix, lift_pose
from av_pose_ros.primitives.geometry import make_transform
from av_pose_ros.primitives.pairing import NearestPairer
from av_pose_ros.primitives.paths import package_file
from av_pose_ros.primitives.skeleton import (
    BONE_INDICES,
    COCO17_JOINTS,
    LEFT_HIP,
    RIGHT_HIP,
    rep155_body_frame,
    rep155_joint_frame,
)
from av_pose_ros.ros.conversions import (
    MessageError,
    Pose3D,
    kernels_from_msg,
    keypoints_from_msg,
    make_header,
    pose3d_to_msg,
)
from av_pose_ros.ros.diagnostics import ERROR, Health
from av_pose_ros.ros.latest_worker import LatestWorker
from av_pose_ros.ros.parameters import Param, declare_parameters
from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfBuffer, TfPublisher, transform_msg

PARAMS = [
    Param("model_path", "models/lifter.pt", "Lifter weights (a relative path is looked up in the package)."),
    Param("output_frame", "base_link", "Frame the 3D pose, markers and joint TF are published in."),
    Param("sync_slop_s", 0.06, "Largest stamp difference between keypoints and pose kernel that still pair (s).",
          0.001, 1.0),
    Param("min_joint_confidence", 0.0, "Joints below this confidence are left out of TF and markers.", 0.0, 1.0),
    Param("position_std_m", 0.05, "Position standard deviation of a joint with confidence 1 (covariance scale, m).",
          0.001, 1.0),
    Param("publish_tf", True, "Publish REP-155 body and joint frames."),
    Param("camera_info_timeout_s", 5.0, "Camera info older than this counts as missing (s).", 0.0, 3600.0),
    Param("device", "auto", "Where the CNN runs: auto (CUDA when present), cpu, cuda or cuda:N.", read_only=True),
    Param("torch_threads", 1, "CPU threads for the CNN. 1 suits a robot computer shared with other nodes (more "
          "threads spin against each other under load).", 1, 64, read_only=True),
]


def confidence_colour(confidence: float) -> ColorRGBA:
    """Red (unsure) to green (sure)."""
    c = float(np.clip(confidence, 0.0, 1.0))
    return ColorRGBA(r=1.0 - c, g=c, b=0.1, a=1.0)


def skeleton_markers(joints: np.ndarray, confidence: np.ndarray, frame: str, stamp_ns: int, body_id: str,
                     min_confidence: float) -> MarkerArray:
    header = make_header(stamp_ns, frame)
    life = Duration(sec=0, nanosec=500_000_000)
    spheres = Marker(header=header, ns=f"body_{body_id}/joints", id=0, type=Marker.SPHERE_LIST,
                     action=Marker.ADD, lifetime=life)
    spheres.scale.x = spheres.scale.y = spheres.scale.z = 0.06
    spheres.pose.orientation.w = 1.0
    bones = Marker(header=header, ns=f"body_{body_id}/bones", id=1, type=Marker.LINE_LIST, action=Marker.ADD,
                   lifetime=life)
    bones.scale.x = 0.02
    bones.pose.orientation.w = 1.0
    shown = confidence >= min_confidence
    for j in np.flatnonzero(shown):
        spheres.points.append(Point(x=float(joints[j, 0]), y=float(joints[j, 1]), z=float(joints[j, 2])))
        spheres.colors.append(confidence_colour(confidence[j]))
    for a, b in BONE_INDICES:
        if shown[a] and shown[b]:
            for j in (a, b):
                bones.points.append(Point(x=float(joints[j, 0]), y=float(joints[j, 1]), z=float(joints[j, 2])))
                bones.colors.append(confidence_colour(min(confidence[a], confidence[b])))
    return MarkerArray(markers=[spheres, bones])


def pose_transforms(joints, confidence, frame: str, stamp_ns: int, body_id: str, min_confidence: float) -> list:
    """REP-155 `body_<id>` (mid-hip) and the confident joints' frames under `frame` (also used by reprocess)."""
    mid_hip = 0.5 * (joints[LEFT_HIP] + joints[RIGHT_HIP])
    transforms = [transform_msg(frame, rep155_body_frame(body_id), make_transform(None, mid_hip), stamp_ns)]
    for j, name in enumerate(COCO17_JOINTS):
        if confidence[j] >= min_confidence:
            transforms.append(transform_msg(frame, rep155_joint_frame(name, body_id),
                                            make_transform(None, joints[j]), stamp_ns))
    return transforms


class LifterNode(Node):
    def __init__(self):
        super().__init__("lifter_node")
        self.p = declare_parameters(self, PARAMS)
        self.health = Health(self)
        self.lifter = self._load_lifter()
        self.tf = TfBuffer(self)
        self.tf_out = TfPublisher(self)
        self.pairer = NearestPairer(int(self.p.sync_slop_s * 1e9))
        self.camera_info: CameraInfo | None = None
        self.camera_info_ns = 0
        self.pose_pub = self.create_publisher(HumanPose3D, "human/pose_3d", RESULT_QOS)
        self.marker_pub = self.create_publisher(MarkerArray, "human/markers", RESULT_QOS)
        self.create_subscription(Keypoints2D, "human/keypoints_2d", self.on_keypoints, SENSOR_QOS)
        self.create_subscription(PoseKernel, "audio/pose_kernel", self.on_kernel, SENSOR_QOS)
        self.create_subscription(CameraInfo, "camera/camera_info", self.on_camera_info, SENSOR_QOS)
        self.published = 0
        self.worker = LatestWorker(lambda pair: self.lift(pair[0].item, pair[1].item), lambda err: self.health.problem(
            "lifting", f"{type(err).__name__}: {err}", level=ERROR), "lifter")

    def _load_lifter(self):
        """The lifter, or None with an ERROR diagnostic (the node stays up so the problem is visible)."""
        from av_pose_ros.lifting import Lifter  # deferred: torch import

        path = package_file(self.p.model_path)
        try:
            return Lifter.load(path, threads=self.p.torch_threads, device=self.p.device)
        except (OSError, ValueError, RuntimeError) as err:
            self.health.problem("model", f"cannot load lifter weights {path}: {err} (train them with "
                                         "`av-pose train-lifter` or set model_path)", level=ERROR)
            return None

    def on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg
        self.camera_info_ns = self.get_clock().now().nanoseconds

    def on_keypoints(self, msg: Keypoints2D) -> None:
        try:
            kp = keypoints_from_msg(msg)
        except MessageError as err:
            self.health.problem("input_keypoints", str(err))
            return
        if not kp.undistorted:
            self.health.problem("input_keypoints", "keypoints are distorted pixels (no camera info upstream)")
            return
        self.pairer.add_leading(kp.stamp_ns, kp)
        self.process()

    def on_kernel(self, msg: PoseKernel) -> None:
        try:
            k = kernels_from_msg(msg)
        except MessageError as err:
            self.health.problem("input_kernel", str(err))
            return
        if not k.empty_room_subtracted:
            self.health.problem("input_kernel", "no empty-room response yet: kernels still hold the static room")
            return
        self.pairer.add_following(k.stamp_ns, k)
        self.process()

    def process(self) -> None:
        pairs, unmatched = self.pairer.pop_ready()
        stale = [u for u in unmatched if self.pairer.newest_following_ns - u.stamp_ns > self.pairer.max_wait_ns]
        if stale:
            self.health.problem("input_stale", f"{len(stale)} keypoint frame(s) stamped far from any pose kernel "
                                               f"(e.g. {stale[0].stamp_ns * 1e-9:.3f} s): clocks or stamps disagree")
        if len(stale) < len(unmatched):
            self.health.problem("no_audio", f"keypoint frames without a pose kernel within "
                                            f"{self.p.sync_slop_s * 1e3:.0f} ms: nothing metric published")
        if pairs:
            self.health.clear("no_audio")
            self.worker.dropped += len(pairs) - 1
            self.worker.submit(pairs[-1])  # the lifter is slower than the inputs: keep only the newest pair

    def _camera_matrix(self) -> np.ndarray | None:
        age_s = (self.get_clock().now().nanoseconds - self.camera_info_ns) * 1e-9
        if self.camera_info is None or age_s > self.p.camera_info_timeout_s:
            self.health.problem("no_camera_info", "no recent camera/camera_info: cannot lift")
            return None
        try:
            K = camera_matrix(self.camera_info.k)
        except StageError as err:
            self.health.problem(err.code, str(err))
            return None
        self.health.clear("no_camera_info")
        return K

    def lift(self, kp, kernels) -> None:
        if self.lifter is None:
            self.health.problem("model", "no lifter model loaded: nothing published", level=ERROR)
            return
        K = self._camera_matrix()
        if K is None or kp.keypoints.shape[0] == 0:
            return
        out = self.p.output_frame
        try:
            joints, confidence, covariance = lift_pose(self.lifter, kp, kernels, K, self.tf.lookup, out,
                                                       self.p.position_std_m)
        except StageError as err:
            if err.code != "tf":
                self.health.clear("tf")  # the transforms were found; the lifter refused the input
            self.health.problem(err.code, str(err))
            return
        self.health.clear("tf")
        body_id = kp.body_ids[0]
        self.pose_pub.publish(pose3d_to_msg(Pose3D(kp.stamp_ns, out, body_id, joints, confidence, covariance, "cnn")))
        self.marker_pub.publish(skeleton_markers(joints, confidence, out, kp.stamp_ns, body_id,
                                                 self.p.min_joint_confidence))
        if self.p.publish_tf:
            self.publish_tf(joints, confidence, out, kp.stamp_ns, body_id)
        self.published += 1
        self.health.good(published=self.published, dropped_pairs=self.worker.dropped,
                         mean_confidence=f"{float(np.mean(confidence)):.2f}")

    def publish_tf(self, joints, confidence, frame, stamp_ns, body_id) -> None:
        self.tf_out.send(pose_transforms(joints, confidence, frame, stamp_ns, body_id, self.p.min_joint_confidence))

    def destroy_node(self) -> None:
        self.worker.stop()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(LifterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

