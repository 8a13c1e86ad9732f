"""Audio core without ROS and without a sound device: the file and sim backends, lag finding, the stamp filter,
the calibration YAML writer, and the device backend's handling of a device that does not exist."""

import numpy as np
import pytest
from scipy.io import wavfile

from av_pose_ros.audio.clock import StampFilter, jitter_report
from av_pose_ros.audio.latency import find_lag, locate
from av_pose_ros.audio.probe_setup import ProbeSettings, RecordedEmission, make_emission
from av_pose_ros.audio.sim_source import SimConfig, SimSource
from av_pose_ros.audio.wav_source import FileConfig, WavSource
from av_pose_ros.audio.window import ERROR, WARN

FS, W = 48000, 4800


def write_wav(path, channels_by_samples, rate=FS):
    wavfile.write(str(path), rate, np.ascontiguousarray(np.asarray(channels_by_samples, np.float32).T))
    return str(path)


def recording_of(emission, windows, latency, delay=37, gain=0.3, seed=0):
    """What 4 loopback mics record when each hears its own speaker ``delay`` samples late, with the device round
    trip ``latency`` in front: sample latency + k*W lines up with emission window k."""
    n = latency + windows * W
    rec = np.zeros((4, n), np.float32)
    played = emission.signal(-delay, windows * W)              # emission sample e - delay at recorded e
    rec[:, latency:] = gain * played
    rec += np.random.default_rng(seed).normal(0, 1e-3, rec.shape).astype(np.float32)
    return rec


@pytest.fixture
def probe():
    return ProbeSettings()


# -- file backend -------------------------------------------------------------------------------------------------

def test_file_windows_match_the_recording(tmp_path, probe):
    emission = make_emission(probe, 4)
    rec = recording_of(emission, windows=5, latency=300)
    path = write_wav(tmp_path / "rec.wav", rec)
    src = WavSource(FileConfig(path=path, latency_samples=300, realtime=False), probe)
    src.start()
    windows = [src.next_window(1.0) for _ in range(5)]
    assert src.status() == {}
    for k, w in enumerate(windows):
        assert w.sequence == k and w.usable and w.fs == FS
        assert w.recording.shape == (4, W) and w.recording.dtype == np.float32
        np.testing.assert_array_equal(w.recording, rec[:, 300 + k * W: 300 + (k + 1) * W])
        np.testing.assert_array_equal(w.emissions, emission.window(k))
        # the probe sits where the loopback put it: 37 samples after its emission
        assert find_lag(w.recording[1], emission.signal(k * W - 100, W + 200)[1], -100, 100).lag == 37
    stamps = np.array([w.start_time_ns for w in windows])
    np.testing.assert_allclose(np.diff(stamps), 1e8, atol=1)
    assert src.next_window(0.05) is None
    assert src.finished and src.status()["file_ended"].level == WARN


def test_file_loops_and_keeps_counting(tmp_path, probe):
    rec = recording_of(make_emission(probe, 4), windows=2, latency=0)
    src = WavSource(FileConfig(path=write_wav(tmp_path / "r.wav", rec), realtime=False, loop=True), probe)
    seqs = [src.next_window(1.0).sequence for _ in range(5)]
    assert seqs == [0, 1, 2, 3, 4] and not src.finished


def test_file_with_its_own_probe_wav(tmp_path, probe):
    rng = np.random.default_rng(1)
    emitted = rng.uniform(-0.5, 0.5, (4, 3 * W)).astype(np.float32)   # as long as the recording: not periodic
    rec = np.roll(emitted, 11, axis=1) * 0.5
    src = WavSource(FileConfig(path=write_wav(tmp_path / "r.wav", rec), realtime=False,
                               probe_path=write_wav(tmp_path / "p.wav", emitted)), probe)
    w = src.next_window(1.0)
    np.testing.assert_array_equal(w.emissions, emitted[:, :W])
    assert src.next_window(1.0).emissions[2, 5] == emitted[2, W + 5]
    periodic = RecordedEmission(emitted[:, :W], W)
    assert periodic.periodic and np.array_equal(periodic.window(7), emitted[:, :W])


@pytest.mark.parametrize("case, code", [("channels", "input_channel_count"), ("rate", "input_sample_rate"),
                                        ("missing", "file_missing"), ("probe", "input_probe")])
def test_file_bad_input_is_a_standing_error(tmp_path, probe, case, code):
    good = np.zeros((4, 3 * W), np.float32)
    path = str(tmp_path / "r.wav")
    probe_path = ""
    if case == "channels":
        write_wav(path, good[:2])
    elif case == "rate":
        write_wav(path, good, rate=44100)
    elif case == "probe":
        write_wav(path, good)
        probe_path = write_wav(tmp_path / "p.wav", good[:3, :W])     # 3 speakers' probe for 4 speakers
    src = WavSource(FileConfig(path=path, realtime=False, probe_path=probe_path, retry_s=0.05), probe)
    assert src.next_window(0.1) is None
    status = src.status()
    assert list(status) == [code] and status[code].level == ERROR, status
    assert src.next_window(0.1) is None and code in src.status()      # re-checked, still wrong, still no data


def test_file_nan_and_clipped_windows_are_dropped(tmp_path, probe):
    rec = recording_of(make_emission(probe, 4), windows=4, latency=0)
    rec[2, W + 10] = np.nan
    rec[:, 3 * W: 3 * W + 200] = 1.0
    src = WavSource(FileConfig(path=write_wav(tmp_path / "r.wav", rec), realtime=False), probe)
    windows = [src.next_window(1.0) for _ in range(4)]
    assert [w.usable for w in windows] == [True, False, True, False]
    assert [p.code for p in windows[1].problems] == ["input_non_finite"]
    assert [p.code for p in windows[3].problems] == ["input_clipped"]


# -- sim backend --------------------------------------------------------------------------------------------------

def test_sim_is_repeatable_moves_and_keeps_ground_truth(probe):
    config = SimConfig(seed=5, pose="walking", realtime=False, empty_room_s=0.1)
    a, b = SimSource(config, probe), SimSource(config, probe)
    wa = [a.next_window(5.0) for _ in range(3)]
    wb = [b.next_window(5.0) for _ in range(3)]
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x.recording, y.recording)
    assert all(w.recording.shape == (4, W) and w.usable for w in wa)
    np.testing.assert_array_equal(wa[2].emissions, a.emission.window(2))
    assert a.ground_truth(0).joints is None                       # empty room first
    j1, j2 = a.ground_truth(1).joints, a.ground_truth(2).joints
    assert j1.shape == (17, 3) and np.linalg.norm(j2 - j1, axis=1).max() > 0.02     # walking: 0.1 s apart
    assert a.ground_truth(2).stamp_ns == wa[2].start_time_ns
    assert not np.array_equal(wa[1].recording, wa[2].recording)


def test_sim_follows_the_node_probe_settings():
    sweep = ProbeSettings(probe_type="sweep", band_hz=(2000.0, 16000.0), window_s=0.05)
    src = SimSource(SimConfig(seed=1, realtime=False), sweep)
    w = src.next_window(5.0)
    assert w.recording.shape == (4, 2400) and src.probe_type == "sweep"
    np.testing.assert_array_equal(w.emissions, make_emission(sweep, 4).window(0) / np.float32(sweep.level))


# -- lag finding, stamps, calibration file --------------------------------------------------------------------------

def test_find_lag_and_locate():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(6000)
    for true in (-40, 0, 17):
        rec = np.roll(ref, true)[100:4900] + 0.05 * rng.standard_normal(4800)
        est = find_lag(rec, ref[100 - 50:4900 + 50], -50, 50)
        assert est.lag == true and est.clear()
    pulse = rng.standard_normal(240)
    silence = 0.01 * rng.standard_normal(20000)
    silence[1000 + 733: 1000 + 733 + 240] += pulse
    est = locate(silence, pulse, 5000, sent_at=1000)
    assert est.lag == 733 and est.peak > 0.9


def test_stamp_filter_smooths_and_resyncs():
    rng = np.random.default_rng(2)
    k = np.arange(200)
    truth = 1000.0 + k * 0.1 * (1 + 50e-6)                     # a device 50 ppm fast
    raw = truth + rng.normal(0, 1e-3, k.size)                 # 1 ms scatter in the raw ADC times
    raw[150:] += 0.05                                          # 50 ms step (lost samples)
    f = StampFilter(0.1, bandwidth_hz=0.5, resync_s=0.02)
    out = np.array([f.update(r)[0] for r in raw])
    assert np.all(np.diff(out) > 0)
    filtered = jitter_report(out[20:150] * 1e9, 0.1)
    unfiltered = jitter_report(raw[20:150] * 1e9, 0.1)
    assert filtered["spacing_std_us"] < 0.5 * unfiltered["spacing_std_us"]
    assert abs(out[151] - truth[151] - 0.05) < 3e-3          # re-anchored at the step


def test_write_latency_keeps_the_yaml(tmp_path):
    from av_pose_ros.audio.calibration import write_latency

    path = tmp_path / "audio_io_node.yaml"
    path.write_text("audio_io_node:\n  ros__parameters:\n    backend: device   # where\n"
                    "    latency_samples: 0   # round trip\n")
    write_latency(path, 1029)
    assert "latency_samples: 1029   # round trip" in path.read_text() and "backend: device   # where" in \
        path.read_text()
    other = tmp_path / "fresh.yaml"
    other.write_text("audio_io_node:\n  ros__parameters:\n    backend: device\n")
    write_latency(other, 515)
    import yaml
    assert yaml.safe_load(other.read_text())["audio_io_node"]["ros__parameters"]["latency_samples"] == 515


# -- device backend without the device --------------------------------------------------------------------------------

def test_missing_device_is_retried_not_fatal(probe):
    from av_pose_ros.audio.duplex import DuplexConfig, DuplexSource

    src = DuplexSource(DuplexConfig(device="no-such-sound-card", retry_initial_s=0.2), probe)
    src.start()
    assert src.next_window(0.5) is None
    problem = src.status()["device_missing"]
    assert problem.level == ERROR and "no-such-sound-card" in problem.text and "retrying" in problem.text
    assert src.next_window(0.5) is None and "device_missing" in src.status()
    src.close()
