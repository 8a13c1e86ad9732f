"""Handover: which hand a person offers, a smoothed target for it, whether the manipulator can reach it, and the
small state (idle / offered / ready / withdrawn) a task layer reacts to."""

from av_pose_ros.handover.filter import ConstantVelocityFilter
from av_pose_ros.handover.reach import ReachEnvelope
from av_pose_ros.handover.readiness import (
    IDLE,
    OFFERED,
    READY,
    STATES,
    WITHDRAWN,
    HandoverState,
    Readiness,
    ReadyRule,
    StateRule,
    most_urgent,
)
from av_pose_ros.handover.selection import HandChoice, HandSelector, approach_orientation

__all__ = ["IDLE", "OFFERED", "READY", "STATES", "WITHDRAWN", "ConstantVelocityFilter", "HandChoice",
           "HandSelector", "HandoverState", "ReachEnvelope", "Readiness", "ReadyRule", "StateRule",
           "approach_orientation",
           "most_urgent"]
