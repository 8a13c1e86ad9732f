"""Render captures: what every microphone records in one window, with ground truth and geometry.

recording = sum over speakers of (empty-room RIR + body response) * emission, then mic gain mismatch, a clock
offset, white noise at the scene's SNR. The SNR is an echo-to-noise ratio: the power of everything recorded except
the direct speaker->mic paths (room reverberation and body echoes) over the noise power. With a speaker a few
centimetres from its mic the direct path is 30-40 dB above the room, so a whole-recording SNR would say nothing
about the echoes the kernel is made of. The body response comes from the physical-optics (Kirchhoff) approximation:
a surface element of area dA seen by both speaker and mic adds

    rho * dA * (cos_in + cos_out) / 2 / (8 pi^2 c r1 r2) * d/dt delta(t - (r1 + r2) / c)

which integrates to the image-source amplitude 1 / (4 pi (r1 + r2)) over a large flat plate, so body and room
echoes share one scale. Not modelled: body-wall double bounces and the body's shadowing of room paths (so the
empty-room response subtracts exactly up to noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import fftconvolve

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import MusicEmission, SlottedEmission
from av_pose_ros.acoustics.physics import speed_of_sound
from av_pose_ros.sim.scenario import Scene

from .body import body_joints, place_in_world
from .choreography import scene_motion
from .room import RirCache
from .surface import BodySurface, body_capsules, sample_surface, visible_from

_FD_HALF = 16        # half length of the fractional-delay (differentiated sinc) filter
_CLOCK_HALF = 32     # half length of the clock-offset fractional-delay filter
_LEVEL = 0.25        # recorded peak of a probe through the strongest (direct) path, full scale = 1


@dataclass(eq=False)
class Capture:
    """One rendered window. Positions in base_link (metres); audio (channels, samples) float32."""

    recording: np.ndarray           # (mics, n)
    fs: int
    emissions: np.ndarray           # (speakers, n): what each speaker played in this window (tap 0 = window start)
    window_index: int
    time_s: float                   # scene time at the window start
    joints: np.ndarray | None       # (17, 3) ground truth, None for an empty-room capture
    speakers: np.ndarray            # (S, 3)
    mics: np.ndarray                # (M, 3)
    pairs: np.ndarray               # (P, 2) (speaker, mic) indices
    base_from_camera_link: np.ndarray
    base_from_optical: np.ndarray   # world_from_camera for the vision code
    speed_of_sound: float
    snr_db: float


@lru_cache(maxsize=8)
def _track(music_file: str | None, fs: int) -> np.ndarray:
    return probes.load_wav(music_file, fs) if music_file else probes.synthetic_music(fs=fs)


def make_emission(audio, n_speakers: int):
    """The ``SlottedEmission`` / ``MusicEmission`` a scene's audio settings describe."""
    window = int(round(audio.window_s * audio.fs))
    if audio.probe == "music":
        return MusicEmission(_track(audio.music_file, audio.fs), n_speakers, window)
    make = probes.linear_chirp if audio.probe == "chirp" else probes.exponential_sweep
    return SlottedEmission(make(audio.band_hz[0], audio.band_hz[1], audio.probe_duration_s, audio.fs),
                           n_speakers, window)


def _fractional_delay_taps(delay_samples: float, length: int) -> np.ndarray:
    """(length,) Hann-windowed sinc that delays by ``delay_samples`` (the filter's centre plus a fraction)."""
    k = np.arange(length) - float(delay_samples)
    window = 0.5 + 0.5 * np.cos(np.pi * np.clip(k / (length / 2 + 0.5), -1, 1))
    return np.sinc(k) * window


def _fractional_derivative_taps(delay_samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer tap positions (E, 2H) and values of a Hann-windowed differentiated sinc centred on each delay.

    With x = offset - frac (integer offset, 0 <= frac < 1), cos(pi x) and sin(pi x) are +-cos(pi frac) and
    -+sin(pi frac), and the window's cosine splits the same way, so the trigonometry runs once per echo (E), not
    once per tap (E x 2H): the simulator spends most of its time here.
    """
    base = np.floor(delay_samples).astype(int)
    frac = delay_samples - base
    offsets = np.arange(-_FD_HALF + 1, _FD_HALF + 1)
    pos = base[:, None] + offsets[None, :]
    x = offsets[None, :] - frac[:, None]
    sign = np.where(offsets % 2 == 0, 1.0, -1.0)[None, :]
    cos_pi_x = sign * np.cos(np.pi * frac)[:, None]
    sin_pi_x = -sign * np.sin(np.pi * frac)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        dsinc = np.where(np.abs(x) > 1e-9, (cos_pi_x - sin_pi_x / (np.pi * x)) / x, 0.0)
    b = np.pi / (_FD_HALF + 0.5)
    a = b * offsets[None, :]
    window = 0.5 + 0.5 * (np.cos(a) * np.cos(b * frac)[:, None] + np.sin(a) * np.sin(b * frac)[:, None])
    return pos, dsinc * window


def body_response(surface: BodySurface, speakers: np.ndarray, mics: np.ndarray, fs: int, c: float,
                  reflectance: float) -> np.ndarray:
    """(S, M, L) body impulse response of every speaker/mic combination (tap 0 at emission)."""
    sensors = np.concatenate([speakers, mics])
    visible = visible_from(surface, sensors)
    vs, vm = visible[: len(speakers)], visible[len(speakers):]
    both = vs[:, None, :] & vm[None, :, :]                                   # (S, M, K)
    s_idx, m_idx, k_idx = np.nonzero(both)
    p, n, area = surface.points[k_idx], surface.normals[k_idx], surface.areas[k_idx]
    to_s, to_m = speakers[s_idx] - p, mics[m_idx] - p
    r1, r2 = np.linalg.norm(to_s, axis=1), np.linalg.norm(to_m, axis=1)
    obliquity = 0.5 * (np.einsum("ij,ij->i", to_s, n) / r1 + np.einsum("ij,ij->i", to_m, n) / r2)
    amplitude = reflectance * area * obliquity / (8 * np.pi ** 2 * c * r1 * r2) * fs
    pos, taps = _fractional_derivative_taps((r1 + r2) / c * fs)
    length = int(pos.max()) + 1 if len(pos) else 1
    combo = (s_idx * len(mics) + m_idx)[:, None] * length + pos
    out = np.bincount(combo.ravel(), weights=(amplitude[:, None] * taps).ravel(),
                      minlength=len(speakers) * len(mics) * length)
    return out.reshape(len(speakers), len(mics), length)


class Simulator:
    """Renders captures of scenes; keeps the empty-room RIRs of recent rooms (the expensive, static part)."""

    def __init__(self, surface_spacing_m: float = 0.025, rir_cache: RirCache | None = None):
        self.surface_spacing_m = surface_spacing_m
        self.rirs = rir_cache or RirCache()
        self._emissions: dict = {}

    def emission(self, scene: Scene):
        key = (scene.audio.probe, scene.audio.fs, scene.audio.window_s, scene.audio.probe_duration_s,
               scene.audio.band_hz, scene.audio.music_file, len(scene.rig.speakers))
        if key not in self._emissions:
            self._emissions[key] = make_emission(scene.audio, len(scene.rig.speakers))
        return self._emissions[key]

    def joints_at(self, scene: Scene, t: float) -> np.ndarray:
        """(17, 3) base_link joints of the scene's person at scene time ``t``."""
        person = scene.person
        motion = scene_motion(scene)                         # sim/choreography.py: who is there, doing what
        pose, offset, turn = motion.at(t)
        if person.pose_jitter_rad > 0:
            pose = pose.jittered(np.random.default_rng(person.jitter_seed), person.pose_jitter_rad)
        c, s = np.cos(person.yaw), np.sin(person.yaw)
        position = np.asarray(person.position_xy) + np.array([c * offset[0] - s * offset[1],
                                                              s * offset[0] + c * offset[1]])
        return place_in_world(body_joints(motion.stature_at(t), pose), position, person.yaw + turn)

    def render_capture(self, scene: Scene, window_index: int = 0, person: bool = True,
                       rng: np.random.Generator | None = None, speakers_on=None) -> Capture:
        """Render window ``window_index`` of ``scene`` (the person moves with scene time).

        ``person=False`` renders the empty room (for the empty-room model); ``speakers_on`` (indices) silences
        the other speakers (crosstalk measurements); ``rng`` draws noise and surface jitter.
        """
        rng = rng if rng is not None else np.random.default_rng()
        audio, rig = scene.audio, scene.rig
        c = speed_of_sound(audio.temperature_c)
        emission = self.emission(scene)
        n = emission.window_samples
        speakers, mics = rig.speakers_base(), rig.mics_base()
        rirs = self.rirs.get(scene.room, speakers + scene.base_in_room, mics + scene.base_in_room, audio.fs, c)
        t = scene.person.time_s + window_index * audio.window_s
        joints = None
        response = rirs
        if person:
            joints = self.joints_at(scene, t)
            caps = body_capsules(joints, scene_motion(scene).stature_at(t))
            surface = sample_surface(caps, self.surface_spacing_m, rng)
            body = body_response(surface, speakers, mics, audio.fs, c, audio.body_reflectance)
            length = max(rirs.shape[-1], body.shape[-1])
            response = np.zeros(rirs.shape[:2] + (length,))
            response[..., : rirs.shape[-1]] = rirs
            response[..., : body.shape[-1]] += body
        if audio.clock_offset_samples:
            # The clock offset moves every response by a fixed fractional delay (windowed sinc), dropping what
            # would fall before the emission instant, as the room's own responses do: the recording stays a causal
            # linear function of the emission, which music mode relies on (a phase ramp over the FFT block would
            # wrap the sinc tails around it, invisible to a periodic chirp, a -50 dB error floor for music).
            taps = _fractional_delay_taps(_CLOCK_HALF + audio.clock_offset_samples, 2 * _CLOCK_HALF + 1)
            response = fftconvolve(response, taps[None, None, :], axes=-1)[..., _CLOCK_HALF:]
        history = response.shape[-1]
        signal = emission.signal(window_index * n - history, history + n).astype(float)
        if speakers_on is not None:
            mask = np.zeros(len(speakers), bool)
            mask[list(speakers_on)] = True
            signal[~mask] = 0.0
        n_fft = next_fast_len(history + n)
        signal_spectrum = np.fft.rfft(signal, n_fft)
        response_spectrum = np.fft.rfft(response, n_fft)
        gain = _LEVEL / (np.abs(rirs).max() * max(np.abs(emission.window(0)).max(), 1e-9))
        gain = gain * 10 ** (np.asarray(audio.mic_gain_db)[:, None] / 20)

        def record(spectra):
            mixed = np.einsum("smf,sf->mf", spectra, signal_spectrum)
            return gain * np.fft.irfft(mixed, n_fft)[:, history: history + n]

        recording = record(response_spectrum)
        direct = np.zeros_like(response)
        ends = np.ceil(np.linalg.norm(speakers[:, None] - mics[None], axis=-1) / c * audio.fs).astype(int) + 41
        for s, m in np.ndindex(ends.shape):
            direct[s, m, : ends[s, m]] = response[s, m, : ends[s, m]]
        echoes = recording - record(np.fft.rfft(direct, n_fft))
        noise_rms = np.sqrt(np.mean(echoes ** 2)) * 10 ** (-audio.snr_db / 20)
        recording += rng.normal(0.0, noise_rms, recording.shape)
        return Capture(recording=np.clip(recording, -1, 1).astype(np.float32), fs=audio.fs,
                       emissions=emission.window(window_index).astype(np.float32), window_index=window_index,
                       time_s=t, joints=joints, speakers=speakers, mics=mics, pairs=rig.pairs.copy(),
                       base_from_camera_link=rig.base_from_camera_link, base_from_optical=rig.base_from_optical,
                       speed_of_sound=c, snr_db=audio.snr_db)
