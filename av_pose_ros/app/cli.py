"""`av-pose`: the package's command line (setup check, demo, training, evaluation, launch, bags).

Each area adds its subcommands through `register(subparsers)` in `av_pose_ros/<area>/cli.py`; heavy imports
happen inside the handlers so `av-pose --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Areas whose `cli.register(subparsers)` adds subcommands, in help order.
AREA_CLIS = ("av_pose_ros.app.doctor", "av_pose_ros.app.demo", "av_pose_ros.audio.cli", "av_pose_ros.audio.music_cli",
             "av_pose_ros.lifting.cli",
             "av_pose_ros.slfm.cli", "av_pose_ros.app.launcher",
             "av_pose_ros.bag.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="av-pose",
        description="Metric 3D human pose from one camera plus sound, and binaural head rotation / sound "
                    "direction, for ROS 2. Start with `av-pose doctor`, then `make demo`.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in AREA_CLIS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # area not present in this version of the package
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
