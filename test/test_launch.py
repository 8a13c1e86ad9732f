"""The shared launch description, the launch files that read it, and `av-pose launch` process handling."""

import ast
import signal
import subprocess
import sys
import time

import pytest

from av_pose_ros.app.launch_graphs import ARGUMENTS, GRAPHS, parse_arguments, resolve
from av_pose_ros.app.launcher import NODES_DIR, Launch

from conftest import REPO, child_env


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_graph_resolves_to_existing_config_and_launch_file(graph):
    nodes = resolve(graph, parse_arguments(["use_slfm:=true", "namespace:=robot1"], graph))
    assert nodes and all(n.namespace == "robot1" for n in nodes)
    for node in nodes:
        assert all(p.exists() for p in node.param_files), node
        assert "-r" in node.ros_args() and f"__node:={node.name}" in node.ros_args()
    assert all(n.params["use_sim_time"] == (graph == "replay") for n in nodes)
    launch_file = REPO / "launch" / f"{graph}.launch.py"
    tree = ast.parse(launch_file.read_text())
    assert any(isinstance(n, ast.Constant) and n.value == graph for n in ast.walk(tree))


def test_command_line_parameters_keep_their_types(ros_domain):
    """rcl reads `-p name:=value` as YAML: a string that looks like a number or a bool must stay a string."""
    import rclpy
    from rclpy.context import Context

    from av_pose_ros.app.launch_graphs import ResolvedNode

    values = {"latency": "0.15", "flag_text": "true", "device": "pulse", "quote": "it's", "on": True, "n": 3,
              "rate": 0.5}
    node_args = ResolvedNode(executable="x", name="typed", namespace="", param_files=[], params=values,
                             remaps={}).ros_args()
    context = Context()
    rclpy.init(args=["prog", *node_args], context=context, domain_id=ros_domain)
    try:
        node = rclpy.create_node("typed", context=context, automatically_declare_parameters_from_overrides=True)
        got = {name: node.get_parameter(name).value for name in values}
        node.destroy_node()
    finally:
        context.try_shutdown()
    assert got == values and all(type(got[k]) is type(v) for k, v in values.items())


def test_every_node_the_graphs_name_has_an_executable_and_config():
    named = {spec.executable for specs in GRAPHS.values() for spec in specs}
    for exe in sorted(named):
        if (NODES_DIR / f"{exe}.py").exists():  # nodes land one capability at a time
            assert (REPO / "config" / f"{exe}.yaml").exists(), f"config/{exe}.yaml missing"
    assert {"sim_node", "lifter_node", "handover_node", "pose_kernel_node"} <= named


def test_switches_and_unknown_arguments():
    assert "handover_node" not in [n.executable for n in resolve("sim", parse_arguments(["use_handover:=false"],
                                                                                         "sim"))]
    assert "slfm_node" not in [n.executable for n in resolve("robot", parse_arguments([], "robot"))]
    with pytest.raises(ValueError, match="unknown launch argument"):
        parse_arguments(["speed:=fast"], "sim")
    assert set(parse_arguments([], "sim")) == set(ARGUMENTS)


CHILDREN = """
import sys
from av_pose_ros.app.launch_graphs import ResolvedNode
from av_pose_ros.app.launcher import Launch
nodes = [ResolvedNode("handover_node", name, "", [], {}, {}) for name in ("h1", "h2")]
sys.exit(Launch(nodes).run())
"""


def _launcher():
    return subprocess.Popen([sys.executable, "-c", CHILDREN], env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _child_pids(launcher, count=2, timeout_s=30.0):
    pids, deadline = [], time.monotonic() + timeout_s
    while len(pids) < count and time.monotonic() < deadline:
        line = launcher.stdout.readline()
        if "started" in line:
            pids.append(int(line.split("pid ")[1].rstrip(")\n")))
    return pids


def _gone(pid, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_stops_every_child(ros_domain):
    launcher = _launcher()
    pids = _child_pids(launcher)
    assert len(pids) == 2
    time.sleep(2.0)
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=30) == 0
    assert all(_gone(p) for p in pids)


def test_one_child_dying_stops_the_others(ros_domain):
    launcher = _launcher()
    pids = _child_pids(launcher)
    time.sleep(2.0)
    subprocess.run(["kill", "-9", str(pids[0])], check=True)
    assert launcher.wait(timeout=30) == 1
    assert "exited with code" in launcher.stdout.read()
    assert _gone(pids[1])


def test_missing_executable_is_a_clear_error():
    from av_pose_ros.app.launch_graphs import ResolvedNode

    with pytest.raises(FileNotFoundError, match="no_such_node"):
        Launch([ResolvedNode("no_such_node", "x", "", [], {}, {})])


def test_parameter_docs_are_generated_from_the_code():
    from av_pose_ros.app.param_docs import render

    assert (REPO / "docs" / "parameters.md").read_text() == render(), (
        "docs/parameters.md is stale: python -m av_pose_ros.app.param_docs > docs/parameters.md")
