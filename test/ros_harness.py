"""Test harness for node tests: run a node executable as its own process, and a probe node that talks to it.

Real rclpy and DDS on both sides; nothing is mocked.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from conftest import REPO, child_env


class NodeProcess:
    """`python -m av_pose_ros.nodes.<name>` with its config/<name>.yaml and extra `-p name:=value` overrides."""

    def __init__(self, name: str, params: dict | None = None, remaps: dict | None = None):
        args = [sys.executable, "-m", f"av_pose_ros.nodes.{name}", "--ros-args"]
        config = REPO / "config" / f"{name}.yaml"
        if config.exists():
            args += ["--params-file", str(config)]
        for key, value in (params or {}).items():
            value = str(value).lower() if isinstance(value, bool) else value
            args += ["-p", f"{key}:={value}"]
        for src, dst in (remaps or {}).items():
            args += ["-r", f"{src}:={dst}"]
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.output: str | None = None

    def __enter__(self) -> NodeProcess:
        self.proc = subprocess.Popen(self.args, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> str:
        """Ctrl-C the node, wait, and return everything it printed (safe to call twice)."""
        if self.proc is None:
            return ""
        if self.output is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.output = self.proc.communicate(timeout=15)[0]
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.output = self.proc.communicate()[0] + "\n[killed: did not stop within 15 s of SIGINT]"
        return self.output

    def __exit__(self, *exc) -> None:
        self.stop()


class Probe:
    """A test-side rclpy node: publishers, collecting subscriptions, /diagnostics by node name."""

    def __init__(self, context, name: str = "test_probe"):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        from av_pose_ros.ros.qos import RESULT_QOS

        self.node = rclpy.create_node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {}
        self.diagnostics: dict[str, object] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, RESULT_QOS)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            self.diagnostics[status.hardware_id] = status

    def publisher(self, msg_type, topic: str, qos):
        return self.node.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type, topic: str, qos) -> list:
        messages = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, messages.append, qos)
        return messages

    def spin_until(self, predicate, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def publish_until(self, publisher, msg, predicate, timeout_s: float = 20.0, period_s: float = 1.0) -> bool:
        """Publish `msg` every `period_s` until `predicate()` holds (best-effort streams may drop a message)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            publisher.publish(msg)
            if self.spin_until(predicate, min(period_s, max(deadline - time.monotonic(), 0.0))):
                return True
        return bool(predicate())

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def diagnostic_level(self, node_name: str) -> int | None:
        status = self.diagnostics.get(node_name)
        return None if status is None else status.level[0] if isinstance(status.level, bytes) else int(status.level)

    def diagnostic_message(self, node_name: str) -> str:
        status = self.diagnostics.get(node_name)
        return "" if status is None else status.message

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def wait_for_subscriber(probe: Probe, publisher, timeout_s: float = 20.0) -> None:
    assert probe.spin_until(lambda: publisher.get_subscription_count() > 0, timeout_s), (
        f"nobody subscribed to {publisher.topic_name}")


__all__ = ["NodeProcess", "Probe", "wait_for_subscriber", "REPO"]
