"""ros2 launch av_pose_ros replay.launch.py [name:=value ...] — the 'replay' graph of av_pose_ros.app.launch_graphs
(`av-pose launch replay` runs the same nodes without ros2 launch)."""

from av_pose_ros.ros.launch_builder import generate


def generate_launch_description():
    return generate("replay")
