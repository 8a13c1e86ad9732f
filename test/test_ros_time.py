"""Time on a real rclpy node under use_sim_time: a /clock that goes back (or input stamps that do) calls the node's
reset once per event, and audio stamps taken on the system clock move onto the node's clock."""

from __future__ import annotations

import time

from av_pose_ros.audio.clock import node_clock_stamp

S = 1_000_000_000


def _clock_msg(seconds: float):
    from rosgraph_msgs.msg import Clock

    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = divmod(int(seconds * S), S)
    return msg


def test_clock_and_stamps_going_back_reset_once_per_event(ros_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile
    from rosgraph_msgs.msg import Clock

    from av_pose_ros.ros.time_jumps import TimeJumps

    from conftest import spin_until

    node = rclpy.create_node("time_test", context=ros_context,
                             parameter_overrides=[Parameter("use_sim_time", value=True)])
    source = rclpy.create_node("clock_source", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(source)
    clock_pub = source.create_publisher(Clock, "/clock", QoSProfile(depth=10))
    resets = []
    jumps = TimeJumps(node, lambda: resets.append(time.monotonic()))
    try:
        assert spin_until(executor, lambda: clock_pub.get_subscription_count() > 0, 10.0)

        def publish_until_now(seconds: float) -> bool:
            clock_pub.publish(_clock_msg(seconds))
            return spin_until(executor, lambda: abs(node.get_clock().now().nanoseconds - seconds * S) < S // 10, 5.0)

        assert publish_until_now(100.0) and publish_until_now(101.0)
        assert not resets
        # audio stamps follow the node's clock: a window captured 50 ms ago on the system clock
        system_now = time.time_ns()
        stamp = node_clock_stamp(system_now - 50_000_000, node.get_clock(), system_now)
        assert abs(stamp - (node.get_clock().now().nanoseconds - 50_000_000)) < 20_000_000
        assert publish_until_now(5.0)  # bag loop: /clock back to the start
        assert spin_until(executor, lambda: len(resets) == 1, 5.0) and jumps.jumps == 1
        # the stamps of the old timeline then new ones: another reset, but the same event (no second line)
        jumps.stamp("audio/frames", 101 * S)
        jumps.stamp("audio/frames", 6 * S)
        assert len(resets) == 2 and jumps.jumps == 1
        # small steps back are not a jump
        jumps.stamp("audio/frames", int(5.5 * S))
        assert len(resets) == 2
        # a lagging upstream node's old-timeline stamps, then its first new ones long after the clock jumped: the
        # same event again (reset, no line); stamps going back within the new timeline are a new event
        jumps.stamp("audio/frames", 100 * S)
        time.sleep(2.1)   # past the debounce
        jumps.stamp("audio/frames", int(5.2 * S))
        assert len(resets) == 3 and jumps.jumps == 1
        time.sleep(2.1)
        jumps.stamp("audio/frames", int(3.0 * S))
        assert len(resets) == 4 and jumps.jumps == 2
    finally:
        executor.shutdown()
        node.destroy_node()
        source.destroy_node()


def test_stamps_off_sim_time_are_the_system_stamps(ros_context):
    import rclpy

    node = rclpy.create_node("time_test_wall", context=ros_context)
    try:
        assert node_clock_stamp(123_456, node.get_clock()) == 123_456
    finally:
        node.destroy_node()
