"""Lifter stage: keypoints + pose kernels + camera model + TF -> metric joints (no rclpy).

`LifterHandler` keeps the pairing of keypoints with pose kernels (nearest stamp within `sync_slop_s`), the newest
camera matrix and when it arrived, and lifts one pair at a time. lifter_node and `av-pose reprocess` call the same
methods; the node lifts only the newest ready pair on its worker thread, reprocess every pair. Time comes in as
`now_ns` from the driver (the node's clock at arrival; in a bag, the time the message was recorded), so camera-info
freshness is judged the same way in both.

Every lift goes through the lifter's refusal rule and calibration (`av_pose_ros.lifting.calibration.assess`, the
rule `eval-lifter` applies): confidence is the calibrated chance that a joint is within 10 cm, covariance the
calibrated ray-aligned Gaussian (m^2, in `output_frame`). A frame outside what the lifter can measure (range, audio
and vision disagreeing, too few keypoints, ...) is still published, *marked*: `source` "cnn_flagged", every joint
at the flagged frames' low confidence and wide covariance, and `PoseOutput.flag_reasons` say why (the node turns
them into a diagnostic and a throttled log line).

When the audio is absent (no pose kernel for longer than `audio_wait_s` before a keypoint frame: the audio stopped or
every window is refused), or a frame's kernel cannot be used, the frame is published from the vision-only fallback
(`av_pose_ros.lifting.fallback`, `fallback_model_path`) when one is loaded: `source` "vision_only", flagged
`no_audio`, with that network's val-fitted low confidence and wide covariance. A single missing window while kernels
flow publishes nothing for its frame (the previous pose, a window old, stands)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from av_pose_ros.pipeline.common import Lookup, Report, StageError, require_coco17
from av_pose_ros.pipeline.params import Param
from av_pose_ros.primitives.pairing import NearestPairer
from av_pose_ros.primitives.skeleton import COCO17_JOINTS

PARAMS = [
    Param("model_path", "models/lifter.pt", "Lifter weights (a relative path is looked up in the package).",
          read_only=True),
    Param("output_frame", "base_link", "Frame the 3D pose, markers and joint TF are published in."),
    Param("sync_slop_s", 0.06, "Largest stamp difference between keypoints and pose kernel that still pair (s).",
          0.001, 1.0),
    Param("audio_wait_s", 0.5, "How long a keypoint frame waits for its pose kernel before it counts as unmatched "
          "(s): a kernel arrives a capture window plus the sound device's latency after the image of the same "
          "instant (0.15-0.45 s on a robot).", 0.0, 5.0),
    Param("fallback_model_path", "models/lifter_vision.pt", "Vision-only lifter for frames without a usable pose "
          "kernel: their pose is published flagged (source vision_only, low confidence, wide covariance); empty: "
          "such frames publish nothing.", read_only=True),
    Param("min_joint_confidence", 0.0, "Joints below this confidence are left out of TF and markers.", 0.0, 1.0),
    Param("position_std_m", 0.05, "Only for a model without a stored calibration: position standard deviation of a "
          "joint with confidence 1 (m; the covariance is this / confidence, round).", 0.001, 1.0),
    Param("publish_tf", True, "Publish REP-155 body and joint frames."),
    Param("camera_info_timeout_s", 5.0, "Camera info older than this counts as missing (s).", 0.0, 3600.0),
    Param("tf_timeout_s", 0.05, "How long a lift waits for a transform at the keypoints' stamp (s; on the lifting "
          "thread, so inputs keep arriving meanwhile).", 0.0, 1.0),
    Param("device", "auto", "Where the CNN runs: auto (CUDA when present), cpu, cuda or cuda:N.", read_only=True),
    Param("torch_threads", 1, "CPU threads for the CNN. 1 suits a robot computer shared with other nodes (more "
          "threads spin against each other under load).", 1, 64, read_only=True),
]


def load_lifter(p):
    """The lifter of parameters `p` (model_path, relative to the package unless absolute, torch_threads, device);
    OSError, ValueError or RuntimeError when its weights cannot be loaded."""
    from av_pose_ros.lifting import Lifter  # deferred: torch import
    from av_pose_ros.primitives.paths import package_file

    return Lifter.load(package_file(p.model_path), threads=p.torch_threads, device=p.device)


def load_fallback(p):
    """The vision-only fallback of parameters `p` (None when `fallback_model_path` is empty); OSError, ValueError or
    RuntimeError when its weights cannot be loaded."""
    if not p.fallback_model_path:
        return None
    from av_pose_ros.lifting.fallback import VisionFallback  # deferred: torch import
    from av_pose_ros.primitives.paths import package_file

    return VisionFallback.load(package_file(p.fallback_model_path), threads=p.torch_threads, device=p.device)


def camera_matrix(k) -> np.ndarray:
    """K (3x3) from CameraInfo.k; StageError when it is zero or not finite (an uncalibrated camera)."""
    K = np.asarray(k, dtype=float).reshape(3, 3)
    if not np.any(K) or not np.all(np.isfinite(K)):
        raise StageError("no_camera_info", "camera info K is zero or not finite (uncalibrated camera)")
    return K


@dataclass
class PoseOutput:
    """Metric joints of one person (the fields of a HumanPose3D): joints (17, 3) m, confidence (17,),
    covariance (17, 3, 3) m^2, in `frame_id` at the image's stamp."""

    stamp_ns: int
    frame_id: str
    body_id: str
    joints: np.ndarray
    confidence: np.ndarray
    covariance: np.ndarray
    source: str = "cnn"      # "cnn_flagged": outside what the lifter can measure; "vision_only": no usable audio
    joint_names: list[str] = field(default_factory=lambda: list(COCO17_JOINTS))
    flag_reasons: tuple[str, ...] = ()   # failed refusal checks (av_pose_ros.lifting.refusal.CHECKS)
    flag_message: str = ""               # the evidence behind them, for the diagnostic

    @property
    def flagged(self) -> bool:
        return bool(self.flag_reasons)


def lift_pose(lifter, kp, kernels, K: np.ndarray, lookup: Lookup, output_frame: str, position_std_m: float):
    """Metric joints of the first person of `kp` with `kernels`, through the refusal rule and the calibration:
    `lifting.calibration.Assessed` (joints (17, 3), confidence (17,), covariance (17, 3, 3) m^2 in
    `output_frame`, verdict). StageError with the diagnostic code when it cannot lift at all."""
    from av_pose_ros.lifting.calibration import assess  # deferred: torch import

    try:
        world_from_camera = lookup(output_frame, kp.frame_id, kp.stamp_ns)
        speakers = np.array([lookup(output_frame, f, kernels.stamp_ns)[:3, 3] for f in kernels.speaker_frames])
        mics = np.array([lookup(output_frame, f, kernels.stamp_ns)[:3, 3] for f in kernels.mic_frames])
    except LookupError as err:
        raise StageError("tf", str(err)) from err
    try:
        out = assess(lifter, kp.keypoints[0], K, world_from_camera, kernels.kernels, speakers, mics,
                     kernels.sample_rate, speed_of_sound=kernels.speed_of_sound)
    except ValueError as err:
        raise StageError("input_lifting", str(err)) from err
    if not np.all(np.isfinite(out.joints)):
        raise StageError("lifting", "the lifter returned non-finite joints; not published")
    if out.covariance is None:       # a model without calibration: the old round covariance from the confidence
        std = position_std_m / np.maximum(out.confidence, 0.05)
        out.covariance = np.eye(3)[None] * (std**2)[:, None, None]
    return out


class LifterHandler:
    """Pairing, camera model and lifting with the lifter_node parameters `p`. `lookup(target, source, stamp_ns,
    timeout_s)` gives transforms; `lifter` is the loaded model (None: nothing can be lifted, said in diagnostics).
    `fallback` (a `lifting.fallback.VisionFallback` or None) lifts the frames no kernel pairs with.
    Inputs (`on_*`, `reset`) come from one thread, `lift` may run on another."""

    def __init__(self, p, lookup: Lookup, lifter, fallback=None):
        self.p = p
        self.lookup = lookup
        self.lifter = lifter
        self.fallback = fallback
        self.pairer = NearestPairer(self._slop_ns(), self._wait_ns())
        self._camera: tuple[object, int] | None = None   # (CameraInfo.k, arrival time ns)
        self._lock = threading.Lock()
        self.published = 0

    def _slop_ns(self) -> int:
        return int(self.p.sync_slop_s * 1e9)

    def _wait_ns(self) -> int:
        return int(max(self.p.audio_wait_s, self.p.sync_slop_s) * 1e9)

    def configure(self) -> None:
        """Parameters changed: the pairing window follows `sync_slop_s` and `audio_wait_s` (every other parameter
        is read per lift)."""
        with self._lock:
            self.pairer.set_slop(self._slop_ns(), self._wait_ns())

    def reset(self) -> None:
        """Time went back: waiting pairs and the camera model belong to the old timeline."""
        with self._lock:
            self.pairer.reset()
            self._camera = None

    # -- inputs --------------------------------------------------------------------------------------------------
    def on_camera_info(self, k, now_ns: int) -> None:
        self._camera = (k, now_ns)

    def on_keypoints(self, kp) -> tuple[list, Report]:
        """Add a keypoint frame; returns the (keypoints, kernels) pairs now ready and the pairing report."""
        require_coco17(kp.joint_names, "input_keypoints")
        if not kp.undistorted:
            raise StageError("input_keypoints", "keypoints are distorted pixels (no camera info upstream)")
        with self._lock:
            self.pairer.add_leading(kp.stamp_ns, kp)
            return self._ready()

    def on_kernels(self, kernels) -> tuple[list, Report]:
        """Add a pose kernel; returns the pairs now ready and the pairing report."""
        if not kernels.empty_room_subtracted:
            raise StageError("input_kernel", "no empty-room response yet: kernels still hold the static room")
        with self._lock:
            self.pairer.add_following(kernels.stamp_ns, kernels)
            return self._ready()

    def flush(self) -> tuple[list, Report]:
        """The input has ended (end of a bag): settle every waiting keypoint frame."""
        with self._lock:
            self.pairer.newest_ns += self.pairer.max_wait_ns + 1
            return self._ready()

    def _ready(self) -> tuple[list, Report]:
        pairs, unmatched = self.pairer.pop_ready()
        report = Report()
        stale = [u for u in unmatched if self.pairer.newest_following_ns - u.stamp_ns > self.pairer.max_wait_ns]
        if stale:
            report.problem("input_stale", f"{len(stale)} keypoint frame(s) stamped far from any pose kernel (e.g. "
                                          f"{stale[0].stamp_ns * 1e-9:.3f} s): clocks or stamps disagree")
        ready = [(lead.stamp_ns, lead.item, follow.item) for lead, follow in pairs]
        if len(stale) < len(unmatched):
            # audio absent: no kernel for longer than the wait before the frame (the audio stopped, or every window
            # is refused); a single missing window while kernels flow publishes nothing (the last pose stands)
            absent = [u for u in unmatched if u.stamp_ns - self.pairer.newest_following_ns > self.pairer.max_wait_ns]
            what = "published from the vision-only fallback, flagged" if self.fallback and absent else \
                "nothing published"
            report.problem("no_audio", f"keypoint frames without a pose kernel within {self.p.sync_slop_s * 1e3:.0f} "
                                       f"ms: {what} (not metric)")
            if self.fallback is not None:
                ready = sorted(ready + [(u.stamp_ns, u.item, None) for u in absent], key=lambda r: r[0])
        elif pairs:
            report.clear("no_audio")
        return [(kp, kernels) for _, kp, kernels in ready], report

    # -- lifting -------------------------------------------------------------------------------------------------
    def camera_matrix(self, now_ns: int) -> np.ndarray:
        """K of the newest camera info if it arrived within `camera_info_timeout_s` of `now_ns`, else StageError."""
        camera = self._camera
        if camera is None or (now_ns - camera[1]) * 1e-9 > self.p.camera_info_timeout_s:
            raise StageError("no_camera_info", "no recent camera/camera_info: cannot lift")
        return camera_matrix(camera[0])

    def lift(self, kp, kernels, now_ns: int, timeout_s: float | None = None) -> PoseOutput | None:
        """The pose of the first person of `kp` (None when the frame has nobody); `kernels` None: a frame no kernel
        paired with (the fallback's pose). StageError with the diagnostic code when it cannot; transforms are
        waited for up to `timeout_s` (default: the `tf_timeout_s` parameter)."""
        if self.lifter is None:
            raise StageError("model", "no lifter model loaded: nothing published")
        K = self.camera_matrix(now_ns)
        if kp.keypoints.shape[0] == 0:
            return None
        p = self.p
        wait = p.tf_timeout_s if timeout_s is None else timeout_s
        lookup = lambda t, s, stamp: self.lookup(t, s, stamp, wait)  # noqa: E731
        if kernels is None:
            return self._fallback(kp, K, lookup, "no pose kernel for this frame")
        try:
            out = lift_pose(self.lifter, kp, kernels, K, lookup, p.output_frame, p.position_std_m)
        except StageError as err:
            if err.code != "input_lifting" or self.fallback is None:
                raise
            return self._fallback(kp, K, lookup, f"the pose kernel could not be used ({err})")
        self.published += 1
        v = out.verdict
        return PoseOutput(kp.stamp_ns, p.output_frame, kp.body_ids[0], out.joints, out.confidence, out.covariance,
                          source="cnn_flagged" if v.flagged else "cnn", flag_reasons=v.reasons,
                          flag_message=v.message() if v.flagged else "")

    def _fallback(self, kp, K: np.ndarray, lookup: Lookup, why: str) -> PoseOutput:
        """The vision-only fallback's pose of `kp`'s first person, flagged `no_audio` (StageError without one)."""
        from av_pose_ros.lifting.fallback import MESSAGE, NO_AUDIO

        if self.fallback is None:
            raise StageError("no_audio", f"{why}: no vision-only fallback loaded, nothing published")
        try:
            world_from_camera = lookup(self.p.output_frame, kp.frame_id, kp.stamp_ns)
        except LookupError as err:
            raise StageError("tf", str(err)) from err
        try:
            joints, confidence, covariance = self.fallback.pose(kp.keypoints[0], K, world_from_camera)
        except ValueError as err:
            raise StageError("input_lifting", str(err)) from err
        self.published += 1
        return PoseOutput(kp.stamp_ns, self.p.output_frame, kp.body_ids[0], joints, confidence, covariance,
                          source="vision_only", flag_reasons=(NO_AUDIO,), flag_message=f"{why}; {MESSAGE}")
