"""Physics oracles for the pose-kernel pipeline: a point reflector in a reverberant shoebox room.

The expected delays are computed here from geometry alone; the room comes from pyroomacoustics and the
reflector's echo is an exact fractional delay (frequency-domain phase ramp), so nothing of av_pose_ros.sim is used.
Captures are a continuous stream: every window is rendered with the whole emission history convolved in, at one
fixed input gain, and the pipeline sees every window in order (as from audio_io_node).
"""

import numpy as np
import pyroomacoustics as pra
import pytest

from av_pose_ros.acoustics import encoding, probes
from av_pose_ros.acoustics.emission import MusicEmission, SlottedEmission
from av_pose_ros.acoustics.kernel import KernelConfig, PoseKernelExtractor
from av_pose_ros.acoustics.physics import speed_of_sound

FS = 48000
WINDOW = 4800
C = speed_of_sound(21.0)
BASE = np.array([0.4, 2.3, 0.0])                       # rig origin inside the room
CAMERA = np.array([0.0, 0.0, 1.2])
SPEAKERS = CAMERA + np.array([[0, 0.35, 0.25], [0, -0.35, 0.25], [0, 0.35, -0.25], [0, -0.35, -0.25]])
MICS = SPEAKERS + np.array([[0, -0.06, 0], [0, 0.06, 0], [0, -0.06, 0], [0, 0.06, 0]])
PAIRS = np.stack([np.arange(4)] * 2, axis=1)
REFLECTOR = np.array([2.13, 0.27, 1.04])               # base_link, not on any grid node


def test_speed_of_sound_formula():
    assert speed_of_sound(0.0) == pytest.approx(331.3)
    assert speed_of_sound(20.0) == pytest.approx(331.3 * np.sqrt(293.15 / 273.15))
    assert 343.0 < speed_of_sound(20.0) < 343.4
    with pytest.raises(ValueError):
        speed_of_sound(-300.0)


@pytest.fixture(scope="module")
def room_rirs():
    room = pra.ShoeBox([4.6, 5.1, 2.7], fs=FS, materials=pra.Material(0.3), max_order=10)
    room.set_sound_speed(C)
    for s in SPEAKERS + BASE:
        room.add_source(s)
    room.add_microphone_array((MICS + BASE).T)
    room.compute_rir()
    delay = pra.constants.get("frac_delay_length") // 2
    length = max(len(r) for per_mic in room.rir for r in per_mic)
    rirs = np.zeros((4, 4, length))
    for m, per_mic in enumerate(room.rir):
        for s, r in enumerate(per_mic):
            rirs[s, m, : len(r) - delay] = r[delay:] / (4 * np.pi)
    return rirs


def oracle_delay_samples(point, speaker, mic):
    return (np.linalg.norm(point - speaker) + np.linalg.norm(point - mic)) / C * FS


def capture(rirs, emission, window_index, reflector=None, strength=0.15, noise=1e-6, seed=0):
    """(mics, WINDOW) recording of window ``window_index`` with the whole emission history convolved in.

    The input gain is fixed (set from the strongest path and the probe's peak), as on a real device: a gain that
    followed each window's loudness would make a room driven by music look different in every window.
    """
    history = rirs.shape[-1] + 2048
    n_fft = 1 << int(np.ceil(np.log2(history + WINDOW)))
    responses = np.fft.rfft(rirs, n_fft)
    if reflector is not None:
        freqs = np.fft.rfftfreq(n_fft, 1 / FS)
        for s in range(4):
            for m in range(4):
                r1, r2 = np.linalg.norm(reflector - SPEAKERS[s]), np.linalg.norm(reflector - MICS[m])
                responses[s, m] += strength / (4 * np.pi * (r1 + r2)) * np.exp(-2j * np.pi * freqs * (r1 + r2) / C)
    signal = emission.signal(window_index * WINDOW - history, history + WINDOW)
    mixed = np.einsum("smf,sf->mf", responses, np.fft.rfft(signal, n_fft))
    recording = np.fft.irfft(mixed, n_fft)[:, history: history + WINDOW]
    peak = np.abs(emission.track if hasattr(emission, "track") else emission.window(0)).max()
    recording = 0.3 * recording / (np.abs(rirs).max() * peak)
    return (recording + np.random.default_rng(seed).normal(0, noise, recording.shape)).astype(np.float32)


def run_pipeline(rirs, emission, reflector, empty_frames=6):
    """Empty-room capture over ``empty_frames`` windows, then the reflector arrives; returns its fourth window."""
    extractor = PoseKernelExtractor(PAIRS, np.linalg.norm(SPEAKERS - MICS, axis=1), 4, C, KernelConfig(taps=1200))
    extractor.empty_room.request_capture(empty_frames)
    for k in range(empty_frames):
        extractor.process(capture(rirs, emission, k, seed=k), emission.window(k), FS, sequence=k)
    assert extractor.empty_room.ready
    for k in range(empty_frames, empty_frames + 4):
        frame = extractor.process(capture(rirs, emission, k, reflector, seed=90 + k), emission.window(k), FS, True,
                                  sequence=k)
    return frame, extractor


def check_reflector(frame):
    expected = np.array([oracle_delay_samples(REFLECTOR, SPEAKERS[s], MICS[m]) for s, m in PAIRS])
    peaks = np.argmax(frame.kernels, axis=1)
    print("kernel peaks", peaks, "oracle", expected.round(2))
    assert np.all(np.abs(peaks - expected) <= 1.0)

    grid = encoding.person_grid(REFLECTOR + np.array([0.21, -0.17, 0.09]), size_m=2.0, n=32)
    table = encoding.DelayTable(grid.points(), SPEAKERS, MICS, FS, C, 1200, voxel_size_m=grid.spacing_m)
    found = encoding.localise(table.encode(frame.kernels), grid, "product")
    offset = grid.voxel_of(found) - grid.voxel_of(REFLECTOR)
    print("localised", found.round(3), "reflector", REFLECTOR, "voxel offset", offset)
    assert np.all(np.abs(offset) <= 1)


def test_chirp_reflector_kernel_peaks_and_product_localisation(room_rirs):
    emission = SlottedEmission(probes.linear_chirp(), 4, WINDOW)
    frame, _ = run_pipeline(room_rirs, emission, REFLECTOR)
    check_reflector(frame)


# The empty-room model predicts only music it has heard (see ContinuousEmptyRoom), so the capture spans the whole 4 s
# loop plus the 0.2 s (room_taps) of emission history its first usable sample needs: the stream starts with it.
MUSIC_CAPTURE_FRAMES = 42


@pytest.fixture(scope="module")
def music_runs(room_rirs):
    emission = MusicEmission(probes.synthetic_music(4.0), 4, WINDOW)
    return {name: run_pipeline(room_rirs, emission, reflector, MUSIC_CAPTURE_FRAMES)
            for name, reflector in (("reflector", REFLECTOR), ("empty", None))}


def test_music_reflector_kernel_peaks_and_product_localisation(music_runs):
    frame, extractor = music_runs["reflector"]
    assert extractor.mode == "continuous" and frame.quality.probe_mode == "continuous"
    assert frame.quality.history_ok and frame.quality.empty_room_ready
    check_reflector(frame)


def test_music_empty_room_subtraction_removes_static_multipath(music_runs):
    frame, extractor = music_runs["empty"]
    from av_pose_ros.acoustics.kernel import envelope
    before = np.sum((envelope(frame.responses) * extractor.gate) ** 2, axis=1)
    after = np.sum(frame.kernels.astype(float) ** 2, axis=1)
    residual_db = 10 * np.log10(after / before)
    print("music empty-room residual per pair (dB):", residual_db.round(1), "recording left unexplained (dB):",
          round(frame.quality.empty_room_residual_db, 1))
    assert np.all(residual_db < -25)
    assert frame.quality.empty_room_residual_db < -50


def test_empty_room_subtraction_removes_static_multipath(room_rirs):
    emission = SlottedEmission(probes.linear_chirp(), 4, WINDOW)
    frame, extractor = run_pipeline(room_rirs, emission, reflector=None)
    from av_pose_ros.acoustics.kernel import envelope
    before = np.sum((envelope(frame.responses) * extractor.gate) ** 2, axis=1)
    after = np.sum(frame.kernels.astype(float) ** 2, axis=1)
    residual_db = 10 * np.log10(after / before)
    print("empty-room residual per pair (dB):", residual_db.round(1))
    assert np.all(residual_db < -40)


def test_delay_table_matches_direct_encoding():
    rng = np.random.default_rng(3)
    kernels = rng.random((4, 1200)).astype(np.float32)
    points = REFLECTOR + rng.uniform(-1, 1, (500, 3))
    direct = encoding.spatial_encoding(kernels, SPEAKERS, MICS, points, FS, C)
    delays = np.stack([[oracle_delay_samples(p, s, m) for p in points] for s, m in zip(SPEAKERS, MICS)])
    expected = np.stack([np.interp(d, np.arange(1200), k) for d, k in zip(delays, kernels)])
    np.testing.assert_allclose(direct, expected, rtol=1e-5, atol=1e-6)
