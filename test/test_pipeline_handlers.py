"""The ROS-free stage pieces a time jump and a live parameter touch: pairing reset and slop change, the transform
tree's clear and bounded wait, the backwards-time detector, and the lifter handler after a loop (no rclpy)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from av_pose_ros.pipeline.common import BackwardsTime, StageError
from av_pose_ros.pipeline.lifter import PARAMS, LifterHandler
from av_pose_ros.primitives.geometry import make_transform
from av_pose_ros.primitives.pairing import NearestPairer
from av_pose_ros.primitives.skeleton import COCO17_JOINTS
from av_pose_ros.primitives.transform_tree import TransformError, TransformTree

S = 1_000_000_000


def test_backwards_time_ignores_small_steps_and_sees_a_loop():
    watch = BackwardsTime(tolerance_s=1.0)
    assert not any(watch.jumped(t) for t in (10 * S, 11 * S, int(10.5 * S), 12 * S))
    assert watch.jumped(2 * S)
    assert not watch.jumped(3 * S)  # the new timeline goes on from there


def test_pairer_after_a_loop_pairs_again_only_when_reset():
    def run(reset: bool) -> int:
        pairer = NearestPairer(int(0.06 * S))
        for t in range(10, 20):
            pairer.add_leading(t * S, t)
            pairer.add_following(t * S + 10_000_000, t)
            pairer.pop_ready()
        if reset:
            pairer.reset()
        paired = 0
        for t in range(1, 10):  # the second pass: stamps from the start again, keypoints before their kernel
            pairer.add_leading(t * S, t)
            paired += len(pairer.pop_ready()[0])
            pairer.add_following(t * S + 10_000_000, t)
            paired += len(pairer.pop_ready()[0])
        return paired

    assert run(reset=False) <= 1   # the old newest stamp makes every new frame time out at once
    assert run(reset=True) >= 8


def test_pairer_slop_follows_a_new_value():
    pairer = NearestPairer(int(0.06 * S))
    pairer.set_slop(int(0.02 * S))
    assert pairer.slop_ns == int(0.02 * S) and pairer.max_wait_ns == int(0.04 * S)
    pairer.add_leading(S, "kp")
    pairer.add_following(S + int(0.03 * S), "k")
    pairs, unmatched = pairer.pop_ready()
    assert not pairs and len(unmatched) == 1  # 30 ms apart: paired at 60 ms slop, not at 20 ms


def test_transform_tree_clear_keeps_static_and_lookup_waits():
    tree = TransformTree()
    tree.set_transform("base_link", "camera_link", make_transform(None, [0, 0, 1]), 0, static=True)
    tree.set_transform("odom", "base_link", make_transform(None, [1, 0, 0]), 100 * S)
    tree.clear()
    assert tree.lookup("base_link", "camera_link")[2, 3] == 1.0
    with pytest.raises(TransformError):
        tree.lookup("odom", "base_link", 5 * S)
    threading.Timer(0.1, lambda: tree.set_transform("odom", "base_link", make_transform(None, [2, 0, 0]),
                                                     5 * S)).start()
    start = time.monotonic()
    assert tree.lookup("odom", "base_link", 5 * S, timeout_s=2.0)[0, 3] == 2.0
    assert time.monotonic() - start < 1.5
    start = time.monotonic()
    with pytest.raises(TransformError):
        tree.lookup("odom", "nowhere", 5 * S, timeout_s=0.2)
    assert 0.15 < time.monotonic() - start < 1.0


def test_lifter_handler_resets_camera_and_pairing():
    p = SimpleNamespace(**{s.name: s.default for s in PARAMS})
    handler = LifterHandler(p, TransformTree().lookup, lifter=None)
    handler.on_camera_info([400.0, 0, 320, 0, 400.0, 240, 0, 0, 1], now_ns=50 * S)
    assert handler.camera_matrix(51 * S)[0, 0] == 400.0
    with pytest.raises(StageError, match="camera_info"):
        handler.camera_matrix(60 * S)  # older than camera_info_timeout_s
    kp = SimpleNamespace(stamp_ns=50 * S, undistorted=True, keypoints=np.zeros((1, 17, 3)), frame_id="cam",
                         body_ids=["a"], joint_names=list(COCO17_JOINTS))
    handler.on_keypoints(kp)
    handler.reset()
    assert not handler.pairer.leading and handler.pairer.newest_ns == 0
    with pytest.raises(StageError):
        handler.camera_matrix(51 * S)
    p.sync_slop_s = 0.01
    handler.configure()
    assert handler.pairer.slop_ns == int(0.01 * S)
    with pytest.raises(StageError, match="distorted"):
        handler.on_keypoints(SimpleNamespace(**{**vars(kp), "undistorted": False}))
    with pytest.raises(StageError, match="COCO-17"):
        handler.on_keypoints(SimpleNamespace(**{**vars(kp), "joint_names": list(COCO17_JOINTS)[::-1]}))
