"""sim_node: the embedded default world, publishing what a real rig would.

It is audio_io_node with the `sim` backend (one capture path, not two) plus, for every audio window, what the
camera would give at the same instant: `human/keypoints_2d` (simulated detections with the scenario's noise,
misses and swaps, undistorted pixels, optical frame), `camera/camera_info`, and `sim/ground_truth` (HumanPose3D of
the true joints in `base_frame`, the lifter's default output frame, same stamp). Static TF places `camera_link`,
`camera_optical_frame`, `speaker_<i>`, `mic_<i>` and the rig file's further frames (`arm_base_link`) under
`base_link` from the rig. The default scenario (`handover`, sim/choreography.py) is a series of visitors who walk
in, offer a hand to the manipulator, hold it, take it back and walk away; seeded and repeatable. The probe is the
scenario's unless `probe_type` / `music_file` name one: `scenario:=music` plays music (library music: a track of
`music_split`), the room stays empty long enough for the music capture, and no window is ever skipped (the music
pipeline needs gap-free emission history; when rendering is slower than real time the world waits).
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo

from av_pose_ros.msg import HumanPose3D, Keypoints2D
from av_pose_ros.nodes.audio_io_node import AudioIONode
from av_pose_ros.primitives.geometry import LINK_FROM_OPTICAL, make_transform
from av_pose_ros.ros.conversions import Keypoints, Pose3D, keypoints_to_msg, pose3d_to_msg
from av_pose_ros.ros.messages import camera_info_msg
from av_pose_ros.ros.parameters import Param
from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfPublisher, transform_msg
from av_pose_ros.sim.render import Simulator
from av_pose_ros.vision.simulated import DetectionNoise, simulate_detections

SIM_DEFAULTS = {"backend": "sim", "scenario": "handover", "sim_pose": "handover", "sim_empty_room_s": -1.0}
EXTRA_PARAMS = [
    Param("base_frame", "base_link", "Robot frame the rig is mounted in (parent of camera_link).", read_only=True),
    Param("camera_frame", "camera_link", "Camera body frame (REP-103).", read_only=True),
    Param("optical_frame", "camera_optical_frame", "Camera optical frame the keypoints are in.", read_only=True),
    Param("body_id", "sim0", "REP-155 body id of the simulated person.", read_only=True),
    # the head camera slfm_node reads (slfm/head_motion.py): off unless head_motion is set
    Param("head_motion", "none", "Turn the simulated head and publish its camera (head_camera/image_raw, "
          "head_camera/camera_info) and true yaw (sim/head_yaw).", choices=("none", "sine", "steps"), read_only=True),
    Param("head_motion_amplitude_deg", 20.0, "Head turn amplitude (deg).", 0.0, 90.0, read_only=True),
    Param("head_motion_period_s", 8.0, "Head motion period (s; steps: 0, +A, 0, -A).", 0.5, 600.0, read_only=True),
    Param("head_camera_period_s", 0.5, "Time between head camera images (s).", 0.05, 10.0, read_only=True),
    Param("head_sound", "none", "A steady source in a reverberant room heard by the (turning) head's two ears, on "
          "binaural/frames (16 kHz, left and right ear; slfm_node's audio input).",
          choices=("none", "noise", "music"), read_only=True),
    Param("head_sound_azimuth_deg", 145.0, "Direction of that source in head_base_link (deg, + left; 145: behind, "
          "to the left, which a head that does not turn mirrors to the front).", -180.0, 180.0, read_only=True),
]


class SimNode(AudioIONode):
    def __init__(self):
        super().__init__("sim_node", SIM_DEFAULTS, EXTRA_PARAMS, start=False)
        if self.p.backend != "sim":
            raise ValueError(f"sim_node needs backend 'sim', got '{self.p.backend}'")
        scene = self.source.scene
        self.rig = scene.rig
        self.camera = self.rig.intrinsics.camera_model()
        self.noise = DetectionNoise.from_scenario(scene.camera)
        # the camera as it really is (the scenario's calibration errors); TF below publishes the nominal rig
        self.true_base_from_optical = Simulator.true_geometry(scene)[2]
        self.keypoint_pub = self.create_publisher(Keypoints2D, "human/keypoints_2d", SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", SENSOR_QOS)
        self.truth_pub = self.create_publisher(HumanPose3D, "sim/ground_truth", RESULT_QOS)
        self.tf = TfPublisher(self)
        self.tf.send_static(self.rig_transforms())
        self.head = None
        if self.p.head_motion != "none" or self.p.head_sound != "none":   # a still head hears too
            from av_pose_ros.nodes.sim_head import SimHead

            self.head = SimHead(self, int(self.p.seed), self.source.window_samples / self.source.fs)
        self._worker.start()

    def rig_transforms(self) -> list:
        p = self.p
        transforms = [transform_msg(p.base_frame, p.camera_frame, self.rig.base_from_camera_link, 0),
                      transform_msg(p.camera_frame, p.optical_frame, LINK_FROM_OPTICAL, 0)]
        for prefix, points in ((p.speaker_frame_prefix, self.rig.speakers), (p.mic_frame_prefix, self.rig.mics)):
            transforms += [transform_msg(p.camera_frame, f"{prefix}{i}", make_transform(None, xyz), 0)
                           for i, xyz in enumerate(points)]
        # further robot frames of the rig file (e.g. arm_base_link, handover_node's reach_frame)
        transforms += [transform_msg(p.base_frame, name, frame, 0) for name, frame in self.rig.frames.items()]
        return transforms

    def on_window(self, window, stamp_ns: int) -> None:
        if self.head is not None:
            self.head.on_window(window.sequence, stamp_ns)
        truth = self.source.ground_truth(window.sequence)
        stamp = stamp_ns
        self.info_pub.publish(camera_info_msg(self.camera, stamp, self.p.optical_frame))
        people = np.zeros((0, 17, 3))
        if truth is not None and truth.joints is not None:
            rng = np.random.default_rng([int(self.p.seed), 7, window.sequence])
            detections = simulate_detections(truth.joints, self.camera, self.true_base_from_optical, self.noise,
                                             rng)
            people = detections[None]
            self.truth_pub.publish(pose3d_to_msg(Pose3D(stamp, self.p.base_frame, self.p.body_id, truth.joints,
                                                        np.ones(17), source="ground_truth")))
        body_ids = [self.p.body_id] if len(people) else []
        self.keypoint_pub.publish(keypoints_to_msg(Keypoints(stamp, self.p.optical_frame, people, self.camera.width,
                                                             self.camera.height, body_ids, undistorted=True)))


def main(args=None) -> int:
    return run_node(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
