"""Child process of test_foundation_dds: publishes every custom message type on `dds_test/<Type>` until killed."""

import sys

import rclpy

from av_pose_ros.ros.qos import RESULT_QOS

from sample_messages import sample_messages


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("dds_test_publisher")
    messages = sample_messages()
    pubs = {name: node.create_publisher(type(msg), f"dds_test/{name}", RESULT_QOS) for name, msg in messages.items()}

    def tick():
        for name, msg in messages.items():
            pubs[name].publish(msg)

    node.create_timer(0.1, tick)
    print("publishing", flush=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
