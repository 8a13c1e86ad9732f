"""`av-pose launch sim|robot|replay [name:=value ...]`: the launch files' graphs as separate processes, for machines
without `ros2 launch`.

Reads the same description as `launch/*.launch.py` (`av_pose_ros.app.launch_graphs`), starts one process per node with
the same parameter files and remaps, prefixes their output with the node name, forwards Ctrl-C, and stops every
child when one of them dies unexpectedly.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from av_pose_ros.app.launch_graphs import ARGUMENTS, GRAPHS, ResolvedNode, parse_arguments, resolve

NODES_DIR = Path(__file__).resolve().parents[1] / "nodes"


def node_command(node: ResolvedNode) -> list[str]:
    return [sys.executable, "-m", f"av_pose_ros.nodes.{node.executable}", *node.ros_args()]


class Launch:
    """A set of node processes that live and die together."""

    def __init__(self, nodes: list[ResolvedNode], quiet: bool = False, env: dict | None = None):
        missing = [n.executable for n in nodes if not (NODES_DIR / f"{n.executable}.py").exists()]
        if missing:
            raise FileNotFoundError(f"node executables not in this version of the package: {', '.join(missing)}")
        self.nodes = nodes
        self.quiet = quiet
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            if not self.quiet:
                sys.stdout.write(f"[{name}] {line}")
                sys.stdout.flush()

    def start(self) -> None:
        for node in self.nodes:
            env = {**(os.environ if self.env is None else self.env), **node.env} if node.env else self.env
            proc = subprocess.Popen(node_command(node), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=env, start_new_session=True)
            self.procs[node.name] = proc
            threading.Thread(target=self._pump, args=(node.name, proc), daemon=True).start()
            print(f"[launch] started {node.name} (pid {proc.pid})", flush=True)

    def dead(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGINT every child (what Ctrl-C sends), then SIGKILL whatever is still running after `timeout_s`."""
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"[launch] {name} did not stop within {timeout_s:.0f} s; killing it", flush=True)
                proc.kill()
                proc.wait()

    def run(self, duration_s: float | None = None) -> int:
        """Run until Ctrl-C, `duration_s`, or a child dying; returns 0, or 1 when a child died unexpectedly."""
        interrupted = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: interrupted.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        code = 0
        try:
            self.start()
            start = time.monotonic()
            while not interrupted.is_set():
                died = self.dead()
                if died:
                    print(f"[launch] {died[0]} exited with code {died[1]}; stopping the others", flush=True)
                    code = 1
                    break
                if duration_s is not None and time.monotonic() - start >= duration_s:
                    break
                interrupted.wait(0.2)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code


def cmd_launch(args) -> int:
    try:
        arguments = parse_arguments(args.arguments, args.graph)
        nodes = resolve(args.graph, arguments)
        if args.print:
            for node in nodes:
                print(" ".join(node_command(node)))
            return 0
        launch = Launch(nodes, quiet=args.quiet, env=dict(os.environ))
    except (ValueError, FileNotFoundError) as err:
        print(f"av-pose launch: {err}", file=sys.stderr)
        return 2
    return launch.run(args.duration)


def register(subparsers) -> None:
    arguments = "\n".join(f"  {name}:=VALUE  {help_} (default: {default or 'none'})"
                          for name, (default, help_) in ARGUMENTS.items())
    p = subparsers.add_parser(
        "launch", help="run a graph (sim, robot, replay) as separate node processes, like ros2 launch",
        description=__doc__ + "\nGraphs: " + ", ".join(f"{g} ({', '.join(s.executable for s in GRAPHS[g])})"
                                                       for g in GRAPHS) + "\n\nArguments:\n" + arguments,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("graph", choices=sorted(GRAPHS), help="which graph to run")
    p.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments (see below)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run)")
    p.add_argument("--print", action="store_true", help="print the node command lines and exit")
    p.add_argument("--quiet", action="store_true", help="do not echo the nodes' output")
    p.set_defaults(func=cmd_launch)
