"""Node parameters from one spec per node (`av_pose_ros.pipeline.params.Param`): declared with descriptors
(description, range, choices, read-only), read into a plain object, validated on every later change, and handed
to the node's `on_change` hook so the stage handler follows the new values at run time."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from rcl_interfaces.msg import SetParametersResult

from av_pose_ros.pipeline.params import Param

__all__ = ["Param", "declare_parameters"]


def declare_parameters(node, specs: list[Param], on_change: Callable[[set[str]], None] | None = None
                       ) -> SimpleNamespace:
    """Declare `specs` on `node`; returns a namespace whose attributes follow later parameter changes. After a
    change the namespace holds the new values and `on_change(names)` runs; if it raises ValueError the change is
    refused (the old values come back) with its message as the reason."""
    by_name = {p.name: p for p in specs}
    values = SimpleNamespace()
    for spec in specs:
        value = node.declare_parameter(spec.name, spec.default, spec.descriptor()).value
        problem = spec.check(value)
        if problem:
            raise ValueError(f"parameter {problem} (set it in the node's config/*.yaml)")
        setattr(values, spec.name, value)

    def on_set(params) -> SetParametersResult:
        ours = [p for p in params if p.name in by_name]
        for param in ours:
            problem = by_name[param.name].check(param.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        old = {p.name: getattr(values, p.name) for p in ours}
        for param in ours:
            setattr(values, param.name, param.value)
        if ours and on_change is not None:
            try:
                on_change({p.name for p in ours})
            except ValueError as err:
                for name, value in old.items():
                    setattr(values, name, value)
                on_change(set(old))
                return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return values
