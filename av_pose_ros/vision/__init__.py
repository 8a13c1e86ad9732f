"""ROS-free vision core: 2D body keypoints, the camera model, ray encodings and simulated detections.

Submodules are imported explicitly (``from av_pose_ros.vision import keypoints``) so that users of the camera
model or the ray encoding do not pay for importing MediaPipe.
"""
