"""Empty-room model for a continuous probe (music, BGM mode): every (speaker, mic) impulse response at once.

With music every speaker plays all the time and every window carries different samples, so a window's recording
also holds the room's echoes of *earlier* windows (the reverberant tail is longer than a window) and all speakers
overlap. Per-window deconvolution cannot separate either. What is known exactly is the whole emission of every
speaker, so the empty room is modelled as a linear multi-input system

    y_m[t] = sum_s sum_{l < L} h_sm[l] x_s[t - l]            (L taps cover the whole reverberant tail)

fitted by least squares over a few seconds of empty-room capture (``RoomModel.fit``: preconditioned conjugate
gradients on the normal equations; the normal matrix is applied exactly, at a cost independent of the capture
length, as the Toeplitz matrix of the speakers' cross-correlations minus the capture's two edge blocks; the
preconditioner inverts the speakers' smoothed cross-spectral matrix per bin; a small per-band ridge keeps bins the
music never excites bounded). A room's responses are finite and only decay after their direct paths, so the
default fit (``prior="decay"``) is a MAP estimate under that prior: a first least-squares answer gives each
response's energy envelope (smoothed, made non-increasing), the taps then get a Gaussian prior with that variance
and the noise variance the first answer left (empirical Bayes), and conjugate gradients go on from the first
answer. Taps the capture did not pin down (the tail, in bands the music hardly excited) shrink instead of fitting
noise, which is what lets the model predict music it never heard. The model then *predicts* each new window's
empty-room recording from the emission history, tail of earlier windows included (``RoomModel.predict``); what
remains after subtracting the prediction is body echoes and noise, which the kernel pipeline deconvolves. While
nobody is present the model follows slow changes by a normalised gradient step per window (``RoomModel.adapt``, a
block frequency-domain adaptive filter).

Limits, measured with ``benchmarks/bench_room_new_music.py`` (simulated music scene, SNR 30 dB, 9600 taps; median
residual of the prediction, dB re the recording, on windows of a track the capture never heard, plain fit -> decay
prior): with the default 82-window (8.2 s) capture, music it never heard is predicted about as well as music it
heard (synthetic loop -> another synthetic track -45.5 -> -45.5; a rendered Bach flute part -> a string chorale
-40.5 -> -42.5 dB); shorter captures overfit (38400 unknowns per mic) and the prior matters: 4 s -35.6 -> -39.4 dB,
2 s -11.9 -> -14.2 dB (still no kernel: the window needs <= -30 dB). A room's tail is rough across frequency at a
scale of 1 / tail length (5 Hz for 200 ms), finer than a chord's harmonic lines, so no prior predicts a tonal track
that a short capture did not excite; the capture must be long (or the music broadband) enough. The adaptive step is
small, so learning new music while the room is empty is slow. Tests: ``test_acoustics_room_model.py``,
``test_room_model_prior.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import maximum_filter1d, uniform_filter1d

PRIORS = ("none", "decay")


def _band_mean(power: np.ndarray, fraction_octave: float = 1 / 3) -> np.ndarray:
    """Mean over a fractional-octave band around every bin of the last axis (bin index as frequency)."""
    n = power.shape[-1]
    freqs = np.arange(n, dtype=float)
    half = 2.0 ** (fraction_octave / 2)
    lo = np.searchsorted(freqs, freqs / half, side="left")
    hi = np.maximum(np.searchsorted(freqs, freqs * half, side="right"), lo + 1)
    csum = np.concatenate([np.zeros(power.shape[:-1] + (1,)), np.cumsum(power, axis=-1)], axis=-1)
    return (csum[..., hi] - csum[..., lo]) / (hi - lo)


@dataclass
class FitReport:
    """How a least-squares fit went (for logs and tests)."""

    samples: int            # recorded samples per mic that entered the fit
    unknowns: int           # taps per mic (speakers x taps)
    iterations: int
    relative_residual: float    # |A^T (y - A h)| / |A^T y| at the end (normal-equation residual), worst mic
    fit_error_db: float         # recording energy left unexplained, dB re recording energy (noise + tail)


class RoomModel:
    """(speakers, mics, taps) empty-room impulse responses of a rig driven by known continuous emissions."""

    def __init__(self, n_speakers: int, n_mics: int, taps: int, ridge: float = 1e-6, floor_db: float = -80.0,
                 prior: str = "decay", prior_passes: int = 1, prior_smooth_taps: int = 48):
        if prior not in PRIORS:
            raise ValueError(f"prior {prior!r} is not one of {list(PRIORS)}")
        self.n_speakers, self.n_mics, self.taps = int(n_speakers), int(n_mics), int(taps)
        self.ridge = float(ridge)
        self.floor_db = float(floor_db)
        self.prior = prior
        self.prior_passes = int(prior_passes)
        self.prior_smooth_taps = int(prior_smooth_taps)
        self.tap_variance: np.ndarray | None = None   # (S, M, L) prior variance per tap of the last "decay" fit
        self.h: np.ndarray | None = None            # (S, M, L)
        self.noise_psd: np.ndarray | None = None    # (M, 2L/2+1) per-sample power the fit left unexplained
        self._spectra: dict[int, np.ndarray] = {}    # FFT size -> rfft(h) cache
        self._ridge_spectrum: np.ndarray | None = None
        self._phi: np.ndarray | None = None

    @property
    def ready(self) -> bool:
        return self.h is not None

    # -- per-band statistics of the emission ---------------------------------------------------------------------
    def _set_statistics(self, phi: np.ndarray) -> None:
        """Ridge per band and the preconditioner from a per-sample cross-spectrum ``phi`` (F2, S, S)."""
        diag = np.real(np.einsum("fss->f", phi)) / self.n_speakers
        local = _band_mean(diag)
        self._ridge_spectrum = self.ridge * local + 10 ** (self.floor_db / 10) * local.max()
        self._phi = phi

    def _inverse(self, scale: float) -> np.ndarray:
        eye = np.eye(self.n_speakers)
        return np.linalg.inv(scale * (self._phi + self._ridge_spectrum[:, None, None] * eye))

    # -- fitting ---------------------------------------------------------------------------------------------------
    def fit(self, x: np.ndarray, y: np.ndarray, y_start: int, iterations: int = 150, tol: float = 1e-5
            ) -> FitReport:
        """Least-squares fit from emission ``x`` (S, Nx) and recording ``y`` (M, Ny); ``y[:, j]`` was recorded
        while ``x[:, y_start + j]`` was emitted.

        Only recorded samples whose whole emission history of ``taps`` samples is known enter the fit. The normal
        equations ``(A^T A + ridge) h = A^T y`` are solved by preconditioned conjugate gradients (step sizes per
        mic). ``A^T A`` is applied exactly at a cost independent of the capture length: it is the Toeplitz matrix of
        the speakers' cross-correlations at lags below ``taps`` (one circulant product of size 2L) minus the two
        (L-1)-sample edge blocks where the capture starts and stops. The preconditioner inverts, per band, the
        speakers' cross-spectral matrix (the classic frequency-domain estimate), so conjugate gradients only have to
        fix what that approximation misses.
        """
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        L, S, M = self.taps, self.n_speakers, self.n_mics
        n2 = 2 * L
        first = max(0, L - 1 - int(y_start))               # first usable recorded sample
        n_used = y.shape[-1] - first
        if n_used <= 0:
            raise ValueError(f"no recorded sample has {L} samples of known emission before it")
        out_pos = int(y_start) + first                      # x index of the first usable output
        xt = x[:, out_pos - (L - 1): out_pos + n_used]      # every emission sample the used outputs depend on
        target = y[:, first:]
        nt = xt.shape[-1]
        n_fft = sfft.next_fast_len(nt + L, real=True)
        Xt = sfft.rfft(xt, n_fft, axis=-1)
        # right-hand side A^T y: correlation of each mic with each speaker at lags [0, L)
        buf = np.zeros((M, n_fft))
        buf[:, L - 1: L - 1 + n_used] = target
        rhs = sfft.irfft(np.conj(Xt)[:, None, :] * sfft.rfft(buf, axis=-1)[None], n_fft, axis=-1)
        b = rhs[..., :L]
        # cross-correlations r_st(tau) = sum_j xt_s[j] xt_t[j + tau], |tau| < L, as a circulant of size 2L
        corr = sfft.irfft(np.conj(Xt)[:, None, :] * Xt[None, :, :], n_fft, axis=-1)
        lags = np.concatenate([np.arange(L), np.arange(-L, 0)])
        circ = corr[:, :, lags % n_fft]
        circ[:, :, L] = 0.0
        toeplitz = sfft.rfft(circ, n2, axis=-1)                         # (S, S, F2)
        weights = np.concatenate([1 - np.arange(L) / L, [0.0], 1 - np.arange(L - 1, 0, -1) / L])
        phi = np.moveaxis(np.real_if_close(sfft.rfft(circ * weights, n2, axis=-1)), -1, 0)  # (F2, S, S), PSD
        head = sfft.rfft(xt[:, : L - 1], n2, axis=-1)
        tail = sfft.rfft(xt[:, nt - (L - 1):], n2, axis=-1)
        self._set_statistics(phi / nt)
        ridge = self._ridge_spectrum * nt
        precond = np.linalg.inv(phi + ridge[:, None, None] * np.eye(S))

        def normal(v):
            V = sfft.rfft(v, n2, axis=-1)                                 # (S, M, F2)
            out = np.einsum("stf,tmf->smf", toeplitz, V) + ridge * V
            edge = sfft.irfft(np.einsum("sf,smf->mf", head, V), n2, axis=-1)
            edge[:, L - 1:] = 0.0
            out -= np.conj(head)[:, None, :] * sfft.rfft(edge, axis=-1)[None]
            edge = sfft.irfft(np.einsum("sf,smf->mf", tail, V), n2, axis=-1)
            edge[:, : L - 1] = 0.0
            edge[:, 2 * L - 2:] = 0.0
            out -= np.conj(tail)[:, None, :] * sfft.rfft(edge, axis=-1)[None]
            return sfft.irfft(out, n2, axis=-1)[..., :L]

        def fitted(g):
            Y = np.einsum("smf,sf->mf", sfft.rfft(g, n_fft, axis=-1), Xt)
            return sfft.irfft(Y, n_fft, axis=-1)[:, L - 1: L - 1 + n_used]

        h, it, rel = self._solve(normal, b, precond[None], None, None, iterations, tol)
        for _ in range(self.prior_passes if self.prior == "decay" else 0):
            # Empirical Bayes: the taps' prior variance from the last answer's smoothed energy envelope (a room
            # response only decays after its direct path), the noise variance from what it left unexplained.
            err = target - fitted(h)
            noise = np.sum(err ** 2, axis=-1) / max(n_used - S * L, n_used // 10)         # (M,) per sample
            self.tap_variance = self._tap_variance(h)
            lam = noise[None, :, None] / self.tap_variance                                 # (S, M, L)
            # per-bin preconditioner with each (speaker, mic)'s typical tap penalty on the diagonal
            typical = np.exp(np.mean(np.log(lam), axis=-1))                                # (S, M)
            eye = np.eye(S)[None, None]
            pre = np.linalg.inv((phi + ridge[:, None, None] * np.eye(S))[None]
                                + typical.T[:, None, :, None] * eye)                        # (M, F2, S, S)
            h, extra, rel = self._solve(normal, b, pre, lam, h, iterations, tol)
            it += extra
        self.h = h
        self._spectra.clear()
        err = target - fitted(h)
        fit_db = 10 * np.log10(np.sum(err ** 2) / max(np.sum(target ** 2), 1e-300))
        self.noise_psd = self._psd(err)
        return FitReport(n_used, S * L, it, rel, float(fit_db))

    def _solve(self, normal, b: np.ndarray, precond: np.ndarray, lam: np.ndarray | None, h: np.ndarray | None,
               iterations: int, tol: float) -> tuple[np.ndarray, int, float]:
        """Preconditioned conjugate gradients on ``(normal + diag(lam)) h = b`` (step sizes per mic), from ``h``
        (None: the preconditioned right-hand side). ``precond`` (1 or M, F2, S, S) per-bin matrices."""
        def apply(v):
            if lam is None:
                return normal(v)
            return normal(v) + lam * v

        def apply_precond(v):
            n2 = 2 * self.taps
            spec = sfft.rfft(v, n2, axis=-1)                                 # (S, M, F2)
            if precond.shape[0] == 1:
                out = np.einsum("fst,tmf->smf", precond[0], spec)
            else:
                out = np.einsum("mfst,tmf->smf", precond, spec)
            return sfft.irfft(out, n2, axis=-1)[..., : self.taps]

        def dot(a, c):
            return np.einsum("sml,sml->m", a, c)

        h = apply_precond(b) if h is None else h.copy()
        r = b - apply(h)
        z = apply_precond(r)
        p = z.copy()
        rz = dot(r, z)
        b_norm = np.sqrt(dot(b, b)) + 1e-300
        it = 0
        rel = float(np.max(np.sqrt(dot(r, r)) / b_norm))
        while it < iterations and rel > tol:
            q = apply(p)
            alpha = rz / np.maximum(dot(p, q), 1e-300)
            h += alpha[None, :, None] * p
            r -= alpha[None, :, None] * q
            z = apply_precond(r)
            rz_new = dot(r, z)
            p = z + (rz_new / np.maximum(rz, 1e-300))[None, :, None] * p
            rz = rz_new
            it += 1
            rel = float(np.max(np.sqrt(dot(r, r)) / b_norm))
        return h, it, rel

    def _tap_variance(self, h: np.ndarray) -> np.ndarray:
        """(S, M, L) prior variance per tap: the response's energy smoothed over ``prior_smooth_taps``, made
        non-increasing from the end (a room's reverberation only decays), floored 120 dB below its peak."""
        env = uniform_filter1d(h ** 2, size=max(1, self.prior_smooth_taps), axis=-1, mode="nearest")
        env = np.maximum.accumulate(env[..., ::-1], axis=-1)[..., ::-1]
        return np.maximum(env, 1e-12 * env.max(axis=-1, keepdims=True) + 1e-300)

    def _psd(self, signal: np.ndarray) -> np.ndarray:
        """(M, F2) power per sample and bin of the 2L-point spectrum (Welch, blocks of 2L, hop L)."""
        n2 = 2 * self.taps
        starts = range(0, max(signal.shape[-1] - n2, 0) + 1, self.taps)
        acc = sum(np.abs(sfft.rfft(signal[:, a: a + n2], n2, axis=-1)) ** 2 for a in starts)
        return acc / (len(starts) * min(n2, signal.shape[-1]))

    def noise_power(self, n: int, fs: float) -> np.ndarray:
        """(M, n // 2 + 1) what the fit left unexplained (noise and model error) per bin of an n-point spectrum."""
        f2 = np.fft.rfftfreq(2 * self.taps, 1.0 / fs)
        fn = np.fft.rfftfreq(n, 1.0 / fs)
        smooth = _band_mean(self.noise_psd, 1 / 6)
        return n * np.stack([np.interp(fn, f2, row) for row in smooth])

    # -- prediction and tracking -----------------------------------------------------------------------------------
    def _spectrum(self, n_fft: int) -> np.ndarray:
        spec = self._spectra.get(n_fft)
        if spec is None:
            spec = self._spectra[n_fft] = sfft.rfft(self.h, n_fft, axis=-1)
        return spec

    def predict(self, x: np.ndarray, n: int, shift: int = 0) -> np.ndarray:
        """(M, n) empty-room recording of the last ``n`` samples of emission ``x`` (S, >= taps - 1 + n).

        ``shift`` (whole samples; positive delays) moves every response, e.g. after the device latency changed. An
        advance needs emission that has not happened yet; it is taken as silence, which only drops the responses'
        first ``-shift`` taps (before the direct path) for the last ``-shift`` samples.
        """
        x = np.asarray(x, dtype=float)
        need = self.taps - 1 + n
        if x.shape[-1] < need:
            raise ValueError(f"prediction needs {need} emission samples, got {x.shape[-1]}")
        x = x[:, -need:]
        shift = int(shift)
        n_fft = sfft.next_fast_len(need + max(0, -shift), real=True)
        Y = np.einsum("smf,sf->mf", self._spectrum(n_fft), sfft.rfft(x, n_fft, axis=-1))
        out = sfft.irfft(Y, n_fft, axis=-1)
        start = self.taps - 1 - shift
        return out[:, start: start + n]

    def adapt(self, x: np.ndarray, error: np.ndarray, rate: float) -> None:
        """One normalised gradient step that reduces ``error`` (M, n) = recorded - predicted for emission ``x``.

        The step is preconditioned per band by the fit's cross-spectrum plus this window's own (so a loud passage,
        or music the fit hardly heard, cannot overshoot); ``rate`` is the fraction of the way to this window's own
        least-squares answer, the analogue of the exponential update of the periodic model. This is a block
        frequency-domain adaptive filter; it is how the model learns music the capture did not contain.
        """
        x = np.asarray(x, dtype=float)
        error = np.asarray(error, dtype=float)
        n = error.shape[-1]
        need = self.taps - 1 + n
        x = x[:, -need:]
        n_fft = sfft.next_fast_len(need, real=True)
        X = sfft.rfft(x, n_fft, axis=-1)
        buf = np.zeros((self.n_mics, n_fft))
        buf[:, self.taps - 1: self.taps - 1 + n] = error
        R = sfft.rfft(buf, axis=-1)
        grad = sfft.irfft(np.conj(X)[:, None, :] * R[None, :, :], n_fft, axis=-1)[..., : self.taps]
        n2 = 2 * self.taps
        # Normalised LMS: divide by the power per bin of the emission the gradient touched (the window and the
        # taps - 1 samples before it) or that the fit saw, whichever is larger, taken as its maximum over
        # neighbouring bins (tonal music leaks its strong harmonics into quiet bins), times the number of samples
        # and unknowns per mic. One window has fewer samples than the model has unknowns, so a step can remove
        # only about n / (n + S L) of the error; ``rate`` is scaled so that the error shrinks by about ``rate``
        # per window, capped at a quarter NLMS step (larger steps diverged on tonal music in the simulator).
        span = x[:, -n2:]
        own = np.sum(np.abs(sfft.rfft(span, n2, axis=-1)) ** 2, axis=0) / span.shape[-1]
        fitted = np.real(np.einsum("fss->f", self._phi))
        unknowns = self.n_speakers * self.taps
        norm = (maximum_filter1d(np.maximum(own, fitted), size=17) + self.n_speakers * self._ridge_spectrum) * (
            n + unknowns)
        step = sfft.irfft(sfft.rfft(grad, n2, axis=-1) / norm, n2, axis=-1)[..., : self.taps]
        mu = min(0.25, float(rate) * (n + unknowns) / n)
        self.h = self.h + mu * step
        self._spectra.clear()
