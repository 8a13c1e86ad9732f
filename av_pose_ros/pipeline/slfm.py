"""SLfM stage: head-camera images -> head rotation, binaural audio -> sound direction (no rclpy).

`SlfmHandler` keeps the previous image (the rotation is between two views), the integrated yaw, the camera's field
of view and the rolling binaural buffer the azimuth model reads; slfm_node drives it. Confidence comes from the
estimators (`estimate_with_confidence`): the rotation model's disagreement between the two orders of the views (the
wide model: its overlap and alignment), the azimuth model's concentration of its delay distribution.

Front/back: the azimuth model hears only the lateral angle; a `SourceTracker` combines successive windows with the
head's yaw at each window (integrated from the rotation model, or read from TF) into a full-circle azimuth and a
front/back confidence (`slfm.tracking`)."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.params import Param

PARAMS = [
    Param("mode", "both", "Which estimates to run.", choices=("both", "vision", "audio"), read_only=True),
    Param("rotation_model_path", "models/slfm_rotation.pt", "Visual rotation model.", read_only=True),
    Param("azimuth_model_path", "models/slfm_azimuth.pt", "Binaural azimuth model.", read_only=True),
    Param("head_calibration_path", "models/slfm_head_calibration.json", "Which interaural delay means which "
          "direction for this head (`av-pose calibrate-head`); '' = the spherical-head curve.", read_only=True),
    Param("head_frame", "head_link", "Frame of the head (sound directions are in it)."),
    Param("yaw_parent_frame", "head_base_link", "Parent of head_frame for the integrated-yaw TF."),
    Param("publish_tf", True, "Publish yaw_parent_frame -> head_frame rotated by the integrated yaw."),
    Param("fov_deg", 0.0, "Horizontal field of view of the head camera (deg); 0 = from camera info.", 0.0, 179.0),
    Param("left_channel", 0, "Channel of the left ear in the AudioFrame.", 0, 64),
    Param("right_channel", 1, "Channel of the right ear in the AudioFrame.", 0, 64),
    Param("audio_window_s", 1.0, "Audio used for one azimuth estimate (s).", 0.25, 10.0),
    Param("audio_hop_s", 0.5, "Time between azimuth estimates (s).", 0.05, 10.0),
    Param("symmetry_scale_deg", 3.0, "Rotation (slfm_rotation.pt): disagreement (deg) of the turn read both ways at "
          "which its confidence falls to 1/e.", 0.1, 90.0),
    Param("track_front_back", True, "Full-circle azimuth: combine successive windows with the head's yaw to tell a "
                                    "source in front from its mirror behind (SourceTracker); false = front-folded."),
    Param("head_yaw_source", "rotation", "Head yaw the tracker reads: rotation = integrated from the rotation model "
                                         "(and published on TF when publish_tf), tf = yaw_parent_frame -> head_frame "
                                         "from TF (nothing published).", choices=("rotation", "tf"), read_only=True),
    Param("tracker_measurement_std_deg", 5.0, "Tracker: lateral error of a good per-window estimate (deg).", 0.5, 45.0,
          read_only=True),
    Param("tracker_drift_std_deg", 1.5, "Tracker: random-walk step of the source direction per estimate (deg).",
          0.0, 45.0, read_only=True),
    Param("front_back_resolved", 0.9, "front_back_confidence from which front_back_folded is false.", 0.5, 1.0,
          read_only=True),
]


@dataclass
class RotationOutput:
    stamp_ns: int
    previous_stamp_ns: int
    relative_yaw: float
    integrated_yaw: float
    confidence: float


@dataclass
class DirectionOutput:
    stamp_ns: int        # start of the audio the estimate used
    azimuth: float       # head frame; full circle when tracked, else front-folded
    confidence: float
    front_back_confidence: float = 0.5
    folded: bool = True  # front/back not resolved: the source may be at the mirrored azimuth
    head_yaw: float = 0.0


class BinauralBuffer:
    """The newest `window` samples of the two ear channels, from frames of any length."""

    def __init__(self):
        self.chunks: deque = deque()
        self.fs = 0

    def clear(self) -> None:
        self.chunks.clear()

    def add(self, stamp_ns: int, ears: np.ndarray, fs: int, window: int) -> None:
        if fs != self.fs:
            self.chunks.clear()  # a new rate: start again
            self.fs = fs
        self.chunks.append((stamp_ns, ears))
        while sum(a.shape[1] for _, a in self.chunks) - self.chunks[0][1].shape[1] >= window:
            self.chunks.popleft()

    def clip(self, window: int) -> np.ndarray | None:
        """The newest `window` samples (2, window), or None while fewer have arrived."""
        if sum(a.shape[1] for _, a in self.chunks) < window:
            return None
        return np.concatenate([a for _, a in self.chunks], axis=1)[:, -window:]


class SlfmHandler:
    """Rotation and direction estimates with the slfm_node parameters `p`; `rotation` / `azimuth` are the loaded
    estimators (None: that half is off); `lookup(target, source, stamp_ns, timeout_s) -> 4x4` reads the head yaw
    from TF when `head_yaw_source` is tf."""

    def __init__(self, p, rotation, azimuth, lookup=None):
        from av_pose_ros.slfm import SourceTracker, TrackerConfig

        self.p = p
        self.rotation = rotation
        self.azimuth = azimuth
        self.lookup = lookup
        self.fov_from_info: float | None = None
        self.buffer = BinauralBuffer()
        # overlapping windows (hop < window) hear the same samples again: each window's evidence is weighted down
        config = TrackerConfig(measurement_std_deg=p.tracker_measurement_std_deg,
                               drift_std_deg=p.tracker_drift_std_deg, resolved_threshold=p.front_back_resolved,
                               evidence_weight=min(1.0, p.audio_hop_s / p.audio_window_s))
        self.tracker = SourceTracker(lambda clip, fs: 0.0, config,  # fed the handler's own estimates
                                     head_calibration=getattr(azimuth, "calibration", None))
        self._yaw_lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Time went back: the previous image, the yaw integrated so far and the buffered audio are of the old
        timeline."""
        self.previous: tuple[int, np.ndarray] | None = None
        self.integrated_yaw = 0.0
        with self._yaw_lock:
            self.yaw_history: deque = deque(maxlen=512)  # (stamp_ns, integrated yaw) of the processed images
        self.buffer.clear()
        self.tracker.reset()
        self.last_estimate_ns = 0

    def on_camera_info(self, width: int, k) -> None:
        fx = float(k[0])
        if fx > 0 and width > 0:
            self.fov_from_info = float(np.degrees(2 * np.arctan(width / (2 * fx))))

    def on_image(self, rgb: np.ndarray, stamp_ns: int) -> RotationOutput | None:
        """Yaw between the previous image and this one (None for the first image, or one not newer)."""
        from av_pose_ros.slfm import SlfmInputError

        if self.rotation is None:
            return None
        fov = self.p.fov_deg or self.fov_from_info
        if not fov:
            raise StageError("input_fov", "no field of view: set fov_deg or publish head_camera/camera_info")
        previous, self.previous = self.previous, (stamp_ns, rgb)
        if previous is None or previous[0] >= stamp_ns:
            self._remember_yaw(stamp_ns)
            return None
        try:
            forward, confidence = self.rotation.estimate_with_confidence(previous[1], rgb, fov,
                                                                         self.p.symmetry_scale_deg)
        except SlfmInputError as err:
            raise StageError("input_image", str(err)) from err
        self.integrated_yaw += float(forward)
        self._remember_yaw(stamp_ns)
        return RotationOutput(stamp_ns, previous[0], float(forward), self.integrated_yaw, confidence)

    def on_audio(self, audio) -> DirectionOutput | None:
        """Sound direction once `audio_window_s` of audio is buffered, every `audio_hop_s`; None in between."""
        from av_pose_ros.slfm import SlfmInputError

        if self.azimuth is None:
            return None
        left, right = self.p.left_channel, self.p.right_channel
        if max(left, right) >= audio.audio.shape[0]:
            raise StageError("input_audio", f"ear channels {left}, {right} but the frame has "
                                            f"{audio.audio.shape[0]} channels")
        fs = int(audio.sample_rate)
        window = int(self.p.audio_window_s * fs)
        self.buffer.add(audio.stamp_ns, audio.audio[[left, right]], fs, window)
        clip = self.buffer.clip(window)
        if clip is None or audio.stamp_ns - self.last_estimate_ns < self.p.audio_hop_s * 1e9:
            return None
        try:
            forward, confidence = self.azimuth.estimate_with_confidence(clip, fs)
        except SlfmInputError as err:
            raise StageError("input_audio", str(err)) from err
        self.last_estimate_ns = audio.stamp_ns
        start_ns = audio.stamp_ns + int(audio.audio.shape[1] / fs * 1e9) - int(window / fs * 1e9)
        out = DirectionOutput(start_ns, float(forward), confidence)
        if self.p.track_front_back:
            out.head_yaw = self.head_yaw_at(start_ns + int(window / fs * 5e8))  # the middle of the window
            weight = min(1.0, self.p.audio_hop_s / self.p.audio_window_s)  # both are live parameters
            if weight != self.tracker.config.evidence_weight:
                self.tracker.config = dataclasses.replace(self.tracker.config, evidence_weight=weight)
            self.tracker.update_lateral(float(forward), out.head_yaw)
            state = self.tracker.state
            out.azimuth, out.front_back_confidence, out.folded = state.azimuth, state.front_back_confidence, \
                not state.resolved
        return out

    # --------------------------------------------------------------------------------------------- head yaw
    def _remember_yaw(self, stamp_ns: int) -> None:
        with self._yaw_lock:
            if self.yaw_history and self.yaw_history[-1][0] >= stamp_ns:
                return
            self.yaw_history.append((stamp_ns, self.integrated_yaw))

    def head_yaw_at(self, stamp_ns: int) -> float:
        """The head's yaw (rad, + left) at `stamp_ns` in the frame it turns in: from TF (head_yaw_source tf), or the
        rotation model's integrated yaw interpolated between images (0 before the first image, the newest after)."""
        if self.p.head_yaw_source == "tf":
            if self.lookup is None:
                raise StageError("input_head_yaw", "head_yaw_source is tf but no TF lookup was given")
            try:  # no waiting: this runs on the executor that feeds the TF buffer
                m = self.lookup(self.p.yaw_parent_frame, self.p.head_frame, stamp_ns, 0.0)
            except LookupError:  # TransformError: not yet at that stamp; the newest will do
                try:
                    m = self.lookup(self.p.yaw_parent_frame, self.p.head_frame, 0, 0.0)
                except LookupError as err:
                    raise StageError("input_head_yaw", f"no head yaw {self.p.yaw_parent_frame} -> "
                                                    f"{self.p.head_frame} on TF: {err}") from err
            return math.atan2(float(m[1, 0]), float(m[0, 0]))
        with self._yaw_lock:
            history = list(self.yaw_history)
        if not history:
            return 0.0
        stamps, yaws = np.array([h[0] for h in history], float), np.array([h[1] for h in history])
        return float(np.interp(float(stamp_ns), stamps, yaws))
