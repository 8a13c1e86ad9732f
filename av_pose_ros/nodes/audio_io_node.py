"""audio_io_node: emits the probe through the speakers and publishes every microphone, window by window.

Publishes `audio/frames` (AudioFrame, sensor-data QoS): one message per capture window (default 100 ms at 48 kHz),
header stamp = acquisition time of the window's first sample (device clock mapped to ROS time, see
`av_pose_ros.audio.clock`), frame_id = the rig frame (`camera_link`), mic_frames `mic_<i>` and speaker_frames
`speaker_<i>` (TF frames of the channels), probe = what each speaker emitted during the window, sample-aligned
with the audio. `sequence` counts windows since start; a gap means windows were dropped.

Backends (`backend` parameter): `device` (sounddevice full-duplex stream), `sim` (the simulator renders the
room and a moving person), `file` (multichannel WAV + probe). The capture runs in its own thread; a window that
would be garbage (NaN, clipped, an xrun inside, misaligned after a latency jump) is not published but reported.
Problems go to /diagnostics with a throttled log line: standing ones (no device and retrying, device lost,
wrong channel count or rate, file ended) while they last, per-window ones for `problem_hold_s` after they last
happened. The node never exits because of its input: a missing device is retried with backoff for ever.
Parameters are read at start (read-only; restart the node to change them), except `problem_hold_s`. Under
`use_sim_time` the stamps follow the node's clock: the window's age on the system clock is taken off the node's
`now`, so a simulator or bag /clock and the audio agree.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from rclpy.node import Node

from av_pose_ros.audio.clock import node_clock_stamp
from av_pose_ros.audio.duplex import DuplexConfig
from av_pose_ros.audio.probe_setup import FROM_SCENARIO, PROBE_TYPES, ProbeSettings
from av_pose_ros.audio.sim_source import SimConfig
from av_pose_ros.audio.sources import BACKENDS, AudioIOSettings, make_source
from av_pose_ros.audio.wav_source import FileConfig
from av_pose_ros.audio.window import ERROR, SignalLimits
from av_pose_ros.msg import AudioFrame
from av_pose_ros.ros.conversions import Audio, audio_to_msg
from av_pose_ros.ros.diagnostics import Health
from av_pose_ros.ros.parameters import Param, declare_parameters
from av_pose_ros.ros.qos import SENSOR_QOS
from av_pose_ros.ros.runner import run_node

RO = {"read_only": True}
PARAMS = [
    Param("backend", "device", "Where audio comes from.", choices=BACKENDS, **RO),
    Param("frame_id", "camera_link", "Rig frame put in the header (speaker/mic positions are given in it).", **RO),
    Param("mic_frame_prefix", "mic_", "TF frame of mic channel i is <prefix><i>.", **RO),
    Param("speaker_frame_prefix", "speaker_", "TF frame of speaker i is <prefix><i>.", **RO),
    Param("sample_rate", 48000, "Sample rate (Hz) of the stream, the probe and the published audio.", 8000, 192000,
          **RO),
    Param("window_s", 0.1, "Capture window (s); each window starts with the probe emission.", 0.01, 2.0, **RO),
    Param("probe_type", FROM_SCENARIO, "Probe the speakers emit ('' = the sim scenario's; chirp for the device "
          "and file backends).", choices=(FROM_SCENARIO,) + PROBE_TYPES, **RO),
    Param("probe_band_hz", [1000.0, 20000.0], "Chirp/sweep band [f0, f1] (Hz).", **RO),
    Param("probe_duration_s", 0.005, "Chirp/sweep length (s); must fit a slot (window / speakers).", 0.0005, 1.0,
          **RO),
    Param("probe_level", 0.5, "Peak amplitude of the emitted probe (full scale 1).", 0.001, 1.0, **RO),
    Param("music_file", "", "BGM mode: WAV track to play ('' = the sim scenario's track, a library track of "
          "music_split for library music, else the built-in synthetic track).", **RO),
    # device backend
    Param("device", "", "Sound device: name substring or index ('' = system default; 'pulse' for PulseAudio).", **RO),
    Param("speaker_channels", [0, 1, 2, 3], "Output channel of each speaker (entry i = speaker_<i>).", **RO),
    Param("mic_channels", [0, 1, 2, 3], "Input channel of each mic (entry i = mic_<i>); also the WAV channels "
                                        "for the file backend.", **RO),
    Param("latency_samples", 0, "Round trip output->input in samples (av-pose calibrate-audio --write).", 0, 480000,
          **RO),
    Param("startup_calibration", False, "Measure the round trip with a chirp each time the stream opens (needs "
                                        "reference_channels).", **RO),
    Param("track_latency", False, "Re-measure the round trip every window on reference_channels and realign.", **RO),
    Param("reference_channels", [-1, -1], "[input, output] channels of a direct loopback ([-1, -1] = none).", **RO),
    Param("reference_delay_samples", 0, "Delay the reference path itself adds (0 for a loopback).", 0, 48000, **RO),
    Param("device_latency", "high", "PortAudio suggested latency: low, high or seconds.", **RO),
    Param("blocksize", 0, "Frames per audio callback (0 = the host's choice, recommended).", 0, 65536, **RO),
    Param("warmup_s", 1.0, "Silence after opening before the first window (drivers settle).", 0.0, 10.0, **RO),
    Param("retry_max_s", 8.0, "Longest wait between attempts to (re)open a missing or lost device.", 0.1, 300.0,
          **RO),
    # sim backend
    Param("scenario", "default", "sim: scenario name (config/scenarios) or YAML path.", **RO),
    Param("rig", "", "sim: rig name or YAML path ('' = the scenario's rig).", **RO),
    Param("seed", 0, "sim: seed of the drawn scene and of every window's noise.", 0, 2 ** 31 - 1, **RO),
    Param("sim_pose", "", "sim: library pose to use instead of the drawn one (e.g. walking, offer_left).", **RO),
    Param("sim_empty_room_s", 0.0, "sim: seconds at the start with nobody in the room (< 0: auto, 2 s for chirps, "
          "sim_music_empty_room_s for music).", -1.0, 3600.0, **RO),
    Param("sim_music_empty_room_s", 9.0, "sim, auto empty room with music: seconds with nobody in the room (the "
          "pose-kernel node's music capture needs 82 windows of the room alone).", 0.0, 3600.0, **RO),
    Param("music_split", "test", "sim, library music: the library split tracks are drawn from (test: music no "
          "model was trained on).", choices=("train", "val", "test"), **RO),
    # file backend
    Param("wav_path", "", "file: multichannel WAV recording.", **RO),
    Param("probe_wav_path", "", "file: WAV of what the speakers played ('' = regenerate from probe_*).", **RO),
    Param("loop", False, "file: start over at the end instead of stopping.", **RO),
    # sim and file
    Param("realtime", True, "sim/file: hand out windows at the pace a device would; false = as fast as possible.",
          **RO),
    # checks
    Param("clip_level", 0.999, "|sample| at or above this counts as clipped.", 0.1, 1.0, **RO),
    Param("max_clipped_fraction", 1e-4, "Windows with more clipped samples are not published (1.0: publish all).",
          0.0, 1.0, **RO),
    Param("problem_hold_s", 5.0, "How long a per-window problem (xrun, NaN, clipping) stays in diagnostics.", 0.0,
          3600.0),
]


def settings_from_parameters(p) -> AudioIOSettings:
    """Map the node's parameters onto the backends' settings (raises ValueError for inconsistent ones)."""
    band = [float(f) for f in p.probe_band_hz]
    if len(band) != 2:
        raise ValueError(f"probe_band_hz must be [f0, f1], got {band}")
    probe = ProbeSettings(probe_type=p.probe_type, fs=int(p.sample_rate), window_s=float(p.window_s),
                          band_hz=(band[0], band[1]), duration_s=float(p.probe_duration_s),
                          level=float(p.probe_level), music_file=p.music_file)
    probe = probe if p.backend == "sim" else probe.or_default()
    probe.validate()
    limits = SignalLimits(float(p.clip_level), float(p.max_clipped_fraction))
    reference = tuple(int(c) for c in p.reference_channels)
    if len(reference) != 2:
        raise ValueError(f"reference_channels must be [input, output], got {list(reference)}")
    reference = () if min(reference) < 0 else reference
    settings = AudioIOSettings(backend=p.backend, probe=probe)
    if p.backend == "device":
        settings.device = DuplexConfig(
            device=p.device, speaker_channels=tuple(p.speaker_channels), mic_channels=tuple(p.mic_channels),
            latency_samples=int(p.latency_samples), blocksize=int(p.blocksize), device_latency=p.device_latency,
            warmup_s=float(p.warmup_s), startup_calibration=bool(p.startup_calibration),
            track_latency=bool(p.track_latency), reference_channels=reference,
            reference_delay_samples=int(p.reference_delay_samples), retry_max_s=float(p.retry_max_s), limits=limits)
    elif p.backend == "sim":
        settings.sim = SimConfig(scenario=p.scenario, rig=p.rig, seed=int(p.seed), pose=p.sim_pose,
                                 empty_room_s=float(p.sim_empty_room_s),
                                 music_empty_room_s=float(p.sim_music_empty_room_s), music_split=p.music_split,
                                 realtime=bool(p.realtime), limits=limits)
    else:
        settings.file = FileConfig(path=p.wav_path, mic_channels=tuple(p.mic_channels),
                                   n_speakers=len(p.speaker_channels), probe_path=p.probe_wav_path,
                                   latency_samples=int(p.latency_samples), realtime=bool(p.realtime),
                                   loop=bool(p.loop), limits=limits)
    return settings


class AudioIONode(Node):
    """`name` and `defaults` let sim_node run this same capture path with the sim backend as its default; a subclass
    passes `start=False` and starts `_worker` once its own publishers exist."""

    def __init__(self, name: str = "audio_io_node", defaults: dict | None = None, extra_params: list | None = None,
                 start: bool = True):
        super().__init__(name)
        specs = [dataclasses.replace(p, default=defaults[p.name]) if p.name in (defaults or {}) else p for p in PARAMS]
        self.p = declare_parameters(self, specs + list(extra_params or []))
        self.health = Health(self)
        self.source = make_source(settings_from_parameters(self.p))
        self.mic_frames = [f"{self.p.mic_frame_prefix}{i}" for i in range(self.source.n_mics)]
        self.speaker_frames = [f"{self.p.speaker_frame_prefix}{i}" for i in range(self.source.n_speakers)]
        self.pub = self.create_publisher(AudioFrame, "audio/frames", SENSOR_QOS)
        self.published = 0
        self.dropped = 0
        self._standing: set[str] = set()
        self._seen: dict[str, float] = {}
        self._running = True
        self.health.set(backend=self.p.backend)
        self._worker = threading.Thread(target=self._work, name="audio_io", daemon=True)
        if start:
            self._worker.start()
        self.get_logger().info(f"backend {self.p.backend}: {self.source.n_mics} mics, {self.source.n_speakers} "
                               f"speakers, {self.source.fs} Hz, {self.source.window_samples}-sample windows, "
                               f"{self.source.probe_type} probe")
        for text in getattr(self.source, "warnings", []):
            self.get_logger().warning(text)
            self.health.set(probe_note=text)

    def _work(self) -> None:
        try:
            self.source.start()
        except Exception as err:  # noqa: BLE001 - a backend that cannot start is a diagnostic, not a crash
            self.health.problem("backend", f"{type(err).__name__}: {err}", ERROR)
        while self._running:
            try:
                window = self.source.next_window(0.5)
            except Exception as err:  # noqa: BLE001 - keep the node up whatever one window does
                self.health.problem("backend", f"{type(err).__name__}: {err}", ERROR)
                time.sleep(1.0)
                continue
            if not self.context.ok():
                break
            try:
                self._sync_standing()
                if window is not None:
                    self._handle(window)
                self._expire()
            except Exception as err:  # noqa: BLE001 - keep the node up whatever one window does
                self.health.exception("backend", err)

    def _sync_standing(self) -> None:
        standing = self.source.status()
        for code, problem in standing.items():
            self.health.problem(code, problem.text, problem.level)
        gone = self._standing - set(standing)
        if gone:
            self.health.clear(*gone)
        self._standing = set(standing)

    def _handle(self, window) -> None:
        now = time.monotonic()
        for problem in window.problems:
            self.health.problem(problem.code, problem.text, problem.level)
            self._seen[problem.code] = now
        if not window.usable:
            self.dropped += 1
            return
        stamp_ns = self.stamp_of(window)
        msg = audio_to_msg(Audio(stamp_ns=stamp_ns, frame_id=self.p.frame_id, audio=window.recording,
                                 sample_rate=window.fs, mic_frames=self.mic_frames, probe=window.emissions,
                                 speaker_frames=self.speaker_frames, probe_type=self.source.probe_type,
                                 sequence=window.sequence))
        try:
            self.pub.publish(msg)
        except Exception:  # noqa: BLE001 - the context goes away on shutdown while a window is in flight
            if self.context.ok():
                raise
            return
        self.published += 1
        self.on_window(window, stamp_ns)
        self.health.clear("backend")
        # not health.good(): per-window problems (input_*, xrun, ...) stay visible for problem_hold_s instead of
        # vanishing with the next good window, 100 ms later
        self.health.set(published=self.published, dropped=self.dropped, sequence=window.sequence,
                        **{k: v for k, v in self.source.stats().items() if k not in ("windows", "dropped")})

    def stamp_of(self, window) -> int:
        """The window's acquisition stamp on the node's clock (the system clock unless use_sim_time)."""
        return node_clock_stamp(window.start_time_ns, self.get_clock())

    def on_window(self, window, stamp_ns: int) -> None:
        """Called after each published window, with its stamp (sim_node adds keypoints and ground truth for it)."""

    def _expire(self) -> None:
        hold = float(self.p.problem_hold_s)
        now = time.monotonic()
        for code, seen in list(self._seen.items()):
            if now - seen > hold and code not in self._standing:
                self.health.clear(code)
                del self._seen[code]

    def destroy_node(self) -> None:
        self._running = False
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        self.source.close()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(AudioIONode, args)


if __name__ == "__main__":
    raise SystemExit(main())
