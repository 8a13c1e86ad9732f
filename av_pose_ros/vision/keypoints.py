"""2D body keypoints from RGB images with the MediaPipe pose model that ships inside the mediapipe 0.10.21 wheel.

Model loading (checked against the 0.10.21 wheel): the legacy ``mediapipe.solutions.pose.Pose`` graph
(``modules/pose_landmark/pose_landmark_cpu.binarypb``) reads ``pose_detection.tflite`` and, for
``model_complexity=1``, ``pose_landmark_full.tflite`` from the installed package. Complexities 0 and 2 (lite, heavy)
are not in the wheel and the library would download them from Google Cloud Storage at construction, so this module
only ever uses complexity 1 and never touches the network. The wheel ships no GPU graph for this solution, and the
Tasks API (which has the GPU delegate) needs a ``.task`` bundle with model metadata that the wheel does not carry;
the detector therefore runs on CPU (XNNPACK) everywhere.

MediaPipe returns 33 landmarks of the most prominent person, in normalised image coordinates, with a per-landmark
visibility; we keep the 17 that COCO defines (same left/right convention: the person's own side) and scale them
to raw pixels. One person per image.
"""

from __future__ import annotations

import numpy as np

from av_pose_ros.primitives.skeleton import COCO17_JOINTS

# MediaPipe BlazePose landmark index of each COCO-17 joint, in COCO17_JOINTS order.
_BLAZEPOSE_INDEX = {
    "nose": 0, "left_eye": 2, "right_eye": 5, "left_ear": 7, "right_ear": 8,
    "left_shoulder": 11, "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14,
    "left_wrist": 15, "right_wrist": 16, "left_hip": 23, "right_hip": 24,
    "left_knee": 25, "right_knee": 26, "left_ankle": 27, "right_ankle": 28,
}
COCO_FROM_BLAZEPOSE = np.array([_BLAZEPOSE_INDEX[name] for name in COCO17_JOINTS])

# The only complexity whose model is inside the wheel (pose_landmark_full.tflite).
_FULL_MODEL_COMPLEXITY = 1


class PoseDetector:
    """Single-person 2D pose detector returning COCO-17 keypoints in raw image pixels.

    ``tracking=True`` is for video streams: after the first detection MediaPipe follows the person from the previous
    frame's landmarks (faster, temporally smoothed), running the person detector only when tracking is lost.
    ``tracking=False`` treats every image independently (single photos, shuffled frames).
    """

    def __init__(self, tracking: bool = False, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5):
        from mediapipe.python.solutions import (
            pose as mp_pose,  # deferred: importing MediaPipe takes seconds
        )

        self.tracking = tracking
        self._pose = mp_pose.Pose(
            static_image_mode=not tracking,
            model_complexity=_FULL_MODEL_COMPLEXITY,
            smooth_landmarks=tracking,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB -> (17, 3) float [u, v, confidence] in COCO-17 order, or None if nobody is seen.

        u, v are raw pixels (x right, y down; MediaPipe's normalised x times W); joints outside the frame keep
        their extrapolated position with a low confidence. Confidence is MediaPipe's visibility, clipped to [0, 1].
        Grayscale or BGR images must be converted by the caller.
        """
        if self._pose is None:
            raise RuntimeError("PoseDetector is closed")
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
        if rgb.shape[0] == 0 or rgb.shape[1] == 0:
            raise ValueError(f"empty image of shape {rgb.shape}")
        height, width = rgb.shape[:2]
        result = self._pose.process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return None
        landmarks = result.pose_landmarks.landmark
        picked = np.array([(landmarks[i].x, landmarks[i].y, landmarks[i].visibility) for i in COCO_FROM_BLAZEPOSE])
        picked[:, 0] *= width
        picked[:, 1] *= height
        picked[:, 2] = np.clip(picked[:, 2], 0.0, 1.0)
        return picked

    def close(self) -> None:
        """Release the MediaPipe graph; further ``detect`` calls raise. Safe to call twice."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
