"""handover_node: from a person's metric pose to a goal the manipulator can plan to, and a state to react to.

Subscribes `human/pose_3d` (HumanPose3D, any frame); publishes, in the manipulator base frame and only while a hand
is offered, `handover/target` (PoseStamped: the filtered wrist, x axis along the forearm) and `handover/target_info`
(HandoverTarget: hand, confidence, reachable, velocity, distance, state), and always `handover/state`
(std_msgs/String: idle, offered, ready, withdrawn; reliable and transient-local, so a task layer that starts late
gets the current state). The reach envelope is centred on the `reach_frame` TF frame (the arm's shoulder); a target
is reachable only inside it, confident and held still for `hold_s`. The work is `pipeline.handover.HandoverTracker`.
"""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import String

from av_pose_ros.msg import HandoverTarget, HumanPose3D
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.handover import HandoverOutput, HandoverResult, HandoverTracker
from av_pose_ros.ros.conversions import Handover, MessageError, handover_to_msg, make_header, pose3d_from_msg, pose_msg
from av_pose_ros.ros.diagnostics import Health
from av_pose_ros.ros.parameters import Param, declare_parameters
from av_pose_ros.ros.qos import RESULT_QOS, STATIC_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfBuffer

PARAMS = [
    Param("base_frame", "base_link", "Manipulator base frame the target is expressed in."),
    Param("reach_frame", "arm_base_link", "TF frame the reach envelope is centred on (the arm's shoulder link); the "
          "offer score's 'towards the robot' cue points at it too."),
    Param("min_offer_score", 0.6, "How clearly a hand must be offered (0..1) before a target is published.", 0.0, 1.0),
    Param("switch_margin", 0.15, "Score margin the other hand needs before the chosen hand switches.", 0.0, 1.0),
    Param("min_joint_confidence", 0.2, "Wrist/elbow confidence below which a hand is ignored.", 0.0, 1.0),
    Param("accel_std", 2.0, "Kalman process noise: how fast a hand may change velocity (m/s^2).", 0.01, 50.0),
    Param("measurement_std_m", 0.03, "Wrist position noise used when the pose carries no covariance (m).",
          0.001, 1.0),
    Param("track_timeout_s", 1.0, "A body unseen this long starts a fresh track (and counts as withdrawn).",
          0.05, 60.0),
    Param("reach_min_radius_m", 0.25, "Reach envelope: minimum distance from the reach frame (m).", 0.0, 5.0),
    Param("reach_max_radius_m", 0.85, "Reach envelope: maximum distance from the reach frame (m).", 0.0, 5.0),
    Param("reach_min_z_m", 0.4, "Reach envelope: lowest target height in the base frame (m).", -5.0, 5.0),
    Param("reach_max_z_m", 1.8, "Reach envelope: highest target height in the base frame (m).", -5.0, 5.0),
    Param("hold_s", 0.5, "Reachable only after the hand was inside, confident and still this long (s).", 0.0, 10.0),
    Param("max_speed_mps", 0.15, "Filtered hand speed below which the hand counts as still (m/s).", 0.0, 5.0),
    Param("min_reach_confidence", 0.5, "Wrist and elbow lifter confidence a reachable target needs.", 0.0, 1.0),
    Param("max_position_std_m", 0.08, "Largest wrist standard deviation (from the pose covariance) a reachable "
          "target may have (m).", 0.0, 5.0),
    Param("withdrawn_s", 1.0, "How long the state says 'withdrawn' after an offered hand went away (s).", 0.0, 60.0),
]


def handover_msgs(target: HandoverResult, pose, base_frame: str) -> tuple[PoseStamped, HandoverTarget]:
    """handover/target and handover/target_info for one tracker result (also used by `av-pose reprocess`)."""
    info = Handover(pose.stamp_ns, base_frame, pose.body_id, target.hand, target.position, target.orientation,
                    target.velocity, target.confidence, target.reachable, target.distance)
    info_msg = handover_to_msg(info)
    info_msg.state = target.state
    info_msg.held_s = float(target.held_s)
    info_msg.position_std = float(target.position_std_m)
    return (PoseStamped(header=make_header(pose.stamp_ns, base_frame), pose=pose_msg(target.position,
                                                                                    target.orientation)),
            info_msg)


class HandoverNode(Node):
    def __init__(self):
        super().__init__("handover_node")
        self.p = declare_parameters(self, PARAMS)
        self.health = Health(self)
        self.tf = TfBuffer(self)
        self.tracker = HandoverTracker(self.p)
        self.target_pub = self.create_publisher(PoseStamped, "handover/target", RESULT_QOS)
        self.info_pub = self.create_publisher(HandoverTarget, "handover/target_info", RESULT_QOS)
        self.state_pub = self.create_publisher(String, "handover/state", STATIC_QOS)
        self.state_pub.publish(String(data=self.tracker.state))
        self.create_subscription(HumanPose3D, "human/pose_3d", self.on_pose, RESULT_QOS)
        self.create_timer(0.1, self.on_timer)

    def on_pose(self, msg: HumanPose3D) -> None:
        try:
            pose = pose3d_from_msg(msg)
        except MessageError as err:
            self.health.problem("input_pose", str(err))
            return
        try:
            out = self.tracker.on_pose(pose, self.tf.lookup)
        except StageError as err:
            self.health.problem(err.code, str(err))
            return
        if out.time_jumped:
            self.get_logger().info("pose stamps jumped back in time: handover tracks reset")
        self.health.clear("tf", "input_pose")
        self.health.good(body=pose.body_id)
        self.publish(out, pose)

    def on_timer(self) -> None:
        self.publish(self.tracker.on_clock(self.get_clock().now().nanoseconds), None)

    def publish(self, out: HandoverOutput, pose) -> None:
        if out.target is not None:
            target_msg, info_msg = handover_msgs(out.target, pose, self.p.base_frame)
            self.target_pub.publish(target_msg)
            self.info_pub.publish(info_msg)
            self.health.set(offered_hand=out.target.hand, reachable=out.target.reachable,
                            distance_m=f"{out.target.distance:.2f}")
        elif pose is not None:
            self.health.set(offered_hand="none")
        if out.state_changed:
            self.state_pub.publish(String(data=out.state))
        self.health.set(state=out.state)


def main(args=None) -> int:
    return run_node(HandoverNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
