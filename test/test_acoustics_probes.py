"""Probe signals, music loading and how speakers share a window."""

import numpy as np
import pytest
from scipy.io import wavfile

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import MusicEmission, SlottedEmission, periodic_alias, slot_crosstalk_db


def band_energy_fraction(x, fs, lo, hi):
    spec = np.abs(np.fft.rfft(x, 1 << 16)) ** 2
    f = np.fft.rfftfreq(1 << 16, 1 / fs)
    return spec[(f >= lo) & (f <= hi)].sum() / spec.sum()


@pytest.mark.parametrize("make", [probes.linear_chirp, probes.exponential_sweep])
def test_sweeps_are_faded_float32_and_in_band(make):
    x = make(1000.0, 20000.0, 0.005, 48000)
    assert x.dtype == np.float32 and x.shape == (240,)
    assert abs(x[0]) < 0.01 and abs(x[-1]) < 0.05
    assert np.max(np.abs(x)) <= 1.0
    assert band_energy_fraction(x, 48000, 800, 21000) > 0.95


def test_linear_chirp_is_flat_and_sweep_is_pink():
    def low_high_ratio(x):
        return band_energy_fraction(x, 48000, 2000, 4000) / band_energy_fraction(x, 48000, 16000, 18000)
    assert low_high_ratio(probes.linear_chirp(duration_s=0.02)) == pytest.approx(1.0, rel=0.2)
    assert low_high_ratio(probes.exponential_sweep(duration_s=0.02)) > 4.0


def test_bad_sweep_arguments():
    with pytest.raises(ValueError):
        probes.linear_chirp(20000, 1000)
    with pytest.raises(ValueError):
        probes.linear_chirp(1000, 30000, fs=48000)


def test_load_wav_resamples_and_mixes_down(tmp_path):
    fs_in = 44100
    t = np.arange(fs_in) / fs_in
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1)
    wavfile.write(tmp_path / "a.wav", fs_in, (stereo * 20000).astype(np.int16))
    x = probes.load_wav(tmp_path / "a.wav", 48000)
    assert x.dtype == np.float32 and abs(len(x) - 48000) <= 1
    peak_hz = np.argmax(np.abs(np.fft.rfft(x))) * 48000 / len(x)
    assert peak_hz == pytest.approx(440, abs=2)


def test_music_windows_are_successive_slices_per_speaker():
    track = probes.synthetic_music(2.0)
    emission = MusicEmission(track, 2, 4800, speaker_offset_samples=24000)
    w0, w1 = emission.window(0), emission.window(1)
    np.testing.assert_array_equal(w0[0], track[:4800])
    np.testing.assert_array_equal(w1[0], track[4800:9600])
    np.testing.assert_array_equal(w0[1], track[24000:28800])
    np.testing.assert_array_equal(emission.signal(-10, 10)[0], track[-10:])   # loops


def test_slotted_emission_places_probes_in_slots_and_repeats():
    probe = probes.linear_chirp()
    emission = SlottedEmission(probe, 4, 4800)
    w = emission.window(0)
    for s in range(4):
        assert np.flatnonzero(w[s])[0] >= 1200 * s and np.flatnonzero(w[s])[-1] < 1200 * s + len(probe)
    np.testing.assert_array_equal(emission.signal(4800 * 7 - 5, 10), np.roll(w, 5, axis=1)[:, :10])
    with pytest.raises(ValueError):
        SlottedEmission(np.ones(2000), 4, 4800)


def test_slot_crosstalk_oracle():
    """A speaker whose response is one echo at lag L leaks into the next slot's kernel only when L >= slot."""
    emission = SlottedEmission(probes.linear_chirp(), 2, 4800)
    rirs = np.zeros((2, 2, 6000))
    rirs[:, :, 10] = 1.0                                 # direct paths
    rirs[0, 1, 2400 + 100] = 0.1                         # speaker 0 -> mic 1 echo one slot + 100 later
    db = slot_crosstalk_db(rirs, emission, np.array([[1, 1], [0, 0]]))
    assert db[0] == pytest.approx(20 * np.log10(0.1), abs=1e-6)
    assert db[1] == -np.inf
    np.testing.assert_array_equal(periodic_alias(np.arange(10.0), 4), [0 + 4 + 8, 1 + 5 + 9, 2 + 6, 3 + 7])
