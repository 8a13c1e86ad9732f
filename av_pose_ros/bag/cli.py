"""`av-pose bag record|play|info` (rosbag2 without `ros2 bag`) and `av-pose reprocess` (re-run the pose kernel,
lifter and handover stages on a recorded bag, offline and as fast as the CPU allows).

rclpy and rosbags are imported inside the handlers so `av-pose --help` stays fast.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else f"/{topic}"


def _error(command: str, text: str) -> int:
    print(f"av-pose {command}: {text}", file=sys.stderr)
    return 2


def _status_printer(prefix: str):
    """A status line: rewritten in place on a terminal, every 5 s in a log."""
    last = [0.0]

    def show(line: str) -> None:
        if sys.stdout.isatty():
            print(f"\r[{prefix}] {line}   ", end="", flush=True)
        elif time.monotonic() - last[0] >= 5.0:
            last[0] = time.monotonic()
            print(f"[{prefix}] {line}", flush=True)
    return show


class _Stop:
    """SIGINT/SIGTERM set an event instead of raising, so the bag is always closed properly."""

    def __init__(self):
        self.event = threading.Event()

    def __enter__(self) -> threading.Event:
        self._previous = {s: signal.signal(s, lambda *_: self.event.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        return self.event

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def cmd_record(args) -> int:
    if not args.topics and not args.all:
        return _error("bag record", "name the topics to record, or pass --all")
    if args.topics and args.all:
        return _error("bag record", "give topics or --all, not both")
    out = Path(args.output)
    if out.exists():
        return _error("bag record", f"{out} already exists; choose a new -o folder")
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from av_pose_ros.bag.recorder import BagRecorder

    topics = [_absolute(t) for t in args.topics] if args.topics else None
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("av_pose_bag_recorder")
    try:
        recorder = BagRecorder(node, out, topics, storage=args.storage)
    except (ValueError, OSError) as err:
        node.destroy_node()
        rclpy.try_shutdown()
        return _error("bag record", str(err))
    status = _status_printer("record")
    what = "every topic" if topics is None else ", ".join(topics)
    print(f"[record] recording {what} into {out} ({args.storage}); Ctrl-C stops", flush=True)
    start = time.monotonic()
    with _Stop() as stop:
        while not stop.is_set() and (args.duration is None or time.monotonic() - start < args.duration):
            rclpy.spin_once(node, timeout_sec=0.1)
            counts = recorder.counts
            status(f"{time.monotonic() - start:6.1f} s  {sum(counts.values())} messages on {len(counts)} topics")
    recorder.close()
    node.destroy_node()
    rclpy.try_shutdown()
    if sys.stdout.isatty():
        print()
    print(f"[record] wrote {out}: {sum(recorder.counts.values())} messages", flush=True)
    for topic, count in sorted(recorder.counts.items()):
        print(f"  {topic}  {count}")
    missing = sorted(set(topics or []) - set(recorder.counts))
    if missing:
        print(f"[record] never saw a publisher on: {', '.join(missing)}")
    return 0


def _open_bag(command: str, path: str, warn: bool = True):
    """The opened bag (its damage notes printed as warnings when `warn`), or None after printing why not."""
    from av_pose_ros.bag.reader import BagError, BagReader

    try:
        bag = BagReader(path)
    except BagError as err:
        print(f"av-pose {command}: {err}", file=sys.stderr)
        return None
    if warn:
        for note in bag.notes:
            print(f"[{command.split()[-1]}] warning: {note}", file=sys.stderr, flush=True)
    return bag


def cmd_info(args) -> int:
    from av_pose_ros.bag.reader import info_text

    bag = _open_bag("bag info", args.bag, warn=False)  # info_text lists the notes
    if bag is None:
        return 2
    with bag:
        print(info_text(bag))
    return 0


def cmd_play(args) -> int:
    bag = _open_bag("bag play", args.bag)
    if bag is None:
        return 2
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from av_pose_ros.bag.player import BagPlayer

    topics = [_absolute(t) for t in args.topics] if args.topics else None
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("av_pose_bag_player")
    code = 0
    try:
        player = BagPlayer(node, bag, topics, rate=args.rate, loop=args.loop, clock=args.clock,
                           start_offset_s=args.start_offset, status=_status_printer("play"))
        for warning in player.warnings:
            print(f"[play] warning: {warning}", file=sys.stderr, flush=True)
        print(f"[play] {bag.path}: {len(player.publishers)} topics, "
              f"{max(bag.end_ns - bag.start_ns - int(args.start_offset * 1e9), 0) * 1e-9:.1f} s at rate {args.rate:g}"
              f"{', publishing /clock' if args.clock else ''}; Ctrl-C stops", flush=True)
        with _Stop() as stop:
            stop.wait(args.delay)  # let subscribers match the new publishers before the first message
            result = player.play(stop)
    except ValueError as err:
        return _error("bag play", str(err))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        bag.close()
    if sys.stdout.isatty():
        print()
    print(f"[play] published {result.total} messages" + (f" over {result.loops} loops" if args.loop else ""),
          flush=True)
    for topic, count in sorted(result.counts.items()):
        print(f"  {topic}  {count}")
    if result.error:
        print(f"[play] error: {result.error}", file=sys.stderr, flush=True)
        code = 1
    return code


def cmd_reprocess(args) -> int:
    from av_pose_ros.bag.reprocess import ReprocessError, reprocess

    bag = _open_bag("reprocess", args.bag)
    if bag is None:
        return 2
    try:
        with bag:
            summary = reprocess(bag, Path(args.out), stages=args.stages.split(","), model_path=args.model,
                                params=args.params, storage=args.storage, progress=not args.no_progress)
    except ReprocessError as err:
        return _error("reprocess", str(err))
    print(summary.text())
    return 1 if summary.error else 0


def register(subparsers) -> None:
    bag = subparsers.add_parser("bag", help="record, play and inspect rosbag2 files (no ros2 bag needed)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = bag.add_subparsers(dest="bag_command", metavar="{record,play,info}", required=True)
    rec = sub.add_parser("record", help="record topics into a new bag (raw, with message definitions)")
    rec.add_argument("topics", nargs="*", help="topics to record (or --all)")
    rec.add_argument("-o", "--output", required=True, help="bag folder to create")
    rec.add_argument("--all", action="store_true", help="record every topic that has a publisher")
    rec.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage format (default mcap)")
    rec.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    rec.set_defaults(func=cmd_record)
    play = sub.add_parser("play", help="publish a bag's messages with their original timing")
    play.add_argument("bag", help="bag folder, or a .mcap/.db3 file")
    play.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1)")
    play.add_argument("--loop", action="store_true", help="start again at the end")
    play.add_argument("--clock", action="store_true", help="publish /clock from the bag's time (for use_sim_time)")
    play.add_argument("--topics", nargs="+", default=None, help="play only these topics")
    play.add_argument("--start-offset", type=float, default=0.0, help="skip this many seconds of the bag")
    play.add_argument("--delay", type=float, default=1.0,
                      help="seconds between creating the publishers and the first message (default 1)")
    play.set_defaults(func=cmd_play)
    info = sub.add_parser("info", help="topics, types, counts, QoS and duration of a bag")
    info.add_argument("bag", help="bag folder, or a .mcap/.db3 file")
    info.set_defaults(func=cmd_info)

    rep = subparsers.add_parser(
        "reprocess", help="re-run the pose kernel, lifter and handover offline on a recorded bag",
        description="Reads audio/frames, human/keypoints_2d, camera/camera_info and TF from BAG, re-runs the "
                    "chosen stages with the nodes' own code as fast as the CPU allows, and writes OUT with the "
                    "inputs plus fresh outputs (audio/pose_kernel, human/pose_3d, human/markers, handover/target, "
                    "handover/target_info). Try a new model on yesterday's recordings with --model.")
    rep.add_argument("bag", help="recorded bag (folder or .mcap/.db3)")
    rep.add_argument("--out", required=True, help="bag folder to create")
    rep.add_argument("--model", default=None, help="lifter weights (default: the lifter_node parameter model_path)")
    rep.add_argument("--params", nargs="+", default=[], metavar="FILE|node.name:=value",
                     help="parameter YAML files (ROS format) and/or overrides such as lifter_node.sync_slop_s:=0.05")
    rep.add_argument("--stages", default="kernel,lifter,handover",
                     help="stages to re-run, comma separated (default kernel,lifter,handover); without 'kernel' "
                          "the recorded audio/pose_kernel feeds the lifter")
    rep.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage of OUT (default mcap)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")
    rep.set_defaults(func=cmd_reprocess)
