"""SLfM core: self-supervised head rotation (from two camera views) and sound direction (from binaural audio).

No rclpy here; the ROS node lives in ``av_pose_ros.nodes``.
"""

from .errors import SlfmError, SlfmInputError, SlfmModelError
from .estimators import AzimuthEstimator, RotationEstimator

__all__ = ["RotationEstimator", "AzimuthEstimator", "SlfmError", "SlfmInputError", "SlfmModelError"]
