"""handover_node: from a person's metric pose to a goal the manipulator can plan to.

Subscribes `human/pose_3d` (HumanPose3D, any frame); publishes `handover/target` (PoseStamped) and
`handover/target_info` (HandoverTarget) in the manipulator base frame, only while a hand is offered. Per body id it
keeps the chosen hand (with hysteresis) and a constant-velocity Kalman filter of the wrist; the pose's frame is
transformed into the base frame through TF at the pose's stamp.
"""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node

from av_pose_ros.msg import HandoverTarget, HumanPose3D
from av_pose_ros.pipeline.handover import HandoverResult, HandoverTracker
from av_pose_ros.primitives.skeleton import COCO17_JOINTS
from av_pose_ros.ros.conversions import Handover, MessageError, handover_to_msg, make_header, pose3d_from_msg, pose_msg
from av_pose_ros.ros.diagnostics import Health
from av_pose_ros.ros.parameters import Param, declare_parameters
from av_pose_ros.ros.qos import RESULT_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfBuffer, TransformError

PARAMS = [
    Param("base_frame", "base_link", "Manipulator base frame the target is expressed in."),
    Param("min_offer_score", 0.6, "How clearly a hand must be offered (0..1) before a target is published.", 0.0, 1.0),
    Param("switch_margin", 0.15, "Score margin the other hand needs before the chosen hand switches.", 0.0, 1.0),
    Param("min_joint_confidence", 0.2, "Wrist/elbow confidence below which a hand is ignored.", 0.0, 1.0),
    Param("accel_std", 2.0, "Kalman process noise: how fast a hand may change velocity (m/s^2).", 0.01, 50.0),
    Param("measurement_std_m", 0.03, "Wrist position noise used when the pose carries no covariance (m).",
          0.001, 1.0),
    Param("track_timeout_s", 1.0, "A body unseen this long starts a fresh track.", 0.05, 60.0),
    Param("reach_center", [0.0, 0.0, 1.0], "Reach envelope centre (the arm's shoulder) in the base frame (m)."),
    Param("reach_min_radius_m", 0.25, "Reach envelope: minimum distance from the centre (m).", 0.0, 5.0),
    Param("reach_max_radius_m", 0.85, "Reach envelope: maximum distance from the centre (m).", 0.0, 5.0),
    Param("reach_min_z_m", 0.4, "Reach envelope: lowest target height in the base frame (m).", -5.0, 5.0),
    Param("reach_max_z_m", 1.8, "Reach envelope: highest target height in the base frame (m).", -5.0, 5.0),
]


def handover_msgs(target: HandoverResult, pose, base_frame: str) -> tuple[PoseStamped, HandoverTarget]:
    """handover/target and handover/target_info for one tracker result (also used by `av-pose reprocess`)."""
    info = Handover(pose.stamp_ns, base_frame, pose.body_id, target.hand, target.position, target.orientation,
                    target.velocity, target.confidence, target.reachable, target.distance)
    return (PoseStamped(header=make_header(pose.stamp_ns, base_frame), pose=pose_msg(target.position,
                                                                                    target.orientation)),
            handover_to_msg(info))


class HandoverNode(Node):
    def __init__(self):
        super().__init__("handover_node")
        self.p = declare_parameters(self, PARAMS)
        self.health = Health(self)
        self.tf = TfBuffer(self)
        self.tracker = HandoverTracker(self.p)
        self.target_pub = self.create_publisher(PoseStamped, "handover/target", RESULT_QOS)
        self.info_pub = self.create_publisher(HandoverTarget, "handover/target_info", RESULT_QOS)
        self.create_subscription(HumanPose3D, "human/pose_3d", self.on_pose, RESULT_QOS)

    def on_pose(self, msg: HumanPose3D) -> None:
        try:
            pose = pose3d_from_msg(msg)
        except MessageError as err:
            self.health.problem("input_pose", str(err))
            return
        if tuple(pose.joint_names) != COCO17_JOINTS:
            self.health.problem("input_pose", "joint_names are not COCO-17 in order")
            return
        try:
            base_from_pose = self.tf.lookup(self.p.base_frame, pose.frame_id, pose.stamp_ns)
        except TransformError as err:
            self.health.problem("tf", f"no transform {pose.frame_id} -> {self.p.base_frame}: {err}")
            return
        self.health.clear("tf")
        self.health.good(body=pose.body_id)
        target = self.tracker.update(pose, base_from_pose)
        if target is None:
            self.health.set(offered_hand="none")
            return
        target_msg, info_msg = handover_msgs(target, pose, self.p.base_frame)
        self.target_pub.publish(target_msg)
        self.info_pub.publish(info_msg)
        self.health.set(offered_hand=target.hand, reachable=target.reachable, distance_m=f"{target.distance:.2f}")


def main(args=None) -> int:
    return run_node(HandoverNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
