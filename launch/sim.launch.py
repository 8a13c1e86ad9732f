"""ros2 launch av_pose_ros sim.launch.py [name:=value ...] — the 'sim' graph of av_pose_ros.app.launch_graphs
(`av-pose launch sim` runs the same nodes without ros2 launch)."""

from av_pose_ros.ros.launch_builder import generate


def generate_launch_description():
    return generate("sim")
