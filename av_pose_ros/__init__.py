"""av_pose_ros: metric 3D human pose from one camera plus sound, and binaural head rotation / sound direction.

The source package and the rosidl-generated interface package share the name ``av_pose_ros``; ``extend_path`` lets
code imported from this source tree still find the generated ``av_pose_ros.msg`` installed in the environment.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
