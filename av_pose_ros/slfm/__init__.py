"""SLfM core: self-supervised head rotation (from two camera views) and sound direction (from binaural audio), and
a tracker that turns front-folded directions and the head's yaw into full-circle directions.

No rclpy here; the ROS node lives in ``av_pose_ros.nodes``.
"""

from .errors import SlfmError, SlfmInputError, SlfmModelError
from .estimators import AzimuthEstimator, RotationEstimator
from .rotation_wide import WideRotationEstimator, load_rotation_estimator
from .tracking import SourceTracker, TrackerConfig, TrackerState

__all__ = ["RotationEstimator", "WideRotationEstimator", "load_rotation_estimator", "AzimuthEstimator",
           "SourceTracker", "TrackerConfig", "TrackerState", "SlfmError", "SlfmInputError", "SlfmModelError"]
