"""Sensor rigs from ``config/rigs/<name>.yaml``: speakers, microphones, (speaker, mic) pairs and the camera.

Speaker and mic positions are given in ``camera_link``; the camera mount places ``camera_link`` in ``base_link``.
Optional ``frames`` name further robot frames under ``base_link`` (e.g. the manipulator's ``arm_base_link``, which
handover_node centres its reach envelope on); ``manipulator_frame`` says which of them the simulated person offers
a hand to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from av_pose_ros.primitives.geometry import LINK_FROM_OPTICAL, apply_transform, make_transform, matrix_from_rpy
from av_pose_ros.primitives.paths import share_dirs


def config_dirs() -> list[Path]:
    """Where config files are looked for: $AV_POSE_ROS_CONFIG, the source tree, then the installed share dir."""
    dirs = []
    if os.environ.get("AV_POSE_ROS_CONFIG"):
        dirs.append(Path(os.environ["AV_POSE_ROS_CONFIG"]))
    dirs += [d / "config" for d in share_dirs()]
    return dirs


def find_config(kind: str, name: str) -> Path:
    """Path of ``<config>/<kind>/<name>.yaml`` (or ``name`` itself when it is an existing file)."""
    if Path(name).suffix in (".yaml", ".yml") and Path(name).is_file():
        return Path(name)
    for d in config_dirs():
        candidate = d / kind / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for d in config_dirs() if (d / kind).is_dir() for p in (d / kind).glob("*.yaml")})
    raise FileNotFoundError(f"no {kind[:-1]} named {name!r}; known: {known}")


@dataclass(frozen=True, eq=False)
class CameraIntrinsics:
    """Pinhole intrinsics with distortion, as ``sensor_msgs/CameraInfo`` carries them."""

    width: int
    height: int
    K: np.ndarray                 # 3x3
    distortion_model: str
    D: np.ndarray

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float, distortion_model="plumb_bob", distortion=None):
        f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
        k = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
        return cls(int(width), int(height), k, distortion_model, np.asarray(distortion or [0.0] * 5, float))

    def camera_model(self):
        """The vision package's ``CameraModel`` (imported lazily: it needs OpenCV)."""
        from av_pose_ros.vision.camera import CameraModel
        return CameraModel(width=self.width, height=self.height, K=self.K, D=self.D,
                           distortion_model=self.distortion_model)


@dataclass(frozen=True, eq=False)
class Rig:
    """Speakers (S, 3) and mics (M, 3) in camera_link, pairs (P, 2) of (speaker, mic) indices, the camera."""

    name: str
    speakers: np.ndarray
    mics: np.ndarray
    pairs: np.ndarray
    base_from_camera_link: np.ndarray   # 4x4
    intrinsics: CameraIntrinsics
    frames: Mapping[str, np.ndarray] = field(default_factory=dict)   # name -> base_from_frame (4x4), extra frames
    manipulator_frame: str | None = None                              # one of ``frames``: where hands are offered

    def manipulator_position(self) -> np.ndarray:
        """(3,) origin of the manipulator frame in base_link; the camera's position when the rig names none."""
        if self.manipulator_frame is None:
            return self.base_from_camera_link[:3, 3].copy()
        return np.asarray(self.frames[self.manipulator_frame])[:3, 3].copy()

    @property
    def base_from_optical(self) -> np.ndarray:
        """``world_from_camera`` in the conventions' sense, with base_link as the world."""
        return self.base_from_camera_link @ LINK_FROM_OPTICAL

    def speakers_base(self) -> np.ndarray:
        return apply_transform(self.base_from_camera_link, self.speakers)

    def mics_base(self) -> np.ndarray:
        return apply_transform(self.base_from_camera_link, self.mics)

    def pair_positions(self, frame: str = "base_link") -> tuple[np.ndarray, np.ndarray]:
        """(speakers (P, 3), mics (P, 3)) of every pair, in base_link or camera_link."""
        s, m = (self.speakers_base(), self.mics_base()) if frame == "base_link" else (self.speakers, self.mics)
        return s[self.pairs[:, 0]], m[self.pairs[:, 1]]

    def direct_path_m(self) -> np.ndarray:
        s, m = self.pair_positions("camera_link")
        return np.linalg.norm(s - m, axis=1)


def _points(value, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"rig {what} must be a non-empty list of [x, y, z] metres in camera_link, got {value!r}")
    return arr


def _pairs(spec, n_speakers: int, n_mics: int) -> np.ndarray:
    if spec in (None, "colocated"):
        if n_speakers != n_mics:
            raise ValueError(f"'colocated' pairs need as many mics as speakers ({n_speakers} vs {n_mics})")
        return np.stack([np.arange(n_speakers)] * 2, axis=1)
    if spec == "all":
        return np.array([(s, m) for s in range(n_speakers) for m in range(n_mics)])
    pairs = np.asarray(spec, dtype=int)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.min() < 0 or np.any(pairs.max(0) >= (n_speakers, n_mics)):
        raise ValueError(f"rig pairs must be 'colocated', 'all' or [[speaker, mic], ...] indices, got {spec!r}")
    return pairs


def rig_from_dict(data: Mapping, name: str = "inline") -> Rig:
    """Build a rig from the YAML mapping (schema in ``config/rigs/default.yaml``); unknown keys are errors."""
    if not isinstance(data, Mapping):
        raise ValueError(f"rig must be a mapping, got {type(data).__name__}")
    unknown = set(data) - {"name", "speakers", "mics", "pairs", "camera", "frames", "manipulator_frame"}
    if unknown:
        raise ValueError(f"unknown rig keys {sorted(unknown)}")
    for key in ("speakers", "mics"):
        if key not in data:
            raise ValueError(f"rig needs '{key}'")
    speakers, mics = _points(data["speakers"], "speakers"), _points(data["mics"], "mics")
    cam = dict(data.get("camera") or {})
    unknown = set(cam) - {"mount", "width", "height", "hfov_deg", "distortion_model", "distortion"}
    if unknown:
        raise ValueError(f"unknown rig camera keys {sorted(unknown)}")
    mount = dict(cam.get("mount") or {})
    xyz = np.asarray(mount.get("xyz", [0.0, 0.0, 1.2]), float)
    rpy = np.asarray(mount.get("rpy", [0.0, 0.0, 0.0]), float)
    if xyz.shape != (3,) or rpy.shape != (3,):
        raise ValueError("rig camera mount needs xyz: [x, y, z] and rpy: [roll, pitch, yaw]")
    hfov = float(cam.get("hfov_deg", 65.0))
    if not 10.0 < hfov < 170.0:
        raise ValueError(f"rig camera hfov_deg {hfov} outside (10, 170)")
    intr = CameraIntrinsics.from_hfov(int(cam.get("width", 640)), int(cam.get("height", 480)), hfov,
                                      str(cam.get("distortion_model", "plumb_bob")), cam.get("distortion"))
    frames = _frames(data.get("frames"))
    manipulator = data.get("manipulator_frame")
    if manipulator is not None and manipulator not in frames:
        raise ValueError(f"rig manipulator_frame {manipulator!r} is not one of its frames {sorted(frames)}")
    return Rig(name=str(data.get("name", name)), speakers=speakers, mics=mics,
               pairs=_pairs(data.get("pairs"), len(speakers), len(mics)),
               base_from_camera_link=make_transform(matrix_from_rpy(*rpy), xyz), intrinsics=intr,
               frames=frames, manipulator_frame=None if manipulator is None else str(manipulator))


def _frames(spec) -> dict[str, np.ndarray]:
    """Extra frames ``{name: {xyz: [...], rpy: [...]}}`` under base_link -> ``{name: base_from_frame}``."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"rig frames must be a mapping of name -> {{xyz, rpy}}, got {spec!r}")
    frames = {}
    for frame, pose in spec.items():
        pose = dict(pose or {})
        if set(pose) - {"xyz", "rpy"}:
            raise ValueError(f"rig frame {frame!r}: unknown keys {sorted(set(pose) - {'xyz', 'rpy'})}")
        xyz = np.asarray(pose.get("xyz", [0.0, 0.0, 0.0]), float)
        rpy = np.asarray(pose.get("rpy", [0.0, 0.0, 0.0]), float)
        if xyz.shape != (3,) or rpy.shape != (3,) or not np.all(np.isfinite(np.concatenate([xyz, rpy]))):
            raise ValueError(f"rig frame {frame!r} needs xyz: [x, y, z] and rpy: [roll, pitch, yaw]")
        frames[str(frame)] = make_transform(matrix_from_rpy(*rpy), xyz)
    return frames


def load_rig(name_or_spec="default") -> Rig:
    """Rig by name (``config/rigs/<name>.yaml``), by YAML path, or from an inline mapping."""
    if isinstance(name_or_spec, Mapping):
        return rig_from_dict(name_or_spec)
    path = find_config("rigs", str(name_or_spec))
    with open(path) as f:
        data = yaml.safe_load(f)
    try:
        return rig_from_dict(data, name=path.stem)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
