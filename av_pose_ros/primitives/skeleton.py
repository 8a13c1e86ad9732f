"""The COCO-17 body model shared by every part of the package: joint order, names, bones and REP-155 frame names."""

from __future__ import annotations

COCO17_JOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_JOINTS = len(COCO17_JOINTS)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(COCO17_JOINTS)}

LEFT_WRIST = JOINT_INDEX["left_wrist"]
RIGHT_WRIST = JOINT_INDEX["right_wrist"]
LEFT_HIP = JOINT_INDEX["left_hip"]
RIGHT_HIP = JOINT_INDEX["right_hip"]

# Bones for drawing and for sampling the body surface on capsules (parent, child).
BONES: tuple[tuple[str, str], ...] = (
    ("nose", "left_eye"),
    ("nose", "right_eye"),
    ("left_eye", "left_ear"),
    ("right_eye", "right_ear"),
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_hip", "right_hip"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
)
BONE_INDICES: tuple[tuple[int, int], ...] = tuple((JOINT_INDEX[a], JOINT_INDEX[b]) for a, b in BONES)

# Index permutation that swaps left and right (used for flips and simulated detector swaps).
LEFT_RIGHT_SWAP: tuple[int, ...] = tuple(
    JOINT_INDEX[n.replace("left_", "right_")] if n.startswith("left_")
    else JOINT_INDEX[n.replace("right_", "left_")] if n.startswith("right_")
    else i
    for i, n in enumerate(COCO17_JOINTS)
)


def rep155_joint_frame(joint: str, body_id: str) -> str:
    """TF frame of a joint the ROS4HRI (REP-155) way: ``l_wrist_<id>``, ``nose_<id>``."""
    short = joint.replace("left_", "l_").replace("right_", "r_")
    return f"{short}_{body_id}"


def rep155_body_frame(body_id: str) -> str:
    """TF frame of a body (REP-155): ``body_<id>``, placed at the mid-hip."""
    return f"body_{body_id}"
