"""The package description, build files and command line are consistent with each other."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, child_env


def test_package_xml_parses_with_catkin_pkg():
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(REPO / "package.xml"))
    assert pkg.name == "av_pose_ros" and pkg.package_format == 3
    assert pkg.get_build_type() == "ament_cmake"
    deps = {d.name for d in pkg.build_depends + pkg.exec_depends + pkg.buildtool_depends}
    assert {"rclpy", "std_msgs", "geometry_msgs", "sensor_msgs", "rosidl_default_generators",
            "ament_cmake_python", "tf2_msgs"} <= deps
    assert "rosidl_interface_packages" in [g.name for g in pkg.member_of_groups]


def test_cmakelists_follows_the_mixed_ament_pattern():
    text = (REPO / "CMakeLists.txt").read_text()
    for piece in ("find_package(ament_cmake REQUIRED)", "rosidl_generate_interfaces(",
                  'DESTINATION "${PYTHON_INSTALL_DIR}', "install(DIRECTORY launch config models", "ament_package()"):
        assert piece in text
    # rosidl already installs a Python package of the project's name; a second one fails (ros2/rosidl_python#141)
    code = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert "ament_python_install_package(" not in code
    assert "msg/*.msg" in text  # every msg/ file is generated, none forgotten


def test_every_message_file_is_importable_after_setup():
    import av_pose_ros.msg as generated

    for path in sorted((REPO / "msg").glob("*.msg")):
        assert hasattr(generated, path.stem), f"{path.name} was not built into the environment"


def test_doctor_reports_everything_importable():
    out = subprocess.run([sys.executable, "-m", "av_pose_ros.app.cli", "doctor", "--json"], env=child_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"name": "rmw"' in out.stdout and "rmw_fastrtps_cpp" in out.stdout


def test_readme_starts_with_the_two_commands_and_ci_runs_make_test():
    readme = (REPO / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:40])
    assert "make demo" in first_screen and "make test" in first_screen
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, re.M)


def test_package_imports_without_sourcing_from_repo_root():
    code = "import rclpy, av_pose_ros; from av_pose_ros.msg import HumanPose3D, AudioFrame; print('ok')"
    venv_python = REPO / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    env = {k: v for k, v in child_env().items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH",
                                                              "_ROS_WHEELS_BOOTSTRAP_COMPLETE")}
    out = subprocess.run([python, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
    assert Path(REPO / "av_pose_ros" / "__init__.py").read_text().count("extend_path") >= 1
