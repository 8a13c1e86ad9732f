"""The ``sim`` backend: the simulator renders what every microphone hears, window after window.

One scene is drawn from the scenario with ``seed`` (room, rig, person, audio conditions); the probe settings of
the node replace the scenario's (type, rate, window, band, duration, music file) so that what is published is what
the node was asked to emit. Window k is ``Simulator.render_capture(scene, k)`` with its own generator seeded by
``(seed, k)``: the person moves with scene time (``sim.choreography.Motion``: walking paces, ``offer_*`` reach out and
back), and the same seed gives the same windows whatever the pacing. The first ``empty_room_s`` seconds render the
room without the person (for the pose-kernel node's empty-room capture). The ground truth of each window (joints
in ``base_link``, or None while the room is empty) stays available from ``ground_truth(sequence)`` for the last
``truth_history`` windows.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .probe_setup import ProbeSettings
from .window import CaptureWindow, Problem, SignalLimits, check_recording


@dataclass
class SimConfig:
    scenario: str = "default"
    rig: str = ""                # "" = the scenario's rig; else a name from config/rigs/ or a YAML path
    seed: int = 0
    pose: str = ""               # "" = the drawn pose; else a library pose (walking, offer_left, ...)
    empty_room_s: float = 0.0
    realtime: bool = True
    truth_history: int = 200
    limits: SignalLimits = field(default_factory=SignalLimits)


@dataclass(frozen=True)
class GroundTruth:
    sequence: int
    stamp_ns: int
    scene_time_s: float
    joints: np.ndarray | None          # (17, 3) base_link metres, None for an empty-room window
    base_from_camera_link: np.ndarray  # 4x4


class SimSource:
    def __init__(self, config: SimConfig | None = None, probe: ProbeSettings | None = None):
        from av_pose_ros.sim.body import MOTION_NAMES, library_pose
        from av_pose_ros.sim.render import Simulator
        from av_pose_ros.sim.rig import load_rig
        from av_pose_ros.sim.scenario import load_scenario

        self.config = config or SimConfig()
        self.probe = probe or ProbeSettings()
        self.probe.validate()
        scenario = load_scenario(self.config.scenario)
        scene = scenario.sample(np.random.default_rng(self.config.seed))
        audio = scene.audio
        if self.config.rig:
            rig = load_rig(self.config.rig)
            gains = np.random.default_rng([self.config.seed, 1]).normal(0.0, 0.5, len(rig.mics))
            # the scenario's per-speaker calibration errors belong to its own rig
            truth = dataclasses.replace(scene.truth, speaker_offsets_m=None, mic_offsets_m=None)
            scene = dataclasses.replace(scene, rig=rig, truth=truth)
            audio = dataclasses.replace(audio, mic_gain_db=tuple(gains.tolist()))
        audio = dataclasses.replace(audio, probe=self.probe.probe_type, fs=int(self.probe.fs),
                                    window_s=self.probe.window_samples / self.probe.fs,
                                    probe_duration_s=self.probe.duration_s, band_hz=tuple(self.probe.band_hz),
                                    music_file=self.probe.music_file or None)
        person = scene.person
        if self.config.pose:
            if self.config.pose not in MOTION_NAMES:
                library_pose(self.config.pose)      # raises ValueError naming the known poses
            # a chosen pose or scripted motion starts at its beginning when the person enters
            person = dataclasses.replace(person, pose=self.config.pose, time_s=-self.config.empty_room_s)
        self.scene = dataclasses.replace(scene, audio=audio, person=person)
        self.simulator = Simulator()
        self.emission = self.simulator.emission(self.scene)
        self.fs = int(self.probe.fs)
        self.window_samples = self.emission.window_samples
        self.n_mics = len(self.scene.rig.mics)
        self.n_speakers = len(self.scene.rig.speakers)
        self.probe_type = self.probe.probe_type
        self._k = 0
        self._t0_ns = 0
        self._t0_mono = 0.0
        self._started = False
        self._truth: OrderedDict[int, GroundTruth] = OrderedDict()
        self.last_capture = None
        self.render_s = 0.0
        self.skipped = 0

    def start(self) -> None:
        self._t0_ns = time.time_ns()
        self._t0_mono = time.monotonic()
        self._started = True

    @property
    def finished(self) -> bool:
        return False

    def status(self) -> dict[str, Problem]:
        return {}

    def stats(self) -> dict[str, float]:
        window_s = self.window_samples / self.fs
        return {"windows": self._k, "skipped": self.skipped, "render_ms": round(self.render_s * 1e3, 1),
                "realtime_factor": round(window_s / self.render_s, 2) if self.render_s else 0.0}

    def ground_truth(self, sequence: int) -> GroundTruth | None:
        return self._truth.get(int(sequence))

    def render(self, k: int):
        """The simulator's ``Capture`` of window ``k`` (deterministic for a seed)."""
        person = k * self.window_samples / self.fs >= self.config.empty_room_s
        return self.simulator.render_capture(self.scene, k, person=person,
                                             rng=np.random.default_rng([self.config.seed, k]))

    def next_window(self, timeout_s: float = 1.0) -> CaptureWindow | None:
        if not self._started:
            self.start()
        window_s = self.window_samples / self.fs
        if self.config.realtime:
            # Rendering slower than real time: skip windows (a sequence gap, as a device that dropped them) so
            # stamps stay acquisition times instead of drifting behind the clock.
            behind = int((time.monotonic() - self._t0_mono) / window_s) - self._k - 1
            if behind > 0:
                self._k += behind
                self.skipped += behind
        k = self._k
        if self.config.realtime:
            # Start early (twice the recent render time) so the window is ready when it ends, as a device's is.
            wait = self._t0_mono + (k + 1) * window_s - time.monotonic() - 2.0 * self.render_s
            if wait > timeout_s:
                time.sleep(timeout_s)
                return None
        t = time.monotonic()
        cap = self.render(k)
        self.render_s = time.monotonic() - t if not self.render_s else 0.8 * self.render_s + 0.2 * (
            time.monotonic() - t)
        if self.config.realtime:
            time.sleep(max(0.0, self._t0_mono + (k + 1) * window_s - time.monotonic()))
        stamp = self._t0_ns + int(round(k * window_s * 1e9))
        self._truth[k] = GroundTruth(k, stamp, cap.time_s, cap.joints, cap.base_from_camera_link)
        while len(self._truth) > self.config.truth_history:
            self._truth.popitem(last=False)
        self.last_capture = cap
        self._k += 1
        return CaptureWindow(cap.recording, cap.emissions, cap.fs, stamp, k,
                             check_recording(cap.recording, self.config.limits))

    def close(self) -> None:
        pass
