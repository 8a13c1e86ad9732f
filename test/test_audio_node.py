"""audio_io_node as its own process over real DDS: AudioFrames from the sim, file and device backends with the
right content, sizes, frames and stamps; bad input (NaN, clipping, wrong channel count or rate, no device, end of
file) gives diagnostics and nothing published, and the node stays up."""

import time

import numpy as np
import pytest
from pulse_fixture import DEVICE, virtual_sound_device_fixture  # noqa: F401 - provides virtual_sound_device
from scipy.io import wavfile

from av_pose_ros.audio.latency import find_lag
from av_pose_ros.audio.probe_setup import ProbeSettings, make_emission
from av_pose_ros.audio.sim_source import SimConfig, SimSource
from av_pose_ros.ros.diagnostics import ERROR, OK, WARN

from ros_harness import NodeProcess, Probe

NODE = "audio_io_node"
W = 4800
FRAMES = ["mic_0", "mic_1", "mic_2", "mic_3"]
SPEAKERS = ["speaker_0", "speaker_1", "speaker_2", "speaker_3"]


def collect_frames(probe, topic="audio/frames"):
    from av_pose_ros.msg import AudioFrame
    from av_pose_ros.ros.qos import SENSOR_QOS

    return probe.collect(AudioFrame, topic, SENSOR_QOS)


def unpack(msgs):
    from av_pose_ros.ros.conversions import audio_from_msg

    return [audio_from_msg(m) for m in msgs]


def check_layout(a):
    assert a.frame_id == "camera_link" and a.sample_rate == 48000 and a.probe_type == "chirp"
    assert a.audio.shape == (4, W) and a.probe.shape == (4, W)
    assert a.mic_frames == FRAMES and a.speaker_frames == SPEAKERS


def test_sim_backend_publishes_the_rendered_windows(ros_context):
    probe = Probe(ros_context)
    out = collect_frames(probe)
    params = {"backend": "sim", "seed": 7, "sim_pose": "walking", "realtime": False}
    with NodeProcess(NODE, params) as node:
        try:
            assert probe.spin_until(lambda: len(out) >= 4, 90.0), node.stop()
            assert probe.spin_until(lambda: probe.diagnostic_level(NODE) == OK, 10.0), probe.diagnostic_message(NODE)
        finally:
            probe.close()
    frames = unpack(out)
    reference = SimSource(SimConfig(seed=7, pose="walking", realtime=False), ProbeSettings())
    for a in frames[-2:]:
        check_layout(a)
        capture = reference.render(a.sequence)            # same seed, same window: the same samples
        np.testing.assert_array_equal(a.audio, capture.recording)
        np.testing.assert_array_equal(a.probe, capture.emissions)
    seqs = np.array([a.sequence for a in frames])
    stamps = np.array([a.stamp_ns for a in frames])
    assert np.all(np.diff(seqs) > 0)
    np.testing.assert_allclose(np.diff(stamps) / np.diff(seqs), 1e8, atol=2)   # the window clock, exactly


def test_file_backend_replays_and_drops_bad_windows(ros_context, tmp_path):
    emission = make_emission(ProbeSettings(), 4)
    windows = 40
    rec = 0.3 * emission.signal(-25, windows * W)             # each mic hears its speaker 25 samples late
    rec[1, 30 * W + 100] = np.nan
    rec[:, 33 * W: 33 * W + 300] = 1.0
    path = tmp_path / "capture.wav"
    wavfile.write(str(path), 48000, np.ascontiguousarray(rec.T.astype(np.float32)))
    probe = Probe(ros_context)
    out = collect_frames(probe)
    params = {"backend": "file", "wav_path": str(path), "realtime": True, "problem_hold_s": 60.0}
    with NodeProcess(NODE, params) as node:
        try:
            ended = probe.spin_until(lambda: "file_ended" in probe.diagnostic_message(NODE), 90.0)
            assert ended, node.stop()
            message = probe.diagnostic_message(NODE)
            assert "input_non_finite" in message and "input_clipped" in message, message
            assert probe.diagnostic_level(NODE) == WARN
            count = len(out)
            probe.spin_for(1.5)
            assert len(out) == count and node.alive()          # nothing after the end, and still running
        finally:
            probe.close()
    frames = unpack(out)
    seqs = [a.sequence for a in frames]
    assert 30 not in seqs and 33 not in seqs, seqs
    assert len({29, 31, 32, 34, 35, 36, 37, 38, 39} & set(seqs)) >= 6, seqs
    for a in frames:
        check_layout(a)
        np.testing.assert_array_equal(a.audio, rec[:, a.sequence * W:(a.sequence + 1) * W].astype(np.float32))
        np.testing.assert_array_equal(a.probe, emission.window(a.sequence))
        assert find_lag(a.audio[2], emission.signal(a.sequence * W - 50, W + 100)[2], -50, 50).lag == 25


def test_bad_input_gives_errors_and_no_frames(ros_context, tmp_path):
    two_channels = tmp_path / "two.wav"
    wavfile.write(str(two_channels), 48000, np.zeros((48000, 2), np.float32))
    wrong_rate = tmp_path / "rate.wav"
    wavfile.write(str(wrong_rate), 44100, np.zeros((44100, 4), np.float32))
    cases = {
        "audio_bad_channels": ({"backend": "file", "wav_path": str(two_channels)}, "input_channel_count"),
        "audio_bad_rate": ({"backend": "file", "wav_path": str(wrong_rate)}, "input_sample_rate"),
        "audio_no_device": ({"backend": "device", "device": "no-such-sound-card"}, "device_missing"),
    }
    probe = Probe(ros_context)
    outs = {name: collect_frames(probe, f"{name}/frames") for name in cases}
    nodes = [NodeProcess(NODE, params, remaps={"__node": name, "audio/frames": f"{name}/frames"})
             for name, (params, _) in cases.items()]
    try:
        for node in nodes:
            node.__enter__()
        for (name, (_, code)), node in zip(cases.items(), nodes):
            ok = probe.spin_until(lambda c=code, n=name: c in probe.diagnostic_message(n), 90.0)
            assert ok, f"{name}: {probe.diagnostic_message(name)!r}\n{node.stop()}"
            assert probe.diagnostic_level(name) == ERROR
        probe.spin_for(2.0)
        for name, node in zip(cases, nodes):
            assert node.alive(), node.stop()
            assert outs[name] == [], f"{name} published {len(outs[name])} frames"
        print("\n" + "\n".join(f"{name}: {probe.diagnostic_message(name)}" for name in cases))
    finally:
        for node in nodes:
            node.stop()
        probe.close()


def test_device_backend_over_dds(ros_context, virtual_sound_device):
    probe = Probe(ros_context)
    out = collect_frames(probe)
    params = {"backend": "device", "device": DEVICE, "startup_calibration": True, "track_latency": True,
              "reference_channels": "[0, 0]"}
    with NodeProcess(NODE, params) as node:
        try:
            assert probe.spin_until(lambda: len(out) >= 12, 90.0), node.stop()
            received_at = time.time_ns()
            assert probe.spin_until(lambda: probe.diagnostic_level(NODE) is not None, 10.0)
            assert probe.diagnostic_level(NODE) != ERROR, probe.diagnostic_message(NODE)
        finally:
            probe.close()
    frames = unpack(out)
    for a in frames:
        check_layout(a)
        for ch in range(4):        # start-up calibration + tracking: every published probe at sample 0
            lag = find_lag(a.audio[ch], np.concatenate([a.probe[ch, -100:], a.probe[ch], a.probe[ch, :100]]),
                           -100, 100)
            assert lag.clear() and abs(lag.lag) <= 2, (a.sequence, ch, lag)
    seqs = np.array([a.sequence for a in frames])
    stamps = np.array([a.stamp_ns for a in frames])
    assert np.all(np.diff(seqs) > 0) and np.all(np.diff(stamps) > 0)
    consecutive = np.diff(seqs) == 1
    spacing_ms = np.diff(stamps)[consecutive] / 1e6
    assert abs(np.median(spacing_ms) - 100.0) < 1.0, spacing_ms
    assert 0 < (received_at - stamps[-1]) / 1e9 < 2.0          # stamped with acquisition time on the system clock
    print(f"\ndevice frames {seqs.tolist()}; spacing {np.round(spacing_ms, 2).tolist()} ms")


@pytest.fixture(autouse=True)
def _quiet_numpy():
    with np.errstate(invalid="ignore"):
        yield
