"""handover_node: from a person's metric pose to a goal the manipulator can plan to, and a state to react to.

Subscribes `human/pose_3d` (HumanPose3D, any frame); publishes, in the manipulator base frame and only while a hand
is offered, `handover/target` (PoseStamped: the filtered wrist, x axis along the forearm) and `handover/target_info`
(HandoverTarget: hand, confidence, reachable, velocity, distance, state), and always `handover/state`
(std_msgs/String: idle, offered, ready, withdrawn; reliable and transient-local, so a task layer that starts late
gets the current state; it follows the offer only after `enter_dwell_s` / `leave_dwell_s`, so a noisy arm does not
make it flicker). The offered arm's elbow and wrist are placed on their camera rays (`camera_frame`) at the
person's own bone lengths (`arm_from_bone_lengths`): a monocular lifter's depth is worst for an arm held out towards
the camera. The reach envelope is centred on the `reach_frame` TF frame (the arm's shoulder); a target is reachable
only inside it, confident, certain and held still for `hold_s`. The work is `pipeline.handover.HandoverTracker`.
"""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import String

from av_pose_ros.msg import HandoverTarget, HumanPose3D
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.handover import PARAMS, HandoverOutput, HandoverTracker
from av_pose_ros.ros.conversions import MessageError, pose3d_from_msg
from av_pose_ros.ros.diagnostics import Health
from av_pose_ros.ros.messages import handover_msgs
from av_pose_ros.ros.parameters import declare_parameters
from av_pose_ros.ros.qos import RESULT_QOS, STATIC_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfBuffer
from av_pose_ros.ros.time_jumps import TimeJumps


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
        self.jumps = TimeJumps(self, self.on_time_jump)
        self.create_subscription(HumanPose3D, "human/pose_3d", self.on_pose, RESULT_QOS)
        self.create_timer(0.1, self.on_timer)

    def on_time_jump(self) -> None:
        """The clock or the pose stamps went back: tracks, state and TF history belong to the old timeline."""
        self.tracker.reset()
        self.tf.clear()
        self.state_pub.publish(String(data=self.tracker.state))

    def on_pose(self, msg: HumanPose3D) -> None:
        try:
            pose = pose3d_from_msg(msg)
        except MessageError as err:
            self.health.problem("input_pose", str(err))
            return
        self.jumps.stamp("human/pose_3d", pose.stamp_ns)
        try:
            out = self.tracker.on_pose(pose, self.tf.lookup)
        except StageError as err:
            self.health.problem(err.code, str(err))
            return
        if out.time_jumped:
            self.get_logger().info("pose stamps jumped back in time: handover tracks reset")
        if out.note:
            self.health.problem("tf_camera", out.note)
        else:
            self.health.clear("tf_camera")
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
