"""pip install for av_pose_ros (the robot path is `colcon build` with CMakeLists.txt; both install the same code).

Console scripts: `av-pose` and one executable per node module `av_pose_ros/nodes/<name>_node.py`, the same names
`ros2 run av_pose_ros <name>_node` uses.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
NODES = sorted(p.stem for p in (ROOT / "av_pose_ros" / "nodes").glob("*_node.py"))


def share_files(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries that mirror `folder` under share/av_pose_ros, as the CMake install does."""
    entries: dict[str, list[str]] = {}
    for path in sorted((ROOT / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(ROOT)
            entries.setdefault(f"share/av_pose_ros/{rel.parent}", []).append(str(rel))
    return list(entries.items())


setup(
    name="av_pose_ros",
    version="0.1.0",
    description="Metric 3D human pose from one camera plus sound, and binaural head rotation for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["av_pose_ros", "av_pose_ros.*"]),
    data_files=[("share/ament_index/resource_index/packages", []), ("share/av_pose_ros", ["package.xml"])]
    + share_files("launch") + share_files("config") + share_files("models"),
    entry_points={
        "console_scripts": ["av-pose = av_pose_ros.app.cli:main"]
        + [f"{name} = av_pose_ros.nodes.{name}:main" for name in NODES],
    },
)
