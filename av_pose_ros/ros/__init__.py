"""ROS 2 helpers shared by the nodes: message conversions, QoS, parameters, diagnostics, TF, node main()."""
