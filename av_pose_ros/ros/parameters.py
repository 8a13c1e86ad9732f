"""Node parameters from one spec per node: declared with descriptors (description, range, choices), read into a
plain object, validated on every later change."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult


@dataclass(frozen=True)
class Param:
    """One parameter: name, default (its type is the parameter's type), what it is for, allowed values."""

    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
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
        """Why `value` is not allowed, or None (ranges are enforced by rclpy itself)."""
        if self.choices is not None and value not in self.choices:
            return f"{self.name}={value!r} is not one of {list(self.choices)}"
        return None


def declare_parameters(node, specs: list[Param]) -> SimpleNamespace:
    """Declare `specs` on `node`; returns a namespace whose attributes follow later parameter changes."""
    by_name = {p.name: p for p in specs}
    values = SimpleNamespace()
    for spec in specs:
        value = node.declare_parameter(spec.name, spec.default, spec.descriptor()).value
        problem = spec.check(value)
        if problem:
            raise ValueError(f"parameter {problem} (set it in the node's config/*.yaml)")
        setattr(values, spec.name, value)

    def on_set(params) -> SetParametersResult:
        for param in params:
            spec = by_name.get(param.name)
            problem = spec.check(param.value) if spec else None
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        for param in params:
            if param.name in by_name:
                setattr(values, param.name, param.value)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return values
