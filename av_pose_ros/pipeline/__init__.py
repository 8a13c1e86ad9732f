"""Stage handlers: the per-message work of the processing nodes without ROS, one module per stage, so the nodes and
the offline `av-pose reprocess` run exactly the same code. Parameters come as an attribute namespace (a node's
declared parameters, or the same names read from its YAML); transforms through a `lookup(target, source, stamp_ns)`
callable; time through explicit `now_s` arguments. Plain Python, no rclpy."""
