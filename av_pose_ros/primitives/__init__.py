"""Primitives shared by every area: rigid transforms, the COCO-17 skeleton, a transform tree with time, stamp
pairing and where the package data lives. No rclpy, no torch."""
