"""`av-pose doctor`: what this machine offers the package, and what is missing, in one screen."""

from __future__ import annotations

import importlib
import json
import platform
from dataclasses import asdict, dataclass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _version(module_name: str) -> Check:
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure is a finding, not a crash
        return Check(module_name, False, f"not importable: {err}")
    return Check(module_name, True, str(getattr(module, "__version__", "installed")))


def _rclpy() -> list[Check]:
    try:
        import rclpy
        from rclpy.utilities import get_rmw_implementation_identifier
    except Exception as err:  # noqa: BLE001
        return [Check("rclpy", False, f"not importable: {err} (run `make setup`, or source ROS 2)")]
    try:
        from importlib.metadata import version

        rclpy_version = version("ros-rclpy")
    except Exception:  # noqa: BLE001 - a sourced ROS has no wheel metadata
        rclpy_version = "from the sourced ROS 2"
    checks = [Check("rclpy", True, f"{rclpy_version} at {rclpy.__file__.rsplit('/', 2)[0]}")]
    try:
        checks.append(Check("rmw", True, get_rmw_implementation_identifier()))
    except Exception as err:  # noqa: BLE001
        checks.append(Check("rmw", False, str(err)))
    return checks


def _messages() -> list[Check]:
    checks = []
    for module, names in (("av_pose_ros.msg", "AudioFrame, PoseKernel, Keypoints2D, HumanPose3D, HandoverTarget, "
                                              "SoundDirection, HeadRotation"), ("tf2_msgs.msg", "TFMessage")):
        try:
            mod = importlib.import_module(module)
            for name in names.split(", "):
                getattr(mod, name)
            checks.append(Check(module, True, names))
        except Exception as err:  # noqa: BLE001
            checks.append(Check(module, False, f"{err} (run `make setup` to build the messages)"))
    return checks


def _sound_devices() -> Check:
    try:
        import sounddevice as sd

        devices = sd.query_devices()
    except Exception as err:  # noqa: BLE001 - PortAudio missing is reported, not raised
        return Check("sound devices", False, f"{err} (Debian: apt-get install libportaudio2)", required=False)
    described = [f"{i}:{d['name']} (in {d['max_input_channels']}, out {d['max_output_channels']})"
                 for i, d in enumerate(devices)]
    return Check("sound devices", bool(described), "; ".join(described) or "none found", required=False)


def _gpu() -> Check:
    try:
        import torch
    except Exception as err:  # noqa: BLE001
        return Check("gpu", False, f"torch not importable: {err}", required=False)
    if torch.cuda.is_available():
        return Check("gpu", True, f"CUDA: {torch.cuda.get_device_name(0)}", required=False)
    return Check("gpu", False, "none (models run on the CPU)", required=False)


def run_checks() -> list[Check]:
    checks = [Check("python", True, f"{platform.python_version()} ({platform.machine()})")]
    checks += _rclpy()
    checks += _messages()
    for module in ("numpy", "torch", "mediapipe", "open3d", "pyroomacoustics", "cv2", "rosbags"):
        checks.append(_version(module))
    checks.append(_sound_devices())
    checks.append(_gpu())
    return checks


def cmd_doctor(args) -> int:
    checks = run_checks()
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = "ok " if c.ok else ("-- " if not c.required else "FAIL")
            print(f"{mark:4} {c.name:<{width}}  {c.detail}")
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed and not args.json:
        print(f"\nmissing: {', '.join(failed)}. Run `make setup` in the repository (or source ROS 2 first).")
    return 1 if failed else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check Python, ROS 2, messages, models' libraries, sound and GPU",
                              description="Report versions of Python, rclpy, the RMW, torch, mediapipe, open3d and "
                                          "pyroomacoustics; whether the messages import; sound devices; GPU.")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=cmd_doctor)
