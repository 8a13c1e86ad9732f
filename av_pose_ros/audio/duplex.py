"""The ``device`` backend: one sounddevice full-duplex stream plays the probe and records every microphone.

Stream layout (sample counter ``r`` shared by input and output, see ``clock``):

* ``[0, c0)`` start-up: silence for ``warmup_s`` (drivers report spurious under-runs while they start), then, with
  ``startup_calibration``, one chirp on the reference output and silence long enough to hear it back;
* from ``c0`` on, output sample ``c0 + e`` carries emission sample ``e`` (``emission.signal``) on the speaker
  channels, so window ``k`` of the emission starts at output sample ``c0 + k * W``.

The round trip ``L`` (samples from an output frame leaving the callback to the same moment coming back in the
input) makes recorded sample ``c0 + k * W + L`` the one aligned with emission sample ``k * W``; window ``k`` is
``recording[c0 + k W + L : c0 + (k + 1) W + L]`` with ``emissions = emission.window(k)``. ``L`` comes from the
configuration (``latency_samples``, written by ``av-pose calibrate-audio``), from a start-up chirp
(``startup_calibration``), and, with ``track_latency``, is re-measured every window on a reference input channel
that hears a reference output channel directly (an electrical loopback, or the monitor of a virtual device): the
probe's delay there must be ``reference_delay_samples``. A window is released only when the next window's
reference probe has been checked as well (one window of extra delay), because a round trip that changes inside
window k after its own probe shows only in window k + 1; a window with a misaligned probe on either side is dropped
(``latency_changed``), and when two windows running agree on a new delay ``L`` follows it.

Some devices do not keep ``L`` between stream openings: PulseAudio (through ALSA's ``pulse`` plugin) gives a
different round trip at every start (measured 261-1774 samples here) and a new one after an xrun. Use
``startup_calibration`` plus ``track_latency`` with a reference channel there; a plain ALSA ``hw:`` device keeps
one ``L`` for a given period size, which ``latency_samples`` then holds.

Problems (codes in ``window``): xruns from the callback's status flags drop the windows they touch; a missing
device, a device that refuses the channel count or rate, and a stream that errors or stops calling back are
retried with exponential backoff (``retry_initial_s`` doubling up to ``retry_max_s``), PortAudio being
re-initialised before each retry so that a device that appears later (a USB card plugged in, a sound server
restarted) is found.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from av_pose_ros.acoustics import probes

from .clock import BlockTime, DeviceClock, StampFilter
from .latency import find_lag, locate
from .probe_setup import ProbeSettings, make_emission
from .window import ERROR, WARN, CaptureWindow, Problem, SignalLimits, channel_map, check_recording

_INPUT_FLAGS = 1        # bit: input overflow or underflow in this block
_OUTPUT_FLAGS = 2       # bit: output underflow or overflow in this block


@dataclass
class DuplexConfig:
    device: str = "pulse"                    # name substring (case-insensitive) or index ("3"); "" = default
    speaker_channels: tuple[int, ...] = (0, 1, 2, 3)   # entry i: output channel of speaker_<i>
    mic_channels: tuple[int, ...] = (0, 1, 2, 3)       # entry i: input channel of mic_<i>
    output_channels: int = 0                 # channels to open; 0 = highest mapped channel + 1
    input_channels: int = 0
    latency_samples: int = 0                 # configured round trip (av-pose calibrate-audio)
    blocksize: int = 0                       # PortAudio frames per callback; 0 = the host's choice (see docs)
    device_latency: str = "high"             # PortAudio suggested latency: "low", "high" or seconds
    warmup_s: float = 1.0                    # silence after opening: drivers settle (PulseAudio: about 1 s)
    settle_windows: int = 5                  # clock re-anchors in the first windows are expected, not reported
    startup_calibration: bool = False        # measure the round trip with a chirp when the stream opens
    track_latency: bool = False              # re-measure it every window on reference_channels
    reference_channels: tuple[int, ...] = ()  # (input channel, output channel) of a direct loopback
    reference_delay_samples: int = 0         # the delay the reference path itself adds (0 for a loopback)
    latency_tolerance_samples: int = 2
    max_latency_s: float = 0.5               # longest round trip the start-up calibration searches
    retry_initial_s: float = 0.5
    retry_max_s: float = 8.0
    stall_timeout_s: float = 1.0             # no callback for this long = device lost
    startup_timeout_s: float = 5.0           # the same before the first window (large buffers prefill slowly)
    ring_s: float = 4.0                      # recorded audio kept for the consumer
    stamp_bandwidth_hz: float = 0.5          # DLL bandwidth of the stamp filter
    resync_s: float = 0.02                   # stamp error that re-anchors the DLL instead of filtering
    limits: SignalLimits = field(default_factory=SignalLimits)

    def __post_init__(self):
        self.speaker_channels = channel_map(self.speaker_channels, "speaker_channels")
        self.mic_channels = channel_map(self.mic_channels, "mic_channels")
        self.reference_channels = tuple(int(c) for c in self.reference_channels)
        if self.reference_channels and len(self.reference_channels) != 2:
            raise ValueError("reference_channels must be [input channel, output channel] or empty")
        if (self.track_latency or self.startup_calibration) and not self.reference_channels:
            raise ValueError("track_latency / startup_calibration need reference_channels [input, output]")
        if self.reference_channels and self.reference_channels[1] not in self.speaker_channels:
            raise ValueError(f"reference output channel {self.reference_channels[1]} is not a speaker channel "
                             f"{list(self.speaker_channels)}")
        if self.latency_samples < 0:
            raise ValueError("latency_samples must be >= 0")

    @property
    def n_out(self) -> int:
        return max(self.output_channels, max(self.speaker_channels) + 1)

    @property
    def n_in(self) -> int:
        needed = list(self.mic_channels) + ([self.reference_channels[0]] if self.reference_channels else [])
        return max(self.input_channels, max(needed) + 1)

    def suggested_latency(self):
        try:
            return float(self.device_latency)
        except ValueError:
            return self.device_latency


def _sd():
    import sounddevice as sd  # imported late: only the device backend needs PortAudio

    return sd


_wedged_streams = 0     # streams whose close never returned (a dead sound server can deadlock its client)


def reinitialise_portaudio() -> None:
    """Re-scan devices (PortAudio only enumerates them at initialisation). Skipped while a stream of this
    process could not be closed: ``Pa_Terminate`` would join that stream's stuck thread and hang too."""
    if _wedged_streams:
        return
    sd = _sd()
    try:
        sd._terminate()
    except Exception:  # noqa: BLE001 - terminating an uninitialised PortAudio is harmless
        pass
    sd._initialize()


def find_device(spec: str, n_in: int = 1, n_out: int = 1, rescan: bool = True,
                force_rescan: bool = False) -> tuple[int, str]:
    """(index, name) of the device ``spec`` names: an index, or a case-insensitive name substring (an exact
    name wins); "" is the default device. ``rescan`` re-initialises PortAudio when nothing matches (devices are
    only enumerated at initialisation), ``force_rescan`` does so first. Raises LookupError (absent) or ValueError
    (too few channels)."""
    sd = _sd()
    if force_rescan:
        reinitialise_portaudio()
    for attempt in range(2 if rescan and not force_rescan else 1):
        if attempt:
            reinitialise_portaudio()
        devices = list(sd.query_devices())
        spec = str(spec).strip()
        if spec == "":
            try:
                index = int(sd.query_devices(kind="input")["index"])
            except (sd.PortAudioError, ValueError, KeyError):
                index = -1
            candidates = [index] if 0 <= index < len(devices) else []
        elif spec.lstrip("-").isdigit():
            candidates = [int(spec)] if 0 <= int(spec) < len(devices) else []
        else:
            exact = [i for i, d in enumerate(devices) if d["name"].lower() == spec.lower()]
            candidates = exact or [i for i, d in enumerate(devices) if spec.lower() in d["name"].lower()]
        if candidates:
            break
    else:
        names = ", ".join(f"{i}: {d['name']}" for i, d in enumerate(devices)) or "none"
        raise LookupError(f"no audio device matches {spec!r} (devices: {names})")
    fitting = [i for i in candidates
               if devices[i]["max_input_channels"] >= n_in and devices[i]["max_output_channels"] >= n_out]
    if not fitting:
        d = devices[candidates[0]]
        raise ValueError(f"device {d['name']!r} has {d['max_input_channels']} inputs / {d['max_output_channels']} "
                         f"outputs; the channel maps need {n_in} / {n_out}")
    return fitting[0], devices[fitting[0]]["name"]


class _Session:
    """State of one open stream; the PortAudio callback writes, the consumer reads."""

    def __init__(self, source: DuplexSource, chirp: np.ndarray):
        cfg, fs = source.config, source.fs
        self.cfg = cfg
        self.cap = int(cfg.ring_s * fs)
        self.ring = np.zeros((self.cap, cfg.n_in), np.float32)
        self.count = 0                                  # frames received (written to the ring)
        self.blocks: list[BlockTime] = []               # appended by the callback, drained by the consumer
        self.flags: list[tuple[int, int, int]] = []     # (index, frames, bits) of blocks with xrun status
        self.xruns: list[tuple[int, int, int]] = []     # the same, moved over by the consumer
        self.event = threading.Event()
        self.last_callback = time.monotonic()
        self.finished = False
        self.chirp = chirp
        warm = int(cfg.warmup_s * fs)
        self.cal_at = warm if cfg.startup_calibration else -1
        self.cal_len = chirp.size + int(cfg.max_latency_s * fs)
        self.c0 = warm + (self.cal_len + int(0.05 * fs) if cfg.startup_calibration else 0)
        self.calibrated = not cfg.startup_calibration
        self.latency = int(cfg.latency_samples)
        self.k = 0
        self.emission = source.emission
        self.speaker_channels = list(cfg.speaker_channels)
        self.ref_out = cfg.reference_channels[1] if cfg.reference_channels else -1
        self.opened_ns = time.time_ns()

    # -- PortAudio thread -----------------------------------------------------------------------------------
    def callback(self, indata, outdata, frames, time_info, status) -> None:
        system_ns = time.time_ns()
        r = self.count
        outdata.fill(0.0)
        if 0 <= self.cal_at < r + frames and r < self.cal_at + self.chirp.size:
            a, b = max(r, self.cal_at), min(r + frames, self.cal_at + self.chirp.size)
            outdata[a - r:b - r, self.ref_out] = self.chirp[a - self.cal_at:b - self.cal_at]
        e = r - self.c0
        if e + frames > 0:
            skip = max(0, -e)
            outdata[skip:, self.speaker_channels] = self.emission.signal(e + skip, frames - skip).T
        i = r % self.cap
        n1 = min(frames, self.cap - i)
        self.ring[i:i + n1] = indata[:n1]
        if n1 < frames:
            self.ring[:frames - n1] = indata[n1:]
        self.blocks.append(BlockTime(r, frames, float(time_info.inputBufferAdcTime), float(time_info.currentTime),
                                     system_ns))
        if status:
            bits = (_INPUT_FLAGS if (status.input_overflow or status.input_underflow) else 0) | \
                   (_OUTPUT_FLAGS if (status.output_underflow or status.output_overflow) else 0)
            if bits:
                self.flags.append((r, frames, bits))
        self.count = r + frames
        self.last_callback = time.monotonic()
        self.event.set()

    def on_finished(self) -> None:
        self.finished = True
        self.event.set()

    # -- consumer -------------------------------------------------------------------------------------------
    def read(self, start: int, n: int) -> np.ndarray:
        """(n, channels) recorded frames ``[start, start + n)`` (must still be in the ring)."""
        idx = (start + np.arange(n)) % self.cap
        return self.ring[idx]


class DuplexSource:
    """Full-duplex capture from a sound device in fixed windows, each starting with the probe emission."""

    def __init__(self, config: DuplexConfig | None = None, probe: ProbeSettings | None = None, emission=None):
        self.config = config or DuplexConfig()
        self.probe = probe or ProbeSettings()
        self.fs = int(self.probe.fs)
        self.window_samples = self.probe.window_samples
        self.n_speakers = len(self.config.speaker_channels)
        self.n_mics = len(self.config.mic_channels)
        self.probe_type = self.probe.probe_type
        self.emission = emission if emission is not None else make_emission(self.probe, self.n_speakers)
        self.calibration_chirp = (self.probe.level * probes.linear_chirp(
            self.probe.band_hz[0], min(self.probe.band_hz[1], 0.45 * self.fs), 0.005, self.fs)).astype(np.float32)
        self._stream = None
        self._session: _Session | None = None
        self._standing: dict[str, Problem] = {}
        self._backoff = self.config.retry_initial_s
        self._next_open = 0.0
        self._closing = False
        self._lock = threading.Lock()
        self._clock: DeviceClock | None = None
        self._stamps = StampFilter(self.window_samples / self.fs, self.config.stamp_bandwidth_hz,
                                   self.config.resync_s)
        self._last_k: int | None = None
        self._last_start: int | None = None
        self._last_local = 0.0
        self._sequence_base = 0
        self._last_sequence = -1
        self._lost_at: float | None = None
        self._shift_cache: dict = {}
        self._rescan = False
        self.device_name = ""
        self.counters = {"windows": 0, "dropped": 0, "xruns": 0, "opens": 0, "losses": 0, "latency_changes": 0,
                         "resyncs": 0}
        self.measured_latency: list[int] = []       # round trips found by start-up calibration, per opening
        # (sequence, first sample index, raw ADC-based time, published stamp, re-anchored) of recent windows, for
        # jitter measurements (clock.jitter_report)
        self.stamp_log: deque[tuple[int, int, float, float, bool]] = deque(maxlen=10000)

    # -- public API -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the stream now if possible (failures become standing problems and are retried)."""
        self._next_open = 0.0
        self._try_open()

    @property
    def finished(self) -> bool:
        return False

    @property
    def latency_samples(self) -> int:
        return self._session.latency if self._session else int(self.config.latency_samples)

    def status(self) -> dict[str, Problem]:
        return dict(self._standing)

    def stats(self) -> dict[str, float]:
        out = dict(self.counters)
        out["latency_samples"] = self.latency_samples
        out["stamp_error_us"] = round(self._stamps.last_error * 1e6, 1)
        out["window_period_s"] = self._stamps.period
        if self._clock is not None and self._clock.offset_s is not None:
            out["stream_to_system_offset_s"] = self._clock.offset_s
        return out

    def next_window(self, timeout_s: float = 1.0) -> CaptureWindow | None:
        """The next capture window, or None when none completed within ``timeout_s`` (no device, retrying...)."""
        deadline = time.monotonic() + timeout_s
        while not self._closing:
            if self._stream is None:
                if time.monotonic() >= self._next_open:
                    self._try_open()
                if self._stream is None:
                    wait = min(deadline, self._next_open) - time.monotonic()
                    if time.monotonic() >= deadline:
                        return None
                    time.sleep(max(0.0, min(wait, 0.1)))
                    continue
            s = self._session
            limit = self.config.stall_timeout_s if s.count > s.c0 else self.config.startup_timeout_s
            if s.finished or time.monotonic() - s.last_callback > limit:
                why = "the stream stopped (device error or removed)" if s.finished else \
                    f"no audio callback for {limit:.1f} s"
                self._lose(why)
                continue
            self._drain(s)
            if not s.calibrated:
                self._calibrate(s)
            window = self._cut(s) if s.calibrated else None
            if window is not None:
                return window
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            s.event.wait(min(remaining, 0.05))
            s.event.clear()
        return None

    def close(self) -> None:
        self._closing = True
        self._close_stream()

    # -- opening, losing --------------------------------------------------------------------------------------
    def _schedule_retry(self) -> None:
        self._next_open = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.config.retry_max_s)

    def _try_open(self) -> None:
        cfg = self.config
        sd = _sd()
        with self._lock:
            if self._closing or self._stream is not None:
                return
            try:
                index, name = find_device(cfg.device, cfg.n_in, cfg.n_out, rescan=True,
                                          force_rescan=self._rescan)
            except LookupError as err:
                self._standing.pop("device_format", None)
                self._standing["device_missing"] = Problem(
                    "device_missing", ERROR, f"{err}; retrying in {self._backoff:.1f} s")
                self._schedule_retry()
                return
            except ValueError as err:
                self._standing["device_format"] = Problem("device_format", ERROR,
                                                          f"{err}; retrying in {self._backoff:.1f} s")
                self._schedule_retry()
                return
            session = _Session(self, self.calibration_chirp)
            try:
                sd.check_input_settings(index, channels=cfg.n_in, dtype="float32", samplerate=self.fs)
                sd.check_output_settings(index, channels=cfg.n_out, dtype="float32", samplerate=self.fs)
                stream = sd.Stream(device=(index, index), samplerate=self.fs, channels=(cfg.n_in, cfg.n_out),
                                   dtype="float32", blocksize=cfg.blocksize, latency=cfg.suggested_latency(),
                                   callback=session.callback, finished_callback=session.on_finished)
            except (sd.PortAudioError, ValueError) as err:
                self._rescan = True     # a stale device list (server gone, card unplugged) fails here too
                if self._rescan_finds_nothing(cfg):
                    self._standing.pop("device_format", None)
                    self._standing["device_missing"] = Problem(
                        "device_missing", ERROR, f"device {name!r} cannot be opened and is gone from the device "
                                                 f"list ({err}); retrying in {self._backoff:.1f} s")
                    self._schedule_retry()
                    return
                self._standing.pop("device_missing", None)
                self._standing["device_format"] = Problem(
                    "device_format", ERROR, f"device {name!r} refuses {cfg.n_in} in / {cfg.n_out} out channels "
                                            f"at {self.fs} Hz: {err}; retrying in {self._backoff:.1f} s")
                self._schedule_retry()
                return
            try:
                stream.start()
            except sd.PortAudioError as err:
                stream.close(ignore_errors=True)
                self._standing["device_lost"] = Problem("device_lost", ERROR, f"cannot start {name!r}: {err}; "
                                                        f"retrying in {self._backoff:.1f} s")
                self._schedule_retry()
                return
            self._stream, self._session, self.device_name = stream, session, name
            self._rescan = False
            self._clock = DeviceClock(self.fs, float(stream.latency[0]))
            self._stamps.reset()
            self._shift_cache = {}
            self._last_k = None
            self._last_start = None
            if self._lost_at is not None:   # keep the sequence counting through the outage (a gap = lost windows)
                gap = int((time.monotonic() - self._lost_at) / self.probe.window_s)
                self._sequence_base = self._last_sequence + 1 + gap
                self._lost_at = None
            else:
                self._sequence_base = self._last_sequence + 1
            self.counters["opens"] += 1
            for code in ("device_missing", "device_format", "device_lost"):
                self._standing.pop(code, None)
            self._backoff = cfg.retry_initial_s

    def _rescan_finds_nothing(self, cfg: DuplexConfig) -> bool:
        try:
            find_device(cfg.device, cfg.n_in, cfg.n_out, rescan=False, force_rescan=True)
        except LookupError:
            return True
        except ValueError:
            return False
        return False

    def _close_stream(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is None:
            return
        done = threading.Event()

        def closer():
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            finally:
                done.set()

        # a stream whose server died can block in close(); never let that hang the caller
        threading.Thread(target=closer, name="audio_close", daemon=True).start()
        if not done.wait(3.0):
            global _wedged_streams
            _wedged_streams += 1
            self.counters["wedged_streams"] = self.counters.get("wedged_streams", 0) + 1

    def _lose(self, why: str) -> None:
        self._close_stream()
        self._rescan = True
        self.counters["losses"] += 1
        self._lost_at = time.monotonic()
        self._standing["device_lost"] = Problem("device_lost", ERROR,
                                                f"{self.device_name!r}: {why}; reopening in {self._backoff:.1f} s")
        self._schedule_retry()

    # -- consumer work ----------------------------------------------------------------------------------------
    def _drain(self, s: _Session) -> None:
        n = len(s.blocks)
        for block in s.blocks[:n]:
            self._clock.add(block)
        del s.blocks[:n]            # the callback only appends, so this never loses a block
        n = len(s.flags)
        s.xruns.extend(s.flags[:n])
        del s.flags[:n]

    def _calibrate(self, s: _Session) -> None:
        if s.count < s.cal_at + s.cal_len:
            return
        in_ref = self.config.reference_channels[0]
        recorded = s.read(s.cal_at, s.cal_len)[:, in_ref]
        est = locate(recorded, s.chirp, int(self.config.max_latency_s * self.fs))
        s.calibrated = True
        if est.clear(20.0):
            s.latency = est.lag - int(self.config.reference_delay_samples)
            self.measured_latency.append(s.latency)
            self._standing.pop("calibration_failed", None)
        else:
            self._standing["calibration_failed"] = Problem(
                "calibration_failed", ERROR, f"start-up chirp not found on input {in_ref} (peak {est.peak_db:.1f} "
                                             f"dB); keeping latency_samples={s.latency}")

    def _cut(self, s: _Session) -> CaptureWindow | None:
        W = self.window_samples
        start = s.c0 + s.k * W + s.latency
        lookahead = W if self.config.track_latency else 0     # tracking needs the next window's probe too
        if s.count < start + W + lookahead:
            return None
        problems: list[Problem] = []
        oldest = s.count - s.cap + 4 * W
        if start < oldest:      # the consumer fell behind the ring: skip to the newest complete window
            newest = (s.count - s.c0 - s.latency) // W - 1
            problems.append(Problem("backlog", WARN, f"consumer fell behind: skipped {newest - s.k} windows"))
            s.k = newest
            start = s.c0 + s.k * W + s.latency
        k = s.k
        s.k += 1
        frames = s.read(start, W)
        recording = np.ascontiguousarray(frames[:, list(self.config.mic_channels)].T)
        emissions = self.emission.window(k).astype(np.float32)
        # xruns: input flags touch [r, r + n); output flags touch what comes back L samples later
        hit = False
        for r, n, bits in s.xruns:
            if bits & _INPUT_FLAGS and r < start + W and r + n > start:
                hit = True
            if bits & _OUTPUT_FLAGS and r + s.latency < start + W and r + n + s.latency > start:
                hit = True
        s.xruns[:] = [f for f in s.xruns if f[0] + f[1] + s.latency + W > start]
        if hit:
            self.counters["xruns"] += 1
            problems.append(Problem("xrun", WARN, "audio over/underflow inside the window (CPU overloaded or "
                                                  "blocksize too small); window dropped", drop=True))
        if self.config.track_latency:
            problems += self._track(s, k)
        problems += check_recording(recording, self.config.limits)
        stamp_s, resynced = self._stamp(start, hit)
        if resynced and not hit and self._last_k is not None and k >= self.config.settle_windows:
            self.counters["resyncs"] += 1
            problems.append(Problem("clock_resync", WARN, "device clock jumped against system time "
                                                          f"(error {self._stamps.last_error * 1e3:.1f} ms); stamps "
                                                          "re-anchored"))
        self._last_k = k
        sequence = self._sequence_base + k
        self.stamp_log.append((sequence, start, self._last_local, stamp_s, resynced or hit))
        self._last_sequence = sequence
        window = CaptureWindow(recording, emissions, self.fs, int(round(stamp_s * 1e9)), sequence, problems)
        self.counters["windows"] += 1
        if not window.usable:
            self.counters["dropped"] += 1
        return window

    def _stamp(self, start: int, discontinuity: bool) -> tuple[float, bool]:
        """Stamp of recorded sample ``start``; after an xrun the counter and the clock parted, so re-anchor."""
        W = self.window_samples
        local = self._clock.local_estimate(start, W)
        if local is None:
            local = (self._stamps.stamp + self._stamps.period) if self._stamps.stamp is not None else time.time()
        self._last_local = local
        if discontinuity or self._last_start is None:
            self._stamps.reset()
            elapsed = 1.0
        else:
            elapsed = max(start - self._last_start, 1) / W   # windows move by other than W when L changes
        self._last_start = start
        return self._stamps.update(local, elapsed)

    def _reference_shift(self, s: _Session, k: int) -> int | None:
        """How many samples late (vs ``reference_delay_samples``) window k's probe is on the reference input at the
        current alignment; None when the probe is not clearly there."""
        key = (k, s.latency)
        if key not in self._shift_cache:
            cfg = self.config
            W = self.window_samples
            in_ref, out_ref = cfg.reference_channels
            speaker = list(cfg.speaker_channels).index(out_ref)
            search = W // 2 - 1
            reference = self.emission.signal(k * W - search, W + 2 * search)[speaker]
            recorded = s.read(s.c0 + k * W + s.latency, W)[:, in_ref]
            est = find_lag(recorded, reference, -search, search)
            self._shift_cache = {key: est.lag - int(cfg.reference_delay_samples) if est.clear() else None}
        return self._shift_cache[key]

    def _track(self, s: _Session, k: int) -> list[Problem]:
        """Check window k against the reference pair, and window k + 1 too: a delay that changes inside window k
        after its own probe shows only in the next window's probe. Realign when both agree on a new delay."""
        tol = self.config.latency_tolerance_samples
        here, after = self._reference_shift(s, k), self._reference_shift(s, k + 1)
        moved = [d for d in (here, after) if d is not None and abs(d) > tol]
        if not moved:
            return []
        if here is not None and abs(here) > tol and after is not None and abs(after - here) <= 1:
            new = s.latency + here
            while new < 0:
                new += self.window_samples
            text = f"round trip moved from {s.latency} to {new} samples; realigned, window dropped"
            s.latency = new
            self.counters["latency_changes"] += 1
        elif here is not None and abs(here) > tol:
            text = f"probe {here:+d} samples off on the reference input; window dropped"
        else:
            text = f"round trip moved by {after:+d} samples inside the window; window dropped"
        return [Problem("latency_changed", WARN, text, drop=True)]


def round_trip_ms(samples: int, fs: int) -> float:
    return 1000.0 * samples / fs


__all__ = ["DuplexConfig", "DuplexSource", "find_device", "reinitialise_portaudio", "round_trip_ms"]
