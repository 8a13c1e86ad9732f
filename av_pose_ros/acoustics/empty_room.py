"""Empty-room models: what the room alone gives, per (speaker, mic) pair, so that the body's part can be isolated.

Both are captured explicitly (the operator vouches the room is empty for a few windows) and then follow slow
changes while nobody is present. ``SpectralEmptyRoom`` serves periodic probes (one response per pair, in the
frequency domain); ``ContinuousEmptyRoom`` serves continuous probes (music), whose windows overlap in time and
between speakers, so it fits a multi-speaker room model over the whole reverberant tail (``room_model.RoomModel``).
"""

from __future__ import annotations

import numpy as np

from .kernel_types import KernelConfig
from .room_model import RoomModel


class EmptyRoom:
    """What both models share: the capture request and its progress, for the extractor and diagnostics.

    ``requested`` is the size of the last capture request (so a switch of probe mode can carry it over);
    ``frames`` counts the windows the model has absorbed since it was (re)captured."""

    def __init__(self, capture_frames: int, rate: float):
        self.capture_frames = int(capture_frames)
        self.rate = float(rate)
        self.frames = 0
        self.requested = 0
        self._pending = 0

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    @property
    def capturing(self) -> bool:
        return self._pending > 0

    def request_capture(self, frames: int | None = None) -> None:
        raise NotImplementedError


class SpectralEmptyRoom(EmptyRoom):
    """Per-pair empty-room response in the frequency domain: an explicit average, then slow tracking.

    Each frame brings ``z = gain * H + noise`` (see ``deconvolution.filter_gain``); the model keeps ``sum z`` and
    ``sum gain`` so that ``H = sum z / sum gain`` is unbiased even when every frame has a different gain, and
    ``expected(gain)`` is what an empty room would give through this frame's gain.
    """

    def __init__(self, rate: float = 0.02, capture_frames: int = 8):
        super().__init__(capture_frames, rate)
        self._num = self._den = None
        self._acc_num = self._acc_den = None

    @property
    def ready(self) -> bool:
        return self._num is not None

    def request_capture(self, frames: int | None = None) -> None:
        """Average the next ``frames`` frames into a fresh model (the operator vouches the room is empty)."""
        self._pending = self.capture_frames if frames is None else max(1, int(frames))
        self.requested = self._pending
        self._acc_num = self._acc_den = None

    def response(self) -> np.ndarray:
        """(pairs, F) unbiased empty-room spectra."""
        return self._num / np.maximum(self._den, 1e-6)

    def expected(self, gain: np.ndarray) -> np.ndarray:
        return gain * self.response()

    def observe(self, z: np.ndarray, gain: np.ndarray, person_present: bool | None) -> None:
        """Feed one frame: completes a pending capture, else tracks slowly when ``person_present`` is False."""
        if self._pending:
            self._acc_num = z.copy() if self._acc_num is None else self._acc_num + z
            self._acc_den = gain.copy() if self._acc_den is None else self._acc_den + gain
            self._pending -= 1
            if not self._pending:
                self._num, self._den = self._acc_num, self._acc_den
                self.frames = self.capture_frames
        elif self.ready and person_present is False:
            total = float(np.mean(self._den[self._den > 0])) if np.any(self._den > 0) else 1.0
            keep = 1.0 - self.rate
            self._num = keep * self._num + self.rate * total * z
            self._den = keep * self._den + self.rate * total * gain
            self.frames += 1


class ContinuousEmptyRoom(EmptyRoom):
    """Empty room for a continuous probe: a ``RoomModel`` fitted over an explicit capture, then slow tracking.

    An explicit capture collects gap-free windows (recording and emission), at least twice as many samples as the
    model has unknowns per mic, and fits the model when the last one arrives; a gap restarts it. With the default
    82 windows the model (decay prior, see ``room_model``) predicts music it never heard about as well as the
    music of the capture; a much shorter capture overfits, and ``KernelQuality.empty_room_residual_db`` shows it.
    """

    def __init__(self, n_mics: int, config: KernelConfig):
        super().__init__(config.music_capture_frames, config.empty_room_rate)
        self.config = config
        self.n_mics = int(n_mics)
        self.model: RoomModel | None = None       # made at the first capture (speakers = emission rows)
        self.fit_report = None
        self.reference_shift = 0.0      # common clock shift (samples) while the model was captured
        self._requested = 0
        self._prefix = None
        self._buffer: list[tuple[np.ndarray, np.ndarray, float]] = []

    @property
    def ready(self) -> bool:
        return self.model is not None and self.model.ready

    def request_capture(self, frames: int | None = None) -> None:
        """Fit a fresh model over the next ``frames`` windows (default ``music_capture_frames``; the operator
        vouches the room is empty)."""
        frames = self.capture_frames if frames is None else max(1, int(frames))
        self.requested = self._requested = self._pending = frames
        self._buffer = []
        self._prefix = None

    def restart_capture(self) -> None:
        """A gap in the stream: the capture has to start again (the fit needs one gap-free stretch)."""
        if self._pending:
            self.request_capture(self._requested)

    def collect(self, recording: np.ndarray, emission: np.ndarray, history: np.ndarray, shift: float) -> bool:
        """Add one window to a pending capture; fits when it is complete. Returns True when a new model was fitted."""
        if not self._pending:
            return False
        cfg = self.config
        if not self._buffer:
            self._prefix = history[:, -(cfg.room_taps - 1):]
            needed = int(np.ceil((2 * emission.shape[0] * cfg.room_taps + cfg.room_taps) / recording.shape[-1]))
            self._pending = max(self._pending, needed)
        self._buffer.append((np.asarray(recording, float), np.asarray(emission, float), float(shift)))
        self._pending -= 1
        if self._pending:
            return False
        x = np.concatenate([self._prefix] + [e for _, e, _ in self._buffer], axis=-1)
        y = np.concatenate([r for r, _, _ in self._buffer], axis=-1)
        fitted = RoomModel(x.shape[0], self.n_mics, cfg.room_taps, cfg.room_ridge, cfg.room_floor_db)
        self.fit_report = fitted.fit(x, y, self._prefix.shape[-1], iterations=cfg.room_fit_iterations)
        self.model = fitted
        self.reference_shift = float(np.median([s for _, _, s in self._buffer]))
        self.frames = len(self._buffer)
        self._buffer = []
        self._prefix = None
        return True

    def track(self, history: np.ndarray, error: np.ndarray) -> None:
        """One slow update from a window recorded while nobody is present (``error`` = recorded - predicted)."""
        self.model.adapt(history, error, self.rate)
        self.frames += 1
