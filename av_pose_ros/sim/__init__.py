"""Simulator (no ROS): sensor rigs, a parametric COCO-17 body, its sound-reflecting surface, rooms and captures."""
