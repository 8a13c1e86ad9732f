"""Writes docs/parameters.md: every node's parameters (default, range or choices, description) from the node
modules' own `PARAMS` specs, so the documentation cannot drift from the code.

    python -m av_pose_ros.app.param_docs > docs/parameters.md
"""

from __future__ import annotations

import importlib
from pathlib import Path

NODES_DIR = Path(__file__).resolve().parents[1] / "nodes"


def node_params(name: str) -> list:
    module = importlib.import_module(f"av_pose_ros.nodes.{name}")
    if name == "sim_node":  # audio_io_node's parameters with the sim defaults, plus its own
        base = importlib.import_module("av_pose_ros.nodes.audio_io_node").PARAMS
        return [_with_default(p, module.SIM_DEFAULTS) for p in base] + list(module.EXTRA_PARAMS)
    return list(module.PARAMS)


def _with_default(param, defaults: dict):
    import dataclasses

    return dataclasses.replace(param, default=defaults[param.name]) if param.name in defaults else param


def _allowed(param) -> str:
    if param.choices:
        return ", ".join(map(str, param.choices))
    if param.min is not None or param.max is not None:
        return f"{param.min} .. {param.max}"
    return ""


def render() -> str:
    lines = ["# Node parameters", "", "Generated from the nodes' parameter specs by "
             "`python -m av_pose_ros.app.param_docs > docs/parameters.md`; the values in `config/<node>.yaml` are the "
             "ones the launch files use. `ros2 param describe <node> <name>` shows the same descriptions.", ""]
    for path in sorted(NODES_DIR.glob("*_node.py")):
        lines += [f"## {path.stem}", "", "| parameter | default | allowed | description |", "|---|---|---|---|"]
        for p in node_params(path.stem):
            ro = " (read-only)" if p.read_only else ""
            lines.append(f"| `{p.name}` | `{p.default!r}` | {_allowed(p)} | {p.description}{ro} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
