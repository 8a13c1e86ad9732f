"""Health (the /diagnostics reporter) under concurrent use from worker threads and the executor, and what an
unexpected exception in a stage gives: ERROR on /diagnostics and its traceback logged once. Real rclpy node."""

from __future__ import annotations

import threading
import time

import pytest

from av_pose_ros.ros.diagnostics import ERROR, OK, WARN, Health


@pytest.fixture
def node(ros_context):
    import rclpy

    node = rclpy.create_node("health_test", context=ros_context)
    yield node
    node.destroy_node()


def test_health_survives_threads_hammering_it(node):
    health = Health(node, throttle_s=1e9)
    errors: list[BaseException] = []
    stop = threading.Event()

    def run(i: int) -> None:
        k = 0
        try:
            while not stop.is_set():
                k += 1
                health.problem(f"input_{i}_{k % 50}", "bad", WARN)   # new codes: the dict grows while others read
                health.good(**{f"value_{i}_{k % 20}": k})
                health.clear(f"input_{i}_{(k + 25) % 50}")
                health.set(count=k)
                health.status()
                health.publish()
        except BaseException as err:  # noqa: BLE001 - the test reports whatever a thread hit
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(5.0)
    assert not errors, f"{type(errors[0]).__name__}: {errors[0]}"
    status = health.status()
    assert status.level[0] in (OK, WARN)
    assert all(code.startswith("input_") for code in health.codes())


class _Recorder:
    """The node's logger, recording what was said (the node itself is a real one)."""

    def __init__(self, node):
        self.node, self.lines = node, []

    def get_logger(self):
        return self

    def error(self, text, **_):
        self.lines.append(text)

    warning = error

    def __getattr__(self, name):
        return getattr(self.node, name)


def test_unexpected_exception_is_error_with_one_traceback(node):
    recorder = _Recorder(node)
    health = Health(recorder, throttle_s=0.0)
    for _ in range(3):
        try:
            {}["missing"]
        except KeyError as err:
            health.exception("lifting", err)
    assert health.level == ERROR
    tracebacks = [line for line in recorder.lines if "Traceback" in line]
    assert len(tracebacks) == 1 and "KeyError" in tracebacks[0]
    assert len(recorder.lines) == 4  # the traceback once, then the throttled one-line problem each time

    guarded = health.guard("detector", lambda x: 1 / x)
    assert guarded(2) == 0.5
    guarded(0)  # raises inside: reported, not propagated
    assert "detector" in health.codes() and "ZeroDivisionError" in health.status().message


def test_warnings_and_errors_both_reach_the_log(node):
    """rclpy fixes a call site's severity at its first call; Health logs WARN and ERROR problems alike."""
    health = Health(node, throttle_s=0.0)
    health.problem("input_a", "a warning first", WARN)
    health.problem("input_b", "then an error", ERROR)   # raised "Logger severity cannot be changed" before
    health.problem("input_a", "and a warning again", WARN)
    assert health.status().level == bytes([ERROR])
