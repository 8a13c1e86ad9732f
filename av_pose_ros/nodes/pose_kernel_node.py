"""pose_kernel_node: audio capture windows in, pose kernels (and optionally their spatial encoding) out.

Subscribes `audio/frames` (AudioFrame, sensor-data QoS) and, for the automatic empty-room update,
`human/keypoints_2d` (Keypoints2D) or `person_present` (std_msgs/Bool). Publishes `audio/pose_kernel` (PoseKernel,
stamped with the capture's acquisition time, in the frame of the AudioFrame header) and, when
`publish_encoding` is set, `audio/encoding` (sensor_msgs/PointCloud2: x, y, z, intensity float32 of the voxels
where the pairs' fused encoding is strong, same stamp and frame) for RViz. Service `audio/capture_empty_room`
(std_srvs/Trigger) starts an explicit empty-room capture over the next windows: the operator vouches that the
room is empty.

Speaker and mic positions come from TF (`speaker_<i>`, `mic_<i>` as named in the AudioFrame, looked up in the
header's frame); nothing about the rig is configured here. A probe of type `music` is deconvolved in continuous
mode (see `av_pose_ros.acoustics.kernel`); every other probe type in periodic mode.

Bad input (message that does not unpack, wrong channel count, NaN, clipping, sample-rate mismatch, a window
without the probe, missing TF) gives a throttled warning and a diagnostic with the reason code and publishes
nothing for that window; the node stays up and clears the diagnostic when good windows return.
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from av_pose_ros.acoustics import encoding
from av_pose_ros.acoustics.kernel import AudioInputError, PoseKernelExtractor
from av_pose_ros.msg import AudioFrame, Keypoints2D, PoseKernel
from av_pose_ros.pipeline.kernel import KernelStage
from av_pose_ros.ros.conversions import Kernels, MessageError, audio_from_msg, kernels_to_msg, make_header
from av_pose_ros.ros.diagnostics import Health
from av_pose_ros.ros.parameters import Param, declare_parameters
from av_pose_ros.ros.qos import SENSOR_QOS
from av_pose_ros.ros.runner import run_node
from av_pose_ros.ros.tf import TfBuffer, TransformError

PARAMS = [
    Param("sample_rate", 48000, "Sample rate the pipeline runs at (Hz); other frames are rejected.", 8000, 384000),
    Param("temperature_c", 20.0, "Air temperature: speed of sound 331.3 sqrt(1 + T/273.15) m/s.", -40.0, 60.0),
    Param("pairs", "colocated", "Speaker/mic pairs: speaker_i with mic_i, or every speaker with every mic.",
          choices=("colocated", "all")),
    Param("taps", 1200, "Kernel length in samples (1200 at 48 kHz = 8.6 m of bistatic path).", 64, 48000),
    Param("band_hz", [1000.0, 20000.0], "Deconvolution band (Hz), tapered at both edges."),
    Param("regularisation", 1e-2, "Wiener regularisation relative to the probe's power in each third-octave band.",
          1e-6, 10.0),
    Param("floor_db", -40.0, "Bands this far below the probe's strongest band are suppressed.", -120.0, 0.0),
    Param("min_range_m", 0.3, "Range gate: nearest reflector distance kept (m).", 0.0, 10.0),
    Param("max_range_m", 4.5, "Range gate: farthest reflector distance kept (m).", 0.1, 50.0),
    Param("min_snr_db", 12.0, "Direct-path SNR below which a window counts as holding no probe.", -20.0, 60.0),
    Param("max_clipped_fraction", 1e-4, "Share of samples at full scale above which a window is rejected.",
          0.0, 1.0),
    Param("max_drift_s", 1e-3, "Search half-width for the direct path around its geometric delay (s).", 1e-5, 0.1),
    Param("drift_warn_samples", 2.0, "Warn when the direct path moves this far from where it was at the "
          "empty-room capture (samples): device latency changed, the empty room is stale.", 0.1, 1000.0),
    Param("capture_on_start", True, "Capture the empty room from the first windows (the room must be empty when "
          "the node starts, as in the simulator); false: wait for the audio/capture_empty_room service."),
    Param("empty_room_frames", 8, "Windows averaged by an empty-room capture (chirp or sweep probes).", 1, 10000),
    Param("music_capture_frames", 82, "Windows of an empty-room capture with a music probe: it must hear the "
          "music it will later subtract (82 x 100 ms covers the simulator's 8 s loop and 0.2 s of room tail).",
          1, 100000),
    Param("room_taps", 9600, "Music: length of the empty-room responses (samples; must cover the reverb).",
          256, 480000),
    Param("music_memory", 0.5, "Music: weight of earlier windows in each band of the kernel (0 = none).",
          0.0, 0.99),
    Param("max_room_residual_db", -30.0, "Music: windows whose recording the empty-room model explains worse "
          "than this (music it never heard) give no kernel.", -200.0, 0.0),
    Param("empty_room_update", "keypoints", "Slow empty-room update while nobody is present, driven by "
          "human/keypoints_2d (no person seen), by person_present (std_msgs/Bool), or off.",
          choices=("keypoints", "person_present", "off")),
    Param("empty_room_rate", 0.02, "Weight of one window in the slow empty-room update.", 0.0, 1.0),
    Param("absent_hold_s", 2.0, "Nobody must have been seen for this long before the slow update runs (s).",
          0.0, 600.0),
    Param("presence_timeout_s", 1.0, "Presence messages older than this count as unknown: no update (s).",
          0.01, 600.0),
    Param("publish_unsubtracted", False, "Before an empty room exists, publish the enveloped room response with "
          "empty_room_subtracted=false (default: publish nothing)."),
    Param("publish_encoding", False, "Also publish audio/encoding (PointCloud2 of the pairs' fused encoding)."),
    Param("encoding_x_m", [0.5, 5.0], "Encoding grid extent along x of the rig frame (m)."),
    Param("encoding_y_m", [-2.5, 2.5], "Encoding grid extent along y of the rig frame (m)."),
    Param("encoding_z_m", [-1.2, 1.0], "Encoding grid extent along z of the rig frame (m)."),
    Param("encoding_spacing_m", 0.1, "Encoding voxel size (m).", 0.01, 1.0),
    Param("encoding_fusion", "product", "How the pairs' encodings are fused.", choices=("product", "sum")),
    Param("encoding_min_fraction", 0.25, "Voxels below this fraction of the peak are left out of the cloud.",
          0.0, 1.0),
]

def point_cloud_msg(points: np.ndarray, intensity: np.ndarray, stamp_ns: int, frame_id: str) -> PointCloud2:
    """PointCloud2 with float32 x, y, z, intensity (16-byte points, little-endian, one row)."""
    data = np.empty((len(points), 4), dtype="<f4")
    data[:, :3] = points
    data[:, 3] = intensity
    fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, name in enumerate(("x", "y", "z", "intensity"))]
    return PointCloud2(header=make_header(stamp_ns, frame_id), height=1, width=len(points), fields=fields,
                       is_bigendian=False, point_step=16, row_step=16 * len(points), data=data.tobytes(),
                       is_dense=True)


def kernel_msg(stage: KernelStage, audio, window) -> PoseKernel:
    """audio/pose_kernel for one processed window (also used by `av-pose reprocess`)."""
    _, _, speaker_names, mic_names = stage.geometry
    return kernels_to_msg(Kernels(
        audio.stamp_ns, audio.frame_id, window.kernels, int(audio.sample_rate), speaker_names, mic_names,
        speed_of_sound=stage.extractor.c, empty_room_subtracted=window.subtracted,
        snr_db=float(np.median(window.frame.quality.snr_db)), sequence=audio.sequence))


class PoseKernelNode(Node):
    def __init__(self):
        super().__init__("pose_kernel_node")
        self.p = declare_parameters(self, PARAMS)
        self.health = Health(self)
        self.tf = TfBuffer(self)
        self.kernel_pub = self.create_publisher(PoseKernel, "audio/pose_kernel", SENSOR_QOS)
        self.encoding_pub = self.create_publisher(PointCloud2, "audio/encoding", SENSOR_QOS)
        self.create_subscription(AudioFrame, "audio/frames", self.on_audio, SENSOR_QOS)
        if self.p.empty_room_update == "keypoints":
            self.create_subscription(Keypoints2D, "human/keypoints_2d", self.on_keypoints, SENSOR_QOS)
        elif self.p.empty_room_update == "person_present":
            self.create_subscription(Bool, "person_present", self.on_person_present, SENSOR_QOS)
        self.create_service(Trigger, "audio/capture_empty_room", self.on_capture_request)
        self.stage = KernelStage(self.p, self.tf.lookup)   # the per-window work, shared with `av-pose reprocess`
        self._tables: dict = {}
        self.frames = self.published = 0
        self.rejected: dict[str, int] = {}

    # -- presence (slow empty-room update) ---------------------------------------------------------------------
    def on_keypoints(self, msg: Keypoints2D) -> None:
        self.stage.presence.report(msg.num_people > 0, time.monotonic())

    def on_person_present(self, msg: Bool) -> None:
        self.stage.presence.report(bool(msg.data), time.monotonic())

    @property
    def extractor(self) -> PoseKernelExtractor | None:
        return self.stage.extractor

    # -- service ---------------------------------------------------------------------------------------------
    def on_capture_request(self, request, response):
        self.stage.capture_requested = True
        if self.extractor is not None:
            self.stage.start_capture()
            room = self.extractor.empty_room
            response.message = (f"capturing the empty room over the next {room.requested} windows "
                                f"({self.extractor.mode} probe); keep the room empty")
        else:
            response.message = "no audio yet: the empty room will be captured from the first windows"
        response.success = True
        self.get_logger().info(response.message)
        return response

    # -- one window ------------------------------------------------------------------------------------------
    def on_audio(self, msg: AudioFrame) -> None:
        try:
            self._process(msg)
        except Exception as err:  # noqa: BLE001 - one bad window must never take the node down
            self.health.problem("processing", f"{type(err).__name__}: {err}")

    def _reject(self, code: str, text: str) -> None:
        self.rejected[code] = self.rejected.get(code, 0) + 1
        self.health.problem(f"input_{code}", text)
        self.health.set(rejected=", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())))

    def _process(self, msg: AudioFrame) -> None:
        self.frames += 1
        try:
            audio = audio_from_msg(msg)
        except MessageError as err:
            self._reject("audio", str(err))
            return
        if audio.probe.size == 0:
            self._reject("no_probe", "AudioFrame carries no probe: the emitted samples are needed to deconvolve")
            return
        try:
            built = self.stage.ensure_pipeline(audio)
        except TransformError as err:
            self._reject("tf", f"no transform for the rig frames in '{audio.frame_id}': {err}")
            return
        except AudioInputError as err:
            self._reject(err.reason, str(err))
            return
        if built:
            self._tables.clear()
            self.get_logger().info(built)
        try:
            window = self.stage.process(audio, time.monotonic())
        except AudioInputError as err:
            self._reject(err.reason, str(err))
            return
        frame, kernels, subtracted = window.frame, window.kernels, window.subtracted
        self._report(frame)
        if kernels is None:
            return
        self.kernel_pub.publish(kernel_msg(self.stage, audio, window))
        self.published += 1
        if self.p.publish_encoding and subtracted and self.encoding_pub.get_subscription_count() > 0:
            self._publish_encoding(kernels, audio)

    def _publish_encoding(self, kernels: np.ndarray, audio) -> None:
        p = self.p
        key = (tuple(p.encoding_x_m), tuple(p.encoding_y_m), tuple(p.encoding_z_m), p.encoding_spacing_m)
        table = self._tables.get(key)
        if table is None:
            grid = encoding.room_grid(p.encoding_x_m, p.encoding_y_m, p.encoding_z_m, p.encoding_spacing_m,
                                      audio.frame_id)
            speakers, mics, _, _ = self.stage.geometry
            points = grid.points()
            table = self._tables[key] = (points, encoding.DelayTable(
                points, speakers, mics, self.extractor.config.fs, self.extractor.c, kernels.shape[1],
                voxel_size_m=grid.spacing_m))
        points, delay_table = table
        fused = encoding.fuse_pairs(delay_table.encode(kernels), p.encoding_fusion)
        xyz, intensity = encoding.point_cloud(points, fused, p.encoding_min_fraction)
        self.encoding_pub.publish(point_cloud_msg(xyz, intensity, audio.stamp_ns, audio.frame_id))

    def _report(self, frame) -> None:
        """Diagnostics of a window that passed validation."""
        ex, q = self.extractor, frame.quality
        room = ex.empty_room
        shift = q.applied_shift_s * ex.config.fs
        if room.ready and not room.capturing and self.stage.capture_shift is None:
            self.stage.capture_shift = shift
        drift_samples = 0.0 if self.stage.capture_shift is None else shift - self.stage.capture_shift
        if q.probe_mode == "continuous":
            drift_samples = float(q.latency_jump_samples)
        values = dict(probe_mode=q.probe_mode, snr_db=np.round(q.snr_db, 1).tolist(),
                      clipped_fraction=f"{q.clipped_fraction:.2e}",
                      direct_delay_drift_us=np.round(q.direct_delay_drift_s * 1e6, 1).tolist(),
                      applied_shift_samples=round(shift, 3), drift_since_capture_samples=round(drift_samples, 3),
                      empty_room_ready=room.ready, empty_room_capturing=room.capturing,
                      empty_room_frames=room.frames, frames=self.frames, published=self.published)
        if q.probe_mode == "continuous":
            values.update(music_room_residual_db=round(q.empty_room_residual_db, 1), history_ok=q.history_ok)
            if q.psf_sidelobe_db is not None:
                values.update(psf_sidelobe_db=np.round(q.psf_sidelobe_db, 1).tolist())
        self.health.good(**values)
        if room.capturing:
            self.health.problem("empty_room", f"capturing the empty room ({room.requested} windows): keep it empty")
        elif not room.ready:
            self.health.problem("empty_room", "no empty-room response yet: nothing is published until "
                                              "audio/capture_empty_room is called with the room empty")
        else:
            self.health.clear("empty_room")
        if abs(drift_samples) >= self.p.drift_warn_samples:
            self.health.problem("drift", f"direct path moved {drift_samples:+.1f} samples since the empty-room "
                                         f"capture (device latency changed?): recapture the empty room")
        else:
            self.health.clear("drift")
        if q.probe_mode == "continuous" and room.ready:
            if not q.history_ok:
                self.health.problem("music_history", "a window was lost: the music probe needs the previous "
                                                     f"{ex.config.room_taps} samples of emission before it "
                                                     "can subtract the room again")
            elif frame.kernels is None:
                self.health.problem("music_unheard", f"the empty-room model leaves "
                                                     f"{q.empty_room_residual_db:.1f} dB of this window unexplained "
                                                     "(music it did not hear): recapture the empty room while "
                                                     "this music plays")
            else:
                self.health.clear("music_history", "music_unheard")


def main(args=None) -> int:
    return run_node(PoseKernelNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
