"""The DDS settings av_pose_ros processes start with when the user gave none: a Fast DDS profile whose shared-memory
segment and socket buffers hold whole camera images (config/fastdds_large_data.xml says why). Plain Python: it
only edits the environment, and must run before the first DDS participant is created."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from av_pose_ros.primitives.paths import package_file

PROFILE = "config/fastdds_large_data.xml"
_USER_SETTINGS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def use_large_data_profile(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Point Fast DDS at the package's profile unless the user set a profile or another RMW; True when set."""
    if any(environ.get(name) for name in _USER_SETTINGS):
        return False
    if environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") not in ("", "rmw_fastrtps_cpp"):
        return False
    path = package_file(PROFILE)
    if not path.is_file():
        return False
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    return True
