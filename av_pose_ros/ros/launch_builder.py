"""Builds a `ros2 launch` description from `av_pose_ros.app.launch_graphs`, the description `av-pose launch`
uses too."""

from __future__ import annotations

from pathlib import Path

from av_pose_ros.app.launch_graphs import ARGUMENTS, parse_arguments, resolve


def generate(graph: str):
    """LaunchDescription for `graph` with every shared argument declared (`ros2 launch av_pose_ros <graph>.launch.py
    name:=value`)."""
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    share = Path(get_package_share_directory("av_pose_ros"))
    defaults = parse_arguments([], graph)

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
        actions = []
        for node in resolve(graph, values, share):
            actions.append(Node(package="av_pose_ros", executable=node.executable, name=node.name,
                                namespace=node.namespace or None, output="screen",
                                parameters=[str(p) for p in node.param_files] + [node.params],
                                remappings=list(node.remaps.items()), additional_env=node.env or None))
        return actions

    declared = [DeclareLaunchArgument(name, default_value=defaults[name], description=help_)
                for name, (_, help_) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=nodes)])
