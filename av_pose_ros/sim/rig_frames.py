"""The static frame tree a rig file defines, for TF and for a robot's URDF.

A robot whose URDF does not describe the sensor rig still needs `camera_link`, `camera_optical_frame`,
`speaker_<i>` and `mic_<i>` in TF (pose_kernel_node and the lifter look every position up there), plus the rig
file's further frames such as the manipulator's `arm_base_link`. `rig_static_frames` lists them once, so the rig TF
node publishes exactly what the simulator assumes, and `rig_urdf` writes the same tree as URDF links and fixed
joints for robots that prefer to carry it in their description (then the rig TF node is switched off).

Usage: `python -m av_pose_ros.sim.rig_frames [rig]` prints the URDF snippet of a rig (default: `default`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from av_pose_ros.primitives.geometry import LINK_FROM_OPTICAL, make_transform, rpy_from_matrix
from av_pose_ros.sim.rig import Rig, load_rig


@dataclass(frozen=True)
class FrameNames:
    """Frame names the rig is published under (the same parameters the nodes read)."""

    base: str = "base_link"
    camera: str = "camera_link"
    optical: str = "camera_optical_frame"
    speaker_prefix: str = "speaker_"
    mic_prefix: str = "mic_"


@dataclass(frozen=True, eq=False)
class StaticFrame:
    """One fixed transform: `parent_from_child` (4x4) places `child` in `parent`."""

    parent: str
    child: str
    parent_from_child: np.ndarray


def rig_static_frames(rig: Rig, names: FrameNames | None = None) -> list[StaticFrame]:
    """Every frame of the rig: camera under base, optical under camera, speakers and mics under the camera (their
    positions are given in camera_link), the rig file's further frames under base."""
    n = names or FrameNames()
    frames = [StaticFrame(n.base, n.camera, rig.base_from_camera_link),
              StaticFrame(n.camera, n.optical, LINK_FROM_OPTICAL)]
    for prefix, points in ((n.speaker_prefix, rig.speakers), (n.mic_prefix, rig.mics)):
        frames += [StaticFrame(n.camera, f"{prefix}{i}", make_transform(None, xyz)) for i, xyz in enumerate(points)]
    frames += [StaticFrame(n.base, name, pose) for name, pose in rig.frames.items()]
    children = [f.child for f in frames]
    duplicates = sorted({c for c in children if children.count(c) > 1})
    if duplicates:
        raise ValueError(f"rig {rig.name!r} defines frames {duplicates} twice")
    return frames


def _num(v: float) -> str:
    return f"{v:.6g}" if abs(v) > 1e-12 else "0"


def rig_urdf(rig: Rig, names: FrameNames | None = None) -> str:
    """URDF links and fixed joints of the rig, to paste into (or xacro:include from) a robot description."""
    lines = [f"<!-- av_pose_ros rig '{rig.name}' (python -m av_pose_ros.sim.rig_frames {rig.name}) -->"]
    for frame in rig_static_frames(rig, names):
        xyz = " ".join(_num(v) for v in frame.parent_from_child[:3, 3])
        rpy = " ".join(_num(v) for v in rpy_from_matrix(frame.parent_from_child[:3, :3]))
        lines += [f'<link name="{frame.child}"/>',
                  f'<joint name="{frame.child}_joint" type="fixed">',
                  f'  <parent link="{frame.parent}"/>', f'  <child link="{frame.child}"/>',
                  f'  <origin xyz="{xyz}" rpy="{rpy}"/>', "</joint>"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a rig's frames as URDF links and fixed joints.")
    parser.add_argument("rig", nargs="?", default="default", help="rig name (config/rigs) or YAML path")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(rig_urdf(load_rig(args.rig)))
    except (FileNotFoundError, ValueError) as err:
        print(f"rig_frames: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
