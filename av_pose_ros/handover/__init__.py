"""Handover: which hand a person offers, a smoothed target for it, and whether the manipulator can reach it."""

from av_pose_ros.handover.filter import ConstantVelocityFilter
from av_pose_ros.handover.reach import ReachEnvelope
from av_pose_ros.handover.selection import HandChoice, HandSelector, approach_orientation

__all__ = ["ConstantVelocityFilter", "HandChoice", "HandSelector", "ReachEnvelope", "approach_orientation"]
