"""`av-pose calibrate-audio` (round-trip latency of a sound device) and `av-pose virtual-audio` (a PulseAudio
null sink to use as a device on a machine without sound hardware)."""

from __future__ import annotations

import argparse
import os
import sys


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace(",", " ").split())


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate-audio", help="measure a sound device's round-trip latency (play a chirp, record it back)",
        description="Open the device as audio_io_node does, play one chirp on the reference output, find it on "
                    "the reference input, and report the round trip in samples and ms (median over --repeats "
                    "openings). --write stores it as latency_samples in the node's YAML.")
    p.add_argument("--device", required=True, help="device name substring or index (see `python -m sounddevice`)")
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--speaker-channels", type=_ints, default=(0, 1, 2, 3), help="output channel per speaker")
    p.add_argument("--mic-channels", type=_ints, default=(0, 1, 2, 3), help="input channel per mic")
    p.add_argument("--reference", type=_ints, default=None, metavar="'IN OUT'",
                   help="input and output channel of the path to measure (default: first mic, first speaker)")
    p.add_argument("--reference-delay", type=int, default=0,
                   help="samples the reference path itself adds (0 for a loopback; distance/c*fs acoustically)")
    p.add_argument("--device-latency", default="high", help="PortAudio suggested latency: low, high or seconds")
    p.add_argument("--blocksize", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="stream openings to measure")
    p.add_argument("--write", metavar="YAML", help="store the median as latency_samples in this node YAML")
    p.set_defaults(func=_calibrate)

    v = subparsers.add_parser(
        "virtual-audio", help="start/stop a private PulseAudio null sink usable as the sound device 'pulse'",
        description="Starts pulseaudio with a 4-channel null sink 'avsim' (its monitor records what is played) on a "
                    "private socket and prints the PULSE_SERVER line clients need.")
    v.add_argument("action", choices=("start", "stop", "status"))
    v.add_argument("--dir", default=None, help="runtime directory (default: a fixed one under the temp dir)")
    v.set_defaults(func=_virtual)


def _calibrate(args: argparse.Namespace) -> int:
    from .calibration import measure_round_trip, write_latency
    from .duplex import DuplexConfig
    from .probe_setup import ProbeSettings

    reference = tuple(args.reference) if args.reference else (args.mic_channels[0], args.speaker_channels[0])
    config = DuplexConfig(device=args.device, speaker_channels=args.speaker_channels, mic_channels=args.mic_channels,
                          reference_channels=reference, reference_delay_samples=args.reference_delay,
                          device_latency=args.device_latency, blocksize=args.blocksize)
    result = measure_round_trip(config, ProbeSettings(fs=args.rate), repeats=args.repeats)
    print(result.summary())
    if result.median is None:
        return 1
    if args.write:
        write_latency(args.write, result.median)
        print(f"wrote latency_samples: {result.median} to {args.write}")
    return 0


def _virtual(args: argparse.Namespace) -> int:
    from .virtual_device import DEFAULT_DIR, VirtualDeviceError, VirtualSoundDevice

    device = VirtualSoundDevice(args.dir or DEFAULT_DIR)
    if args.action == "status":
        print(f"{device.server}: {'running' if device.running() else 'not running'}")
        return 0 if device.running() else 1
    if args.action == "stop":
        device.started_by_us = device.running()
        device.stop()
        print(f"stopped {device.server}")
        return 0
    try:
        device.start()
    except VirtualDeviceError as err:
        print(f"cannot start the virtual sound device:\n{err}", file=sys.stderr)
        return 1
    print(f"export PULSE_SERVER={device.server}   # then use device 'pulse' (pid {device.pid()}, "
          f"dir {device.directory}, uid {os.getuid()})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m av_pose_ros.audio.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
