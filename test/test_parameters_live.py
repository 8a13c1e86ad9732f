"""Parameters over real DDS (the SetParameters service, as `ros2 param set` uses it): every declared parameter of
the processing nodes is either refused (read-only) or accepted and read back, and the ones that used to be read
once at start (`sync_slop_s`, `tracking`, `min_detection_confidence`, `empty_room_update`) change what the running
node does."""

from __future__ import annotations

import os
import random
import time

import pytest

from ros_harness import NodeProcess, Probe

NODES = ("pose_kernel_node", "lifter_node", "keypoint_node", "slfm_node", "audio_io_node", "handover_node")


def specs(node: str) -> list:
    from av_pose_ros.app.param_docs import node_params

    return node_params(node)


def changed(spec):
    """A valid value different from the default (inside the range, another choice, the other bool)."""
    d = spec.default
    if spec.choices:
        return next(c for c in spec.choices if c != d)
    if isinstance(d, bool):
        return not d
    if isinstance(d, int):
        return int(spec.max) if spec.max is not None and d != spec.max else d + 1
    if isinstance(d, float):
        return float(spec.max) if spec.max is not None and d != spec.max else d * 1.5 + 0.1
    if isinstance(d, list):
        return [float(v) * 1.01 for v in d] if d else d
    return f"{d}_changed"


@pytest.fixture(scope="module")
def graph():
    """The processing nodes on a domain of their own, a probe, and a parameter client per node."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter_client import AsyncParameterClient

    domain = random.Random(f"params-{os.getpid()}-{time.time_ns()}").randint(150, 200)
    saved = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    probe = Probe(context, "param_probe")
    procs = {n: NodeProcess(n, {"fov_deg": 60.0} if n == "slfm_node" else None).__enter__() for n in NODES}
    clients = {n: AsyncParameterClient(probe.node, n) for n in NODES}
    try:
        for name, client in clients.items():
            assert probe.spin_until(client.services_are_ready, 90.0), f"{name}: {procs[name].stop()[-2000:]}"
        yield probe, clients, procs
    finally:
        for proc in procs.values():
            proc.stop()
        probe.close()
        context.try_shutdown()
        os.environ.pop("ROS_DOMAIN_ID") if saved is None else os.environ.__setitem__("ROS_DOMAIN_ID", saved)


def call(probe, future, timeout_s: float = 20.0):
    assert probe.spin_until(future.done, timeout_s), "the parameter service did not answer"
    return future.result()


def set_value(probe, client, name: str, value):
    from rclpy.parameter import Parameter

    return call(probe, client.set_parameters([Parameter(name, value=value)])).results[0]


@pytest.mark.parametrize("node", NODES)
def test_every_parameter_is_live_or_read_only(graph, node):
    """Set every parameter over ROS: read-only ones are refused and keep their value, the others are taken."""
    probe, clients, _ = graph
    client = clients[node]
    for spec in specs(node):
        value = changed(spec)
        result = set_value(probe, client, spec.name, value)
        got = call(probe, client.get_parameters([spec.name])).values[0]
        from rclpy.parameter import parameter_value_to_python

        now = parameter_value_to_python(got)
        if spec.read_only:
            assert not result.successful, f"{node}.{spec.name} is read-only but was set"
            assert now != value or value == spec.default
        else:
            assert result.successful, f"{node}.{spec.name}: {result.reason}"
            assert now == pytest.approx(value), (node, spec.name, now, value)
            assert set_value(probe, client, spec.name, spec.default).successful  # back, for the effect tests


def diagnostic_value(probe, node: str, key: str):
    status = probe.diagnostics.get(node)
    return None if status is None else next((kv.value for kv in status.values if kv.key == key), None)


def _presence_reports(probe, node="pose_kernel_node") -> int:
    return int(diagnostic_value(probe, node, "presence_reports") or 0)


@pytest.mark.parametrize("node, name, value, key, expected", [
    ("lifter_node", "sync_slop_s", 0.02, "sync_slop_ms", "20.0"),         # the pairer's window, not the parameter
    ("keypoint_node", "tracking", False, "tracking", "False"),             # the detector was rebuilt with it
    ("keypoint_node", "min_detection_confidence", 0.8, "min_detection_confidence", "0.8"),
])
def test_changed_parameter_reaches_the_handler(graph, node, name, value, key, expected):
    probe, clients, _ = graph
    assert set_value(probe, clients[node], name, value).successful
    assert probe.spin_until(lambda: diagnostic_value(probe, node, key) == expected, 10.0), (
        diagnostic_value(probe, node, key))


def test_empty_room_update_switches_the_presence_source(graph):
    """`empty_room_update` picks which presence topic counts, at run time: person_present messages are ignored
    while it says keypoints, and used once it says person_present."""
    from std_msgs.msg import Bool

    from av_pose_ros.ros.qos import SENSOR_QOS

    probe, clients, _ = graph
    pub = probe.publisher(Bool, "person_present", SENSOR_QOS)
    assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 20.0)
    assert set_value(probe, clients["pose_kernel_node"], "empty_room_update", "keypoints").successful
    for _ in range(5):
        pub.publish(Bool(data=False))
        probe.spin_for(0.3)
    assert _presence_reports(probe) == 0
    assert set_value(probe, clients["pose_kernel_node"], "empty_room_update", "person_present").successful
    assert probe.publish_until(pub, Bool(data=False), lambda: _presence_reports(probe) > 0, 15.0, 0.3)
