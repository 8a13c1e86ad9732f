"""What every stage handler shares: the error a stage raises for input it cannot use, and the transform lookup
signature (a node's TF buffer, or an offline `TransformTree`). Plain Python, no rclpy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Lookup = Callable[[str, str, int], np.ndarray]


class StageError(Exception):
    """Input a stage cannot use; `code` names the diagnostic (tf, input_lifting, lifting, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
