"""Parameter specs, without ROS: what a stage's parameters are (name, default, description, range, choices, whether
they may change at run time). Nodes declare them over ROS (`av_pose_ros.ros.parameters`); `av-pose reprocess` reads
the same specs from the node's YAML, so one list serves both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One parameter: name, default (its type is the parameter's type), what it is for, allowed values. A
    `read_only` one is fixed once the node runs (rclpy refuses to set it); every other one is honoured when set."""

    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    read_only: bool = False

    def descriptor(self):
        """The rcl_interfaces ParameterDescriptor (imported here: the spec itself is plain Python)."""
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

        text = self.description + (f" One of: {', '.join(map(str, self.choices))}." if self.choices else "")
        d = ParameterDescriptor(name=self.name, description=text, read_only=self.read_only)
        if self.min is not None or self.max is not None:
            if isinstance(self.default, bool):
                raise TypeError(f"{self.name}: a bool parameter has no range")
            if isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(self.min), to_value=int(self.max), step=0)]
            else:
                d.floating_point_range = [FloatingPointRange(from_value=float(self.min), to_value=float(self.max),
                                                             step=0.0)]
        return d

    def check(self, value) -> str | None:
        """Why `value` is not allowed, or None (over ROS, rclpy enforces the range itself)."""
        if self.choices is not None and value not in self.choices:
            return f"{self.name}={value!r} is not one of {list(self.choices)}"
        return None

    def check_range(self, value) -> str | None:
        """`check` plus the range, for values that do not pass through rclpy (parameter files read offline)."""
        problem = self.check(value)
        if problem is None and self.min is not None and isinstance(value, (int, float)) and not (
                self.min <= value <= self.max):
            problem = f"{self.name}={value} is outside [{self.min}, {self.max}]"
        return problem
