"""The package layout stays readable: folders by kind at the top level, and the core never imports rclpy."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, child_env

PACKAGE = REPO / "av_pose_ros"
ROS_FREE = ("primitives", "acoustics", "audio", "vision", "sim", "lifting", "slfm", "handover", "pipeline")


def test_top_level_holds_folders_not_loose_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"group these modules into a folder by kind (primitives, an area, ros, app): {loose}"


def test_core_folders_import_without_rclpy():
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts)
        for area in ROS_FREE for p in (PACKAGE / area).glob("*.py") if p.name != "__init__.py"
    )
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_parser')}))")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", f"a core module pulled in ROS: {out.stdout}"
