"""sensor_msgs/Image <-> numpy for rgb8, bgr8 and mono8 (cv_bridge is used when it is importable)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

from av_pose_ros.ros.conversions import MessageError, make_header

SUPPORTED_ENCODINGS = ("rgb8", "bgr8", "mono8")
_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}

try:  # on a robot, the standard bridge; here, the numpy path below
    from cv_bridge import CvBridge

    _BRIDGE = CvBridge()
except ImportError:
    _BRIDGE = None


def image_to_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8, bgr8 or mono8 image; other encodings raise MessageError."""
    if msg.encoding not in SUPPORTED_ENCODINGS:
        raise MessageError(f"Image: encoding '{msg.encoding}' is not supported (use one of "
                           f"{', '.join(SUPPORTED_ENCODINGS)})")
    h, w, ch = msg.height, msg.width, _CHANNELS[msg.encoding]
    if h == 0 or w == 0:
        raise MessageError(f"Image: empty ({w}x{h})")
    if msg.step < w * ch or len(msg.data) < msg.step * h:
        raise MessageError(f"Image: {len(msg.data)} bytes with step {msg.step} do not hold {w}x{h} {msg.encoding}")
    if _BRIDGE is not None:
        return np.asarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    rows = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * h).reshape(h, msg.step)
    pixels = rows[:, : w * ch].reshape(h, w, ch)
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(pixels[..., ::-1])
    return np.ascontiguousarray(pixels)


def image_from_numpy(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
    """Image message from (H, W, 3) rgb8/bgr8 or (H, W) mono8 uint8 pixels."""
    if encoding not in SUPPORTED_ENCODINGS:
        raise MessageError(f"Image: encoding '{encoding}' is not supported")
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    expected_ndim = 2 if encoding == "mono8" else 3
    if pixels.ndim != expected_ndim or (expected_ndim == 3 and pixels.shape[2] != 3):
        raise MessageError(f"Image: pixels of shape {pixels.shape} do not fit encoding {encoding}")
    h, w = pixels.shape[:2]
    return Image(header=make_header(stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
                 step=w * _CHANNELS[encoding], data=pixels.tobytes())
