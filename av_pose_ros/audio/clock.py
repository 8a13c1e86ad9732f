"""Stamps for captured samples: the audio device's clock mapped onto system (ROS) time.

Three clocks meet in a full-duplex stream:

* the **sample counter** ``r``: frames handed to the PortAudio callback since the stream opened (input and output
  share it in a duplex callback);
* the **stream clock** (PortAudio's time base, ``stream.time``): each callback gets ``inputBufferAdcTime``, the
  stream-clock time at which the first input frame of the block was captured at the converter, and
  ``currentTime``, the stream-clock time of the call. On ALSA it is the PCM status timestamp (CLOCK_REALTIME
  seconds); other host APIs use other origins, so it is never assumed to be the system clock;
* the **system clock** ``time.time_ns()``, which is ROS time for a node without ``use_sim_time``.

Mapping, in two steps:

1. *Stream -> system offset.* Every callback also reads ``time.time_ns()`` as its first statement. That reading
   comes after ``currentTime`` was taken, never before, so ``system - currentTime`` overestimates the offset by
   the callback's wake-up delay; the **minimum over the last ``offset_horizon_s``** (2 s) is the estimate
   (NTP's minimum-delay filter). Each block then gives one raw observation ``(r_b, adc_b + offset)``.
2. *Smoothing (a delay-locked loop).* The raw ADC times scatter (period granularity, the driver's delay estimate,
   scheduling). For window k starting at sample ``r0`` the raw estimate ``local`` is the median over the blocks
   near the window of ``adc_sys_b - (r_b - r0) / fs``. A second-order DLL (F. Adriaensen, "Using a DLL to filter
   time", 2005) predicts ``p = stamp_{k-1} + T (r0_k - r0_{k-1}) / W`` with ``T`` the tracked window period
   (the start sample moves by other than ``W`` when the round trip is realigned), and publishes
   ``stamp_k = p + a * (local - p)``, ``T += b * (local - p)``, with ``w = 2 pi B T0``, ``a = sqrt(2) w``,
   ``b = w^2`` and loop bandwidth ``B`` (default 0.5 Hz). The first window, a window with an xrun (the sample
   counter and the device parted) and any window whose error exceeds ``resync_s`` (a clock step) take ``local``
   directly (a *resync*).

The result: stamps are monotonic, spaced by the device's real window period (its rate error is tracked by ``T``),
with the scatter of the raw times filtered out; ``jitter_report`` measures what is left.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class BlockTime:
    """One callback's timing, as read inside the callback (cheap: no maths there)."""

    index: int          # sample counter of the block's first frame
    frames: int
    adc: float          # inputBufferAdcTime (stream clock, s); 0 when the host API does not provide it
    current: float      # currentTime (stream clock, s)
    system_ns: int      # time.time_ns() at the start of the callback


class DeviceClock:
    """Raw acquisition times of samples from callback timing (step 1 above)."""

    def __init__(self, fs: int, input_latency_s: float = 0.0, offset_horizon_s: float = 2.0, history_s: float = 8.0):
        self.fs = int(fs)
        self.input_latency_s = float(input_latency_s)
        self.offset_horizon_s = float(offset_horizon_s)
        self._blocks: deque[BlockTime] = deque()
        self._history_s = float(history_s)
        self._offsets: deque[tuple[float, float]] = deque()    # (current, system - current)

    def add(self, block: BlockTime) -> None:
        """Feed one callback's timing (called by the consumer thread, in order)."""
        if block.current > 0:
            self._offsets.append((block.current, block.system_ns * 1e-9 - block.current))
            while self._offsets and block.current - self._offsets[0][0] > self.offset_horizon_s:
                self._offsets.popleft()
        self._blocks.append(block)
        while self._blocks and (block.index - self._blocks[0].index) > self._history_s * self.fs:
            self._blocks.popleft()

    @property
    def offset_s(self) -> float | None:
        """Current stream -> system clock offset (seconds), or None before any callback with a stream time."""
        return min(o for _, o in self._offsets) if self._offsets else None

    def raw_time(self, block: BlockTime) -> float:
        """System time (s) at which ``block``'s first input frame was acquired, from this block alone."""
        offset = self.offset_s
        if block.adc > 0 and offset is not None:
            return block.adc + offset
        if block.current > 0 and offset is not None:
            return block.current + offset - self.input_latency_s
        return block.system_ns * 1e-9 - self.input_latency_s

    def local_estimate(self, r0: int, span: int) -> float | None:
        """Median raw acquisition time of sample ``r0`` from the blocks within ``span`` samples of it."""
        values = [self.raw_time(b) - (b.index - r0) / self.fs
                  for b in self._blocks if r0 - span <= b.index <= r0 + span and b.frames > 0]
        return float(np.median(values)) if values else None


class StampFilter:
    """Second-order DLL over window start times (step 2 above); works in integer nanoseconds at the output."""

    def __init__(self, period_s: float, bandwidth_hz: float = 0.5, resync_s: float = 0.02):
        self.nominal = float(period_s)
        w = 2 * math.pi * float(bandwidth_hz) * self.nominal
        self.a, self.b = math.sqrt(2) * w, w * w
        self.resync_s = float(resync_s)
        self.reset()

    def reset(self) -> None:
        self.stamp: float | None = None     # last output (s, system time)
        self.period = self.nominal
        self.last_error = 0.0

    def update(self, local: float, windows_elapsed: float = 1.0) -> tuple[float, bool]:
        """Stamp (s) for the next window from its raw estimate; ``windows_elapsed`` (periods since the last
        update, in windows: > 1 after skipped windows, fractional when the window start moved) scales the
        prediction. Returns (stamp, resynced)."""
        if self.stamp is None:
            self.stamp = local
            return local, True
        predicted = self.stamp + self.period * windows_elapsed
        error = local - predicted
        self.last_error = error
        if abs(error) > self.resync_s:
            self.stamp, self.period = local, self.nominal
            return local, True
        self.stamp = predicted + self.a * error
        self.period += self.b * error / max(windows_elapsed, 1.0)
        # keep the period estimate physical (a few percent around nominal) whatever the input did
        self.period = min(max(self.period, 0.97 * self.nominal), 1.03 * self.nominal)
        return self.stamp, False


def jitter_report(stamps_ns, period_s: float, starts=None, fs: float | None = None) -> dict[str, float]:
    """Jitter figures of window stamps: how far each spacing is from the ideal one.

    The ideal spacing is ``period_s``, or, given the windows' first sample indices ``starts`` and the rate ``fs``,
    ``(starts[k] - starts[k-1]) / fs`` (windows move by other than one period when the round trip is realigned).
    ``spacing_std_us``: std of (spacing - ideal); ``spacing_max_us``: largest |spacing - ideal|; ``line_rms_us``:
    RMS residual against the least-squares line of stamp over sample index (or window index).
    """
    s = np.asarray(stamps_ns, dtype=np.float64) * 1e-9
    if s.size < 3:
        return {"spacing_std_us": float("nan"), "spacing_max_us": float("nan"), "line_rms_us": float("nan")}
    if starts is None:
        x = np.arange(s.size) * period_s
    else:
        x = (np.asarray(starts, dtype=np.float64) - float(starts[0])) / float(fs)
    d = np.diff(s) - np.diff(x)
    coef = np.polyfit(x, s, 1)
    resid = s - np.polyval(coef, x)
    return {"spacing_std_us": float(np.std(d) * 1e6), "spacing_max_us": float(np.max(np.abs(d)) * 1e6),
            "line_rms_us": float(np.sqrt(np.mean(resid ** 2)) * 1e6), "rate_ratio": float(coef[0])}


def now_ns() -> int:
    return time.time_ns()


def node_clock_stamp(system_stamp_ns: int, clock, system_now_ns: int | None = None) -> int:
    """A system-time stamp moved onto a node's clock: under use_sim_time (ROS time active and set) the sample's age
    on the system clock is taken off the clock's `now`; otherwise the stamp is returned unchanged."""
    if not getattr(clock, "ros_time_is_active", False):
        return int(system_stamp_ns)
    now = clock.now().nanoseconds
    if now <= 0:  # no /clock yet
        return int(system_stamp_ns)
    age = (time.time_ns() if system_now_ns is None else system_now_ns) - int(system_stamp_ns)
    return int(now - age)
