"""Public SLfM estimators: load a shipped model file, check inputs, return an angle in radians.

>>> rot = RotationEstimator.load("models/slfm_rotation.pt")
>>> yaw = rot.estimate(img_a, img_b, fov_deg=60.0)        # + = the head turned left from a to b
>>> az = AzimuthEstimator.load("models/slfm_azimuth.pt").estimate(binaural, 16000)  # 0 ahead, + left, front half
"""

from __future__ import annotations

import math
import os
import warnings
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import signal as sps

from av_pose_ros.primitives.model_files import build, load_model_file

from .constants import CAMERA_FOV_DEG, SAMPLE_RATE
from .errors import SlfmInputError, SlfmModelError
from .models import AzimuthNet, RotationNet, binaural_features, swap_features

MIN_AUDIO_SECONDS = 0.25
MAX_AUDIO_SECONDS = 30.0
MIN_IMAGE_SIDE = 32
SILENCE_RMS = 1e-5
# The rotation model's answer comes from the camera geometry (a sweep over candidate yaws); its learned parts (the
# features, the per-position weights) do not depend on the sweep, so the same weights run a wider one: a 90-deg
# camera, +-90 deg of relative yaw, the whole feature width as displacement range (chosen on dev 3D-room pairs,
# models/slfm.md).
WIDE_SWEEP = {"fov_deg": 90.0, "yaw_range_deg": 90.0, "max_dx": 31, "max_dy": 1}
SWEEP_KEYS = ("fov_deg", "yaw_range_deg", "yaw_step_deg", "max_dx", "max_dy")


def _load(path, kind: str, model_cls):
    """The network of a ``kind`` model file and the file's metadata (``primitives.model_files`` convention)."""
    hint = (f"train one with `av-pose train-slfm` or use the shipped models/{kind}.pt (see models/slfm.md)")
    found = load_model_file(path, kind, error=SlfmModelError, hint=hint)
    return build(found, model_cls, error=SlfmModelError), found.metadata


def _default_device(device):
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class RotationEstimator:
    """Relative head yaw between two views of the head camera."""

    kind = "slfm_rotation"

    def __init__(self, model: RotationNet, output_sign: float = 1.0, device="cpu", path: str | None = None):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.output_sign = float(output_sign)
        self.path = path
        self.width, self.height = int(model.config["width"]), int(model.config["height"])
        self.fov_deg = float(model.config.get("fov_deg", CAMERA_FOV_DEG))

    @classmethod
    def load(cls, path, device=None, sweep: dict | None = None) -> RotationEstimator:
        """``sweep``: geometry of the yaw sweep to run the learned weights with instead of the file's (keys
        fov_deg, yaw_range_deg, yaw_step_deg, max_dx, max_dy), e.g. `WIDE_SWEEP` for a wide camera and +-90 deg."""
        model, metadata = _load(path, cls.kind, RotationNet)
        if sweep:
            unknown = set(sweep) - set(SWEEP_KEYS)
            if unknown:
                raise SlfmInputError(f"sweep keys must be among {SWEEP_KEYS}; got {sorted(unknown)}")
            wide = RotationNet({**model.config, **sweep})
            wide.load_state_dict(model.state_dict())
            model = wide
        return cls(model, float(metadata.get("output_sign", 1.0)), _default_device(device), str(path))

    # ----------------------------------------------------------------------------------------------- inputs
    def _prepare(self, img: np.ndarray, fov_deg: float, name: str) -> np.ndarray:
        """Any-size RGB/grey image -> (H, W) float grey at the model's size and field of view."""
        if not isinstance(img, np.ndarray):
            raise SlfmInputError(f"{name} must be a numpy array, got {type(img).__name__}")
        if img.ndim == 3 and img.shape[2] in (3, 4):
            rgb = img[:, :, :3]
        elif img.ndim == 2:
            rgb = img[:, :, None]
        else:
            raise SlfmInputError(f"{name} must have shape (H, W), (H, W, 3) or (H, W, 4); got {img.shape}")
        h, w = rgb.shape[:2]
        if h < MIN_IMAGE_SIDE or w < MIN_IMAGE_SIDE:
            raise SlfmInputError(f"{name} is too small ({w}x{h}); need at least {MIN_IMAGE_SIDE} px per side")
        if rgb.dtype == np.uint8:
            x = rgb.astype(np.float32) / 255.0
        elif np.issubdtype(rgb.dtype, np.floating):
            x = rgb.astype(np.float32)
            if not np.all(np.isfinite(x)):
                raise SlfmInputError(f"{name} contains NaN or infinite values")
            if x.min() < -1e-3 or x.max() > 1.0 + 1e-3:
                raise SlfmInputError(f"{name}: float images must be in [0, 1]")
        else:
            raise SlfmInputError(f"{name} must be uint8 (0-255) or float (0-1); got dtype {rgb.dtype}")
        grey = x[..., 0] if x.shape[2] == 1 else x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
        # crop (wider field of view) or pad (narrower) to the model's horizontal field of view
        ratio = math.tan(math.radians(self.fov_deg) / 2) / math.tan(math.radians(fov_deg) / 2)
        target_w = w * ratio  # width of the model's field of view in this image's pixels
        if ratio < 1.0:
            cw = max(int(round(target_w)), 8)
            x0 = (w - cw) // 2
            grey = grey[:, x0:x0 + cw]
        elif ratio > 1.0:
            pw = int(round((target_w - w) / 2))
            grey = cv2.copyMakeBorder(grey, 0, 0, pw, pw, cv2.BORDER_REPLICATE)
        scale = self.width / grey.shape[1]
        new_h = max(int(round(grey.shape[0] * scale)), 1)
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (self.width, new_h), interpolation=interp)
        if new_h > self.height:  # crop or pad vertically around the centre
            y0 = (new_h - self.height) // 2
            grey = grey[y0:y0 + self.height]
        elif new_h < self.height:
            top = (self.height - new_h) // 2
            grey = cv2.copyMakeBorder(grey, top, self.height - new_h - top, 0, 0, cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(grey, dtype=np.float32)

    def estimate(self, img_a: np.ndarray, img_b: np.ndarray, fov_deg: float = CAMERA_FOV_DEG) -> float:
        """Turn of the head from view a to view b (rad, + left = counter-clockwise seen from above, REP-103)."""
        return float(self.estimate_batch([img_a], [img_b], fov_deg)[0])

    def estimate_batch(self, imgs_a, imgs_b, fov_deg: float = CAMERA_FOV_DEG) -> np.ndarray:
        return self._both_orders(imgs_a, imgs_b, fov_deg)[0]

    def estimate_with_confidence(self, img_a, img_b, fov_deg: float = CAMERA_FOV_DEG,
                                 symmetry_scale_deg: float = 3.0) -> tuple[float, float]:
        """(yaw rad, confidence in [0, 1]): the confidence falls with how far the network's answer for b -> a is
        from the negative of its answer for a -> b (exp(-disagreement / scale)); the yaw itself is the
        antisymmetric part, so it never shows that disagreement."""
        yaw, raw_sum = self._both_orders([img_a], [img_b], fov_deg)
        return float(yaw[0]), float(np.exp(-abs(math.degrees(raw_sum[0])) / symmetry_scale_deg))

    @torch.no_grad()
    def _both_orders(self, imgs_a, imgs_b, fov_deg):
        if not (isinstance(fov_deg, (int, float)) and math.isfinite(fov_deg) and 20.0 <= fov_deg <= 150.0):
            raise SlfmInputError(f"fov_deg must be a number in [20, 150] degrees, got {fov_deg!r}")
        if len(imgs_a) != len(imgs_b):
            raise SlfmInputError("need as many first views as second views")
        ga, gb = [], []
        for a, b in zip(imgs_a, imgs_b):
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape[:2] != b.shape[:2]:
                raise SlfmInputError(f"the two views differ in size: {a.shape[:2]} vs {b.shape[:2]}")
            ga.append(self._prepare(a, fov_deg, "img_a"))
            gb.append(self._prepare(b, fov_deg, "img_b"))
        ta = torch.from_numpy(np.stack(ga)).unsqueeze(1).to(self.device)
        tb = torch.from_numpy(np.stack(gb)).unsqueeze(1).to(self.device)
        fa, fb = self.model.features(ta), self.model.features(tb)
        both = self.model.from_features(torch.cat([fa, fb]), torch.cat([fb, fa]))
        n = ta.shape[0]
        r = 0.5 * (both[:n] - both[n:])  # exactly antisymmetric in the order of the views
        return self.output_sign * r.cpu().numpy(), (both[:n] + both[n:]).cpu().numpy()


class AzimuthEstimator:
    """Direction of a sound source from a binaural recording (front-folded azimuth)."""

    kind = "slfm_azimuth"

    def __init__(self, model: AzimuthNet, device="cpu", path: str | None = None, calibration=None):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.path = path
        self.fs = int(model.config.get("sample_rate", SAMPLE_RATE))
        self.calibration = calibration  # slfm.head_calibration.HeadCalibration of this head, or None (Woodworth)

    @classmethod
    def load(cls, path, device=None, calibration="auto") -> AzimuthEstimator:
        """``calibration``: a ``HeadCalibration`` (or the path of its JSON file) fitted for the head in use;
        "auto": ``slfm_head_calibration.json`` beside the model file when it was fitted on this model's delays
        (the shipped pair); None: the spherical-head (Woodworth) curve."""
        from .head_calibration import HeadCalibration

        model, _ = _load(path, cls.kind, AzimuthNet)
        if isinstance(calibration, str) and calibration == "auto":
            beside = Path(path).with_name("slfm_head_calibration.json")
            calibration = None
            if beside.exists():
                try:
                    found = HeadCalibration.load(beside)
                except ValueError as err:  # the model still works through the spherical-head curve
                    warnings.warn(f"{err}; reading {path} through the spherical-head curve", stacklevel=2)
                else:
                    calibration = found if found.azimuth_model and found.fits_model(path) else None
        elif calibration is not None and not hasattr(calibration, "lateral"):
            calibration = HeadCalibration.load(calibration)
        return cls(model, _default_device(device), str(path), calibration)

    def _prepare(self, binaural, fs) -> np.ndarray:
        if isinstance(binaural, torch.Tensor):
            binaural = binaural.detach().cpu().numpy()
        if not isinstance(binaural, np.ndarray):
            raise SlfmInputError(f"binaural audio must be a numpy array, got {type(binaural).__name__}")
        if binaural.ndim != 2 or binaural.shape[0] != 2:
            raise SlfmInputError(f"binaural audio must have shape (2, n) (row 0 left ear); got {binaural.shape}")
        if not (np.issubdtype(binaural.dtype, np.floating) or np.issubdtype(binaural.dtype, np.integer)):
            raise SlfmInputError(f"binaural audio must be float (or integer PCM); got dtype {binaural.dtype}")
        try:
            fs_f = float(fs)
        except (TypeError, ValueError):
            raise SlfmInputError(f"sample rate must be a number, got {fs!r}") from None
        if not math.isfinite(fs_f) or fs_f <= 0 or abs(fs_f - round(fs_f)) > 1e-6:
            raise SlfmInputError(f"sample rate must be a positive whole number of Hz, got {fs!r}")
        fs_i = int(round(fs_f))
        if not 8000 <= fs_i <= 192000:
            raise SlfmInputError(f"sample rate {fs_i} Hz is outside the supported 8-192 kHz")
        x = binaural.astype(np.float64)
        if np.issubdtype(binaural.dtype, np.integer):
            x = x / float(np.iinfo(binaural.dtype).max)
        if not np.all(np.isfinite(x)):
            raise SlfmInputError("binaural audio contains NaN or infinite values")
        n = x.shape[1]
        if n < MIN_AUDIO_SECONDS * fs_i:
            raise SlfmInputError(f"audio too short: {n / fs_i:.3f} s, need at least {MIN_AUDIO_SECONDS} s")
        if n > MAX_AUDIO_SECONDS * fs_i:
            raise SlfmInputError(f"audio too long: {n / fs_i:.1f} s, pass at most {MAX_AUDIO_SECONDS} s")
        if fs_i != self.fs:
            frac = Fraction(self.fs, fs_i).limit_denominator(1000)
            x = sps.resample_poly(x, frac.numerator, frac.denominator, axis=1)
        rms = np.sqrt(np.mean(x**2, axis=1))
        if np.any(rms < SILENCE_RMS):
            side = "left" if rms[0] < SILENCE_RMS else "right"
            raise SlfmInputError(f"the {side} ear channel is silent (rms {rms.min():.2e}); nothing to localise")
        return (x / (np.max(np.abs(x)) + 1e-12) * 0.5).astype(np.float32)

    def estimate(self, binaural: np.ndarray, fs: int = SAMPLE_RATE) -> float:
        """Source azimuth in the head frame (rad): 0 straight ahead, + to the left, folded to [-pi/2, pi/2]."""
        return float(self.estimate_batch([binaural], fs)[0])

    def estimate_batch(self, clips, fs: int = SAMPLE_RATE) -> np.ndarray:
        if self.calibration is not None:
            return self.calibration.lateral(self.delay_batch(clips, fs))
        return self._per_clip(clips, fs, lambda m, f: m.forward_features(f))

    def delay_batch(self, clips, fs: int = SAMPLE_RATE) -> np.ndarray:
        """Interaural delay (s, + = left ear first) the model reads from each clip, before any head curve."""
        return self._per_clip(clips, fs, lambda m, f: m.delay(f)[0])

    def estimate_with_confidence(self, clip, fs: int = SAMPLE_RATE) -> tuple[float, float]:
        """(azimuth rad, confidence in [0, 1]): the confidence is how much of the model's delay distribution lies
        within two lag steps (about +-38 us, 4 deg ahead) of its peak; on held-out dev clips the half with the
        highest confidence was 1.1 deg off on average and the lowest fifth 8 deg."""
        if self.calibration is None:
            peak = self._per_clip([clip], fs, _peak_mass, antisymmetric=False)[0]
            return float(self.estimate_batch([clip], fs)[0]), float(peak)
        delay, peak = self._per_clip([clip], fs, _delay_and_peak_mass, antisymmetric=(True, False))[0]
        return float(self.calibration.lateral(delay)), float(peak)

    @torch.no_grad()
    def _per_clip(self, clips, fs, readout, antisymmetric=True) -> np.ndarray:
        """``readout(model, features of the clip and its ear-swapped mirror)`` -> (2,) or (2, k) per clip: their
        antisymmetric part (exactly odd in the ears), or where ``antisymmetric`` is False their mean."""
        xs = [self._prepare(c, fs) for c in clips]
        odd = np.asarray(antisymmetric, dtype=bool)
        out = []
        m = self.model
        for x in xs:  # clips may differ in length
            feats = binaural_features(torch.from_numpy(x).unsqueeze(0).to(self.device), m.n_fft, m.hop, m.max_bin)
            phi = readout(m, torch.cat([feats, swap_features(feats)])).cpu().numpy()
            out.append(np.where(odd, 0.5 * (phi[0] - phi[1]), 0.5 * (phi[0] + phi[1])))
        return np.asarray(out, dtype=float)


def _peak_mass(model: AzimuthNet, feats: torch.Tensor, half_width: int = 2, score=None) -> torch.Tensor:
    """(B,) probability of the delay within ``half_width`` lag steps of the distribution's peak."""
    p = model.lag_log_probs(model.lag_scores(feats)[0] if score is None else score).exp()
    j = p.argmax(1, keepdim=True)
    near = (torch.arange(p.shape[1], device=p.device)[None, :] - j).abs() <= half_width
    return (p * near).sum(1)


def _delay_and_peak_mass(model: AzimuthNet, feats: torch.Tensor) -> torch.Tensor:
    """(B, 2): the delay and the peak mass from one pass."""
    score = model.lag_scores(feats)[0]
    return torch.stack([model.delay_from_scores(score), _peak_mass(model, feats, score=score)], 1)


def model_path(name: str) -> str:
    """Path of a shipped model file (``models/<name>`` in the source tree or the installed share directory)."""
    here = Path(__file__).resolve().parents[2] / "models" / name
    if here.exists():
        return str(here)
    share = os.environ.get("AV_POSE_MODELS")
    if share:
        return str(Path(share) / name)
    return str(here)
