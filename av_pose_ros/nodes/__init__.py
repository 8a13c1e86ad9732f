"""ROS 2 node executables: thin glue around the core (parameters, message conversion, publishing)."""
