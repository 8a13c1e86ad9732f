"""The `main()` every node executable uses: init, spin, clean shutdown on Ctrl-C or SIGTERM."""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor


def run_node(node_factory, args: list[str] | None = None, threads: int = 1) -> int:
    """Create the node with `node_factory()`, spin it, and always tear down cleanly. Returns an exit code."""
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    code = 0
    try:
        node = node_factory()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as err:  # noqa: BLE001 - report why the node cannot run instead of a bare traceback
        logger = node.get_logger() if node is not None else rclpy.logging.get_logger("av_pose_ros")
        logger.fatal(f"{type(err).__name__}: {err}")
        code = 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code
