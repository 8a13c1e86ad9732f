"""Metric lifting (no ROS): 2D keypoints + pose kernels -> metric COCO-17 joints (DESIGN section 6).

``Lifter.load(path).predict(...)`` is the inference API the node uses; ``dataset``, ``model``, ``train``,
``evaluate`` and ``baselines`` hold the rest. Torch is imported only when ``Lifter`` is first used.
"""

from __future__ import annotations


def __getattr__(name):
    if name in ("Lifter", "LifterLoadError"):
        from . import lifter
        return getattr(lifter, name)
    if name == "LiftingInputError":
        from .features import LiftingInputError
        return LiftingInputError
    raise AttributeError(name)


__all__ = ["Lifter", "LifterLoadError", "LiftingInputError"]
