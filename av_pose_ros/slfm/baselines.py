"""Classical baselines evaluated beside the SLfM models.

* :func:`feature_yaw`: SIFT (or ORB) keypoints, Lowe's ratio test, a RANSAC homography; for a camera that only
  rotates ``H = K R K^-1``, so ``R = K^-1 H K`` (projected onto the nearest rotation) gives the yaw.
* :func:`gcc_phat_azimuth`: GCC-PHAT time delay between the ears (frequency-domain interpolation), searched within
  the largest delay the head allows and turned into an azimuth with the same spherical-head (Woodworth) model and
  head radius as the simulator.
"""

from __future__ import annotations

import cv2
import numpy as np

from .binaural import azimuth_from_itd, woodworth_itd
from .constants import CAMERA_FOV_DEG, HEAD_RADIUS, SAMPLE_RATE, SPEED_OF_SOUND
from .images import intrinsics, yaw_from_optical_rotation

_DETECTORS = {}


def _detector(method: str):
    if method not in _DETECTORS:
        if method == "sift":
            _DETECTORS[method] = (cv2.SIFT_create(nfeatures=2000), cv2.NORM_L2)
        elif method == "orb":
            _DETECTORS[method] = (cv2.ORB_create(nfeatures=2000), cv2.NORM_HAMMING)
        else:
            raise ValueError(f"unknown feature method {method!r} (sift or orb)")
    return _DETECTORS[method]


def _grey(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    return img


def feature_yaw(img_a: np.ndarray, img_b: np.ndarray, fov_deg: float = CAMERA_FOV_DEG, method: str = "sift",
                ratio: float = 0.8, min_inliers: int = 8) -> tuple[float, bool]:
    """Turn (rad, + left) from view a to view b by feature matching. Returns (yaw, ok); ``ok`` is False when too few
    matches or inliers were found (yaw is then 0)."""
    det, norm = _detector(method)
    ga, gb = _grey(img_a), _grey(img_b)
    ka, da = det.detectAndCompute(ga, None)
    kb, db = det.detectAndCompute(gb, None)
    if da is None or db is None or len(ka) < min_inliers or len(kb) < min_inliers:
        return 0.0, False
    matcher = cv2.BFMatcher(norm)
    knn = matcher.knnMatch(da, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < min_inliers:
        return 0.0, False
    pa = np.float32([ka[m.queryIdx].pt for m in good])
    pb = np.float32([kb[m.trainIdx].pt for m in good])
    h, mask = cv2.findHomography(pb, pa, cv2.RANSAC, 2.0)  # maps view-b pixels to view-a pixels
    if h is None or mask is None or int(mask.sum()) < min_inliers:
        return 0.0, False
    k = intrinsics(ga.shape[1], ga.shape[0], fov_deg)
    m = np.linalg.inv(k) @ h @ k  # proportional to R_a^T R_b (rotation of b in a's optical frame)
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        r = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return yaw_from_optical_rotation(r), True


def gcc_phat_delay(binaural: np.ndarray, fs: int = SAMPLE_RATE, max_delay: float | None = None,
                   interp: int = 16) -> float:
    """Delay (s) of the right ear behind the left ear by GCC-PHAT (positive: the left ear hears it first)."""
    left, right = np.asarray(binaural[0], float), np.asarray(binaural[1], float)
    n = left.size + right.size
    nfft = 1 << int(np.ceil(np.log2(n)))
    cross = np.fft.rfft(right, nfft) * np.conj(np.fft.rfft(left, nfft))
    cross /= np.abs(cross) + 1e-12
    cc = np.fft.irfft(cross, nfft * interp)
    max_shift = nfft * interp // 2
    if max_delay is not None:
        max_shift = min(int(np.ceil(max_delay * fs * interp)), max_shift)
    cc = np.concatenate([cc[-max_shift:], cc[: max_shift + 1]])
    return (int(np.argmax(cc)) - max_shift) / float(interp * fs)


def gcc_phat_azimuth(binaural: np.ndarray, fs: int = SAMPLE_RATE, head_radius: float = HEAD_RADIUS,
                     c: float = SPEED_OF_SOUND) -> float:
    """Front-folded azimuth (rad, + left) from the GCC-PHAT interaural delay and the spherical-head ITD model."""
    max_itd = float(woodworth_itd(np.pi / 2, head_radius, c))
    tau = gcc_phat_delay(binaural, fs, max_delay=1.1 * max_itd)
    return float(azimuth_from_itd(tau, head_radius, c))
