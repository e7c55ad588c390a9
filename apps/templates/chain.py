"""A template as people read it: its node chain drawn as an inline SVG picture, and each node's parameters as
rows in the three tabs (fields, parameters, tuning), with the template author's presets and locks in words.

The picture is drawn on the server (no charting library); a click on a node shows its panel
(``static/mlab/template.js``); without JavaScript every panel shows, one under the other, and each node of the
picture links to its panel.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .nodes import Group, NodeKind, Param, ParamType, registry

KIND_COLOURS = {
    NodeKind.SAMPLE: "#2f6fdf",
    NodeKind.PREPROCESS: "#23897e",
    NodeKind.SPLIT: "#6b7280",
    NodeKind.TRAIN: "#d9731a",
    NodeKind.EVALUATE: "#8e44ad",
}
BOX_WIDTH, BOX_HEIGHT, GAP, TOP = 128, 76, 26, 8


@dataclass(frozen=True)
class ParamRow:
    name: str
    label: str
    value: str
    source: str  # "default", "preset" (by the template's author) or "chosen at launch"
    locked: bool
    allowed: str
    help: str
    pai_name: str
    flags: list[str]


@dataclass(frozen=True)
class NodeView:
    key: str
    type_key: str
    label: str
    kind: str
    description: str
    colour: str
    groups: list[tuple[Group, list[ParamRow]]]
    presets: int
    locks: int


def shown_value(param: Param, value: Any) -> str:
    """A parameter's value in words: lists joined, joins and filters as phrases, booleans as yes / no."""
    if param.secret:
        return "typed at launch, never stored"
    if value is None or value == []:
        return "—"
    if param.type == ParamType.BOOL:
        return "yes" if value else "no"
    if param.type == ParamType.JOINS:
        return ", ".join(f"{j.get('table')} on {j.get('on')}" for j in value if isinstance(j, dict))
    if param.type == ParamType.CONDITIONS:
        return "; ".join(
            f"{c.get('column')} {c.get('op')}" + ("" if c.get("value") is None else f" {json.dumps(c.get('value'))}")
            for c in value
            if isinstance(c, dict)
        )
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _bound(value: float | str) -> str:
    if isinstance(value, str):
        return value  # a date, e.g. 1000-01-01
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def allowed_text(param: Param) -> str:
    if param.choices:
        return " | ".join(param.choices)
    if param.min is None and param.max is None:
        return ""
    low = "—" if param.min is None else _bound(param.min)
    high = "—" if param.max is None else _bound(param.max)
    return f"{'(' if param.exclusive_min else '['}{low}, {high}{')' if param.exclusive_max else ']'}"


def _flags(param: Param) -> list[str]:
    flags = []
    if param.required:
        flags.append("required")
    if not param.serialize:
        flags.append("UI only")
    if param.engines != ("local", "pai"):
        flags.append(f"{'/'.join(param.engines)} only")
    return flags


def node_view(node) -> NodeView | None:
    """The node of a template (a TemplateNode) as its panel shows it; None for an unknown node type."""
    if node.node_type not in registry:
        return None
    node_type = registry.get(node.node_type)
    overrides, locked = dict(node.overrides or {}), set(node.locked or [])
    groups = []
    for group in Group:
        rows = [
            ParamRow(
                name=p.name,
                label=p.label,
                value=shown_value(p, overrides.get(p.name, p.default)),
                source="preset" if p.name in overrides else ("chosen at launch" if p.default is None else "default"),
                locked=p.name in locked,
                allowed=allowed_text(p),
                help=p.help,
                pai_name=p.pai_name or "",
                flags=_flags(p),
            )
            for p in node_type.params
            if p.group == group
        ]
        if rows:
            groups.append((group, rows))
    return NodeView(
        key=node.key,
        type_key=node_type.key,
        label=node_type.label,
        kind=node_type.kind.value,
        description=node_type.description,
        colour=KIND_COLOURS.get(node_type.kind, "#6b7280"),
        groups=groups,
        presets=sum(1 for name in overrides if name in node_type.param_map),
        locks=len(locked & set(node_type.param_map)),
    )


def template_nodes(template) -> list[NodeView]:
    return [view for node in template.nodes.all() if (view := node_view(node)) is not None]


def chain_svg(nodes: list[NodeView]) -> SafeString:
    """The chain, left to right: one box per node (coloured by kind, its label and key, its presets and locks),
    arrows between. Each box is a link to its panel (``#node-<key>``)."""
    if not nodes:
        return SafeString("")
    width = len(nodes) * BOX_WIDTH + (len(nodes) - 1) * GAP + 2
    height = BOX_HEIGHT + 2 * TOP
    parts = [
        '<defs><marker id="mlab-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="mlab-chain-arrowhead"/></marker></defs>'
    ]
    for index, node in enumerate(nodes):
        x = 1 + index * (BOX_WIDTH + GAP)
        if index:
            parts.append(
                f'<line x1="{x - GAP + 2}" y1="{TOP + BOX_HEIGHT / 2}" x2="{x - 3}" y2="{TOP + BOX_HEIGHT / 2}" '
                'class="mlab-chain-arrow" marker-end="url(#mlab-arrow)"/>'
            )
        lines = textwrap.wrap(node.label, 18)[:2]
        label = "".join(
            f'<text x="{x + BOX_WIDTH / 2}" y="{TOP + 20 + i * 14}" text-anchor="middle" class="mlab-chain-label">'
            f"{escape(line)}</text>"
            for i, line in enumerate(lines)
        )
        note = ", ".join(
            part
            for part in (
                f"{node.presets} preset" + ("s" if node.presets != 1 else "") if node.presets else "",
                f"{node.locks} locked" if node.locks else "",
            )
            if part
        )
        parts.append(
            f'<a href="#node-{escape(node.key)}" class="mlab-chain-node" data-node="{escape(node.key)}" '
            f'role="button" aria-label="{escape(node.label)} ({escape(node.key)}): show its parameters">'
            f"<title>{escape(node.label)} · {escape(node.type_key)}</title>"
            f'<rect x="{x}" y="{TOP}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="8" fill="{node.colour}" '
            'class="mlab-chain-box"/>'
            f"{label}"
            f'<text x="{x + BOX_WIDTH / 2}" y="{TOP + BOX_HEIGHT - 24}" text-anchor="middle" class="mlab-chain-key">'
            f"{escape(node.key)}</text>"
            f'<text x="{x + BOX_WIDTH / 2}" y="{TOP + BOX_HEIGHT - 9}" text-anchor="middle" class="mlab-chain-note">'
            f"{escape(note)}</text></a>"
        )
    return mark_safe(
        f'<svg class="mlab-chain" role="img" aria-label="The template\'s node chain" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" data-chart="chain">{"".join(parts)}</svg>'
    )
