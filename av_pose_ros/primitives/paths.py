"""Where the package's data (config/, models/, launch/) lives: the source tree, or the installed share directory
(`pip install` puts it under <prefix>/share/av_pose_ros, `colcon build` under the ament share directory)."""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def share_dirs() -> list[Path]:
    dirs = [SOURCE_ROOT, Path(sys.prefix) / "share" / "av_pose_ros"]
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            dirs.append(Path(get_package_share_directory("av_pose_ros")))
        except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH (nothing sourced)
            pass
    except ImportError:
        pass
    return dirs


def package_file(relative: str | Path) -> Path:
    """An absolute path as is; a relative one resolved against the first share directory that has it (the source
    tree's path when none does, so error messages name a sensible place)."""
    path = Path(relative).expanduser()
    if path.is_absolute():
        return path
    for base in share_dirs():
        if (base / path).exists():
            return base / path
    return SOURCE_ROOT / path
