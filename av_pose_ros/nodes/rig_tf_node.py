"""rig_tf_node: the sensor rig's static TF on a robot whose URDF does not describe it.

Reads the rig file (`rig`: a name from config/rigs/ or a YAML path, the same file audio_io_node and the simulator
use) and publishes, once and latched on /tf_static, `camera_link` under the base frame, `camera_optical_frame`,
`speaker_<i>` and `mic_<i>` under `camera_link`, and the rig file's further frames (e.g. `arm_base_link`) under the
base frame. Switched off in the robot graph with `publish_rig_tf:=false` when the robot's URDF carries these
frames (`python -m av_pose_ros.sim.rig_frames <rig>` prints them as URDF). A rig file that cannot be read is an
ERROR diagnostic and a log line; the node stays up so the problem stays visible.
"""

from __future__ import annotations

from rclpy.node import Node

from av_pose_ros.ros.diagnostics import ERROR, Health
from av_pose_ros.ros.parameters import Param, declare_parameters
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfPublisher, transform_msg
from av_pose_ros.sim.rig import load_rig
from av_pose_ros.sim.rig_frames import FrameNames, rig_static_frames

RO = {"read_only": True}
PARAMS = [
    Param("rig", "default", "Rig name (config/rigs/) or YAML path whose frames are published.", **RO),
    Param("base_frame", "base_link", "Robot frame the rig is mounted in (parent of camera_link).", **RO),
    Param("camera_frame", "camera_link", "Camera body frame (REP-103); speakers and mics hang below it.", **RO),
    Param("optical_frame", "camera_optical_frame", "Camera optical frame (z forward, x right).", **RO),
    Param("speaker_frame_prefix", "speaker_", "TF frame of speaker i is <prefix><i>.", **RO),
    Param("mic_frame_prefix", "mic_", "TF frame of mic i is <prefix><i>.", **RO),
]


class RigTfNode(Node):
    def __init__(self):
        super().__init__("rig_tf_node")
        self.p = declare_parameters(self, PARAMS)
        self.health = Health(self)
        self.tf = TfPublisher(self)
        names = FrameNames(self.p.base_frame, self.p.camera_frame, self.p.optical_frame,
                           self.p.speaker_frame_prefix, self.p.mic_frame_prefix)
        try:
            frames = rig_static_frames(load_rig(self.p.rig), names)
        except (FileNotFoundError, ValueError, OSError) as err:
            self.health.problem("rig", f"cannot publish the rig's TF: {err}", level=ERROR)
            return
        self.tf.send_static([transform_msg(f.parent, f.child, f.parent_from_child, 0) for f in frames])
        self.health.set(rig=self.p.rig, frames=len(frames))
        self.get_logger().info(f"rig '{self.p.rig}': {len(frames)} static frames on /tf_static "
                               f"({', '.join(f.child for f in frames)})")


def main(args=None) -> int:
    return run_node(RigTfNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
