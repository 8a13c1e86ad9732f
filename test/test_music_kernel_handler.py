"""Bad input for a music probe at the kernel stage (no rclpy): a lost window, a clipped window, a track change and a
room the model does not explain each get a diagnostic code, and the stream recovers without a new capture. The room
is the synthetic one of room_helpers.py, 50 ms windows to keep it fast."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from room_helpers import mix, two_pair_room

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import MusicEmission
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.kernel import PARAMS, KernelHandler
from av_pose_ros.primitives.geometry import make_transform

FS, N, ROOM_TAPS, C = 48000, 2400, 1200, 343.0
DIRECT = 8                     # samples from each speaker to its own mic
SPEAKERS = ["speaker_0", "speaker_1"]
MICS = ["mic_0", "mic_1"]



@pytest.fixture(scope="module")
def room():
    return two_pair_room(ROOM_TAPS, direct=DIRECT)


def window(h, emission, k, gain=1.0):
    x = emission.signal(k * N - ROOM_TAPS, ROOM_TAPS + N).astype(float)
    y = mix(x, h)[:, ROOM_TAPS:] * gain
    return (y + np.random.default_rng(k).normal(0, 1e-6, y.shape)).astype(np.float32)


def lookup(frame_id, name, stamp_ns):
    """Speaker i and mic i sit DIRECT samples of flight apart, the two pairs 0.5 m from each other."""
    i = int(name[-1])
    x = DIRECT / FS * C if name.startswith("mic") else 0.0
    return make_transform(None, [x, 0.5 * i, 0.0])


def handler() -> KernelHandler:
    p = SimpleNamespace(**{spec.name: spec.default for spec in PARAMS})
    p.taps, p.room_taps, p.music_capture_frames, p.min_range_m, p.temperature_c = 600, ROOM_TAPS, 44, 0.2, 20.0
    p.music_frontend = ""
    return KernelHandler(p, lookup)


def audio(recording, emission, k):
    return SimpleNamespace(audio=recording, probe=emission.window(k), sample_rate=FS, sequence=k,
                           frame_id="camera_link", speaker_frames=SPEAKERS, mic_frames=MICS, probe_type="music",
                           stamp_ns=k * 50_000_000)


def test_music_stream_problems_are_reported_and_the_stream_recovers(room):
    music = MusicEmission(probes.synthetic_music(3.0), 2, N)
    stage = handler()
    for k in range(44):                                          # the empty-room capture
        out = stage.on_audio(audio(window(room, music, k), music, k), k * 0.05)
    assert stage.extractor.mode == "continuous" and stage.extractor.empty_room.ready
    out = stage.on_audio(audio(window(room, music, 44), music, 44), 2.2)
    assert out.kernels is not None and out.report.values["probe_mode"] == "continuous"

    # a lost window: no kernel and a music_history problem, then kernels again without a new capture
    out = stage.on_audio(audio(window(room, music, 46), music, 46), 2.3)
    assert out.kernels is None and "music_history" in out.report.problems
    out = stage.on_audio(audio(window(room, music, 47), music, 47), 2.35)
    assert out.kernels is not None and "music_history" in out.report.cleared

    # clipped music: refused with a code; the speakers still played it, so the next window keeps its history
    with pytest.raises(StageError) as err:
        stage.on_audio(audio(np.clip(window(room, music, 48, gain=40.0), -1, 1), music, 48), 2.4)
    assert err.value.code == "input_clipped"
    out = stage.on_audio(audio(window(room, music, 49), music, 49), 2.45)
    assert out.kernels is not None and out.report.values["history_ok"]

    # a track change (another composition, the stream goes on): the room model keeps up, kernels go on
    other = MusicEmission(probes.synthetic_music(3.0, seed=5), 2, N)

    class Playlist:
        def signal(self, start, n):
            a, b = music.signal(start, n), other.signal(start, n)
            return np.where(start + np.arange(n) >= 50 * N, b, a)

        def window(self, k):
            return self.signal(k * N, N)

    playlist = Playlist()
    residuals = []
    for k in range(50, 54):
        out = stage.on_audio(audio(window(room, playlist, k), playlist, k), 2.5 + 0.05 * k)
        residuals.append(out.report.values["music_room_residual_db"])
    print("residual after the track change", residuals)
    assert out.kernels is not None and max(residuals[1:]) < -30.0

    # a room the model does not explain (the rig was moved): no kernel, music_unheard says to recapture
    out = stage.on_audio(audio(window(0.5 * room, playlist, 54), playlist, 54), 2.8)
    out = stage.on_audio(audio(window(0.5 * room, playlist, 55), playlist, 55), 2.85)
    assert out.kernels is None and "recapture" in out.report.problems["music_unheard"]
