"""ROS 2 node executables: thin glue around the core (parameters, message conversion, publishing).

Every node is its own process on a robot computer shared with other nodes, so the BLAS thread pool of each is
limited to one thread before numpy loads (override with the environment variable): with one thread per core per
process, OpenBLAS workers spin against each other and the simulator's windows arrived 234 ms after acquisition
instead of 100 ms (28 of 200 windows skipped) on a loaded 2-core machine. Fast DDS gets a profile that carries
whole camera images (`ros.dds`), unless the user configured DDS.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from av_pose_ros.ros.dds import use_large_data_profile  # noqa: E402 - after the BLAS setting

use_large_data_profile()
