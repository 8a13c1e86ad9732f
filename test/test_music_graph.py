"""Music through the whole chain: the simulator emits what the scenario says (library music from the test split, a
fallback with one warning), never drops a window of a continuous probe, and the live sim graph with
``scenario:=music`` publishes poses from continuous-mode kernels over real DDS."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from av_pose_ros.acoustics.emission import MusicEmission, SlottedEmission
from av_pose_ros.audio.probe_setup import ProbeSettings
from av_pose_ros.audio.sim_source import SimConfig, SimSource


def source(scenario: str, probe_type: str = "", music_file: str = "", **config) -> SimSource:
    return SimSource(SimConfig(scenario=scenario, empty_room_s=config.pop("empty_room_s", -1.0), **config),
                     ProbeSettings(probe_type=probe_type, music_file=music_file))


def test_the_simulator_plays_the_scenarios_probe_unless_told_otherwise(tmp_path):
    music = source("music")
    assert music.probe_type == "music" and isinstance(music.emission, MusicEmission)
    assert music.empty_room_s == 9.0                     # auto: the music capture needs 82 windows of empty room
    chirp = source("music", "chirp")                      # an explicit probe type wins
    assert chirp.probe_type == "chirp" and isinstance(chirp.emission, SlottedEmission) and chirp.empty_room_s == 2.0
    assert source("default").probe_type == "chirp"
    assert source("music", empty_room_s=0.5).empty_room_s == 0.5
    from scipy.io import wavfile

    track = tmp_path / "track.wav"
    wavfile.write(track, 48000, (0.3 * np.sin(np.arange(48000) * 0.05)).astype(np.float32))
    assert source("music", music_file=str(track)).scene.audio.music_file == str(track)


def test_device_and_file_backends_take_a_chirp_for_the_scenarios_probe():
    from av_pose_ros.nodes.audio_io_node import PARAMS, settings_from_parameters

    p = SimpleNamespace(**{spec.name: spec.default for spec in PARAMS})
    assert p.probe_type == "" and settings_from_parameters(p).probe.probe_type == "chirp"      # device backend
    p.backend = "sim"
    assert settings_from_parameters(p).probe.probe_type == ""                                 # the scenario's


def test_library_music_comes_from_the_test_split(tmp_path, monkeypatch):
    from av_pose_ros.audio.music_library import generated_library

    library = generated_library(tmp_path / "library", tracks_per_split=3, seconds=3.0)
    monkeypatch.setenv("AV_POSE_MUSIC_LIBRARY", str(tmp_path / "library"))
    for split in ("test", "val"):
        sim = source("music_library", music_split=split)
        assert sim.scene.audio.music_file in {t.path for t in library.tracks(split)} and not sim.warnings
        assert isinstance(sim.emission, MusicEmission)


def test_without_a_library_the_synthetic_track_plays_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("AV_POSE_MUSIC_LIBRARY", str(tmp_path / "none"))
    sim = source("music_library")
    assert sim.probe_type == "music" and sim.scene.audio.music_file is None
    assert len(sim.warnings) == 1 and "music-library build" in sim.warnings[0]


def test_a_continuous_probe_never_skips_windows_when_rendering_falls_behind():
    """Chirps skip windows to keep stamps on the clock; music cannot (the kernel stage needs the history): the
    world waits, the sequence stays gap-free and the stamps are re-anchored close to the clock."""
    for probe, gap_free in (("music", True), ("chirp", False)):
        sim = source("music", probe, empty_room_s=0.0)
        sim.start()
        first = sim.next_window()
        sim._t0_mono -= 0.5                 # as if the first render had taken half a second longer
        nxt = sim.next_window()
        assert (nxt.sequence == first.sequence + 1) == gap_free, probe
        if gap_free:
            assert sim.slowed >= 4 and sim.skipped == 0
            assert abs(nxt.start_time_ns - time.time_ns()) < 0.5e9
        else:
            assert sim.skipped >= 4


# -- the live graph over DDS -----------------------------------------------------------------------------------------

@pytest.fixture
def music_graph(ros_domain):
    from av_pose_ros.app.launch_graphs import parse_arguments, resolve
    from av_pose_ros.app.launcher import Launch

    from conftest import child_env

    nodes = resolve("sim", parse_arguments(["scenario:=music", "use_handover:=false"], "sim"))
    for node in nodes:
        # a 4 s capture instead of 8.2 s keeps the test short (the decay prior still predicts at about -39 dB)
        if node.executable == "sim_node":
            node.params["sim_music_empty_room_s"] = 4.5
        if node.executable == "pose_kernel_node":
            node.params["music_capture_frames"] = 40
    launch = Launch(nodes, quiet=True, env=child_env())
    launch.start()
    yield launch
    launch.stop()


def test_music_graph_publishes_poses_from_continuous_kernels(ros_context, music_graph):
    from av_pose_ros.msg import HumanPose3D, PoseKernel
    from av_pose_ros.ros.conversions import pose3d_from_msg
    from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS

    from ros_harness import Probe

    probe = Probe(ros_context)
    poses = probe.collect(HumanPose3D, "human/pose_3d", RESULT_QOS)
    kernels = probe.collect(PoseKernel, "audio/pose_kernel", SENSOR_QOS)
    try:
        # until the empty-room capture (82 windows) is done, the person is posed by the vision-only fallback
        lifted = lambda: [m for m in poses if m.source.startswith("cnn")]  # noqa: E731
        assert probe.spin_until(lambda: len(lifted()) >= 5, 60.0), (
            f"no 3D poses from the music graph; pose_kernel_node says: {probe.diagnostic_message('pose_kernel_node')}")
        def kernel_values() -> dict:
            return {v.key: v.value for v in probe.diagnostics["pose_kernel_node"].values}

        # a window the sim dropped under load leaves no history to subtract with (residual nan, history_ok False):
        # judge the residual on a report of a window that had its history
        assert probe.spin_until(lambda: kernel_values().get("history_ok") == "True", 30.0), (
            f"every music window lacked its emission history: {probe.diagnostic_message('pose_kernel_node')}")
        values = kernel_values()
        assert values["probe_mode"] == "continuous" and values["empty_room_ready"] == "True"
        assert float(values["music_room_residual_db"]) < -30.0
        assert all(k.empty_room_subtracted for k in kernels)
        sources = {pose3d_from_msg(m).source for m in poses}
        print("pose sources", sources, "residual", values["music_room_residual_db"], "dB")
        # the lifter's own poses (cnn_flagged: its refusal rule distrusts them; music kernels are weaker than chirp's)
        # and, before the empty room was known, the vision-only fallback's
        assert sources and sources <= {"cnn", "cnn_flagged", "vision_only"}
        assert music_graph.dead() is None, f"a node died: {music_graph.dead()}"
    finally:
        probe.close()


def test_sim_node_without_a_library_warns_once_and_plays_music(ros_context, tmp_path, monkeypatch):
    """sim_node with library music and no library: music frames (the synthetic track), one warning in its log and
    the reason in its diagnostics."""
    from av_pose_ros.msg import AudioFrame
    from av_pose_ros.ros.qos import SENSOR_QOS

    from ros_harness import NodeProcess, Probe

    monkeypatch.setenv("AV_POSE_MUSIC_LIBRARY", str(tmp_path / "none"))
    probe = Probe(ros_context)
    frames = probe.collect(AudioFrame, "audio/frames", SENSOR_QOS)
    with NodeProcess("sim_node", {"scenario": "music_library", "realtime": False}) as node:
        try:
            assert probe.spin_until(lambda: len(frames) >= 3 and "sim_node" in probe.diagnostics, 40.0), node.stop()
            values = {v.key: v.value for v in probe.diagnostics["sim_node"].values}
        finally:
            probe.close()
        output = node.stop()
    assert {f.probe_type for f in frames} == {"music"}
    assert "music-library build" in values.get("probe_note", "")
    assert output.count("playing the synthetic track") == 1, output
