"""What each speaker emits over time, and how several speakers share one capture window.

Capture windows are fixed length and window ``k`` starts at sample ``k * window_samples`` of the emission clock.

Two ways of keeping speakers apart, one per probe family:

* ``SlottedEmission`` (chirps, sweeps): speaker ``i`` emits the short probe at offset ``i * slot`` inside every
  window, the same every window. Deconvolving a mic by speaker ``i``'s window emission puts speaker ``j``'s
  response at lag ``(offset_j - offset_i) mod window``, so kernel taps ``[0, slot)`` hold speaker ``i``'s own
  response plus, from the speaker before it, only that speaker's response *later than one slot* (the reverberant
  tail). That leak is static, so empty-room subtraction removes it; what survives is the body echo of another
  speaker with a path longer than ``slot * c`` (8.6 m for four speakers in 100 ms). ``slot_crosstalk_db`` gives
  the static leak of a room; ``benchmarks/bench_acoustics.py`` prints it (about -26 to -36 dB in default-scenario
  rooms) and the kernel difference between all speakers and one speaker alone after subtraction (below -80 dB
  for a person at 1-4 m). Slots were chosen over simultaneous "orthogonal" chirps (up/down sweeps, interleaved
  bands) because those leak the *non-static* cross-correlation of the probes into every tap, while body echoes
  are 40-60 dB below the direct path.
* ``MusicEmission`` (BGM mode): music cannot be slotted, so every speaker plays the track continuously from its own
  offset. Each window then also records the echoes of earlier windows' (different) music, and all speakers
  overlap, so per-window deconvolution does not work. The kernel pipeline instead keeps a multi-speaker model of
  the empty room (``room_model.RoomModel``: every speaker/mic impulse response over the whole reverberant tail,
  fitted by least squares over a few seconds of known emission), predicts each window's empty-room recording from
  the emission history and subtracts it before deconvolving (``kernel``, continuous mode). Its limits: the model
  predicts only music it has heard during the capture (or while tracking an empty room), and music puts most of
  its energy below the kernel band, so at equal loudness its in-band echo-to-noise ratio is far below a chirp's;
  ``benchmarks/bench_acoustics.py`` prints both residuals.
"""

from __future__ import annotations

import numpy as np


class SlottedEmission:
    """Each speaker repeats one short probe every window, in its own time slot (periodic emission)."""

    periodic = True

    def __init__(self, probe: np.ndarray, n_speakers: int, window_samples: int):
        probe = np.asarray(probe, dtype=np.float32).ravel()
        if n_speakers < 1:
            raise ValueError("need at least one speaker")
        self.n_speakers = int(n_speakers)
        self.window_samples = int(window_samples)
        self.slot_samples = self.window_samples // self.n_speakers
        if probe.size > self.slot_samples:
            raise ValueError(f"probe of {probe.size} samples does not fit a slot of {self.slot_samples} "
                             f"({n_speakers} speakers in {window_samples} samples)")
        self.probe = probe
        self.offsets = np.arange(self.n_speakers) * self.slot_samples
        self._window = np.zeros((self.n_speakers, self.window_samples), dtype=np.float32)
        for s, off in enumerate(self.offsets):
            self._window[s, off:off + probe.size] = probe

    @property
    def max_taps(self) -> int:
        """Longest kernel that stays clear of the next speaker's direct path."""
        return self.slot_samples

    def window(self, index: int) -> np.ndarray:
        """(speakers, window_samples) emission of window ``index`` (identical for every index)."""
        return self._window.copy()

    def signal(self, start: int, n_samples: int) -> np.ndarray:
        """(speakers, n_samples) emitted from clock sample ``start`` on (any start, also negative)."""
        idx = (int(start) + np.arange(int(n_samples))) % self.window_samples
        return self._window[:, idx]


class MusicEmission:
    """Each speaker plays one track continuously (looped) from its own offset; window ``k`` carries its slice."""

    periodic = False

    def __init__(self, track: np.ndarray, n_speakers: int, window_samples: int,
                 speaker_offset_samples: int | None = None, start_offset_samples: int = 0):
        track = np.asarray(track, dtype=np.float32).ravel()
        if track.size < 2 * window_samples:
            raise ValueError(f"music track of {track.size} samples is shorter than two windows")
        self.track = track
        self.n_speakers = int(n_speakers)
        self.window_samples = int(window_samples)
        step = track.size // max(self.n_speakers, 1) if speaker_offset_samples is None else int(speaker_offset_samples)
        # start_offset_samples: where in the track clock sample 0 falls (a scene starting mid-song)
        self.offsets = np.arange(self.n_speakers) * step + int(start_offset_samples)

    @property
    def max_taps(self) -> int:
        return self.window_samples

    def window(self, index: int) -> np.ndarray:
        return self.signal(int(index) * self.window_samples, self.window_samples)

    def signal(self, start: int, n_samples: int) -> np.ndarray:
        idx = (int(start) + self.offsets[:, None] + np.arange(int(n_samples))[None, :]) % self.track.size
        return self.track[idx]


def periodic_alias(response: np.ndarray, period: int) -> np.ndarray:
    """Fold a long (..., L) impulse response into one period: what a periodic excitation measures."""
    response = np.asarray(response, dtype=float)
    pad = (-response.shape[-1]) % period
    padded = np.concatenate([response, np.zeros(response.shape[:-1] + (pad,))], axis=-1)
    return padded.reshape(response.shape[:-1] + (-1, period)).sum(axis=-2)


def slot_crosstalk_db(rirs: np.ndarray, emission: SlottedEmission, pairs: np.ndarray,
                      taps: int | None = None) -> np.ndarray:
    """Static crosstalk (dB) of each (speaker, mic) pair's kernel under time slots, computed from the true RIRs.

    ``rirs`` (speakers, mics, L) with tap 0 at emission; returns, per pair, the energy that other speakers put
    into taps ``[0, taps)`` of that pair's steady-state kernel over the energy of the pair's own response there.
    """
    taps = emission.max_taps if taps is None else int(taps)
    n = emission.window_samples
    folded = periodic_alias(rirs, n)  # (S, M, n)
    out = []
    for s, m in np.asarray(pairs, dtype=int):
        own = folded[s, m, :taps]
        leak = np.zeros(taps)
        for j in range(emission.n_speakers):
            if j != s:
                lag = (emission.offsets[j] - emission.offsets[s]) % n
                leak += np.roll(folded[j, m], lag)[:taps]
        with np.errstate(divide="ignore"):
            out.append(10 * np.log10(np.sum(leak ** 2) / np.sum(own ** 2)))
    return np.array(out)
