"""The three QoS profiles the package uses, named for what they carry."""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

# Streams (audio frames, images, keypoints, kernels): best effort, small depth; a late frame is worth less than
# the next one.
SENSOR_QOS: QoSProfile = qos_profile_sensor_data

# Static data (camera info from a fixed calibration, /tf_static, rig description): late joiners get the last value.
STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Results other programs act on (poses, handover targets, diagnostics): reliable, modest depth.
RESULT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
