"""A virtual room on a real sound stack: what the speakers play goes through the simulated room and person and comes
back as the microphones' input, in real time.

The robot graph's `audio_io_node` (device backend) plays its probe on a PulseAudio null sink and records from
another one's monitor, as it would on a sound card; in between, this process reads the speaker sink's monitor
(`parec`), convolves every speaker channel with the simulated speaker->mic responses of the current instant
(`Simulator.response_at`: the room plus the person's echoes and shadow at that instant, on the scene's true
geometry, with the simulator's level and mic gains; white noise at the scene's echo-to-noise ratio) and plays the
microphone signals into the mic sink (`pacat`). So the device backend, its latency calibration and clock mapping,
and everything after it are tested against a room rather than a wire. One extra input channel carries speaker 0's
signal unfiltered: the electrical loopback a real rig uses as the latency reference (`reference_channels:
[<mics>, 0]`, `reference_delay_samples: 0`).

Timing: the scene clock starts at the first block that is not silent (the robot starting to emit), so the person
enters `empty_room_s` later whatever the device's start-up took; `scene_time(stamp_ns)` is the same clock for the
keypoints and ground truth published beside it. The body response is recomputed every `update_s` on a worker
thread; the convolution runs block by block on the stream thread. Left to the real stream instead of simulated:
the clock offset; simpler than the simulator: the noise is white only (its babble and impulses are per window).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import termios
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft

SPEAKER_SINK = "avsim"
MIC_SINK = "avroom"
# ALSA's channel order (what the `pulse` PCM of PortAudio uses) for up to 8 channels: with this map on the mic sink
# the recording stream is not remixed.
ALSA_MAP = ("front-left", "front-right", "rear-left", "rear-right", "front-center", "lfe", "side-left", "side-right")


@dataclass
class RoomSettings:
    """How the virtual room runs (the scene itself comes from the scenario)."""

    block: int = 1024                 # samples per processing block (21 ms at 48 kHz)
    update_s: float = 0.1             # body response recomputed this often (s)
    output_gain: float = 0.5          # direct path of a full-scale probe comes back at this peak
    loopback: bool = True             # extra mic-sink channel: speaker 0 unfiltered (latency reference)
    noise: bool = True                # white noise at the scene's echo-to-noise ratio
    record_latency_ms: int = 10
    play_latency_ms: int = 80
    start_level: float = 1e-3         # input peak that starts the scene clock
    empty_room_s: float = 3.0         # nobody in the room for the first seconds of emission


class BlockConvolver:
    """``y_m = sum_s h_sm * x_s`` block by block (overlap-save with the whole response as history), with a response
    that may be replaced between blocks (the person moves)."""

    def __init__(self, n_speakers: int, n_mics: int, block: int, taps: int):
        self.n_speakers, self.n_mics, self.block, self.taps = n_speakers, n_mics, int(block), int(taps)
        self.history = np.zeros((n_speakers, self.taps - 1 + self.block))
        self.n_fft = next_fast_len(self.history.shape[1])
        self._spectra: np.ndarray | None = None
        self.last_spectrum: np.ndarray | None = None

    def spectra(self, response: np.ndarray) -> np.ndarray:
        """(S, M, F) spectra of a response (S, M, <= taps), longer ones cut at ``taps``."""
        r = np.zeros((self.n_speakers, self.n_mics, self.taps))
        n = min(self.taps, response.shape[-1])
        r[..., :n] = response[..., :n]
        return rfft(r, self.n_fft, axis=-1)

    def set_spectra(self, spectra: np.ndarray) -> None:
        self._spectra = spectra      # one reference swap: safe against the stream thread

    def process(self, x: np.ndarray, spectra: np.ndarray | None = None) -> np.ndarray:
        """(B, S) speaker samples -> (B, M) mic samples (all zeros before a response is set)."""
        b = x.shape[0]
        if b != self.block:
            raise ValueError(f"block of {b} samples, expected {self.block}")
        self.history = np.roll(self.history, -b, axis=1)
        self.history[:, -b:] = x.T
        self.last_spectrum = rfft(self.history, self.n_fft, axis=-1)
        h = self._spectra if spectra is None else spectra
        return np.zeros((b, self.n_mics)) if h is None else self.apply(h)

    def apply(self, spectra: np.ndarray) -> np.ndarray:
        """(B, M) output of the last block through ``spectra`` (reuses the block's input spectrum)."""
        y = irfft(np.einsum("smf,sf->mf", spectra, self.last_spectrum), self.n_fft, axis=-1)
        return y[:, self.taps - 1: self.taps - 1 + self.block].T


class RoomModel:
    """The scene's speaker->mic responses at a scene time (``Simulator.response_at``: the room on the true geometry,
    plus the person's echoes and shadow), scaled as the simulator scales its recordings, with its mic gains."""

    def __init__(self, scene, simulator, settings: RoomSettings | None = None):
        self.scene, self.simulator = scene, simulator
        self.settings = settings or RoomSettings()
        self.fs = int(scene.audio.fs)
        self.speakers, self.mics, _, self.c = simulator.true_geometry(scene)
        _, rirs, _ = simulator.response_at(scene, 0.0, person=False, clock_offset=False)
        self.rirs = np.asarray(rirs, float)
        gain = self.settings.output_gain / float(np.abs(self.rirs).max())
        self.mic_gain = gain * 10 ** (np.asarray(scene.audio.mic_gain_db, float) / 20)     # (M,)
        # direct speaker->mic paths (what a colocated speaker and mic share), for the echo-to-noise ratio
        ends = np.ceil(np.linalg.norm(self.speakers[:, None] - self.mics[None], axis=-1) / self.c * self.fs) + 41
        self.direct = np.zeros_like(self.rirs)
        for s, m in np.ndindex(ends.shape):
            self.direct[s, m, : int(ends[s, m])] = self.rirs[s, m, : int(ends[s, m])]

    @property
    def taps(self) -> int:
        """Response length kept: the room's tail or the farthest body echo (10 m path), whichever is longer."""
        return max(self.rirs.shape[-1], int(10.0 / self.c * self.fs))

    def joints(self, t_scene: float) -> np.ndarray:
        return self.simulator.joints_at(self.scene, t_scene)

    def response(self, t_scene: float | None, rng: np.random.Generator) -> np.ndarray:
        """(S, M, L) response with the mic gains applied; ``t_scene`` None = the empty room."""
        if t_scene is None:
            response = self.rirs
        else:
            response, _, _ = self.simulator.response_at(self.scene, t_scene, person=True, rng=rng, clock_offset=False)
        return response * self.mic_gain[None, :, None]

    def direct_response(self) -> np.ndarray:
        return self.direct * self.mic_gain[None, :, None]


class SceneClock:
    """Scene time of a wall-clock stamp, started by the first sound the robot emits."""

    def __init__(self, person_time0_s: float, empty_room_s: float):
        self.person_time0_s, self.empty_room_s = float(person_time0_s), float(empty_room_s)
        self.t0_ns: int | None = None

    def start(self, t0_ns: int) -> None:
        if self.t0_ns is None:
            self.t0_ns = int(t0_ns)

    def elapsed_s(self, stamp_ns: int) -> float | None:
        return None if self.t0_ns is None else (int(stamp_ns) - self.t0_ns) * 1e-9

    def scene_time(self, stamp_ns: int) -> float | None:
        """The person's scene time at ``stamp_ns`` (``person.time_s`` + elapsed, as the sim backend counts it);
        None while nobody is in the room (or nothing was emitted yet)."""
        elapsed = self.elapsed_s(stamp_ns)
        if elapsed is None or elapsed < self.empty_room_s:
            return None
        return self.person_time0_s + elapsed


@dataclass
class StreamStats:
    blocks: int = 0
    late_blocks: int = 0              # a block took longer to process than it lasts
    dropped_blocks: int = 0           # input skipped to catch up after a stall (a room never adds delay)
    updates: int = 0
    process_ms: float = 0.0           # smoothed processing time of one block
    update_ms: float = 0.0            # smoothed time of one body-response update
    errors: list[str] = field(default_factory=list)


class VirtualRoom:
    """The real-time loop: `parec` from the speaker sink's monitor -> convolution -> `pacat` into the mic sink.

    ``server`` is the PulseAudio server (``unix:/path/native``) that has both sinks (``prepare_sinks``)."""

    def __init__(self, model: RoomModel, clock: SceneClock, server: str, settings: RoomSettings | None = None,
                 seed: int = 0, loopback_channel: int | None = None):
        self.model, self.clock, self.server = model, clock, server
        self.settings = settings or model.settings
        self.seed = int(seed)
        s, m = len(model.speakers), len(model.mics)
        self.n_in, self.n_mics = s, m
        self.loopback_channel = m if loopback_channel is None else int(loopback_channel)
        if self.settings.loopback and self.loopback_channel < m:
            raise ValueError(f"loopback channel {self.loopback_channel} would overwrite a mic (there are {m})")
        self.n_out = self.loopback_channel + 1 if self.settings.loopback else m
        self.convolver = BlockConvolver(s, m, self.settings.block, model.taps)
        self.direct_spectra = self.convolver.spectra(model.direct_response())
        self.convolver.set_spectra(self.convolver.spectra(model.response(None, np.random.default_rng(seed))))
        self.stats = StreamStats()
        self.snr = 10 ** (-model.scene.audio.snr_db / 20)
        self._echo_power = 0.0
        self._rng = np.random.default_rng([self.seed, 99])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._procs: list[subprocess.Popen] = []

    # -- processing (no I/O: testable) --------------------------------------------------------------------------
    def process_block(self, x: np.ndarray) -> np.ndarray:
        """(B, S) float speaker samples -> (B, n_out) float32 mic-sink samples."""
        y = self.convolver.process(x)
        if self.settings.noise and self.snr > 0:
            echoes = y - self.convolver.apply(self.direct_spectra)
            power = float(np.mean(echoes ** 2))
            # echo power over about one capture window (the simulator's SNR is per window)
            self._echo_power = power if self._echo_power == 0.0 else 0.7 * self._echo_power + 0.3 * power
            y = y + self._rng.normal(0.0, np.sqrt(self._echo_power) * self.snr, y.shape)
        out = np.zeros((x.shape[0], self.n_out), np.float32)
        out[:, : self.n_mics] = np.clip(y, -1.0, 1.0)
        if self.settings.loopback:
            out[:, self.loopback_channel] = x[:, 0]
        return out

    def update_response(self, stamp_ns: int, k: int) -> None:
        """Recompute the response for the scene at ``stamp_ns`` (the body surface is re-drawn, as in the sim)."""
        t_scene = self.clock.scene_time(stamp_ns)
        start = time.monotonic()
        rng = np.random.default_rng([self.seed, k])
        self.convolver.set_spectra(self.convolver.spectra(self.model.response(t_scene, rng)))
        took = (time.monotonic() - start) * 1e3
        self.stats.updates += 1
        self.stats.update_ms = took if self.stats.updates == 1 else 0.9 * self.stats.update_ms + 0.1 * took

    # -- streams ------------------------------------------------------------------------------------------------
    def commands(self) -> tuple[list[str], list[str]]:
        fs, cfg = self.model.fs, self.settings
        common = [f"--server={self.server}", "--format=float32le", f"--rate={fs}", "--raw"]
        record = ["parec", *common, f"--device={SPEAKER_SINK}.monitor", f"--channels={self.n_in}",
                  f"--channel-map={','.join(ALSA_MAP[: self.n_in])}", f"--latency-msec={cfg.record_latency_ms}"]
        play = ["pacat", "--playback", *common, f"--device={MIC_SINK}", f"--channels={self.n_out}",
                f"--channel-map={','.join(ALSA_MAP[: self.n_out])}", f"--latency-msec={cfg.play_latency_ms}"]
        return record, play

    def start(self) -> None:
        record, play = self.commands()
        for tool in ("parec", "pacat"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"`{tool}` not found (Debian package pulseaudio-utils)")
        self._rec = subprocess.Popen(record, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self._play = subprocess.Popen(play, stdin=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self._procs = [self._rec, self._play]
        self._threads = [threading.Thread(target=self._stream_loop, name="room-stream", daemon=True),
                         threading.Thread(target=self._update_loop, name="room-update", daemon=True)]
        for t in self._threads:
            t.start()

    def _pending_bytes(self) -> int:
        """Bytes waiting in the recorder's pipe (unbuffered on our side, so this is all of it)."""
        buf = bytearray(4)
        fcntl.ioctl(self._rec.stdout.fileno(), termios.FIONREAD, buf)
        return int.from_bytes(buf, "little")

    def _catch_up(self) -> None:
        """Skip what piled up while this process was stalled (CPU contention): otherwise every stall would add its
        length to the round trip for good, as the player then plays the backlog at real-time speed."""
        need = self.settings.block * self.n_in * 4
        while self._pending_bytes() >= 3 * need:      # more than two blocks behind
            if not self._rec.stdout.read(need):
                return
            self.stats.dropped_blocks += 1

    def _read_block(self) -> np.ndarray | None:
        need = self.settings.block * self.n_in * 4
        chunks, got = [], 0
        while got < need:
            chunk = self._rec.stdout.read(need - got)
            if not chunk:
                return None
            chunks.append(chunk)
            got += len(chunk)
        return np.frombuffer(b"".join(chunks), np.float32).reshape(-1, self.n_in).astype(float)

    def _stream_loop(self) -> None:
        block_s = self.settings.block / self.model.fs
        try:
            # one block of silence first, so the player's buffer does not run dry while the first block is computed
            self._play.stdin.write(np.zeros((self.settings.block, self.n_out), np.float32).tobytes())
            while not self._stop.is_set():
                self._catch_up()
                x = self._read_block()
                if x is None:
                    raise RuntimeError("parec stopped: " + self._rec.stderr.read().decode(errors="replace")[-500:])
                now_ns = time.time_ns()
                if self.clock.t0_ns is None and np.abs(x).max() >= self.settings.start_level:
                    self.clock.start(now_ns - int(block_s * 1e9))
                start = time.monotonic()
                out = self.process_block(x)
                took = time.monotonic() - start
                self._play.stdin.write(out.tobytes())
                st = self.stats
                st.blocks += 1
                st.late_blocks += took > block_s
                st.process_ms = took * 1e3 if st.blocks == 1 else 0.9 * st.process_ms + 100 * took
        except (OSError, RuntimeError, ValueError) as err:
            if not self._stop.is_set():
                self.stats.errors.append(f"{type(err).__name__}: {err}")

    def _update_loop(self) -> None:
        k = 0
        while not self._stop.is_set():
            if self.clock.t0_ns is not None:
                try:
                    self.update_response(time.time_ns(), k)
                except Exception as err:  # noqa: BLE001 - reported through stats, the stream keeps the old response
                    self.stats.errors.append(f"response update: {type(err).__name__}: {err}")
                k += 1
            self._stop.wait(self.settings.update_s)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self._procs) and all(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stop.set()
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for t in self._threads:
            t.join(timeout=5.0)


def prepare_sinks(device, n_mic_channels: int, fs: int) -> None:
    """Add the mic sink to a running ``VirtualSoundDevice`` (whose own sink is the speakers') and make its monitor
    the default source, so a duplex stream on `pulse` plays into the speakers and records the room."""
    env = dict(os.environ, **device.env())

    def pactl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=env, capture_output=True, text=True, timeout=10.0)

    sinks = pactl("list", "short", "sinks").stdout
    if MIC_SINK not in sinks.split():
        result = pactl("load-module", "module-null-sink", f"sink_name={MIC_SINK}", f"rate={fs}",
                       f"channels={n_mic_channels}", f"channel_map={','.join(ALSA_MAP[:n_mic_channels])}")
        if result.returncode != 0:
            raise RuntimeError(f"cannot add the mic sink: {result.stderr.strip()}")
    for args in (("set-default-sink", device.sink), ("set-default-source", f"{MIC_SINK}.monitor")):
        result = pactl(*args)
        if result.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {result.stderr.strip()}")

