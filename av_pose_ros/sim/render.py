"""Render captures: what every microphone records in one window, with ground truth and geometry.

recording = sum over speakers of (empty-room RIR + body response + body shadow) * emission, then mic gain mismatch,
a clock offset, and room noise (white, HVAC-like pink, babble, impulses; sim/noise.py) at the scene's SNR. The SNR
is an echo-to-noise ratio: the power of everything recorded except the direct speaker->mic paths (room
reverberation and body echoes) over the noise power. With a speaker a few centimetres from its mic the direct path
is 30-40 dB above the room, so a whole-recording SNR would say nothing about the echoes the kernel is made of.

The body response comes from the physical-optics (Kirchhoff) approximation: a surface element of area dA seen by
both speaker and mic adds

    rho(f) * dA * (cos_in + cos_out) / 2 / (8 pi^2 c r1 r2) * d/dt delta(t - (r1 + r2) / c)

which integrates to the image-source amplitude 1 / (4 pi (r1 + r2)) over a large flat plate, so body and room
echoes share one scale. rho(f) is the person's reflectance (clothing absorbs high frequencies, skin does not);
points move along their normals by the clothing's roughness, which turns part of the specular echo diffuse at
high frequencies. The same sum over image sensors in the six surfaces gives the body-wall double paths, and
``room_paths`` the body's shadow on the room's own paths (so empty-room subtraction leaves a residual, as in a
real room). The world is rendered with the true geometry and air temperature (``Scene.truth``); the capture
reports the nominal ones the pipeline would be given, and the truth beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft
from scipy.fft import next_fast_len
from scipy.signal import fftconvolve

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import MusicEmission, SlottedEmission
from av_pose_ros.acoustics.physics import speed_of_sound
from av_pose_ros.primitives.geometry import LINK_FROM_OPTICAL, apply_transform
from av_pose_ros.sim.scenario import Scene

from .body import GENERATED_POSES, body_joints, drifted, place_in_world, sample_joint_angle_pose
from .choreography import scene_motion
from .noise import room_noise
from .room import RirCache
from .room_paths import image_paths, mirror_in_walls, shadow_response
from .surface import BodySurface, body_capsules, is_skin, raycaster, sample_surface, visible_from

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
    speed_of_sound: float           # from the thermometer reading: what the pipeline is given
    snr_db: float
    # the truth the window was rendered with (equal to the nominal values above without calibration errors)
    true_speakers: np.ndarray | None = None
    true_mics: np.ndarray | None = None
    true_base_from_optical: np.ndarray | None = None
    true_speed_of_sound: float | None = None


@lru_cache(maxsize=8)
def _track(music_file: str | None, fs: int) -> np.ndarray:
    return probes.load_wav(music_file, fs) if music_file else probes.synthetic_music(fs=fs)


def make_emission(audio, n_speakers: int):
    """The ``SlottedEmission`` / ``MusicEmission`` a scene's audio settings describe."""
    window = int(round(audio.window_s * audio.fs))
    if audio.probe == "music":
        offset = int(round(getattr(audio, "music_offset_s", 0.0) * audio.fs))
        return MusicEmission(_track(audio.music_file, audio.fs), n_speakers, window, start_offset_samples=offset)
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


@dataclass(frozen=True)
class BodyAcoustics:
    """How one person's surface reflects sound.

    reflectance: pressure reflection at low frequency (the body is a soft, curved, partly absorbing reflector).
    clothing_absorption: share of that reflection clothing loses far above ``clothing_corner_hz`` (porous layers
        absorb more as the wavelength nears their thickness); bare skin (head, neck, hands) keeps it flat.
    roughness_m: rms height of folds and creases. Each surface point is moved along its normal by N(0, roughness),
        so the coherent (specular) echo falls as exp(-2 (k h cos)^2) at high frequency and the rest scatters
        diffusely (Kirchhoff rough-surface model) instead of being an exact mirror.
    wall_paths: also render the paths that meet the body and one wall (speaker -> wall -> body -> mic and
        speaker -> body -> wall -> mic, image sensors in the six surfaces), attenuated by the wall's reflection.
    """

    reflectance: float = 0.65
    clothing_absorption: float = 0.0
    clothing_corner_hz: float = 4000.0
    roughness_m: float = 0.0
    wall_paths: bool = False


def reflectance_spectrum(f_hz: np.ndarray, acoustics: BodyAcoustics, skin: bool) -> np.ndarray:
    """Pressure reflection of skin (flat) or clothing (a low-pass: 1 - A (f/fc)^2 / (1 + (f/fc)^2))."""
    if skin or acoustics.clothing_absorption <= 0:
        return np.full(np.shape(f_hz), acoustics.reflectance)
    x = (np.asarray(f_hz) / acoustics.clothing_corner_hz) ** 2
    return acoustics.reflectance * (1 - acoustics.clothing_absorption * x / (1 + x))


_OVERSAMPLE = 8      # echoes are placed on an 8x finer grid (linear interpolation), then band-limited at once


def render_derivative_echoes(delays: np.ndarray, amplitudes: np.ndarray, rows: np.ndarray, n_rows: int,
                             length: int) -> np.ndarray:
    """(n_rows, n_fft // 2 + 1) spectra of sum_e a_e d/dn sinc(n - delay_e) per row, and n_fft (= length + pad).

    Thousands of echoes per capture: each is split between two taps of an ``_OVERSAMPLE`` x finer grid (the
    interpolation's sinc^2 droop is divided out), the grid is transformed once, and only the bins below the
    original Nyquist are kept; the derivative is a multiplication by j omega there. Same result as per-echo
    fractional-delay filters to well below the noise, for a fraction of the cost.
    """
    n_fft = next_fast_len(int(length) + 128)
    fine = _OVERSAMPLE * n_fft
    pos = delays * _OVERSAMPLE
    base = np.floor(pos).astype(np.int64)
    frac = pos - base
    idx = rows.astype(np.int64) * fine
    grid = np.bincount(np.concatenate([idx + base, idx + base + 1]),
                       weights=np.concatenate([amplitudes * (1 - frac), amplitudes * frac]),
                       minlength=n_rows * fine)[: n_rows * fine].reshape(n_rows, fine)
    spectrum = sp_fft.rfft(grid, axis=1)[:, : n_fft // 2 + 1]
    k = np.arange(n_fft // 2 + 1)
    omega = 2 * np.pi * k / n_fft
    droop = np.sinc(k / fine) ** 2
    taper = np.clip((0.96 - k / (n_fft / 2)) / 0.08, 0, 1)          # smooth edge below Nyquist: no ringing
    return spectrum * (1j * omega * taper / droop), n_fft


def _sensor_tables(surface: BodySurface, sensors: np.ndarray, lift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) distances and cosines between every sensor (real or image) and every (lifted) surface point."""
    p = surface.points + lift[:, None] * surface.normals
    to = sensors[:, None, :] - p[None]
    r = np.linalg.norm(to, axis=-1)
    return r, np.einsum("nkd,kd->nk", to, surface.normals) / r, surface.areas


def _echoes(tables, src: np.ndarray, rcv: np.ndarray, visible: np.ndarray, combo: np.ndarray, gain: float):
    """Path (m), Kirchhoff amplitude (without reflectance, fs / c), combo and point of every echo from sensor
    rows ``src`` to rows ``rcv`` (paired element-wise) at points both see (``visible`` rows of the same index)."""
    r, cos, area = tables
    both = visible[src][:, None, :] & visible[rcv][None, :, :]                    # (A, B, K)
    a_idx, b_idx, k_idx = np.nonzero(both)
    i, j = src[a_idx], rcv[b_idx]
    r1, r2 = r[i, k_idx], r[j, k_idx]
    amplitude = gain * area[k_idx] * 0.5 * (cos[i, k_idx] + cos[j, k_idx]) / (8 * np.pi ** 2 * r1 * r2)
    return r1 + r2, amplitude, combo[a_idx, b_idx], k_idx


def body_response(surface: BodySurface, speakers: np.ndarray, mics: np.ndarray, fs: int, c: float,
                  acoustics: BodyAcoustics | float, room=None, base_in_room: np.ndarray | None = None,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """(S, M, L) body impulse response of every speaker/mic combination (tap 0 at emission).

    A float ``acoustics`` is a flat reflectance (no clothing, no roughness, no wall paths). ``room`` (a
    ``Room``) and ``base_in_room`` are needed for the wall paths.
    """
    if not isinstance(acoustics, BodyAcoustics):
        acoustics = BodyAcoustics(reflectance=float(acoustics))
    n_s, n_m = len(speakers), len(mics)
    rays = raycaster(surface.capsules)
    cast = visible_from(surface, speakers, scene=rays)                         # (S, K)
    # a mic a few cm from a speaker sees past the same limbs: its occlusion is the nearest speaker's (rays are
    # the costly part); whether a point faces the mic is exact
    nearest = np.linalg.norm(mics[:, None] - speakers[None], axis=-1).argmin(axis=1)
    facing = np.einsum("mkd,kd->mk", mics[:, None] - surface.points[None], surface.normals) > 0
    visible = np.concatenate([cast, cast[nearest] & facing])                   # (S + M, K)
    # every echo, ghosts included, has a real speaker or mic at one end: only points those see matter
    seen = visible.any(axis=0)
    surface = BodySurface(surface.points[seen], surface.normals[seen], surface.areas[seen], surface.capsules,
                          None if surface.owner is None else surface.owner[seen])
    visible = visible[:, seen]
    walls = acoustics.wall_paths and room is not None and base_in_room is not None
    if walls:
        size = np.asarray(room.size_m, float)
        centre = np.concatenate([speakers, mics]).mean(axis=0, keepdims=True)
        # one visibility per wall for the whole rig's images (they lie within the rig's span of each other)
        images = mirror_in_walls(centre + base_in_room, size)[:, 0] - base_in_room
        visible = np.concatenate([visible, visible_from(surface, images, scene=rays)])   # (S + M + 6, K)
    lift = (rng.normal(0.0, acoustics.roughness_m, len(surface.points)) if acoustics.roughness_m > 0 and rng
            is not None else np.zeros(len(surface.points)))
    combo = np.arange(n_s)[:, None] * n_m + np.arange(n_m)[None, :]
    spk_rows, mic_rows = np.arange(n_s), n_s + np.arange(n_m)
    table_sensors = [speakers, mics]
    if walls:
        spk_img = mirror_in_walls(speakers + base_in_room, size) - base_in_room     # (6, S, 3)
        mic_img = mirror_in_walls(mics + base_in_room, size) - base_in_room
        table_sensors += [spk_img.reshape(-1, 3), mic_img.reshape(-1, 3)]
        # an image sensor sees what the rig's image in that wall sees
        wall_vis = visible[n_s + n_m:]
        visible = np.concatenate([visible[: n_s + n_m], np.repeat(wall_vis, n_s, axis=0),
                                  np.repeat(wall_vis, n_m, axis=0)])
    tables = _sensor_tables(surface, np.concatenate(table_sensors), lift)
    parts = [_echoes(tables, spk_rows, mic_rows, visible, combo, 1.0)]
    if walls:
        beta = np.sqrt(1.0 - room.absorption)
        first_spk_img, first_mic_img = n_s + n_m, n_s + n_m + 6 * n_s
        for w in range(6):
            parts.append(_echoes(tables, first_spk_img + w * n_s + np.arange(n_s), mic_rows, visible, combo, beta))
            parts.append(_echoes(tables, spk_rows, first_mic_img + w * n_m + np.arange(n_m), visible, combo, beta))
    path = np.concatenate([q[0] for q in parts])
    amplitude = np.concatenate([q[1] for q in parts]) * fs / c
    rows = np.concatenate([q[2] for q in parts])
    point = np.concatenate([q[3] for q in parts])
    delays = path / c * fs
    length = int(np.ceil(delays.max())) + 2 * _FD_HALF if len(delays) else 1
    skin = is_skin(surface)[point] if surface.owner is not None else np.zeros(len(point), bool)
    spectrum, n_fft = render_derivative_echoes(delays, amplitude, rows + n_s * n_m * skin, 2 * n_s * n_m, length)
    f = np.fft.rfftfreq(n_fft, 1 / fs)
    spectrum = (spectrum[: n_s * n_m] * reflectance_spectrum(f, acoustics, skin=False)
                + spectrum[n_s * n_m:] * reflectance_spectrum(f, acoustics, skin=True))
    return sp_fft.irfft(spectrum, n_fft)[:, :length].reshape(n_s, n_m, length)


class Simulator:
    """Renders captures of scenes; keeps the empty-room RIRs of recent rooms (the expensive, static part)."""

    def __init__(self, surface_spacing_m: float = 0.025, rir_cache: RirCache | None = None):
        self.surface_spacing_m = surface_spacing_m
        self.rirs = rir_cache or RirCache()
        self._emissions: dict = {}
        self._paths: dict = {}

    def emission(self, scene: Scene):
        key = (scene.audio.probe, scene.audio.fs, scene.audio.window_s, scene.audio.probe_duration_s,
               scene.audio.band_hz, scene.audio.music_file, scene.audio.music_offset_s, len(scene.rig.speakers))
        if key not in self._emissions:
            if len(self._emissions) >= 8:       # library music: a track per scene; keep only recent ones alive
                self._emissions.pop(next(iter(self._emissions)))
            self._emissions[key] = make_emission(scene.audio, len(scene.rig.speakers))
        return self._emissions[key]

    @staticmethod
    def stature_at(scene: Scene, t: float) -> float:
        if scene.person.pose in GENERATED_POSES:
            return scene.person.stature_m
        return scene_motion(scene).stature_at(t)

    def joints_at(self, scene: Scene, t: float) -> np.ndarray:
        """(17, 3) base_link joints of the scene's person at scene time ``t``.

        On top of the scripted motion: the person's pose jitter (fixed per person), a slow drift of every angle
        and a slow sway of the whole body (``Person.drift_rad``, ``sway_m``), so no two windows are identical.
        """
        person = scene.person
        if person.pose in GENERATED_POSES:
            pose = sample_joint_angle_pose(np.random.default_rng([person.jitter_seed, 3]), person.stature_m)
            offset, turn = np.zeros(2), 0.0
        else:
            motion = scene_motion(scene)                     # sim/choreography.py: who is there, doing what
            pose, offset, turn = motion.at(t)
            if person.pose_jitter_rad > 0:
                pose = pose.jittered(np.random.default_rng(person.jitter_seed), person.pose_jitter_rad)
        pose = drifted(pose, person.jitter_seed, person.drift_rad, t)
        if person.sway_m > 0:
            phase = np.random.default_rng([person.jitter_seed, 5]).uniform(0, 2 * np.pi, 2)
            offset = offset + person.sway_m * np.sin(2 * np.pi * t / np.array([4.1, 5.3]) + phase)
        c, s = np.cos(person.yaw), np.sin(person.yaw)
        position = np.asarray(person.position_xy) + np.array([c * offset[0] - s * offset[1],
                                                              s * offset[0] + c * offset[1]])
        joints = body_joints(self.stature_at(scene, t), pose, shoulder_width=person.shoulder_width,
                             hip_width=float(np.sqrt(person.girth)))
        return place_in_world(joints, position, person.yaw + turn)

    def _image_paths(self, scene: Scene, speakers_room: np.ndarray, mics_room: np.ndarray, c: float):
        key = (scene.room, np.round(speakers_room, 6).tobytes(), np.round(mics_room, 6).tobytes(), round(c, 6))
        if key not in self._paths:
            self._paths[key] = image_paths(scene.room, speakers_room, mics_room)
            while len(self._paths) > 16:
                self._paths.pop(next(iter(self._paths)))
        return self._paths[key]

    @staticmethod
    def true_geometry(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(speakers, mics, base_from_optical, c) as they really are: nominal rig plus the scene's errors."""
        rig, truth = scene.rig, scene.truth
        spk, mic = rig.speakers.copy(), rig.mics.copy()
        if truth.speaker_offsets_m is not None:
            spk = spk + truth.speaker_offsets_m
        if truth.mic_offsets_m is not None:
            mic = mic + truth.mic_offsets_m
        base_from_link = rig.base_from_camera_link.copy()
        if truth.camera_rotation is not None:
            base_from_link[:3, :3] = truth.camera_rotation @ base_from_link[:3, :3]
        if truth.camera_offset_m is not None:
            base_from_link[:3, 3] = base_from_link[:3, 3] + truth.camera_offset_m
        c = speed_of_sound(scene.audio.temperature_c + truth.temperature_error_c)
        return (apply_transform(rig.base_from_camera_link, spk), apply_transform(rig.base_from_camera_link, mic),
                base_from_link @ LINK_FROM_OPTICAL, c)

    def response_at(self, scene: Scene, t: float, person: bool = True, rng: np.random.Generator | None = None,
                    clock_offset: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(response (S, M, L), empty-room RIRs, joints or None) of every speaker/mic combination at scene time
        ``t``, on the true geometry: the room, plus the person's body echoes and shadow when ``person``, moved by
        the scene's clock offset when ``clock_offset`` (the virtual room leaves that to its real sound stack)."""
        rng = rng if rng is not None else np.random.default_rng()
        audio = scene.audio
        speakers, mics, _, c = self.true_geometry(scene)
        base = scene.base_in_room
        rirs = self.rirs.get(scene.room, speakers + base, mics + base, audio.fs, c)
        joints = None
        response = rirs
        if person:
            joints = self.joints_at(scene, t)
            p = scene.person
            caps = body_capsules(joints, self.stature_at(scene, t), girth=p.girth)
            surface = sample_surface(caps, self.surface_spacing_m, rng)
            acoustics = BodyAcoustics(reflectance=audio.body_reflectance, clothing_absorption=p.clothing_absorption,
                                      clothing_corner_hz=p.clothing_corner_hz, roughness_m=p.roughness_m,
                                      wall_paths=scene.physics.body_wall_paths)
            extra = [body_response(surface, speakers, mics, audio.fs, c, acoustics, scene.room, base, rng)]
            if scene.physics.body_shadowing:
                paths = self._image_paths(scene, speakers + base, mics + base, c)
                caps_room = caps.copy()
                caps_room[:, :3] += base
                caps_room[:, 3:6] += base
                length = int(np.ceil(paths.length_m.max(initial=0.0) / c * audio.fs)) + 64
                shadow = shadow_response(paths, caps_room, len(speakers) * len(mics), audio.fs, c, length)
                if shadow is not None:
                    extra.append(shadow.reshape(len(speakers), len(mics), -1))
            length = max([rirs.shape[-1]] + [e.shape[-1] for e in extra])
            response = np.zeros(rirs.shape[:2] + (length,))
            response[..., : rirs.shape[-1]] = rirs
            for e in extra:
                response[..., : e.shape[-1]] += e
        if clock_offset and audio.clock_offset_samples:
            # The clock offset moves every response by a fixed fractional delay (windowed sinc), dropping what
            # would fall before the emission instant, as the room's own responses do: the recording stays a causal
            # linear function of the emission, which music mode relies on (a phase ramp over the FFT block would
            # wrap the sinc tails around it, invisible to a periodic chirp, a -50 dB error floor for music).
            taps = _fractional_delay_taps(_CLOCK_HALF + audio.clock_offset_samples, 2 * _CLOCK_HALF + 1)
            response = fftconvolve(response, taps[None, None, :], axes=-1)[..., _CLOCK_HALF:]
        return response, rirs, joints

    def render_capture(self, scene: Scene, window_index: int = 0, person: bool = True,
                       rng: np.random.Generator | None = None, speakers_on=None) -> Capture:
        """Render window ``window_index`` of ``scene`` (the person moves with scene time).

        ``person=False`` renders the empty room (for the empty-room model); ``speakers_on`` (indices) silences
        the other speakers (crosstalk measurements); ``rng`` draws noise and surface jitter.
        """
        rng = rng if rng is not None else np.random.default_rng()
        audio, rig = scene.audio, scene.rig
        c_nominal = speed_of_sound(audio.temperature_c)
        speakers, mics, true_optical, c = self.true_geometry(scene)
        emission = self.emission(scene)
        n = emission.window_samples
        t = scene.person.time_s + window_index * audio.window_s
        response, rirs, joints = self.response_at(scene, t, person, rng)
        history = response.shape[-1]
        signal = emission.signal(window_index * n - history, history + n).astype(float)
        if speakers_on is not None:
            mask = np.zeros(len(speakers), bool)
            mask[list(speakers_on)] = True
            signal[~mask] = 0.0
        n_fft = next_fast_len(history + n)
        signal_spectrum = sp_fft.rfft(signal, n_fft)
        response_spectrum = sp_fft.rfft(response, n_fft)
        gain = _LEVEL / (np.abs(rirs).max() * max(np.abs(emission.window(0)).max(), 1e-9))
        gain = gain * 10 ** (np.asarray(audio.mic_gain_db)[:, None] / 20)

        def record(spectra):
            mixed = np.einsum("smf,sf->mf", spectra, signal_spectrum)
            return gain * sp_fft.irfft(mixed, n_fft)[:, history: history + n]

        recording = record(response_spectrum)
        direct = np.zeros_like(response)
        ends = np.ceil(np.linalg.norm(speakers[:, None] - mics[None], axis=-1) / c * audio.fs).astype(int) + 41
        for s, m in np.ndindex(ends.shape):
            direct[s, m, : ends[s, m]] = response[s, m, : ends[s, m]]
        echoes = recording - record(sp_fft.rfft(direct, n_fft))
        noise_rms = np.sqrt(np.mean(echoes ** 2)) * 10 ** (-audio.snr_db / 20)
        recording += room_noise(recording.shape[1], mics, audio.fs, c, noise_rms, audio.noise_mix,
                                audio.impulse_rate_hz, rng, audio.noise_seed)
        return Capture(recording=np.clip(recording, -1, 1).astype(np.float32), fs=audio.fs,
                       emissions=emission.window(window_index).astype(np.float32), window_index=window_index,
                       time_s=t, joints=joints, speakers=rig.speakers_base(), mics=rig.mics_base(),
                       pairs=rig.pairs.copy(), base_from_camera_link=rig.base_from_camera_link,
                       base_from_optical=rig.base_from_optical, speed_of_sound=c_nominal, snr_db=audio.snr_db,
                       true_speakers=speakers, true_mics=mics, true_base_from_optical=true_optical,
                       true_speed_of_sound=c)
