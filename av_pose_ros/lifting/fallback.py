"""Vision-only fallback: a person who is seen but not heard still gets a pose, marked as a guess.

When a keypoint frame has no usable pose kernel (the capture refused the window: music too quiet for the room model,
a dropped window, a sound device that stopped), nothing metric can be measured. The learned vision-only network
(``models/lifter_vision.pt``, the lifter's network and recipe without the audio branch) still gives the pose that a
person's usual size implies. lifter_node publishes it with `source` "vision_only", flagged ``no_audio``, and with
the confidence and covariance this module fits on that network's own `val` errors: RViz keeps showing the person,
and a planner sees from the confidence (and handover_node's `min_reach_confidence`) that it is not a measurement.

    python -m av_pose_ros.lifting.fallback --model models/lifter_vision.pt --num 200

fits the per-joint hit rate and the along-ray / across-ray spreads on val frames of the calibration families and
stores them in the model file (``metrics.fallback``). A model without the fit gets ``FallbackCalibration.cautious``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from av_pose_ros.primitives.skeleton import LEFT_WRIST, RIGHT_WRIST

from .calibration import DEFAULT_FAMILIES, ray_axes, store_in_model
from .features import LiftingInputError

NO_AUDIO = "no_audio"
MESSAGE = "no pose kernel for this frame: depth from the learned vision-only network (a person's usual size)"


@dataclass(kw_only=True)
class FallbackCalibration:
    """Per joint (17,): share of val joints within ``radius_m``, RMS error along the camera ray and across it."""

    within: np.ndarray
    along_std_m: np.ndarray
    across_std_m: np.ndarray
    radius_m: float = 0.1
    frames: int = 0

    @classmethod
    def cautious(cls) -> FallbackCalibration:
        """For a vision model without a fit: no confidence, a metre along the ray, 10 cm across."""
        return cls(within=np.zeros(17), along_std_m=np.full(17, 1.0), across_std_m=np.full(17, 0.1))

    @classmethod
    def from_dict(cls, d: dict) -> FallbackCalibration:
        return cls(within=np.asarray(d["within"], float), along_std_m=np.asarray(d["along_std_m"], float),
                   across_std_m=np.asarray(d["across_std_m"], float), radius_m=float(d["radius_m"]),
                   frames=int(d["frames"]))

    def as_dict(self) -> dict:
        return {"within": self.within.tolist(), "along_std_m": self.along_std_m.tolist(),
                "across_std_m": self.across_std_m.tolist(), "radius_m": self.radius_m, "frames": self.frames}

    def covariance(self, joints: np.ndarray, origin: np.ndarray) -> np.ndarray:
        """(17, 3, 3) m^2: the along-ray and across-ray spreads, rotated onto each joint's camera ray."""
        axes = ray_axes(joints, origin)
        var = np.stack([self.along_std_m, self.across_std_m, self.across_std_m], axis=1) ** 2
        return np.einsum("jab,jb,jcb->jac", axes, var, axes)


class VisionFallback:
    """The vision-only lifter and its fallback calibration: ``pose`` is what lifter_node publishes without audio."""

    def __init__(self, lifter, calibration: FallbackCalibration):
        if lifter.config.use_audio:
            raise ValueError("the fallback needs a vision-only model (trained with `av-pose train-lifter --no-audio`)")
        self.lifter = lifter
        self.calibration = calibration

    @classmethod
    def load(cls, path, **kwargs) -> VisionFallback:
        """LifterLoadError for an unreadable file, ValueError for a model that needs audio."""
        from .lifter import Lifter

        lifter = Lifter.load(path, **kwargs)
        fit = (lifter.info.get("metrics") or {}).get("fallback")
        return cls(lifter, FallbackCalibration.from_dict(fit) if fit else FallbackCalibration.cautious())

    def pose(self, keypoints, K, world_from_camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(joints (17, 3), confidence (17,), covariance (17, 3, 3)) in the frame of ``world_from_camera``.
        Raises ``LiftingInputError`` for unusable keypoints (fewer than three)."""
        joints = self.lifter.predict_vision(keypoints, K, world_from_camera)
        origin = np.asarray(world_from_camera, float)[:3, 3]
        return joints, self.calibration.within.copy(), self.calibration.covariance(joints, origin)


def fit(lifter, families, num: int, seed: int, radius_m: float = 0.1, workers: int = 1) -> FallbackCalibration:
    """Hit rate and along/across-ray RMS errors per joint of the vision-only ``lifter`` on ``num`` val samples of
    each family (frames it cannot lift are left out)."""
    from . import dataset as ds
    from .evaluate import family_path

    errs, along, across = [], [], []
    for family in families:
        data = ds.generate(family_path(family), "val", seed, num, workers=workers, progress=False, audio=False)
        for i in range(num):
            s = ds.sample_at(data, i)
            wfc = s["world_from_camera"].astype(float)
            try:
                joints = lifter.predict_vision(s["keypoints"].astype(float), s["K"].astype(float), wfc)
            except LiftingInputError:
                continue
            err = joints - s["joints"].astype(float)
            local = np.einsum("jab,ja->jb", ray_axes(joints, wfc[:3, 3]), err)    # (17, 3): along, across, across
            errs.append(np.linalg.norm(err, axis=1))
            along.append(local[:, 0])
            across.append(local[:, 1:])
    errs, along, across = np.array(errs), np.array(along), np.array(across)
    return FallbackCalibration(within=np.mean(errs < radius_m, axis=0), along_std_m=np.sqrt(np.mean(along**2, 0)),
                               across_std_m=np.sqrt(np.mean(across**2, axis=(0, 2))), radius_m=radius_m,
                               frames=len(errs))


def main(argv=None) -> int:
    from .lifter import Lifter, add_inference_arguments, inference_from_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/lifter_vision.pt", help="vision-only lifter (--no-audio)")
    parser.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES),
                        help="evaluation families whose val samples are used (default: default far close)")
    parser.add_argument("--num", type=int, default=200, help="val samples per family (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--radius-m", type=float, default=0.1, help="a joint counts as right within this (m)")
    parser.add_argument("--workers", type=int, default=1, help="simulation processes for missing val samples")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the model file")
    add_inference_arguments(parser)
    args = parser.parse_args(argv)
    lifter = Lifter.load(args.model, threads=1)
    lifter.inference = inference_from_arguments(lifter, args)
    print(f"inference: {lifter.inference}")
    cal = fit(lifter, args.families, args.num, args.seed, args.radius_m, args.workers)
    print(f"{cal.frames} val frames ({', '.join(args.families)}): joints within {args.radius_m * 100:.0f} cm "
          f"{cal.within.mean():.2f} (wrists {cal.within[[LEFT_WRIST, RIGHT_WRIST]].mean():.2f}); RMS along the ray "
          f"{1000 * cal.along_std_m.mean():.0f} mm, across {1000 * cal.across_std_m.mean():.0f} mm")
    if not args.dry_run:
        store_in_model(args.model, "inference", lifter.inference.as_dict())
        store_in_model(args.model, "fallback", cal.as_dict())
        print(f"fallback calibration and inference written into {args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
