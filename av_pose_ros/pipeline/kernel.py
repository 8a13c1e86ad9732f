"""Pose kernel stage: audio windows -> pose kernels with the pose_kernel_node parameters (no rclpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pose_ros.acoustics.kernel import AudioInputError, KernelConfig, PoseKernelExtractor, envelope
from av_pose_ros.acoustics.physics import speed_of_sound
from av_pose_ros.pipeline.common import Lookup


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
