"""``Lifter``: the inference API the node uses (load weights once, then ``predict`` every frame).

    lifter = Lifter.load("models/lifter.pt")
    joints, confidence = lifter.predict(keypoints, K, world_from_camera, kernels, speakers, mics, fs)

Per frame: coarse person location (rays x kernels on a 0.1 m grid), fine-grid encodings around it, the CNN,
soft-argmax, and finally each joint is moved onto its keypoint ray when the two agree (``snap_to_rays``): the 2D
detection fixes the direction to a few pixels, so the network's job is the depth along the ray.

Two steps of inference (``Inference``, stored in the model file with the calibration fitted for them):

* **re-centring** (``recentre_passes``): the coarse cube sits on the strongest echo, 0.1 m voxels away from the
  body at best; the network is then run again on a cube centred on its own body (mean of its joints). A cube
  centred on the true torso had been worth 6-10 % on val; centring on the network's own estimate gets that and
  more. A pass that only places the next cube may stop after its first ``placing_stages`` stages (the body's
  centre needs no refined limbs).
* **mirror averaging** (``mirror_average``): the world has no handedness. The cube's y axis passes through the
  camera, so its mirror image (y -> -y, left and right joints swapped) is an equally valid scene of a mirrored
  person and rig (the network max-pools over pairs and never sees which pair is which); the last pass runs the
  network on both and averages them, mirrored back (one batch of two).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from av_pose_ros.primitives.skeleton import LEFT_RIGHT_SWAP

from .features import (
    FineGrid,
    LiftingInputError,
    check_inputs,
    closest_on_rays,
    coarse_locate,
    fine_encodings,
    keypoint_rays,
    person_frame,
    valid_keypoints,
    vision_locate,
)
from .model import LifterNet, NetConfig

MODEL_FORMAT = "av_pose_ros.lifter"
SNAP_MAX_M = 0.35         # a joint further than this from its ray keeps the network's position (bad keypoint)
SNAP_MIN_CONFIDENCE = 0.2
_SWAP = list(LEFT_RIGHT_SWAP)    # joint channels of the mirror image


@dataclass(frozen=True)
class Inference:
    """How the network is run on a frame (module docstring); a file without one gets the plain single pass."""

    recentre_passes: int = 0
    mirror_average: bool = False
    placing_stages: int = 0      # stages of the passes that only place the next cube (0: all)

    @classmethod
    def from_dict(cls, d: dict | None) -> Inference:
        d = d or {}
        return cls(recentre_passes=int(d.get("recentre_passes", 0)), mirror_average=bool(d.get("mirror_average")),
                   placing_stages=int(d.get("placing_stages", 0)))

    def as_dict(self) -> dict:
        return asdict(self)

    def overridden(self, **changes) -> Inference:
        """This recipe with the given fields changed (a None value keeps the field)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def add_inference_arguments(parser) -> None:
    """The ``Inference`` fields as options of the commands that fit a calibration for a recipe."""
    import argparse

    parser.add_argument("--recentre-passes", type=int, default=None,
                        help="network passes on a cube re-centred on the previous pass's body (default: the model's)")
    parser.add_argument("--mirror-average", action=argparse.BooleanOptionalAction, default=None,
                        help="average the last pass with its mirror image (default: the model's)")
    parser.add_argument("--placing-stages", type=int, default=None,
                        help="network stages of the passes that only place the next cube, 0 = all (default: the "
                             "model's)")


def inference_from_arguments(lifter, args) -> Inference:
    """The lifter's recipe with the command line's changes (``add_inference_arguments``)."""
    return lifter.inference.overridden(recentre_passes=args.recentre_passes, mirror_average=args.mirror_average,
                                       placing_stages=args.placing_stages)


@dataclass
class Lift:
    """One frame through the network: the cube the coarse locator placed (``coarse_grid``, what the refusal
    evidence reads), the last pass's cube, joints before (``raw``) and after ray snapping, confidences."""

    coarse_grid: FineGrid
    grid: FineGrid
    raw: np.ndarray          # (17, 3) world
    joints: np.ndarray       # (17, 3) world
    confidence: np.ndarray   # (17,) the network's own


class LifterLoadError(RuntimeError):
    """The model file is missing, unreadable, not a lifter model, or does not fit the network it describes."""


class Lifter:
    """A trained lifter network plus the non-learned steps around it."""

    def __init__(self, net: LifterNet, snap_to_rays: bool = True, threads: int | None = None, device: str = "auto",
                 info: dict | None = None, inference: Inference | None = None):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.snap_to_rays = snap_to_rays
        self.threads = threads
        self.info = info or {}
        self.inference = inference or Inference.from_dict((self.info.get("metrics") or {}).get("inference"))

    @property
    def config(self) -> NetConfig:
        return self.net.config

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Lifter:
        """Load weights written by ``av-pose train-lifter`` (``torch.load(..., weights_only=True)``).

        Raises ``LifterLoadError`` with the reason for a missing, corrupt or foreign file.
        """
        path = Path(path)
        if not path.is_file():
            raise LifterLoadError(f"lifter model {path} not found (train one with `av-pose train-lifter` or use "
                                  f"the shipped models/lifter.pt)")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
            raise LifterLoadError(f"{path} is not a readable torch file ({type(e).__name__}: {e})") from None
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise LifterLoadError(f"{path} is not a lifter model (expected format {MODEL_FORMAT!r}, got {found!r})")
        try:
            net = LifterNet(NetConfig.from_dict(payload["config"]))
            net.load_state_dict(payload["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise LifterLoadError(f"{path}: weights do not match the network they describe: {e}") from None
        return cls(net, info={k: payload.get(k) for k in ("metrics", "train", "version")}, **kwargs)

    # -- per frame --------------------------------------------------------------------------------------------
    def prepare(self, keypoints, K, world_from_camera, kernels, speakers, mics, fs, speed_of_sound=343.0):
        """Coarse location and fine-grid encodings: (grid, rays (17, n, n, n), audio (P, n, n, n)).

        A vision-only model (``config.use_audio`` false) places its cube with ``vision_locate`` and encodes no
        audio (P = 0); the kernels are still checked for shape, as the node always has them."""
        args = check_inputs(keypoints, K, world_from_camera, kernels, speakers, mics)
        grid = self._place(*args, fs, speed_of_sound)
        return (grid, *self.encode(grid, *args, fs, speed_of_sound))

    def _place(self, keypoints, K, world_from_camera, kernels, speakers, mics, fs, speed_of_sound) -> FineGrid:
        """The coarse cube of checked inputs (``check_inputs``)."""
        cfg = self.config
        if cfg.use_audio:
            coarse = coarse_locate(keypoints, K, world_from_camera, kernels, speakers, mics, float(fs),
                                   float(speed_of_sound))
        else:
            coarse = vision_locate(keypoints, K, world_from_camera)
        return FineGrid(coarse.centre, coarse.rotation, cfg.grid_size_m, cfg.grid_n)

    def encode(self, grid: FineGrid, keypoints, K, world_from_camera, kernels, speakers, mics, fs,
               speed_of_sound=343.0) -> tuple[np.ndarray, np.ndarray]:
        """(rays, audio) encodings on ``grid`` (no audio for a vision-only model)."""
        return fine_encodings(grid, keypoints, K, world_from_camera, kernels if self.config.use_audio else None,
                              speakers, mics, float(fs), float(speed_of_sound))

    @torch.no_grad()
    def run_network(self, rays: np.ndarray, audio: np.ndarray, mirror: bool = False,
                    stages: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Grid-frame joints (17, 3) and confidences (17,) of the last stage run (``stages``: that many, default
        all); ``mirror``: averaged with the network's answer on the mirror image of the cube (module docstring)."""
        if self.threads:
            torch.set_num_threads(int(self.threads))
        r = torch.from_numpy(np.ascontiguousarray(rays, np.float32))[None].to(self.device)
        a = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None].to(self.device)
        if mirror:
            r = torch.cat([r, torch.flip(r[:, _SWAP], dims=[-2])])
            a = torch.cat([a, torch.flip(a, dims=[-2])])
        local, conf = self.net.locate(self.net(r, a, stages=stages)[-1])
        local, conf = local.cpu().numpy().astype(float), conf.cpu().numpy().astype(float)
        if not mirror:
            return local[0], conf[0]
        back = local[1][_SWAP] * np.array([1.0, -1.0, 1.0])
        return 0.5 * (local[0] + back), 0.5 * (conf[0] + conf[1][_SWAP])

    def lift(self, keypoints, K, world_from_camera, kernels, speakers, mics, fs, *, speed_of_sound: float = 343.0,
             network_kernels=None) -> Lift:
        """The whole network side of a frame (arguments as ``predict``), with this model's ``Inference``.
        ``network_kernels``: what the network hears instead of ``kernels`` (ablations); the coarse locator still
        hears ``kernels``. Raises ``LiftingInputError`` for unusable inputs."""
        args = check_inputs(keypoints, K, world_from_camera, kernels, speakers, mics)
        keypoints, K, world_from_camera = args[:3]
        grid = coarse_grid = self._place(*args, fs, speed_of_sound)
        heard = (args[3] if network_kernels is None else np.asarray(network_kernels, np.float32), *args[4:], fs,
                 speed_of_sound)
        rays, audio = self.encode(grid, keypoints, K, world_from_camera, *heard)
        passes = max(int(self.inference.recentre_passes), 0)
        placing = self.inference.placing_stages or None
        for k in range(passes + 1):
            last = k == passes
            local, confidence = self.run_network(rays, audio, mirror=last and self.inference.mirror_average,
                                                 stages=None if last else placing)
            if not last:
                centre = grid.to_world(local).mean(axis=0)
                grid = FineGrid(centre, person_frame(centre - world_from_camera[:3, 3]), grid.size_m, grid.n)
                rays, audio = self.encode(grid, keypoints, K, world_from_camera, *heard)
        raw = grid.to_world(local)
        joints = snap(raw, keypoints, K, world_from_camera) if self.snap_to_rays else raw
        return Lift(coarse_grid, grid, raw, joints, confidence)

    def predict(self, keypoints, K, world_from_camera, kernels, speakers, mics, fs, *,
                speed_of_sound: float = 343.0) -> tuple[np.ndarray, np.ndarray]:
        """Metric COCO-17 joints (17, 3) and confidences (17,) in [0, 1], in the frame of ``world_from_camera``.

        ``keypoints`` (17, 3) [u, v, confidence] in ideal pixels of ``K`` (NaN/0 confidence for missing joints);
        ``world_from_camera`` (4, 4) maps optical-frame points into the world (z up, e.g. base_link);
        ``kernels`` (P, taps) pose kernels (tap k = delay k / fs); ``speakers``/``mics`` (P, 3) the positions of
        each kernel's speaker and mic in the same world frame; ``speed_of_sound`` in m/s.
        Raises ``LiftingInputError`` for unusable inputs (shapes, fewer than 3 keypoints).
        """
        out = self.lift(keypoints, K, world_from_camera, kernels, speakers, mics, fs, speed_of_sound=speed_of_sound)
        return out.joints, out.confidence

    def predict_vision(self, keypoints, K, world_from_camera) -> np.ndarray:
        """Joints (17, 3) of a vision-only model (``config.use_audio`` false) from the keypoints alone: the fallback
        for a frame without a pose kernel. ValueError for a model that needs audio."""
        if self.config.use_audio:
            raise ValueError("predict_vision needs a vision-only model (`av-pose train-lifter --no-audio`)")
        no_audio = np.zeros((1, 1), np.float32), np.zeros((1, 3)), np.zeros((1, 3))   # shapes only: never read
        return self.predict(keypoints, K, world_from_camera, *no_audio, 1.0)[0]


def snap(joints: np.ndarray, keypoints, K, world_from_camera) -> np.ndarray:
    """Move each joint onto its keypoint ray (keeping its depth along the ray) when the keypoint is confident and
    the ray passes within ``SNAP_MAX_M`` of the joint; other joints are left alone."""
    keypoints = np.asarray(keypoints, float)
    origin, dirs = keypoint_rays(keypoints, np.asarray(K, float), np.asarray(world_from_camera, float))
    ok = valid_keypoints(keypoints) & (np.nan_to_num(keypoints[:, 2]) >= SNAP_MIN_CONFIDENCE)
    out = np.array(joints, float)
    if not np.any(ok):
        return out
    on_ray = closest_on_rays(out[ok], origin, dirs[ok])
    close = np.linalg.norm(on_ray - out[ok], axis=1) <= SNAP_MAX_M
    idx = np.flatnonzero(ok)[close]
    out[idx] = on_ray[close]
    return out


__all__ = ["Inference", "Lift", "Lifter", "LifterLoadError", "LiftingInputError", "add_inference_arguments",
           "inference_from_arguments", "snap"]
