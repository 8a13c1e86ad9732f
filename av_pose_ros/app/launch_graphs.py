"""The one description of what runs in each setup (sim, robot, replay): nodes, parameter files, remaps, switches.

Both `launch/*.launch.py` (for `ros2 launch` on robots) and `av-pose launch` (machines without ros2 launch) build
their processes from this module, so the two cannot drift apart. Plain Python, no ROS imports.

Launch arguments (`name:=value` on either command line):
  namespace     ROS namespace for every node (default: none)
  params_file   extra parameter YAML applied after the per-node files in config/ (default: none)
  model_path    lifter weights (default: models/lifter.pt of the package; sim with a music-probe scenario:
                models/lifter_music.pt when the package has it)
  rig           rig name from config/rigs/ or a path (default: default)
  scenario      scenario name from config/scenarios/ or a path, for the sim (default: handover, the demo world)
  use_slfm      also run slfm_node (default: false)
  use_handover  run handover_node (default: true)
  use_sim_time  use /clock (default: false; true for replay)
  publish_rig_tf  robot: publish the rig file's static TF (default: true; false when the URDF has those frames)
  virtual_room  robot: a simulated room and person behind a virtual sound device instead of hardware (default: false)
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from av_pose_ros.primitives.paths import package_file

ARGUMENTS: dict[str, tuple[str, str]] = {
    "namespace": ("", "ROS namespace for every node"),
    "params_file": ("", "extra parameter YAML applied after the per-node files"),
    "model_path": ("", "lifter weights (empty: models/lifter.pt of the package)"),
    "rig": ("default", "rig name from config/rigs/ or a path"),
    "scenario": ("handover", "scenario name from config/scenarios/ or a path (sim only; handover = the demo "
                             "world: an adult walks in, offers the right hand within the camera's view, leaves)"),
    "use_slfm": ("false", "also run slfm_node"),
    "use_handover": ("true", "run handover_node"),
    "use_sim_time": ("false", "use /clock instead of the system clock"),
    "publish_rig_tf": ("true", "robot: publish the rig file's frames (camera_link, speaker_<i>, mic_<i>, ...) on "
                               "/tf_static; false when the robot's URDF already has them"),
    "virtual_room": ("false", "robot: no hardware; virtual_room_node plays the simulated room and person acoustically "
                              "between audio_io_node's speakers and mics (PulseAudio null sinks) and publishes the "
                              "simulator's keypoints instead of keypoint_node (scenario:=, rig:=)"),
}


@dataclass(frozen=True)
class NodeSpec:
    """One node process: its executable (also its default name), parameters that come from launch arguments,
    remaps, and the launch argument that switches it on (None: always on)."""

    executable: str
    argument_params: dict[str, str] = field(default_factory=dict)  # parameter name -> launch argument name
    fixed_params: dict[str, object] = field(default_factory=dict)
    remaps: dict[str, str] = field(default_factory=dict)
    enabled_by: str | None = None
    disabled_by: str | None = None     # a launch argument that, when true, switches the node off

    @property
    def config_file(self) -> str:
        return f"config/{self.executable}.yaml"


_LIFTER = NodeSpec("lifter_node", {"model_path": "model_path"})
_HANDOVER = NodeSpec("handover_node", enabled_by="use_handover")
_SLFM = NodeSpec("slfm_node", enabled_by="use_slfm")

# Switches whose nodes get an overlay parameter file when true: config/<switch>/<node>.yaml, applied after
# config/<node>.yaml (virtual_room: audio_io_node on the room's PulseAudio device, the lifter's wider pairing).
OVERLAYS = ("virtual_room",)


def virtual_room_dir() -> str:
    """The virtual room's private PulseAudio directory: one per DDS domain, so parallel graphs never share one."""
    return os.path.join(tempfile.gettempdir(), f"av_pose_room_d{os.environ.get('ROS_DOMAIN_ID', '0') or '0'}")


GRAPHS: dict[str, list[NodeSpec]] = {
    # The simulated world publishes what a rig would (audio frames, keypoints, camera info, TF, ground truth).
    "sim": [NodeSpec("sim_node", {"scenario": "scenario", "rig": "rig"}), NodeSpec("pose_kernel_node"), _LIFTER,
            _HANDOVER],
    # A real robot: device audio, camera keypoints, then the same processing chain.
    # virtual_room:=true: only the physical world is simulated (see av_pose_ros/audio/virtual_room.py).
    "robot": [NodeSpec("audio_io_node", {"rig": "rig"}, {"backend": "device"}),
              NodeSpec("keypoint_node", disabled_by="virtual_room"),
              NodeSpec("virtual_room_node", {"scenario": "scenario", "rig": "rig"}, enabled_by="virtual_room"),
              NodeSpec("rig_tf_node", {"rig": "rig"}, enabled_by="publish_rig_tf"),
              NodeSpec("pose_kernel_node"), _LIFTER, _HANDOVER, _SLFM],
    # Replaying a bag: the recorded audio frames and keypoints feed the processing stages again.
    "replay": [NodeSpec("pose_kernel_node"), _LIFTER, _HANDOVER],
}


def truthy(value: str) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_arguments(pairs: list[str], graph: str) -> dict[str, str]:
    """`name:=value` strings -> full argument dict with defaults; unknown names raise ValueError."""
    values = {name: default for name, (default, _) in ARGUMENTS.items()}
    if graph == "replay":
        values["use_sim_time"] = "true"
    for pair in pairs:
        name, sep, value = pair.partition(":=")
        if not sep or name not in ARGUMENTS:
            raise ValueError(f"unknown launch argument '{pair}'; known: " + ", ".join(f"{n}:=..." for n in ARGUMENTS))
        values[name] = value
    return values


@dataclass
class ResolvedNode:
    executable: str
    name: str
    namespace: str
    param_files: list[Path]
    params: dict[str, object]
    remaps: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)   # environment variables set for this node's process

    def ros_args(self) -> list[str]:
        """The `--ros-args ...` part of the command line (what launch_ros passes too)."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for path in self.param_files:
            args += ["--params-file", str(path)]
        for key, value in self.params.items():
            args += ["-p", f"{key}:={_param_text(value)}"]
        for src, dst in self.remaps.items():
            args += ["-r", f"{src}:={dst}"]
        return args


def _param_text(value) -> str:
    """A parameter value as `-p name:=value` text. ROS reads that text as YAML, so strings go single-quoted: "0.15"
    or "true" would otherwise arrive as a number or a bool."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


MUSIC_LIFTER = "models/lifter_music.pt"


def scenario_lifter(scenario: str) -> str:
    """Lifter weights for a sim scenario when ``model_path`` is not given: a music-probe scenario gets the lifter
    fine-tuned on music kernels (``MUSIC_LIFTER``, when the package has it), since the chirp-trained default doubles
    its error on them (models/music_frontend.md); '' (the node's default) otherwise or if the scenario cannot be
    read (the sim node reports that)."""
    from av_pose_ros.sim.scenario import ScenarioError, load_scenario

    try:
        probe = load_scenario(scenario).probe
    except (OSError, ValueError, KeyError, TypeError, ScenarioError):
        return ""
    return MUSIC_LIFTER if probe == "music" and package_file(MUSIC_LIFTER).is_file() else ""


def resolve(graph: str, arguments: dict[str, str], share: Path | None = None) -> list[ResolvedNode]:
    """The nodes of `graph` with their parameter files (under `share`, else wherever the package's config lives)
    and values from `arguments`."""
    if graph not in GRAPHS:
        raise ValueError(f"unknown graph '{graph}'; one of {', '.join(GRAPHS)}")
    nodes = []
    for spec in GRAPHS[graph]:
        if spec.enabled_by and not truthy(arguments[spec.enabled_by]):
            continue
        if spec.disabled_by and truthy(arguments[spec.disabled_by]):
            continue
        configs = [spec.config_file] + [f"config/{o}/{spec.executable}.yaml" for o in OVERLAYS if truthy(arguments[o])]
        configs = [share / c if share is not None else package_file(c) for c in configs]
        files = [c for c in configs if c.exists()]
        if arguments["params_file"]:
            files.append(Path(arguments["params_file"]))
        params: dict[str, object] = dict(spec.fixed_params)
        params.update({p: arguments[a] for p, a in spec.argument_params.items() if arguments[a]})
        if graph == "sim" and spec is _LIFTER and not arguments["model_path"]:
            if music_model := scenario_lifter(arguments["scenario"]):
                params["model_path"] = music_model
        params["use_sim_time"] = truthy(arguments["use_sim_time"])
        env: dict[str, str] = {}
        if truthy(arguments["virtual_room"]) and spec.executable in ("audio_io_node", "virtual_room_node"):
            # both ends of the virtual sound device talk to the room's private PulseAudio
            room = virtual_room_dir()
            env = {"PULSE_SERVER": f"unix:{room}/native", "PULSE_RUNTIME_PATH": room}
            if spec.executable == "virtual_room_node":
                params["pulse_dir"] = room
        nodes.append(ResolvedNode(spec.executable, spec.executable, arguments["namespace"], files, params,
                                  dict(spec.remaps), env))
    return nodes
