"""Multi-speaker empty-room model (music mode) against oracles computed here by direct convolution, and how the
kernel pipeline uses it: probe-mode detection, the emission history it needs, and windows it refuses."""

import numpy as np
import pytest
from room_helpers import mix, two_pair_room

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import MusicEmission, SlottedEmission
from av_pose_ros.acoustics.kernel import KernelConfig, PoseKernelExtractor
from av_pose_ros.acoustics.room_model import RoomModel

FS = 48000



def decaying_responses(rng, s, m, taps):
    h = rng.standard_normal((s, m, taps)) * np.exp(-np.arange(taps) / (taps / 6))
    h[:, :, 3] += 2.0   # a direct path
    return h


def test_fit_recovers_every_speaker_mic_response():
    rng = np.random.default_rng(0)
    S, M, L = 3, 2, 300
    h = decaying_responses(rng, S, M, L)
    x = rng.standard_normal((S, 8000))
    y = mix(x, h)
    model = RoomModel(S, M, L, ridge=0.0, floor_db=-200.0)
    report = model.fit(x, y, 0, tol=1e-10)
    print(report)
    assert report.samples == 8000 - (L - 1)          # only samples with a full emission history enter the fit
    assert np.max(np.abs(model.h - h)) < 1e-6 * np.max(np.abs(h))
    # prediction of a later stretch from its emission history alone, tail of earlier samples included
    x2 = rng.standard_normal((S, 3000))
    y2 = mix(x2, h)
    np.testing.assert_allclose(model.predict(x2, 1000), y2[:, -1000:], atol=1e-6 * np.abs(y2).max())
    # a known history before the recording lets every recorded sample count
    report = model.fit(x, y[:, 2000:], 2000, tol=1e-10)
    assert report.samples == 6000


def test_fit_with_music_excitation_and_latency_shift():
    """Music (coloured, tonal) emission: the preconditioned solver still gets there, and music heard during the fit
    (here a looped phrase) is predicted; an integer shift delays the prediction."""
    rng = np.random.default_rng(1)
    S, M, L = 2, 2, 400
    track = probes.synthetic_music(2.0)
    x = np.tile(np.stack([track[:6000], track[48000:54000]]).astype(float), 3)
    h = decaying_responses(rng, S, M, L)
    y = mix(x, h)
    model = RoomModel(S, M, L)
    report = model.fit(x[:, :12000], y[:, :12000], 0, iterations=300)
    print(report)
    assert report.fit_error_db < -60
    predicted = model.predict(x[:, 12000 - (L - 1): 16000], 4000 - (L - 1))
    truth = y[:, 12000 + (L - 1): 16000]
    assert 10 * np.log10(np.sum((predicted - truth) ** 2) / np.sum(truth ** 2)) < -50
    late = model.predict(x[:, 12000 - (L - 1): 16000], 1000, shift=2)
    np.testing.assert_allclose(late[:, 2:], model.predict(x[:, 12000 - (L - 1): 16000 - 2], 998), atol=1e-12)


def test_adapt_tracks_a_changed_room():
    rng = np.random.default_rng(2)
    S, M, L, n = 2, 2, 200, 400
    h = decaying_responses(rng, S, M, L)
    x = rng.standard_normal((S, 40 * n))
    model = RoomModel(S, M, L)
    model.fit(x[:, :10 * n], mix(x[:, :10 * n], h), 0)
    changed = h * 1.1
    y = mix(x, changed)
    errors = []
    for k in range(10, 40):
        span = x[:, k * n - (L - 1): (k + 1) * n]
        error = y[:, k * n: (k + 1) * n] - model.predict(span, n)
        errors.append(10 * np.log10(np.sum(error ** 2) / np.sum(y[:, k * n: (k + 1) * n] ** 2)))
        model.adapt(span, error, 0.2)
    print(np.round(errors, 1))
    assert errors[-1] < errors[0] - 6 and np.all(np.diff(errors) < 0.5)


# -- the pipeline in continuous (music) mode -------------------------------------------------------------------------

N = 2400                       # 50 ms windows keep this fast
ROOM_TAPS = 1200
PAIRS = np.array([[0, 0], [1, 1]])


@pytest.fixture(scope="module")
def room():
    return two_pair_room(ROOM_TAPS)


def stream(h, emission, k, extra=None):
    """Window k of a continuous capture through h (and, if given, extra responses added to it)."""
    x = emission.signal(k * N - ROOM_TAPS, ROOM_TAPS + N).astype(float)
    total = h if extra is None else h + extra
    y = mix(x, total)[:, ROOM_TAPS:]
    return (y + np.random.default_rng(k).normal(0, 1e-6, y.shape)).astype(np.float32)


def extractor():
    config = KernelConfig(taps=600, room_taps=ROOM_TAPS, music_capture_frames=44, min_range_m=0.2)
    return PoseKernelExtractor(PAIRS, np.full(2, 8 / FS * 343.0), 2, 343.0, config)


def test_music_mode_is_detected_and_the_empty_room_subtracts(room):
    emission = MusicEmission(probes.synthetic_music(2.0), 2, N)
    ex = extractor()
    ex.empty_room.request_capture()
    for k in range(44):
        frame = ex.process(stream(room, emission, k), emission.window(k), FS, sequence=k)
    assert ex.mode == "continuous" and ex.empty_room.ready and frame.kernels is not None
    frame = ex.process(stream(room, emission, 44), emission.window(44), FS, False, sequence=44)
    print("residual", frame.quality.empty_room_residual_db, "fit", ex.empty_room.fit_report)
    assert frame.quality.empty_room_residual_db < -60
    # an echo added to the room shows up at its delay on both pairs
    echo = np.zeros_like(room)
    echo[:, :, 250] = 0.001                                  # -46 dB re the direct path
    for k in range(45, 48):
        frame = ex.process(stream(room, emission, k, echo), emission.window(k), FS, True, sequence=k)
    assert np.all(np.abs(np.argmax(frame.kernels, axis=1) - 250) <= 1)

    # a dropped window: no kernel until room_taps samples of gap-free emission are known again (one window here)
    frame = ex.process(stream(room, emission, 50), emission.window(50), FS, True, sequence=50)
    assert not frame.quality.history_ok and frame.kernels is None
    frame = ex.process(stream(room, emission, 51), emission.window(51), FS, True, sequence=51)
    assert frame.quality.history_ok and frame.kernels is not None

    # a room the model does not explain (the rig moved): no kernel rather than room echoes presented as a body
    for k in range(53, 55):
        frame = ex.process(stream(0.5 * room, emission, k), emission.window(k), FS, True, sequence=k)
    assert frame.quality.empty_room_residual_db > -30 and frame.kernels is None


def test_chirps_stay_periodic(room):
    emission = SlottedEmission(probes.linear_chirp(), 2, N)
    ex = extractor()
    ex.empty_room.request_capture(3)
    for k in range(4):
        frame = ex.process(stream(room, emission, k), emission.window(k), FS, sequence=k)
    assert ex.mode == "periodic" and frame.quality.probe_mode == "periodic" and frame.kernels is not None
