"""Scenario files (``config/scenarios/*.yaml``): distributions of rooms, people, rigs, audio and camera errors.

A ``Scenario`` is the validated file; ``Scenario.sample(rng)`` draws a concrete ``Scene`` that the simulator
renders and every evaluation tool iterates over. Schema (DESIGN section 5; keys marked * are optional, with the
defaults shown)::

    room:   {size_m: {x: [3.5, 6.0], y: [3.5, 6.0], z: [2.4, 3.0]}, absorption: [0.2, 0.6], max_order: 10,
             robot_wall_gap_m*: 0.4, body_wall_paths*: true, body_shadowing*: true}
    person: {height_m: [1.0, 2.0], distance_m: [1.0, 4.0], azimuth_deg: [-30, 30], poses: [standing, ...],
             yaw_offset_deg*: [-90, 90], pose_jitter_deg*: 5.0, wall_margin_m*: 0.6, girth*: [0.85, 1.25],
             shoulder_width*: [0.92, 1.08], clothing_absorption*: [0.1, 0.6], clothing_corner_hz*: [2000, 8000],
             surface_roughness_mm*: [0.5, 4.0], joint_angle_poses*: 0.0, pose_drift_deg*: 3.0, sway_m*: 0.01}
    rig:    default        # name in config/rigs/, a YAML path, or an inline mapping (speakers, mics, pairs, camera)
    audio:  {probe: chirp, snr_db: [20, 40], temperature_c: [18, 26], fs_hz*: 48000, window_s*: 0.1,
             probe_duration_s*: 0.005, band_hz*: [1000, 20000], music_file*: null, music_source*: synthetic,
             gain_mismatch_db*: 0.5,
             clock_offset_samples*: [-1.0, 1.0], body_reflectance*: [0.5, 0.8], noise*: {white: 1.0},
             impulse_rate_hz*: 0.0, thermometer_error_c*: 0.0, position_error_m*: 0.0,
             camera_rotation_error_deg*: 0.0, camera_position_error_m*: 0.0}
    camera: {keypoint_noise_px: 3.0, miss_rate: 0.05, ...}   # vision.simulated.DetectionNoise fields

Every key and the physics behind it: docs/scenario_schema.md.
A range is ``[low, high]`` (a single number means fixed). Distances that do not fit the drawn room are shortened
to fit; a room in which even the shortest distance does not fit is redrawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from av_pose_ros.sim.body import GENERATED_POSES, MOTION_NAMES, POSE_NAMES
from av_pose_ros.sim.rig import Rig, find_config, load_rig
from av_pose_ros.sim.room import Room

PROBES = ("chirp", "sweep", "music")
MUSIC_SOURCES = ("synthetic", "library")    # library: a track of the dataset's split (audio/music_library.py)


class ScenarioError(ValueError):
    """A scenario file that does not follow the schema; the message names the file and the key."""


@dataclass(frozen=True)
class Person:
    stature_m: float
    pose: str
    position_xy: tuple[float, float]    # base_link, body origin (floor under the mid-hip)
    yaw: float                          # base_link, radians; facing the camera plus the drawn offset
    time_s: float                       # where in its motion (walking, offering) the capture starts
    pose_jitter_rad: float
    jitter_seed: int
    # body shape and surface (defaults: the wave-1 body, a flat reflector of average build)
    girth: float = 1.0                  # radius multiplier of trunk and limbs
    shoulder_width: float = 1.0         # shoulder-width multiplier
    clothing_absorption: float = 0.0    # high-frequency share of the reflection clothing absorbs
    clothing_corner_hz: float = 4000.0
    roughness_m: float = 0.0            # rms fold height
    drift_rad: float = 0.0              # amplitude of the slow pose drift between windows
    sway_m: float = 0.0                 # amplitude of the slow sway of the whole body


@dataclass(frozen=True)
class RoomPhysics:
    """Which body-room interactions the renderer includes (wave-1 renders had neither)."""

    body_wall_paths: bool = False       # speaker -> wall -> body -> mic and speaker -> body -> wall -> mic
    body_shadowing: bool = False        # the body blocks / diffracts room paths that cross it


@dataclass(frozen=True)
class Audio:
    probe: str
    fs: int
    window_s: float
    probe_duration_s: float
    band_hz: tuple[float, float]
    music_file: str | None
    snr_db: float
    temperature_c: float
    mic_gain_db: tuple[float, ...]      # one per mic
    clock_offset_samples: float
    body_reflectance: float
    noise_mix: tuple[float, float, float] = (1.0, 0.0, 0.0)   # power shares of white, pink (HVAC), babble
    impulse_rate_hz: float = 0.0        # Poisson rate of clicks and knocks
    noise_seed: int = 0                 # babble talkers and HVAC spectrum of this scene
    music_source: str = "synthetic"     # "library": the dataset replaces music_file with a track of its split
    music_offset_s: float = 0.0         # where in the music track the scene's clock starts


@dataclass(frozen=True, eq=False)
class SensorTruth:
    """What the robot believes vs the truth the world is rendered with: ``Scene.rig`` and ``Audio.temperature_c``
    are the nominal values the pipeline is given; these are the errors of the real ones."""

    temperature_error_c: float = 0.0                # true air temperature - thermometer reading
    speaker_offsets_m: np.ndarray | None = None     # (S, 3) true - nominal, camera_link
    mic_offsets_m: np.ndarray | None = None         # (M, 3)
    camera_rotation: np.ndarray | None = None       # 3x3 true camera_link orientation error (base_link frame)
    camera_offset_m: np.ndarray | None = None       # (3,) true - nominal camera_link position, base_link


@dataclass(frozen=True, eq=False)
class Scene:
    """One concrete draw: everything the simulator needs to render captures."""

    room: Room
    base_in_room: np.ndarray            # (3,) base_link origin in the room's corner frame (no rotation)
    rig: Rig
    person: Person
    audio: Audio
    camera: Mapping[str, Any] = field(default_factory=dict)
    physics: RoomPhysics = field(default_factory=RoomPhysics)
    truth: SensorTruth = field(default_factory=SensorTruth)


def _range(section: Mapping, key: str, where: str, default=None, lo=-np.inf, hi=np.inf) -> tuple[float, float]:
    value = section.get(key, default)
    if value is None:
        raise ScenarioError(f"{where}.{key} is required")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value, value]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ScenarioError(f"{where}.{key} must be a number or [low, high], got {value!r}")
    a, b = float(value[0]), float(value[1])
    if a > b:
        raise ScenarioError(f"{where}.{key}: low {a} > high {b}")
    if a < lo or b > hi:
        raise ScenarioError(f"{where}.{key} = {value} outside the allowed [{lo}, {hi}]")
    return a, b


def _flag(section: Mapping, key: str, where: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ScenarioError(f"{where}.{key} must be true or false, got {value!r}")
    return value


NOISE_KINDS = ("white", "pink", "babble")


def _noise_mix(value) -> dict[str, tuple[float, float]]:
    """``audio.noise``: a kind name, a list of kinds (equal shares) or {kind: share or [low, high]}."""
    if isinstance(value, str):
        value = {value: 1.0}
    elif isinstance(value, list):
        value = {k: 1.0 for k in value} if all(isinstance(k, str) for k in value) else value
    if not isinstance(value, Mapping) or not value or set(value) - set(NOISE_KINDS):
        raise ScenarioError(f"audio.noise must name kinds from {list(NOISE_KINDS)} (a name, a list, or "
                            f"{{kind: share}}), got {value!r}")
    mix = {k: _range(value, k, "audio.noise", lo=0.0) for k in value}
    if sum(hi for _, hi in mix.values()) <= 0:
        raise ScenarioError("audio.noise: the shares cannot all be zero")
    return mix


def _section(data: Mapping, key: str, allowed: set[str]) -> Mapping:
    section = data.get(key)
    if not isinstance(section, Mapping):
        raise ScenarioError(f"'{key}' section missing or not a mapping")
    unknown = set(section) - allowed
    if unknown:
        raise ScenarioError(f"{key}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    return section


class Scenario:
    """A validated scenario: ranges to draw from. Build with ``load_scenario`` or ``Scenario.from_dict``."""

    def __init__(self, data: Mapping, name: str = "inline", base_dir: Path | None = None):
        if not isinstance(data, Mapping):
            raise ScenarioError("a scenario must be a mapping with room, person, rig, audio, camera sections")
        unknown = set(data) - {"room", "person", "rig", "audio", "camera", "description"}
        if unknown:
            raise ScenarioError(f"unknown top-level keys {sorted(unknown)}")
        self.name = name
        room = _section(data, "room", {"size_m", "absorption", "max_order", "robot_wall_gap_m", "body_wall_paths",
                                       "body_shadowing"})
        size = room.get("size_m")
        if not isinstance(size, Mapping) or set(size) != {"x", "y", "z"}:
            raise ScenarioError(f"room.size_m must have x, y and z ranges, got {size!r}")
        self.room_size = [_range(size, k, "room.size_m", lo=1.0, hi=50.0) for k in "xyz"]
        self.absorption = _range(room, "absorption", "room", lo=0.01, hi=1.0)
        self.max_order = room.get("max_order", 10)
        if not isinstance(self.max_order, int) or not 0 <= self.max_order <= 40:
            raise ScenarioError(f"room.max_order must be an integer in [0, 40], got {self.max_order!r}")
        self.wall_gap = _range(room, "robot_wall_gap_m", "room", 0.4, lo=0.05)[0]
        self.physics = RoomPhysics(body_wall_paths=_flag(room, "body_wall_paths", "room", True),
                                   body_shadowing=_flag(room, "body_shadowing", "room", True))

        person = _section(data, "person", {"height_m", "distance_m", "azimuth_deg", "poses", "yaw_offset_deg",
                                           "pose_jitter_deg", "wall_margin_m", "girth", "shoulder_width",
                                           "clothing_absorption", "clothing_corner_hz", "surface_roughness_mm",
                                           "joint_angle_poses", "pose_drift_deg", "sway_m"})
        self.height = _range(person, "height_m", "person", lo=0.5, hi=2.5)
        self.distance = _range(person, "distance_m", "person", lo=0.3, hi=20.0)
        self.azimuth = np.radians(_range(person, "azimuth_deg", "person", lo=-90, hi=90))
        self.yaw_offset = np.radians(_range(person, "yaw_offset_deg", "person", [-90.0, 90.0], lo=-180, hi=180))
        self.pose_jitter = np.radians(_range(person, "pose_jitter_deg", "person", 5.0, lo=0, hi=45)[0])
        self.wall_margin = _range(person, "wall_margin_m", "person", 0.6, lo=0.0)[0]
        self.girth = _range(person, "girth", "person", [0.85, 1.25], lo=0.5, hi=2.0)
        self.shoulder_width = _range(person, "shoulder_width", "person", [0.92, 1.08], lo=0.6, hi=1.5)
        self.clothing_absorption = _range(person, "clothing_absorption", "person", [0.1, 0.6], lo=0.0, hi=1.0)
        self.clothing_corner = _range(person, "clothing_corner_hz", "person", [2000.0, 8000.0], lo=100.0, hi=1e5)
        self.roughness = _range(person, "surface_roughness_mm", "person", [0.5, 4.0], lo=0.0, hi=50.0)
        self.joint_angle_poses = _range(person, "joint_angle_poses", "person", 0.0, lo=0.0, hi=1.0)[0]
        self.pose_drift = np.radians(_range(person, "pose_drift_deg", "person", 3.0, lo=0.0, hi=30.0)[0])
        self.sway = _range(person, "sway_m", "person", 0.01, lo=0.0, hi=0.5)[0]
        poses = person.get("poses", list(POSE_NAMES))
        known = POSE_NAMES + MOTION_NAMES + GENERATED_POSES
        if not isinstance(poses, list) or not poses or any(p not in known for p in poses):
            raise ScenarioError(f"person.poses must be a non-empty list from {list(known)}, got {poses!r}")
        self.poses = list(poses)

        if "rig" not in data:
            raise ScenarioError("'rig' is required (a name from config/rigs/ or an inline mapping)")
        try:
            self.rig = load_rig(data["rig"])
        except (ValueError, FileNotFoundError) as e:
            raise ScenarioError(f"rig: {e}") from None

        audio = _section(data, "audio", {"probe", "snr_db", "temperature_c", "fs_hz", "window_s", "probe_duration_s",
                                         "band_hz", "music_file", "music_source", "gain_mismatch_db",
                                         "clock_offset_samples",
                                         "body_reflectance", "noise", "impulse_rate_hz", "thermometer_error_c",
                                         "position_error_m", "camera_rotation_error_deg",
                                         "camera_position_error_m"})
        self.probe = audio.get("probe", "chirp")
        if self.probe not in PROBES:
            raise ScenarioError(f"audio.probe must be one of {list(PROBES)}, got {self.probe!r}")
        self.snr = _range(audio, "snr_db", "audio", lo=-20, hi=120)
        self.temperature = _range(audio, "temperature_c", "audio", lo=-40, hi=60)
        self.fs = audio.get("fs_hz", 48000)
        if not isinstance(self.fs, int) or not 8000 <= self.fs <= 384000:
            raise ScenarioError(f"audio.fs_hz must be an integer sample rate, got {self.fs!r}")
        self.window_s = _range(audio, "window_s", "audio", 0.1, lo=0.01, hi=2.0)[0]
        self.probe_duration = _range(audio, "probe_duration_s", "audio", 0.005, lo=0.0005, hi=1.0)[0]
        self.band = _range(audio, "band_hz", "audio", [1000.0, 20000.0], lo=1.0, hi=self.fs / 2)
        self.music_file = audio.get("music_file")
        if self.music_file is not None:
            path = Path(self.music_file)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            if not path.is_file():
                raise ScenarioError(f"audio.music_file {self.music_file!r} not found")
            self.music_file = str(path)
        self.music_source = audio.get("music_source", "synthetic")
        if self.music_source not in MUSIC_SOURCES:
            raise ScenarioError(f"audio.music_source must be one of {list(MUSIC_SOURCES)}, got {self.music_source!r}")
        self.gain_mismatch = _range(audio, "gain_mismatch_db", "audio", 0.5, lo=0.0, hi=20.0)[0]
        self.clock_offset = _range(audio, "clock_offset_samples", "audio", [-1.0, 1.0], lo=-1000, hi=1000)
        self.reflectance = _range(audio, "body_reflectance", "audio", [0.5, 0.8], lo=0.0, hi=1.0)
        self.noise = _noise_mix(audio.get("noise", {"white": 1.0}))
        self.impulse_rate = _range(audio, "impulse_rate_hz", "audio", 0.0, lo=0.0, hi=100.0)
        self.thermometer_error = _range(audio, "thermometer_error_c", "audio", 0.0, lo=0.0, hi=20.0)[0]
        self.position_error = _range(audio, "position_error_m", "audio", 0.0, lo=0.0, hi=0.2)[0]
        self.camera_rotation_error = np.radians(_range(audio, "camera_rotation_error_deg", "audio", 0.0, lo=0.0,
                                                       hi=10.0)[0])
        self.camera_position_error = _range(audio, "camera_position_error_m", "audio", 0.0, lo=0.0, hi=0.2)[0]

        camera = data.get("camera", {})
        if not isinstance(camera, Mapping):
            raise ScenarioError("'camera' must be a mapping")
        from av_pose_ros.vision.simulated import DetectionNoise  # the vision side owns these keys
        unknown = set(camera) - set(DetectionNoise.__dataclass_fields__)
        if unknown:
            raise ScenarioError(f"camera: unknown keys {sorted(unknown)}")
        try:
            DetectionNoise.from_scenario(camera)
        except (TypeError, ValueError) as e:
            raise ScenarioError(f"camera: {e}") from None
        self.camera = dict(camera)

    @classmethod
    def from_dict(cls, data: Mapping, name: str = "inline") -> Scenario:
        return cls(data, name)

    # -- sampling ---------------------------------------------------------------------------------------------
    def sample_room(self, rng: np.random.Generator) -> tuple[Room, np.ndarray]:
        """A room and where base_link stands in it (facing +x, ``robot_wall_gap_m`` from the wall behind)."""
        size = tuple(float(rng.uniform(*r)) for r in self.room_size)
        room = Room(size, float(rng.uniform(*self.absorption)), self.max_order)
        base = np.array([self.wall_gap, size[1] * rng.uniform(0.4, 0.6), 0.0])
        return room, base

    def _fit_distance(self, room: Room, base: np.ndarray, azimuth: float) -> float | None:
        """Largest distance along ``azimuth`` from the camera that keeps the person ``wall_margin`` off the walls."""
        cam = self.rig.base_from_camera_link[:2, 3] + base[:2]
        direction = np.array([np.cos(azimuth), np.sin(azimuth)])
        limits = []
        for axis in range(2):
            lo, hi = self.wall_margin, room.size_m[axis] - self.wall_margin
            if abs(direction[axis]) > 1e-9:
                limits.append(((hi if direction[axis] > 0 else lo) - cam[axis]) / direction[axis])
        d_max = min(min(limits), self.distance[1])
        return d_max if d_max >= self.distance[0] else None

    def sample(self, rng: np.random.Generator, room: tuple[Room, np.ndarray] | None = None, max_tries: int = 50
               ) -> Scene:
        """Draw a scene; pass ``room`` (from ``sample_room``) to keep one room for many people."""
        for _ in range(max_tries):
            room_, base = room if room is not None else self.sample_room(rng)
            azimuth = float(rng.uniform(*self.azimuth))
            d_max = self._fit_distance(room_, base, azimuth)
            if d_max is not None:
                break
        else:
            raise ScenarioError(f"{self.name}: no drawn room fits a person at {self.distance[0]} m "
                                f"(wall margin {self.wall_margin} m); enlarge room.size_m or shorten distance_m")
        distance = float(rng.uniform(self.distance[0], d_max))
        cam_xy = self.rig.base_from_camera_link[:2, 3]
        position = cam_xy + distance * np.array([np.cos(azimuth), np.sin(azimuth)])
        facing = float(np.arctan2(*(cam_xy - position)[::-1]))
        stature, pose = float(rng.uniform(*self.height)), str(rng.choice(self.poses))
        yaw_offset, time_s = float(rng.uniform(*self.yaw_offset)), float(rng.uniform(0, 8.0))
        jitter_seed = int(rng.integers(2 ** 31))
        n_mics = len(self.rig.mics)
        mic_gain = tuple(rng.normal(0.0, self.gain_mismatch, n_mics).tolist())
        clock, snr = float(rng.uniform(*self.clock_offset)), float(rng.uniform(*self.snr))
        temperature, reflectance = float(rng.uniform(*self.temperature)), float(rng.uniform(*self.reflectance))
        # effects added in generator version 3 draw after the wave-1 values
        if pose not in MOTION_NAMES and rng.random() < self.joint_angle_poses:
            pose = GENERATED_POSES[0]
        if pose in MOTION_NAMES:
            yaw_offset = 0.0                # scripted motions face where their script says
        person = Person(stature_m=stature, pose=pose, position_xy=(float(position[0]), float(position[1])),
                        yaw=facing + yaw_offset, time_s=time_s, pose_jitter_rad=self.pose_jitter,
                        jitter_seed=jitter_seed, girth=float(rng.uniform(*self.girth)),
                        shoulder_width=float(rng.uniform(*self.shoulder_width)),
                        clothing_absorption=float(rng.uniform(*self.clothing_absorption)),
                        clothing_corner_hz=float(np.exp(rng.uniform(*np.log(self.clothing_corner)))),
                        roughness_m=float(rng.uniform(*self.roughness)) * 1e-3, drift_rad=self.pose_drift,
                        sway_m=self.sway)
        shares = np.array([rng.uniform(*self.noise[k]) if k in self.noise else 0.0 for k in NOISE_KINDS])
        audio = Audio(probe=self.probe, fs=self.fs, window_s=self.window_s, probe_duration_s=self.probe_duration,
                      band_hz=self.band, music_file=self.music_file, snr_db=snr, temperature_c=temperature,
                      mic_gain_db=mic_gain, clock_offset_samples=clock, body_reflectance=reflectance,
                      noise_mix=tuple((shares / max(shares.sum(), 1e-12)).tolist()),
                      impulse_rate_hz=float(rng.uniform(*self.impulse_rate)), noise_seed=int(rng.integers(2 ** 31)),
                      music_source=self.music_source)
        return Scene(room=room_, base_in_room=base, rig=self.rig, person=person, audio=audio, camera=self.camera,
                     physics=self.physics, truth=self._sensor_truth(rng))

    def _sensor_truth(self, rng: np.random.Generator) -> SensorTruth:
        """Calibration errors: uniform magnitudes up to the configured bounds, in random directions."""
        def offsets(n, bound):
            d = rng.normal(size=(n, 3))
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            return d * rng.uniform(0.0, bound, (n, 1))

        axis = offsets(1, 1.0)[0]
        angle = rng.uniform(0.0, self.camera_rotation_error)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]) / max(
            np.linalg.norm(axis), 1e-12)
        rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k          # Rodrigues
        return SensorTruth(temperature_error_c=float(rng.uniform(-1, 1) * self.thermometer_error),
                           speaker_offsets_m=offsets(len(self.rig.speakers), self.position_error),
                           mic_offsets_m=offsets(len(self.rig.mics), self.position_error),
                           camera_rotation=rotation, camera_offset_m=offsets(1, self.camera_position_error)[0])


def load_scenario(name_or_path: str = "default") -> Scenario:
    """Scenario by name (``config/scenarios/<name>.yaml``) or by path; errors name the file and the key."""
    path = find_config("scenarios", name_or_path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML: {e}") from None
    try:
        return Scenario(data, name=path.stem, base_dir=path.parent)
    except ScenarioError as e:
        raise ScenarioError(f"{path}: {e}") from None
