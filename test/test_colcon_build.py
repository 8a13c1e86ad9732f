"""The robot path for real: `colcon build` of this package in a fresh workspace, then an installed node from the
install tree.

colcon comes from the Python package registry (requirements-ros.txt) when no ROS 2 is sourced, and builds against
the environment's ROS 2 (registry wheels or the sourced installation). The workspace is a temporary directory with
`src/av_pose_ros` linked to this checkout, so what is tested is what a robot user gets from `colcon build`. The
registry wheels' CMake files are usable because `make setup` (scripts/bootstrap.py) already rewrote their include
paths to this interpreter's; nothing here repeats that.
About 30-60 s on two cores (configure, rosidl generation and C compilation dominate).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

NODES = sorted(p.stem for p in (REPO / "av_pose_ros" / "nodes").glob("*_node.py"))
PY_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _colcon() -> str:
    found = Path(sys.executable).parent / "colcon"
    if found.exists():
        return str(found)
    if shutil.which("colcon"):
        return shutil.which("colcon")
    if os.environ.get("AMENT_PREFIX_PATH"):
        pytest.skip("colcon not installed next to the sourced ROS 2 (apt-get install python3-colcon-common-extensions)")
    pytest.fail("colcon missing from the environment: `make setup` installs it from requirements-ros.txt")


def _build_env() -> dict:
    """The environment `colcon build` sees: this interpreter's environment first, its prefix as the ROS prefix."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    for var in ("CMAKE_PREFIX_PATH", "AMENT_PREFIX_PATH"):
        env[var] = os.pathsep.join(p for p in [sys.prefix, env.get(var, "")] if p)
    return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("colcon_ws")
    (ws / "src").mkdir()
    (ws / "src" / "av_pose_ros").symlink_to(REPO, target_is_directory=True)
    cmd = [_colcon(), "build", "--event-handlers", "console_direct+", "--cmake-args", "-DBUILD_TESTING=OFF"]
    proc = subprocess.run(cmd, cwd=ws, env=_build_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"colcon build failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}"
    return ws


def _sourced(ws: Path, command: str, **kwargs):
    """`command` in bash after `. install/setup.sh`, as a robot user runs things after a build."""
    script = f". '{ws / 'install' / 'setup.sh'}' && {command}"
    return subprocess.Popen(["bash", "-c", script], cwd=ws, env=_build_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def test_install_tree_has_messages_python_executables_and_share_files(workspace):
    prefix = workspace / "install" / "av_pose_ros"
    site = prefix / "lib" / PY_VERSION / "site-packages" / "av_pose_ros"
    for name in NODES + ["av-pose"]:
        exe = prefix / "lib" / "av_pose_ros" / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} missing or not executable"
    assert (site / "msg" / "_human_pose3_d.py").is_file(), "generated messages not installed"
    assert (site / "nodes" / "lifter_node.py").is_file() and (site / "sim" / "rig.py").is_file()
    assert "extend_path" in (site / "__init__.py").read_text(), "the generated empty __init__.py won"
    share = prefix / "share" / "av_pose_ros"
    for rel in ("package.xml", "launch/robot.launch.py", "launch/sim.launch.py", "config/lifter_node.yaml",
                "config/rigs/default.yaml", "config/virtual_room/audio_io_node.yaml", "models/lifter.pt"):
        assert (share / rel).is_file(), f"share/av_pose_ros/{rel} not installed"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "av_pose_ros").exists()


IMPORT_PROBE = ("import av_pose_ros.nodes.lifter_node as n, av_pose_ros.msg as g; "
                "from av_pose_ros.msg import HumanPose3D; from av_pose_ros.primitives.paths import package_file; "
                "print(n.__file__); print(g.__file__); print(package_file('models/lifter.pt'))")


def test_sourced_install_tree_takes_precedence(workspace):
    proc = _sourced(workspace, f"python3 -c \"{IMPORT_PROBE}\"")
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    lines = out.strip().splitlines()[-3:]
    install = str(workspace / "install")
    assert all(line.startswith(install) for line in lines), f"not resolved from the install tree: {lines}"


def test_installed_lifter_node_runs_from_install_tree(workspace, ros_context):
    import rclpy
    from rcl_interfaces.srv import ListParameters
    from rclpy.executors import SingleThreadedExecutor

    from conftest import spin_until

    exe = workspace / "install" / "av_pose_ros" / "lib" / "av_pose_ros" / "lifter_node"
    proc = _sourced(workspace, f"exec '{exe}' --ros-args -r __node:=installed_lifter", start_new_session=True)
    node = rclpy.create_node("colcon_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        client = node.create_client(ListParameters, "/installed_lifter/list_parameters")
        assert spin_until(executor, lambda: client.service_is_ready() or proc.poll() is not None, 90.0), \
            "installed lifter_node did not come up within 90 s"
        assert proc.poll() is None, f"installed lifter_node exited:\n{proc.communicate()[0]}"
        future = client.call_async(ListParameters.Request())
        assert spin_until(executor, future.done, 20.0)
        names = set(future.result().result.names)
        assert {"model_path", "output_frame", "torch_threads"} <= names, sorted(names)
    finally:
        executor.shutdown()
        node.destroy_node()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            out = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out = proc.communicate()[0]
    assert proc.returncode == 0, f"installed lifter_node did not stop cleanly (exit {proc.returncode}):\n{out}"
    assert "Traceback" not in out, out
    assert "cannot load lifter weights" not in out, out

