"""The application layer: the av-pose command, doctor, demo and its report, the graph launcher and graph definitions,
parameter docs."""
