"""virtual_room_node: the physical world of the robot graph, simulated behind a real sound stack.

With `av-pose launch robot virtual_room:=true` it takes the place of the room, the person and the camera: it starts
a private PulseAudio daemon with a speaker sink (what `audio_io_node`'s device backend plays on) and a mic sink
(whose monitor `audio_io_node` records), and in between plays the simulated room and person acoustically
(`av_pose_ros.audio.virtual_room`). Beside it, as a camera would, it publishes `human/keypoints_2d` (the
simulator's detections of the same person at the same instants, with the scenario's noise) and
`camera/camera_info` at `keypoint_rate_hz`, and `sim/ground_truth` (HumanPose3D of the true joints in `base_frame`)
with the same stamp as each keypoint frame, the stamp the lifted pose carries, so poses can be scored by stamp.
The rig's TF comes from `rig_tf_node`. Problems (a sink that cannot be created, the stream stopping, blocks
processed late) go to /diagnostics.
"""

from __future__ import annotations

import shutil

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo

from av_pose_ros.audio.virtual_room import RoomModel, RoomSettings, SceneClock, VirtualRoom, prepare_sinks
from av_pose_ros.msg import HumanPose3D, Keypoints2D
from av_pose_ros.ros.conversions import Keypoints, Pose3D, keypoints_to_msg, pose3d_to_msg
from av_pose_ros.ros.diagnostics import ERROR, WARN, Health
from av_pose_ros.ros.messages import camera_info_msg
from av_pose_ros.ros.parameters import Param, declare_parameters
from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
from av_pose_ros.ros.runner import run_node

RO = {"read_only": True}
PARAMS = [
    Param("scenario", "handover", "Scenario (config/scenarios/) or YAML path: the room and the person.", **RO),
    Param("rig", "", "Rig name or YAML path ('' = the scenario's rig); must match audio_io_node's.", **RO),
    Param("seed", 0, "Seed of the drawn scene (the same scene sim_node draws with this seed).", 0, 2 ** 31 - 1, **RO),
    Param("sim_pose", "", "Library pose or motion instead of the scenario's (e.g. offer_right).", **RO),
    Param("empty_room_s", 3.0, "Nobody in the room for this long after the robot starts emitting (s).", 0.0, 3600.0,
          **RO),
    Param("keypoint_rate_hz", 30.0, "Camera rate of the simulated keypoints and camera info (Hz).", 1.0, 120.0,
          **RO),
    Param("pulse_dir", "", "Directory of the private PulseAudio daemon ('' = the graph's per-domain default).", **RO),
    Param("loopback_channel", 4, "Mic-sink channel that carries speaker 0 unfiltered (the latency reference).", 0, 7,
          **RO),
    Param("block", 1024, "Samples per processing block (latency vs CPU).", 256, 16384, **RO),
    Param("update_s", 0.1, "How often the body response follows the person (s).", 0.02, 2.0, **RO),
    Param("play_latency_ms", 80, "Buffer of the mic-sink player (ms): absorbs processing jitter.", 5, 1000, **RO),
    Param("noise", True, "Add white noise at the scenario's echo-to-noise ratio.", **RO),
    Param("base_frame", "base_link", "Frame of the ground truth (the rig's base).", **RO),
    Param("optical_frame", "camera_optical_frame", "Frame of the keypoints and camera info.", **RO),
    Param("body_id", "sim0", "REP-155 body id of the simulated person.", **RO),
]


class VirtualRoomNode(Node):
    def __init__(self):
        super().__init__("virtual_room_node")
        self.p = declare_parameters(self, PARAMS)
        self.health = Health(self)
        self.device = None
        self.room = None
        from av_pose_ros.audio.sim_source import SimConfig, SimSource
        from av_pose_ros.vision.simulated import DetectionNoise

        source = SimSource(SimConfig(scenario=self.p.scenario, rig=self.p.rig, seed=self.p.seed, pose=self.p.sim_pose,
                                     empty_room_s=self.p.empty_room_s))
        self.scene = source.scene
        self.rig = self.scene.rig
        self.camera = self.rig.intrinsics.camera_model()
        self.noise = DetectionNoise.from_scenario(self.scene.camera)
        settings = RoomSettings(block=self.p.block, update_s=self.p.update_s, play_latency_ms=self.p.play_latency_ms,
                                noise=self.p.noise, empty_room_s=self.p.empty_room_s)
        self.model = RoomModel(self.scene, source.simulator, settings)
        self.clock = SceneClock(self.scene.person.time_s, self.p.empty_room_s)
        self.keypoint_pub = self.create_publisher(Keypoints2D, "human/keypoints_2d", SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", SENSOR_QOS)
        self.truth_pub = self.create_publisher(HumanPose3D, "sim/ground_truth", RESULT_QOS)
        self.frames = 0
        self._late_seen = 0
        self._start_room(settings)
        self.create_timer(1.0 / self.p.keypoint_rate_hz, self.on_camera)
        self.create_timer(1.0, self.on_health)

    def _start_room(self, settings: RoomSettings) -> None:
        from av_pose_ros.app.launch_graphs import virtual_room_dir
        from av_pose_ros.audio.virtual_device import VirtualDeviceError, VirtualSoundDevice

        n_mics = len(self.rig.mics)
        if self.p.loopback_channel < n_mics:
            raise ValueError(f"loopback_channel {self.p.loopback_channel} is a mic channel (the rig has {n_mics})")
        self.device = VirtualSoundDevice(self.p.pulse_dir or virtual_room_dir(), channels=len(self.rig.speakers),
                                         rate=self.model.fs, daemonize=False)
        try:
            self.device.start()
            prepare_sinks(self.device, self.p.loopback_channel + 1, self.model.fs)
        except (VirtualDeviceError, RuntimeError, OSError) as err:
            self.health.problem("device", f"virtual sound device: {err}", level=ERROR)
            return
        self.room = VirtualRoom(self.model, self.clock, self.device.server, settings, seed=self.p.seed,
                                loopback_channel=self.p.loopback_channel)
        self.room.start()
        self.get_logger().info(f"virtual room on {self.device.server}: speakers -> sink '{self.device.sink}', mics "
                               f"<- its mic sink's monitor (loopback on input {self.p.loopback_channel}); person "
                               f"enters {self.p.empty_room_s:.1f} s after the first sound")

    def _joints(self, stamp_ns: int) -> np.ndarray | None:
        t = self.clock.scene_time(stamp_ns)
        return None if t is None else self.model.joints(t)

    def on_camera(self) -> None:
        """One camera frame: the simulator's detections of the person now (none while the room is empty)."""
        from av_pose_ros.vision.simulated import simulate_detections

        stamp = self.get_clock().now().nanoseconds
        self.info_pub.publish(camera_info_msg(self.camera, stamp, self.p.optical_frame))
        joints = self._joints(stamp)
        people = np.zeros((0, 17, 3))
        if joints is not None:
            rng = np.random.default_rng([int(self.p.seed), 7, self.frames])
            people = simulate_detections(joints, self.camera, self.rig.base_from_optical, self.noise, rng)[None]
            self.truth_pub.publish(pose3d_to_msg(Pose3D(stamp, self.p.base_frame, self.p.body_id, joints,
                                                        np.ones(17), source="ground_truth")))
        self.frames += 1
        body_ids = [self.p.body_id] if len(people) else []
        self.keypoint_pub.publish(keypoints_to_msg(Keypoints(stamp, self.p.optical_frame, people, self.camera.width,
                                                             self.camera.height, body_ids, undistorted=True)))

    def on_health(self) -> None:
        if self.room is None:
            return
        st = self.room.stats
        self.health.set(blocks=st.blocks, late_blocks=st.late_blocks, dropped_blocks=st.dropped_blocks,
                        block_ms=f"{st.process_ms:.1f}",
                        update_ms=f"{st.update_ms:.1f}", started=self.clock.t0_ns is not None)
        if st.errors:
            self.health.problem("stream", st.errors[-1], level=ERROR)
        elif not self.room.alive():
            self.health.problem("stream", "the room's audio stream stopped", level=ERROR)
        elif st.late_blocks > self._late_seen:
            self.health.problem("late", f"{st.late_blocks - self._late_seen} blocks in the last second took longer "
                                        "than they last (CPU overloaded)", level=WARN)
        else:
            self.health.clear("late")
        self._late_seen = st.late_blocks

    def destroy_node(self) -> None:
        if self.room is not None:
            self.room.stop()
        if self.device is not None:
            started = self.device.started_by_us
            self.device.stop()
            if started:   # the daemon's directory (socket, log) is ours too; one per domain would pile up in /tmp
                shutil.rmtree(self.device.directory, ignore_errors=True)
        super().destroy_node()


def main(args=None) -> int:
    return run_node(VirtualRoomNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
