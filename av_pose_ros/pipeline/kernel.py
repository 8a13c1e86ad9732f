"""Pose kernel stage: audio windows -> pose kernels with the pose_kernel_node parameters (no rclpy).

`KernelHandler` owns everything the stage keeps between windows: the extractor (rebuilt when the rig, the probe type
or a parameter changes, so every parameter is live), the rig geometry from TF, the empty-room capture request and the
direct-path position at the capture (for drift warnings), presence for the slow empty-room update, and the encoding
tables for RViz. pose_kernel_node and `av-pose reprocess` call the same methods."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from av_pose_ros.acoustics import encoding
from av_pose_ros.acoustics.kernel import AudioInputError, KernelConfig, PoseKernelExtractor, envelope
from av_pose_ros.acoustics.physics import speed_of_sound
from av_pose_ros.pipeline.common import Lookup, Report, StageError, require_probe
from av_pose_ros.pipeline.params import Param

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
          "the node starts, as in the simulator); false: wait for the audio/capture_empty_room service.",
          read_only=True),
    Param("empty_room_frames", 8, "Windows averaged by an empty-room capture (chirp or sweep probes).", 1, 10000),
    Param("music_capture_frames", 82, "Windows of an empty-room capture with a music probe: it must hear the "
          "music it will later subtract (82 x 100 ms covers the simulator's 8 s loop and 0.2 s of room tail).",
          1, 100000),
    Param("room_taps", 9600, "Music: length of the empty-room responses (samples; must cover the reverb).",
          256, 480000),
    Param("music_memory", 0.5, "Music: weight of earlier windows in each band of the kernel (0 = none).",
          0.0, 0.99),
    Param("music_frontend", "", "Music: learned front-end model applied to continuous-mode kernels (e.g. "
          "models/music_frontend.pt; a relative path is looked up in the package); '' = off, the default, because "
          "on val it does not beat the plain kernel yet (models/music_frontend.md). A missing or unreadable file "
          "gives the plain kernel and a diagnostic."),
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


class Presence:
    """Whether a person is around, for the slow empty-room update: False only after nobody was reported for
    `absent_hold_s` by a report younger than `presence_timeout_s`; None when unknown."""

    def __init__(self, p):
        self.p = p
        self.reports = 0
        self.reset()

    def reset(self) -> None:
        self.seen_at = self.absent_since = self.report_at = None

    def report(self, present: bool, now_s: float) -> None:
        self.reports += 1
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
class RigGeometry:
    """The pairs' speaker and mic positions (P, 3) in the rig frame and their TF frame names."""

    speakers: np.ndarray
    mics: np.ndarray
    speaker_frames: list[str]
    mic_frames: list[str]


@dataclass
class KernelOutput:
    """One processed window: `kernels` (pairs, taps) to publish, or None (no empty room yet and
    `publish_unsubtracted` off); what the PoseKernel message carries; a `note` when the pipeline was (re)built;
    the diagnostics `report`."""

    stamp_ns: int
    frame_id: str
    kernels: np.ndarray | None
    sample_rate: int
    speaker_frames: list[str]
    mic_frames: list[str]
    speed_of_sound: float
    subtracted: bool
    snr_db: float
    sequence: int
    note: str | None = None
    report: Report = field(default_factory=Report)


def _config(p, probe_mode: str, frontend_bands: int = 0) -> KernelConfig:
    band = tuple(float(v) for v in p.band_hz)
    if len(band) != 2 or not 0 < band[0] < band[1] <= p.sample_rate / 2:
        raise ValueError(f"band_hz {list(p.band_hz)} must be [low, high] inside (0, sample_rate / 2]")
    return KernelConfig(fs=int(p.sample_rate), taps=int(p.taps), band_hz=band, regularisation=float(p.regularisation),
                        floor_db=float(p.floor_db), min_range_m=float(p.min_range_m),
                        max_range_m=float(p.max_range_m), max_clipped_fraction=float(p.max_clipped_fraction),
                        min_snr_db=float(p.min_snr_db), max_drift_s=float(p.max_drift_s),
                        empty_room_rate=float(p.empty_room_rate), empty_room_frames=int(p.empty_room_frames),
                        probe_mode=probe_mode, room_taps=int(p.room_taps),
                        music_capture_frames=int(p.music_capture_frames), music_memory=float(p.music_memory),
                        max_room_residual_db=float(p.max_room_residual_db),
                        frontend_bands=frontend_bands if probe_mode == "continuous" else 0)


class KernelHandler:
    """Audio windows -> pose kernels with the pose_kernel_node parameters `p`; rig positions through `lookup`."""

    def __init__(self, p, lookup: Lookup):
        self.p = p
        self.lookup = lookup
        self.extractor: PoseKernelExtractor | None = None
        self.geometry: RigGeometry | None = None
        self._setup_key = None
        self._capture_requested = bool(p.capture_on_start)
        self._capture_shift: float | None = None   # direct-path shift (samples) right after the last capture
        self.presence = Presence(p)
        self._tables: dict = {}
        self.frames = self.published = 0
        self.frontend = None                 # the music front end (continuous mode), or None
        self.frontend_problem: str | None = None

    # -- inputs besides audio ------------------------------------------------------------------------------------
    def on_presence(self, source: str, present: bool, now_s: float) -> None:
        """A presence report from `source` ('keypoints' or 'person_present'); used only while `empty_room_update`
        names that source (the parameter may change at run time)."""
        if self.p.empty_room_update == source:
            self.presence.report(present, now_s)

    def request_capture(self) -> str:
        """Capture the empty room over the next windows (the caller vouches the room is empty); says what happens."""
        self._capture_requested = True
        if self.extractor is None:
            return "no audio yet: the empty room will be captured from the first windows"
        self._start_capture()
        return (f"capturing the empty room over the next {self.extractor.empty_room.requested} windows "
                f"({self.extractor.mode} probe); keep the room empty")

    def reset(self) -> None:
        """Time went back (bag loop, simulator restart): forget presence and the drift reference; the empty room
        itself stays (the room did not change)."""
        self.presence.reset()
        self._capture_shift = None

    # -- one window ----------------------------------------------------------------------------------------------
    def on_audio(self, audio, now_s: float) -> KernelOutput:
        """Kernels of one window (`now_s`: the driver's clock, for presence). StageError for windows that cannot
        give one (codes input_<reason>)."""
        self.frames += 1
        require_probe(audio.probe)
        try:
            note = self._ensure_pipeline(audio)
        except LookupError as err:
            raise StageError("input_tf", f"no transform for the rig frames in '{audio.frame_id}': {err}") from err
        except AudioInputError as err:
            raise StageError(f"input_{err.reason}", str(err)) from err
        ex = self.extractor
        if self._capture_requested:
            self._start_capture()
        try:
            frame = ex.process(audio.audio, audio.probe, audio.sample_rate, self.presence.present(now_s),
                               audio.sequence)
        except AudioInputError as err:
            raise StageError(f"input_{err.reason}", str(err)) from err
        kernels, subtracted = frame.kernels, frame.kernels is not None
        if kernels is not None and frame.bands is not None and self.frontend is not None:
            from av_pose_ros.lifting.music_frontend import apply_to_frame

            kernels = apply_to_frame(self.frontend, kernels, frame.bands)
        if kernels is None and self.p.publish_unsubtracted and not ex.empty_room.ready:
            kernels = (envelope(frame.responses) * ex.gate).astype(np.float32)
        self.published += kernels is not None
        g = self.geometry
        return KernelOutput(audio.stamp_ns, audio.frame_id, kernels, int(audio.sample_rate), g.speaker_frames,
                            g.mic_frames, ex.c, subtracted, float(np.median(frame.quality.snr_db)), audio.sequence,
                            note, self._report(frame))

    def encoding(self, out: KernelOutput) -> tuple[np.ndarray, np.ndarray] | None:
        """Points (N, 3) and intensity (N,) of the pairs' fused encoding for RViz, or None when not wanted."""
        p = self.p
        if not (p.publish_encoding and out.subtracted and out.kernels is not None):
            return None
        key = (tuple(p.encoding_x_m), tuple(p.encoding_y_m), tuple(p.encoding_z_m), p.encoding_spacing_m,
               self._setup_key)
        table = self._tables.get(key)
        if table is None:
            grid = encoding.room_grid(p.encoding_x_m, p.encoding_y_m, p.encoding_z_m, p.encoding_spacing_m,
                                      out.frame_id)
            points = grid.points()
            self._tables = {key: (points, encoding.DelayTable(
                points, self.geometry.speakers, self.geometry.mics, self.extractor.config.fs, self.extractor.c,
                out.kernels.shape[1], voxel_size_m=grid.spacing_m))}
            table = self._tables[key]
        points, delay_table = table
        fused = encoding.fuse_pairs(delay_table.encode(out.kernels), p.encoding_fusion)
        return encoding.point_cloud(points, fused, p.encoding_min_fraction)

    # -- internals -----------------------------------------------------------------------------------------------
    def _pairs(self, speakers: list[str], mics: list[str]) -> np.ndarray:
        if self.p.pairs == "all":
            return np.array([(s, m) for s in range(len(speakers)) for m in range(len(mics))])
        if len(speakers) != len(mics):
            raise AudioInputError("channel_count", f"'colocated' pairs need as many speakers as mics "
                                                   f"({len(speakers)} vs {len(mics)})")
        return np.stack([np.arange(len(mics))] * 2, axis=1)

    def _start_capture(self) -> None:
        ex = self.extractor
        frames = self.p.music_capture_frames if ex.mode == "continuous" else self.p.empty_room_frames
        ex.empty_room.request_capture(frames)
        self._capture_requested = False
        self._capture_shift = None

    def _positions(self, frame_id: str, names: list[str], stamp_ns: int) -> np.ndarray:
        return np.array([self.lookup(frame_id, name, stamp_ns)[:3, 3] for name in names], dtype=float)

    def _ensure_pipeline(self, audio) -> str | None:
        """(Re)build the extractor when the setup changed; returns a line saying so (None: unchanged)."""
        p = self.p
        key = (audio.frame_id, tuple(audio.speaker_frames), tuple(audio.mic_frames), audio.probe_type == "music",
               p.sample_rate, p.temperature_c, p.pairs, p.taps, tuple(p.band_hz), p.regularisation, p.floor_db,
               p.min_range_m, p.max_range_m, p.min_snr_db, p.max_clipped_fraction, p.max_drift_s, p.room_taps,
               p.music_memory, p.max_room_residual_db, p.empty_room_rate, p.empty_room_frames,
               p.music_capture_frames, p.music_frontend)
        if key == self._setup_key and self.extractor is not None:
            return None
        self._load_frontend(audio.probe_type == "music")
        speakers_xyz = self._positions(audio.frame_id, audio.speaker_frames, audio.stamp_ns)
        mics_xyz = self._positions(audio.frame_id, audio.mic_frames, audio.stamp_ns)
        pairs = self._pairs(audio.speaker_frames, audio.mic_frames)
        direct = np.linalg.norm(speakers_xyz[pairs[:, 0]] - mics_xyz[pairs[:, 1]], axis=1)
        config = _config(p, "continuous" if audio.probe_type == "music" else "periodic",
                         self.frontend.config.bands if self.frontend is not None else 0)
        c = speed_of_sound(float(p.temperature_c))
        had_model = self.extractor is not None and self.extractor.empty_room.ready
        self.extractor = PoseKernelExtractor(pairs, direct, len(audio.mic_frames), c, config)
        self.geometry = RigGeometry(speakers_xyz[pairs[:, 0]], mics_xyz[pairs[:, 1]],
                                    [audio.speaker_frames[s] for s in pairs[:, 0]],
                                    [audio.mic_frames[m] for m in pairs[:, 1]])
        self._setup_key = key
        self._tables = {}
        if had_model or self._capture_requested:
            self._start_capture()       # a new rig or probe makes the old empty room meaningless
        return f"pipeline for {len(pairs)} pairs in '{audio.frame_id}', {config.probe_mode} probe, c = {c:.1f} m/s"

    def _load_frontend(self, music: bool) -> None:
        """The music front end of `music_frontend` (only for a music probe: torch is not imported otherwise)."""
        self.frontend = self.frontend_problem = None
        if music and self.p.music_frontend:
            from av_pose_ros.lifting.music_frontend import load_for_pipeline
            from av_pose_ros.primitives.paths import package_file

            self.frontend, self.frontend_problem = load_for_pipeline(package_file(self.p.music_frontend))

    def _drift_samples(self, q, room) -> tuple[float, float]:
        """(applied shift, drift since the capture) in samples; the shift right after a capture is the reference."""
        shift = q.applied_shift_s * self.extractor.config.fs
        if room.ready and not room.capturing and self._capture_shift is None:
            self._capture_shift = shift
        if q.probe_mode == "continuous":
            return shift, float(q.latency_jump_samples)
        return shift, 0.0 if self._capture_shift is None else shift - self._capture_shift

    def _report(self, frame) -> Report:
        """Diagnostics of a window that passed validation."""
        ex, q = self.extractor, frame.quality
        room = ex.empty_room
        shift, drift = self._drift_samples(q, room)
        report = Report(values=dict(
            probe_mode=q.probe_mode, snr_db=np.round(q.snr_db, 1).tolist(),
            clipped_fraction=f"{q.clipped_fraction:.2e}",
            direct_delay_drift_us=np.round(q.direct_delay_drift_s * 1e6, 1).tolist(),
            applied_shift_samples=round(shift, 3), drift_since_capture_samples=round(drift, 3),
            empty_room_ready=room.ready, empty_room_capturing=room.capturing, empty_room_frames=room.frames,
            empty_room_update=self.p.empty_room_update, frames=self.frames, published=self.published))
        if q.probe_mode == "continuous":
            report.values.update(music_room_residual_db=round(q.empty_room_residual_db, 1), history_ok=q.history_ok)
            if q.psf_sidelobe_db is not None:
                report.values.update(psf_sidelobe_db=np.round(q.psf_sidelobe_db, 1).tolist())
            report.values.update(music_frontend="on" if self.frontend is not None else "off")
            if self.frontend_problem:
                report.problem("music_frontend", f"music front end not used, plain continuous kernels published: "
                                                 f"{self.frontend_problem}")
        if room.capturing:
            report.problem("empty_room", f"capturing the empty room ({room.requested} windows): keep it empty")
        elif not room.ready:
            report.problem("empty_room", "no empty-room response yet: nothing is published until "
                                         "audio/capture_empty_room is called with the room empty")
        if abs(drift) >= self.p.drift_warn_samples:
            report.problem("drift", f"direct path moved {drift:+.1f} samples since the empty-room capture (device "
                                    f"latency changed?): recapture the empty room")
        if q.probe_mode == "continuous" and room.ready:
            if not q.history_ok:
                report.problem("music_history", "a window was lost: the music probe needs the previous "
                                                f"{ex.config.room_taps} samples of emission before it can subtract "
                                                "the room again")
            elif frame.kernels is None:
                report.problem("music_unheard", f"the empty-room model leaves {q.empty_room_residual_db:.1f} dB of "
                                                "this window unexplained (music it did not hear): recapture the "
                                                "empty room while this music plays")
        report.clear("empty_room", "drift", "music_history", "music_unheard", "music_frontend")
        return report
