"""Acoustic sensing core (no ROS): probes, speaker multiplexing, pose-kernel extraction and spatial encoding."""
