"""Shared fixtures: an isolated DDS domain per test, an rclpy context, and a helper to spin until a condition."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

from av_pose_ros.ros.dds import use_large_data_profile  # noqa: E402 - the probes carry images as the nodes do

use_large_data_profile()


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A DDS domain id of this test alone (set in the environment for child processes too)."""
    domain = random.Random(f"{os.getpid()}-{time.time_ns()}").randint(1, 101)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


@pytest.fixture
def ros_context(ros_domain):
    """An initialised rclpy context on the test's domain, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=ros_domain)
    yield context
    context.try_shutdown()


def spin_until(executor, predicate, timeout_s: float) -> bool:
    """Spin `executor` until `predicate()` is true or `timeout_s` passes; returns whether it became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def child_env(**extra) -> dict:
    """Environment for a child process that runs package code from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({k: str(v) for k, v in extra.items()})
    return env


PYTHON = sys.executable
