"""Bad captures give an AudioInputError with a reason code, never kernels."""

import numpy as np
import pytest

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import SlottedEmission
from av_pose_ros.acoustics.kernel import AudioInputError, KernelConfig, PoseKernelExtractor
from av_pose_ros.acoustics.physics import speed_of_sound

FS, N = 48000, 4800
C = speed_of_sound(20.0)
DIRECT_M = 0.06


@pytest.fixture()
def setup():
    emission = SlottedEmission(probes.linear_chirp(), 4, N)
    window = emission.window(0)
    delay = DIRECT_M / C * FS
    freqs = np.fft.rfftfreq(N)
    # each mic hears its own speaker through a fractional delay, plus a little noise
    recording = np.fft.irfft(np.fft.rfft(window, N) * np.exp(-2j * np.pi * freqs * delay), N) * 0.3
    recording += np.random.default_rng(0).normal(0, 1e-4, recording.shape)
    extractor = PoseKernelExtractor(np.stack([np.arange(4)] * 2, 1), np.full(4, DIRECT_M), 4, C, KernelConfig())
    return extractor, recording.astype(np.float32), window


def reason_of(extractor, recording, window, fs=FS):
    with pytest.raises(AudioInputError) as info:
        extractor.process(recording, window, fs)
    print(info.value)
    return info.value.reason


def test_good_capture_passes_and_reports_quality(setup):
    extractor, recording, window = setup
    frame = extractor.process(recording, window, FS)
    assert frame.kernels is None and not frame.quality.empty_room_ready
    assert np.all(frame.quality.snr_db > 30)
    assert np.all(np.abs(frame.quality.direct_delay_drift_s) < 0.1 / FS)
    assert frame.quality.clipped_fraction == 0.0


def test_clock_offset_is_measured_and_removed(setup):
    extractor, recording, window = setup
    late = np.roll(recording, 3, axis=1)
    frame = extractor.process(late, window, FS)
    assert frame.quality.applied_shift_s * FS == pytest.approx(3.0, abs=0.1)
    assert np.argmax(np.abs(frame.responses[0])) == round(DIRECT_M / C * FS)


def test_wrong_channel_count(setup):
    extractor, recording, window = setup
    assert reason_of(extractor, recording[:3], window) == "channel_count"


def test_not_a_2d_array(setup):
    extractor, recording, window = setup
    assert reason_of(extractor, recording[0], window) == "shape"


def test_nan_and_inf(setup):
    extractor, recording, window = setup
    bad = recording.copy()
    bad[1, 100] = np.nan
    assert reason_of(extractor, bad, window) == "non_finite"
    bad[1, 100] = np.inf
    assert reason_of(extractor, bad, window) == "non_finite"


def test_clipped(setup):
    extractor, recording, window = setup
    assert reason_of(extractor, np.clip(recording * 20, -1, 1), window) == "clipped"


def test_sample_rate_mismatch(setup):
    extractor, recording, window = setup
    assert reason_of(extractor, recording, window, fs=44100) == "sample_rate"


def test_length_mismatch(setup):
    extractor, recording, window = setup
    assert reason_of(extractor, recording[:, :4000], window) == "length"


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_capture_without_probe(setup, kind):
    extractor, recording, window = setup
    bad = np.zeros_like(recording) if kind == "silence" else \
        np.random.default_rng(1).normal(0, 0.05, recording.shape).astype(np.float32)
    assert reason_of(extractor, bad, window) == "no_probe"


def test_error_leaves_empty_room_model_untouched(setup):
    extractor, recording, window = setup
    extractor.empty_room.request_capture(1)
    with pytest.raises(AudioInputError):
        extractor.process(np.zeros_like(recording), window, FS)
    assert not extractor.empty_room.ready
    extractor.process(recording, window, FS)
    assert extractor.empty_room.ready
