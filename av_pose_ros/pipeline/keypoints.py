"""Keypoint stage: RGB images (+ camera model) -> COCO-17 body keypoints in undistorted pixels (no rclpy).

`KeypointHandler` owns the detector (rebuilt when `tracking` or `min_detection_confidence` change, so both are
live) and the newest camera model with its arrival time. keypoint_node drives it from its worker thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from av_pose_ros.pipeline.common import Report, StageError
from av_pose_ros.pipeline.params import Param
from av_pose_ros.primitives.skeleton import BONE_INDICES

PARAMS = [
    Param("tracking", True, "Follow the person from frame to frame (video); false treats every image alone."),
    Param("min_detection_confidence", 0.5, "Person detector score needed to report a person.", 0.0, 1.0),
    Param("body_id", "person0", "REP-155 body id given to the detected person (one person per image)."),
    Param("publish_annotated", False, "Also publish camera/image_keypoints with the skeleton drawn."),
    Param("camera_info_timeout_s", 5.0, "Camera info older than this is treated as missing.", 0.0, 3600.0),
]


def draw_skeleton(rgb: np.ndarray, keypoints: np.ndarray, min_confidence: float = 0.3) -> np.ndarray:
    """A copy of `rgb` with the COCO-17 skeleton drawn (joints under `min_confidence` left out)."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    ok = keypoints[:, 2] >= min_confidence
    points = np.round(keypoints[:, :2]).astype(int)
    for a, b in BONE_INDICES:
        if ok[a] and ok[b]:
            cv2.line(out, tuple(points[a]), tuple(points[b]), (0, 255, 0), 2)
    for j in np.flatnonzero(ok):
        cv2.circle(out, tuple(points[j]), 4, (255, 0, 0), -1)
    return out


@dataclass
class KeypointOutput:
    """People (N, 17, 3) as u, v, confidence (N is 0 or 1), their body ids, whether the pixels are undistorted, the
    annotated image when asked for, and the diagnostics report."""

    people: np.ndarray
    body_ids: list[str]
    undistorted: bool
    annotated: np.ndarray | None = None
    report: Report = field(default_factory=Report)


def _make_detector(tracking: bool, min_detection_confidence: float):
    from av_pose_ros.vision.keypoints import PoseDetector  # deferred: MediaPipe takes seconds to import

    return PoseDetector(tracking=tracking, min_detection_confidence=min_detection_confidence)


class KeypointHandler:
    """Detection and undistortion with the keypoint_node parameters `p`; `make_detector(tracking, min_confidence)`
    builds the detector (MediaPipe by default)."""

    def __init__(self, p, make_detector=_make_detector):
        self.p = p
        self._make = make_detector
        self._lock = threading.Lock()
        self._settings = (bool(p.tracking), float(p.min_detection_confidence))
        self.detector = make_detector(*self._settings)
        self.camera = None
        self._camera_ns = 0
        self._stale = False
        self.processed = 0

    @property
    def settings(self) -> dict:
        """The detector's settings now (what it was built with), for diagnostics."""
        return {"tracking": self._settings[0], "min_detection_confidence": self._settings[1]}

    def configure(self) -> None:
        """Parameters changed: rebuild the detector when its settings did (the old one's tracking state goes)."""
        settings = (bool(self.p.tracking), float(self.p.min_detection_confidence))
        if settings != self._settings:
            self._rebuild(settings)

    def _rebuild(self, settings: tuple[bool, float]) -> None:
        with self._lock:
            self.detector.close()
            self.detector = self._make(*settings)
            self._settings = settings
            self._stale = False

    def reset(self) -> None:
        """Time went back: the camera model's arrival time and the tracked person belong to the old timeline (the
        detector is rebuilt before the next image, not here: a jump callback must not block)."""
        self.camera = None
        self._stale = True

    def close(self) -> None:
        with self._lock:
            self.detector.close()

    def on_camera_info(self, msg, now_ns: int) -> None:
        """A CameraInfo (anything with its fields); StageError when it is unusable."""
        from av_pose_ros.vision.camera import CameraModel

        try:
            self.camera = CameraModel.from_camera_info_fields(msg.width, msg.height, msg.distortion_model, msg.d,
                                                              msg.k, msg.r, msg.p)
        except ValueError as err:
            raise StageError("input_camera_info", f"camera info unusable: {err}") from err
        self._camera_ns = now_ns

    def on_image(self, rgb: np.ndarray, now_ns: int) -> KeypointOutput:
        """Keypoints of one RGB image; undistorted when a camera model of its size arrived recently."""
        if self._stale:
            self._rebuild(self._settings)
        with self._lock:
            keypoints = self.detector.detect(rgb)
        self.processed += 1
        report = Report(values=dict(processed=self.processed, person_seen=keypoints is not None, **self.settings))
        camera = self.camera if (now_ns - self._camera_ns) * 1e-9 <= self.p.camera_info_timeout_s else None
        height, width = rgb.shape[:2]
        if camera is None:
            report.problem("no_camera_info", "no recent camera/camera_info: publishing distorted pixels "
                                             "(undistorted=false)")
        elif (camera.width, camera.height) != (width, height):
            report.problem("input_camera_info", f"camera info is {camera.width}x{camera.height} but the image is "
                                                f"{width}x{height}; not undistorting")
            camera = None
        else:
            report.clear("no_camera_info", "input_camera_info")
        if keypoints is None:
            return KeypointOutput(np.zeros((0, 17, 3), np.float32), [], camera is not None, None, report)
        annotated = draw_skeleton(rgb, keypoints) if self.p.publish_annotated else None
        if camera is not None:
            keypoints[:, :2] = camera.undistort_points(keypoints[:, :2])
        return KeypointOutput(keypoints[None], [self.p.body_id], camera is not None, annotated, report)
