"""The per-message work of the processing nodes (pose kernel, lifter, handover) without ROS, so the nodes and the
offline `av-pose reprocess` run exactly the same code. Parameters come as an attribute namespace (a node's
declared parameters, or the same names read from its YAML); transforms through a `lookup(target, source, stamp_ns)`
callable (a node's TF buffer, or an offline `TransformTree`); time through explicit `now_s` arguments (a node's
monotonic clock, or message stamps offline). Plain Python, no rclpy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from av_pose_ros.acoustics.kernel import AudioInputError, KernelConfig, PoseKernelExtractor, envelope
from av_pose_ros.acoustics.physics import speed_of_sound
from av_pose_ros.handover import ConstantVelocityFilter, HandSelector, ReachEnvelope, approach_orientation
from av_pose_ros.primitives.geometry import apply_transform
from av_pose_ros.primitives.skeleton import COCO17_JOINTS, JOINT_INDEX

Lookup = Callable[[str, str, int], np.ndarray]


class StageError(Exception):
    """Input a stage cannot use; `code` names the diagnostic (tf, input_lifting, lifting, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# -- pose kernel -------------------------------------------------------------------------------------------------

class Presence:
    """Whether a person is around, for the slow empty-room update: False only after nobody was reported for
    `absent_hold_s` by a report younger than `presence_timeout_s`; None when unknown."""

    def __init__(self, p):
        self.p = p
        self.seen_at = self.absent_since = self.report_at = None

    def report(self, present: bool, now_s: float) -> None:
        self.report_at = now_s
        if present:
            self.seen_at, self.absent_since = now_s, None
        elif self.absent_since is None:
            self.absent_since = now_s

    def present(self, now_s: float) -> bool | None:
        if self.p.empty_room_update == "off" or self.report_at is None:
            return None
        if now_s - self.report_at > self.p.presence_timeout_s:
            return None
        if self.absent_since is None:
            return True
        return False if now_s - self.absent_since >= self.p.absent_hold_s else True


@dataclass
class KernelWindow:
    """One processed window: the extractor's frame (quality, kernels or None) and what to publish (or None)."""

    frame: object
    kernels: np.ndarray | None
    subtracted: bool


class KernelStage:
    """Audio windows -> pose kernels with the pose_kernel_node parameters; rebuilds the extractor when the rig,
    probe type or parameters change, and captures the empty room when asked (or on start)."""

    def __init__(self, p, lookup: Lookup):
        self.p = p
        self.lookup = lookup
        self.extractor: PoseKernelExtractor | None = None
        self.setup_key = None
        self.geometry = None     # (speakers (P, 3), mics (P, 3), speaker names, mic names) in the rig frame
        self.capture_requested = bool(p.capture_on_start)
        self.capture_shift = None
        self.presence = Presence(p)

    def pairs(self, speakers: list[str], mics: list[str]) -> np.ndarray:
        if self.p.pairs == "all":
            return np.array([(s, m) for s in range(len(speakers)) for m in range(len(mics))])
        if len(speakers) != len(mics):
            raise AudioInputError("channel_count", f"'colocated' pairs need as many speakers as mics "
                                                   f"({len(speakers)} vs {len(mics)})")
        return np.stack([np.arange(len(mics))] * 2, axis=1)

    def start_capture(self) -> None:
        ex = self.extractor
        frames = self.p.music_capture_frames if ex.mode == "continuous" else self.p.empty_room_frames
        ex.empty_room.request_capture(frames)
        self.capture_requested = False
        self.capture_shift = None

    def _positions(self, frame_id: str, names: list[str], stamp_ns: int) -> np.ndarray:
        return np.array([self.lookup(frame_id, name, stamp_ns)[:3, 3] for name in names], dtype=float)

    def ensure_pipeline(self, audio) -> str | None:
        """(Re)build the extractor when the setup changed; returns a line saying so (None: unchanged). TF errors
        and AudioInputError propagate."""
        p = self.p
        key = (audio.frame_id, tuple(audio.speaker_frames), tuple(audio.mic_frames), audio.probe_type == "music",
               p.sample_rate, p.temperature_c, p.pairs, p.taps, tuple(p.band_hz), p.regularisation, p.floor_db,
               p.min_range_m, p.max_range_m, p.min_snr_db, p.max_clipped_fraction, p.max_drift_s, p.room_taps,
               p.music_memory, p.max_room_residual_db, p.empty_room_rate)
        if key == self.setup_key and self.extractor is not None:
            return None
        speakers_xyz = self._positions(audio.frame_id, audio.speaker_frames, audio.stamp_ns)
        mics_xyz = self._positions(audio.frame_id, audio.mic_frames, audio.stamp_ns)
        pairs = self.pairs(audio.speaker_frames, audio.mic_frames)
        direct = np.linalg.norm(speakers_xyz[pairs[:, 0]] - mics_xyz[pairs[:, 1]], axis=1)
        band = tuple(float(v) for v in p.band_hz)
        if len(band) != 2 or not 0 < band[0] < band[1] <= p.sample_rate / 2:
            raise ValueError(f"band_hz {list(p.band_hz)} must be [low, high] inside (0, sample_rate / 2]")
        config = KernelConfig(fs=int(p.sample_rate), taps=int(p.taps), band_hz=band,
                              regularisation=float(p.regularisation), floor_db=float(p.floor_db),
                              min_range_m=float(p.min_range_m), max_range_m=float(p.max_range_m),
                              max_clipped_fraction=float(p.max_clipped_fraction), min_snr_db=float(p.min_snr_db),
                              max_drift_s=float(p.max_drift_s), empty_room_rate=float(p.empty_room_rate),
                              empty_room_frames=int(p.empty_room_frames),
                              probe_mode="continuous" if audio.probe_type == "music" else "periodic",
                              room_taps=int(p.room_taps), music_capture_frames=int(p.music_capture_frames),
                              music_memory=float(p.music_memory), max_room_residual_db=float(p.max_room_residual_db))
        c = speed_of_sound(float(p.temperature_c))
        had_model = self.extractor is not None and self.extractor.empty_room.ready
        self.extractor = PoseKernelExtractor(pairs, direct, len(audio.mic_frames), c, config)
        self.geometry = (speakers_xyz[pairs[:, 0]], mics_xyz[pairs[:, 1]],
                         [audio.speaker_frames[s] for s in pairs[:, 0]], [audio.mic_frames[m] for m in pairs[:, 1]])
        self.setup_key = key
        if had_model or self.capture_requested:
            self.start_capture()       # a new rig or probe makes the old empty room meaningless
        return f"pipeline for {len(pairs)} pairs in '{audio.frame_id}', {config.probe_mode} probe, c = {c:.1f} m/s"

    def process(self, audio, now_s: float) -> KernelWindow:
        """One window (after `ensure_pipeline`): kernels to publish, or None (no empty room yet and
        `publish_unsubtracted` off). AudioInputError for windows that cannot give a kernel."""
        if audio.probe.size == 0:
            raise AudioInputError("no_probe", "AudioFrame carries no probe: the emitted samples are needed")
        ex = self.extractor
        if self.capture_requested:
            self.start_capture()
        frame = ex.process(audio.audio, audio.probe, audio.sample_rate, self.presence.present(now_s), audio.sequence)
        kernels = frame.kernels
        subtracted = kernels is not None
        if kernels is None:
            if not (self.p.publish_unsubtracted and not ex.empty_room.ready):
                return KernelWindow(frame, None, False)
            kernels = (envelope(frame.responses) * ex.gate).astype(np.float32)
        return KernelWindow(frame, kernels, subtracted)


# -- lifter ------------------------------------------------------------------------------------------------------

def camera_matrix(k) -> np.ndarray:
    """K (3x3) from CameraInfo.k; StageError when it is zero or not finite (an uncalibrated camera)."""
    K = np.asarray(k, dtype=float).reshape(3, 3)
    if not np.any(K) or not np.all(np.isfinite(K)):
        raise StageError("no_camera_info", "camera info K is zero or not finite (uncalibrated camera)")
    return K


def lift_pose(lifter, kp, kernels, K: np.ndarray, lookup: Lookup, output_frame: str, position_std_m: float):
    """Metric joints of the first person of `kp` with `kernels`: (joints (17, 3), confidence (17,),
    covariance (17, 3, 3)) in `output_frame`. StageError with the diagnostic code when it cannot."""
    try:
        world_from_camera = lookup(output_frame, kp.frame_id, kp.stamp_ns)
        speakers = np.array([lookup(output_frame, f, kernels.stamp_ns)[:3, 3] for f in kernels.speaker_frames])
        mics = np.array([lookup(output_frame, f, kernels.stamp_ns)[:3, 3] for f in kernels.mic_frames])
    except LookupError as err:
        raise StageError("tf", str(err)) from err
    try:
        joints, confidence = lifter.predict(kp.keypoints[0], K, world_from_camera, kernels.kernels, speakers, mics,
                                            kernels.sample_rate, speed_of_sound=kernels.speed_of_sound)
    except ValueError as err:
        raise StageError("input_lifting", str(err)) from err
    if not np.all(np.isfinite(joints)):
        raise StageError("lifting", "the lifter returned non-finite joints; not published")
    std = position_std_m / np.maximum(confidence, 0.05)
    covariance = np.eye(3)[None] * (std**2)[:, None, None]
    return joints, confidence, covariance


# -- handover ----------------------------------------------------------------------------------------------------

@dataclass
class HandoverResult:
    hand: str
    position: np.ndarray
    orientation: np.ndarray
    velocity: np.ndarray
    confidence: float
    reachable: bool
    distance: float


class _Track:
    def __init__(self, p):
        self.selector = HandSelector(p.min_offer_score, p.switch_margin, p.min_joint_confidence)
        self.filter = ConstantVelocityFilter(p.accel_std, p.track_timeout_s)
        self.hand: str | None = None
        self.last_ns = 0


class HandoverTracker:
    """Per body: the offered hand (with hysteresis) and a constant-velocity filter of its wrist, in the base frame
    (handover_node parameters)."""

    def __init__(self, p):
        self.p = p
        self.tracks: dict[str, _Track] = {}

    def update(self, pose, base_from_pose: np.ndarray) -> HandoverResult | None:
        """The target for this pose, or None while no hand is offered. StageError for joints not in COCO-17."""
        p = self.p
        if tuple(pose.joint_names) != COCO17_JOINTS:
            raise StageError("input_pose", "joint_names are not COCO-17 in order")
        joints = apply_transform(base_from_pose, pose.joints)
        timeout_ns = p.track_timeout_s * 1e9
        self.tracks = {b: t for b, t in self.tracks.items() if pose.stamp_ns - t.last_ns <= timeout_ns}
        track = self.tracks.get(pose.body_id)
        if track is None:
            track = self.tracks[pose.body_id] = _Track(p)
        track.last_ns = pose.stamp_ns
        choice = track.selector.select(joints, pose.confidence)
        if choice is None:
            track.hand = None
            track.filter.reset()
            return None
        if choice.hand != track.hand:
            track.filter.reset()
            track.hand = choice.hand
        rotation = base_from_pose[:3, :3]
        wrist_cov = pose.covariance[JOINT_INDEX[f"{choice.hand}_wrist"]] if pose.covariance is not None else None
        if wrist_cov is None or not np.any(wrist_cov):
            wrist_cov = np.eye(3) * p.measurement_std_m**2
        position, velocity = track.filter.update(choice.wrist, rotation @ wrist_cov @ rotation.T, pose.stamp_ns)
        envelope_ = ReachEnvelope(tuple(p.reach_center), p.reach_min_radius_m, p.reach_max_radius_m,
                                  p.reach_min_z_m, p.reach_max_z_m)
        return HandoverResult(choice.hand, position, approach_orientation(choice.elbow, choice.wrist), velocity,
                              choice.score * choice.confidence, envelope_.contains(position),
                              envelope_.distance(position))
