"""The ``sim`` backend: the simulator renders what every microphone hears, window after window.

One scene is drawn from the scenario with ``seed`` (room, rig, person, audio conditions). The probe is the
scenario's unless the node names one (``probe_type`` / ``music_file`` '' = the scenario's; rate, window, band and
duration always come from the node): ``scenario:=music`` plays music. A scenario with library music
(``audio.music_source: library``) plays a track of the library's ``music_split`` (default ``test``: music no model
was trained on) from a seeded start; without a built library it falls back to the synthetic track and says so once
(``warnings``). With a music probe and ``empty_room_s`` < 0 (auto) the room stays empty for ``music_empty_room_s``
(the pose-kernel node's music capture must hear the room alone for 82 windows); chirps take 2 s. Window k is
``Simulator.render_capture(scene, k)`` with its own generator seeded by ``(seed, k)``: the person moves with scene
time (``sim.choreography.Motion``: walking paces, ``offer_*`` reach out and back), and the same seed gives the same
windows whatever the pacing. The first ``empty_room_s`` seconds render the room without the person (for the
pose-kernel node's empty-room capture). The ground truth of each window (joints in ``base_link``, or None while the
room is empty) stays available from ``ground_truth(sequence)`` for the last ``truth_history`` windows.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .probe_setup import ProbeSettings
from .window import CaptureWindow, Problem, SignalLimits, check_recording

AUTO_EMPTY_ROOM_S = 2.0


@dataclass
class SimConfig:
    scenario: str = "default"
    rig: str = ""                # "" = the scenario's rig; else a name from config/rigs/ or a YAML path
    seed: int = 0
    pose: str = ""               # "" = the drawn pose; else a library pose (walking, offer_left, ...)
    empty_room_s: float = 0.0      # < 0: auto (AUTO_EMPTY_ROOM_S for chirp / sweep, music_empty_room_s for music)
    music_empty_room_s: float = 9.0
    music_split: str = "test"       # library music: the split its tracks come from
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
        self.warnings: list[str] = []
        probe = probe or ProbeSettings()
        probe.validate()
        scenario = load_scenario(self.config.scenario)
        scene = scenario.sample(np.random.default_rng(self.config.seed))
        self.probe = probe.or_scenario(scene.audio.probe, scene.audio.music_file)
        if self.probe.probe_type == "music" and not self.probe.music_file:
            scene = self._library_music(scene)
        self.probe = self.probe.or_scenario(scene.audio.probe, scene.audio.music_file)
        self.empty_room_s = self.config.empty_room_s if self.config.empty_room_s >= 0 else (
            self.config.music_empty_room_s if self.probe.probe_type == "music" else AUTO_EMPTY_ROOM_S)
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
            person = dataclasses.replace(person, pose=self.config.pose, time_s=-self.empty_room_s)
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
        self.slowed = 0             # music: windows of real time the simulated world fell behind (instead of skips)

    def _library_music(self, scene):
        """``scene`` with a track of ``music_split`` when its scenario asks for library music; unchanged (synthetic
        track, one warning) when no library is built."""
        if getattr(scene.audio, "music_source", "synthetic") != "library":
            return scene
        try:
            from av_pose_ros.audio.music_library import MusicLibraryError, scene_with_library_music
        except ImportError as err:
            self.warnings.append(f"library music asked for but the music library module is missing ({err}); "
                                 f"playing the synthetic track")
            return scene
        try:
            scene = scene_with_library_music(scene, self.config.music_split,
                                             np.random.default_rng([self.config.seed, 11]))
        except (MusicLibraryError, OSError) as err:
            self.warnings.append(f"library music asked for but {err}; playing the synthetic track instead")
        return scene

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
        return {"windows": self._k, "skipped": self.skipped, "slowed": self.slowed,
                "render_ms": round(self.render_s * 1e3, 1),
                "realtime_factor": round(window_s / self.render_s, 2) if self.render_s else 0.0}

    def ground_truth(self, sequence: int) -> GroundTruth | None:
        return self._truth.get(int(sequence))

    def render(self, k: int):
        """The simulator's ``Capture`` of window ``k`` (deterministic for a seed)."""
        person = k * self.window_samples / self.fs >= self.empty_room_s
        return self.simulator.render_capture(self.scene, k, person=person,
                                             rng=np.random.default_rng([self.config.seed, k]))

    def next_window(self, timeout_s: float = 1.0) -> CaptureWindow | None:
        if not self._started:
            self.start()
        window_s = self.window_samples / self.fs
        if self.config.realtime:
            # Rendering slower than real time: skip windows (a sequence gap, as a device that dropped them) so
            # stamps stay acquisition times instead of drifting behind the clock. A continuous probe (music) cannot
            # afford gaps (the pose-kernel stage needs the emission history of the last room_taps samples, and its
            # empty-room capture restarts at every gap): the simulated world waits instead, i.e. runs slower than
            # real time, and the clock is re-anchored so stamps stay close to acquisition times.
            behind = int((time.monotonic() - self._t0_mono) / window_s) - self._k - 1
            if behind > 0 and self.probe_type == "music":
                self._t0_mono += behind * window_s
                self._t0_ns += int(round(behind * window_s * 1e9))
                self.slowed += behind
            elif behind > 0:
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
