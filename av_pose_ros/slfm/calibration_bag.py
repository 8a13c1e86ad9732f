"""Head-calibration recordings from a robot's own rosbag: its two ears and its head's yaw, while a source plays.

Record `binaural/frames` (AudioFrame) and the head's yaw (`slfm/head_rotation`, HeadRotation, whose
`integrated_yaw` slfm_node integrates from the head camera; or `sim/head_yaw` in the simulator) while one steady
source (a speaker playing noise or music) stays put and the head turns now and then; move the source between
takes. `recordings_from_bag` cuts the audio into windows, gives each window the head's yaw at its centre, and
groups ``views`` successive windows into one recording of a fixed source at several known turns: the input of
`head_calibration.fit_head_calibration`. Groups without a turn of ``min_turn_deg`` carry no scale and are skipped.
Plain Python (rosbags), no rclpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from av_pose_ros.bag.reader import BagError, BagReader
from av_pose_ros.bag.typestore import stamp_ns, typestore


@dataclass(frozen=True, kw_only=True)
class BagRecordingsConfig:
    audio_topic: str = "binaural/frames"
    yaw_topic: str = "slfm/head_rotation"  # HeadRotation: header.stamp, integrated_yaw (rad, + left)
    left_channel: int = 0
    right_channel: int = 1
    window_s: float = 1.0                  # audio per delay estimate
    views: int = 4                         # windows per recording
    min_turn_deg: float = 5.0              # a recording's yaw must span at least this


def _topic(bag: BagReader, name: str) -> str:
    for topic in bag.topics:
        if topic.lstrip("/") == name.lstrip("/"):
            return topic
    raise BagError(f"{bag.path} has no topic {name!r} (it has: {', '.join(sorted(bag.topics))})")


def read_ears_and_yaw(path, config: BagRecordingsConfig):
    """Contiguous audio segments [(start ns, fs, (2, n) float32)] and the yaw series (stamps ns, yaw rad)."""
    store = typestore()
    segments, yaw_t, yaw = [], [], []
    with BagReader(path) as bag:
        audio_topic, yaw_topic = _topic(bag, config.audio_topic), _topic(bag, config.yaw_topic)
        kinds = {audio_topic: bag.topics[audio_topic].msgtype, yaw_topic: bag.topics[yaw_topic].msgtype}
        chunks, expected = [], None
        for topic, _, raw in bag.messages([audio_topic, yaw_topic]):
            msg = store.deserialize_cdr(raw, kinds[topic])
            if topic == yaw_topic:
                yaw_t.append(stamp_ns(msg.header.stamp))
                yaw.append(float(msg.integrated_yaw))
                continue
            c, n, fs = int(msg.num_channels), int(msg.num_samples), int(msg.sample_rate)
            if max(config.left_channel, config.right_channel) >= c or n == 0 or len(msg.data) != c * n:
                continue
            data = np.asarray(msg.data, dtype=np.float32).reshape(c, n)[[config.left_channel, config.right_channel]]
            start = stamp_ns(msg.header.stamp)
            if chunks and (fs != chunks[0][1] or abs(start - expected) > 0.5 * n / fs * 1e9):
                segments.append(chunks)      # a gap or a new rate: a new segment
                chunks = []
            chunks.append((start, fs, data))
            expected = start + int(n / fs * 1e9)
        if chunks:
            segments.append(chunks)
    joined = [(ch[0][0], ch[0][1], np.concatenate([d for _, _, d in ch], axis=1)) for ch in segments]
    order = np.argsort(yaw_t)
    return joined, np.asarray(yaw_t, dtype=np.int64)[order], np.unwrap(np.asarray(yaw, dtype=float)[order])


def recordings_from_bag(path, estimator, config: BagRecordingsConfig = BagRecordingsConfig()):
    """(delays (N, views) s, turns (N, views) rad, window-centre stamps (N, views) ns) from the bag at ``path``,
    read by ``estimator`` (an `AzimuthEstimator`). Windows outside the yaw series' time span are not used."""
    segments, yaw_t, yaw = read_ears_and_yaw(path, config)
    if yaw_t.size < 2:
        raise ValueError(f"{path}: fewer than two head-yaw messages on {config.yaw_topic}; record slfm_node's "
                         "slfm/head_rotation with the ears, or name the yaw topic with --yaw-topic")
    clips, yaws, starts = [], [], []
    for start, fs, data in segments:
        n = int(round(config.window_s * fs))
        for k in range(data.shape[1] // n):
            centre = start + int((k + 0.5) * n / fs * 1e9)
            if yaw_t[0] <= centre <= yaw_t[-1] and np.all(np.std(data[:, k * n:(k + 1) * n], axis=1) > 1e-5):
                clips.append((data[:, k * n:(k + 1) * n], fs))
                yaws.append(float(np.interp(centre, yaw_t, yaw)))
                starts.append(centre)
    delays = np.array([estimator.delay_batch([c], fs)[0] for c, fs in clips])
    yaws, starts = np.asarray(yaws), np.asarray(starts)
    v, out_d, out_t, out_s = config.views, [], [], []
    for i in range(len(clips) - v + 1):
        span = starts[i + v - 1] - starts[i]
        if span > (v - 0.5) * config.window_s * 1e9:   # not successive windows of one segment
            continue
        turns = yaws[i:i + v] - yaws[i]
        if np.ptp(turns) >= math.radians(config.min_turn_deg):
            out_d.append(delays[i:i + v])
            out_t.append(turns)
            out_s.append(starts[i:i + v])
    return (np.asarray(out_d).reshape(-1, v), np.asarray(out_t).reshape(-1, v),
            np.asarray(out_s, dtype=np.int64).reshape(-1, v))


__all__ = ["BagRecordingsConfig", "read_ears_and_yaw", "recordings_from_bag"]
