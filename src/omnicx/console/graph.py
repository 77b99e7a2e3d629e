"""A journey drawn as SVG: the entry on top, nodes in layers by their distance from the start,
arrows labelled with the branch arm, split variant or wait outcome, and on each node the live
counts from the journey's stats (ran, waiting here now, converted)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from markupsafe import Markup, escape

from omnicx.journeys.definition import (
    Branch,
    JourneyDef,
    Send,
    Split,
    Step,
    Wait,
    WaitForEvent,
)
from omnicx.journeys.schemas import NodeStats

BOX_W, BOX_H, GAP_X, GAP_Y = 210, 62, 30, 46
COLORS = {
    "entry": "#102a43",
    "wait": "#8a5a00",
    "wait_for_event": "#8a5a00",
    "branch": "#6741d9",
    "split": "#6741d9",
    "send": "#0b5cad",
    "update_traits": "#0c8599",
    "exit": "#a32020",
}


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str


def edges(journey: JourneyDef) -> list[Edge]:
    out: list[Edge] = [Edge("entry", journey.start, "")]
    for node in journey.nodes.values():
        labelled: list[tuple[str, str | None]]
        if isinstance(node, Branch):
            labelled = [(a.name, a.next) for a in node.arms] + [("default", node.default)]
        elif isinstance(node, Split):
            labelled = [(v.name, v.next) for v in node.variants]
        elif isinstance(node, WaitForEvent):
            labelled = [(node.spec.event, node.next), ("timeout", node.timeout_next)]
        else:
            labelled = [("", node.next)]
        out += [Edge(node.id, target, label) for label, target in labelled if target]
    return out


def duration(value: timedelta) -> str:
    """3d, 1h30m, 45s: the way journey files write durations."""
    seconds = int(value.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"


def _detail(node: Step) -> str:
    if isinstance(node, Wait):
        if node.duration:
            return f"wait {duration(node.duration)}"
        return "wait for a window" if node.window else "wait until a date"
    if isinstance(node, WaitForEvent):
        return f"wait for {node.spec.event} ({duration(node.timeout)})"
    if isinstance(node, Send):
        channel = node.channel if isinstance(node.channel, str) else " → ".join(node.channel)
        return f"send {node.message} ({channel})"
    if isinstance(node, Split):
        return f"split, {node.holdout:g}% holdout" if node.holdout else "split"
    return node.kind.replace("_", " ")


def layers(journey: JourneyDef, all_edges: list[Edge]) -> dict[str, int]:
    """Each node's row: its shortest distance from the entry (unreached nodes go last)."""
    depth = {"entry": 0}
    queue = deque(["entry"])
    while queue:
        current = queue.popleft()
        for edge in all_edges:
            if edge.source == current and edge.target not in depth:
                depth[edge.target] = depth[current] + 1
                queue.append(edge.target)
    last = max(depth.values()) + 1
    for node_id in journey.nodes:
        depth.setdefault(node_id, last)
    return depth


def draw(journey: JourneyDef, entry_label: str, stats: dict[str, NodeStats]) -> Markup:
    all_edges = edges(journey)
    depth = layers(journey, all_edges)
    rows: dict[int, list[str]] = {}
    for node_id in ["entry", *journey.nodes]:
        rows.setdefault(depth[node_id], []).append(node_id)
    widest = max(len(r) for r in rows.values())
    width = widest * (BOX_W + GAP_X) + GAP_X
    height = len(rows) * (BOX_H + GAP_Y) + GAP_Y
    pos: dict[str, tuple[float, float]] = {}
    for row, ids in rows.items():
        offset = (width - len(ids) * (BOX_W + GAP_X) + GAP_X) / 2
        for i, node_id in enumerate(ids):
            pos[node_id] = (offset + i * (BOX_W + GAP_X), GAP_Y / 2 + row * (BOX_H + GAP_Y))
    parts = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#6b7785"/></marker></defs>'
    ]
    for edge in all_edges:
        (x1, y1), (x2, y2) = pos[edge.source], pos[edge.target]
        sx, sy = x1 + BOX_W / 2, y1 + BOX_H
        tx, ty = x2 + BOX_W / 2, y2
        if ty <= sy:  # a loop back up: go round the side
            path = f"M{sx},{sy} C{sx + 120},{sy + 40} {tx + 120},{ty - 40} {tx},{ty}"
        else:
            mid = (sy + ty) / 2
            path = f"M{sx},{sy} C{sx},{mid} {tx},{mid} {tx},{ty}"
        parts.append(
            f'<path d="{path}" fill="none" stroke="#6b7785" stroke-width="1.5" '
            f'marker-end="url(#arrow)"/>'
        )
        if edge.label:
            parts.append(
                f'<text x="{(sx + tx) / 2 + 4:.0f}" y="{(sy + ty) / 2 + 4:.0f}" '
                f'style="font-size:11px;fill:#4f5b6b">{escape(edge.label)}</text>'
            )
    for node_id, (x, y) in pos.items():
        if node_id == "entry":
            kind, detail, counts = "entry", entry_label, ""
        else:
            node = journey.nodes[node_id]
            kind, detail = node.kind, _detail(node)
            s = stats.get(node_id)
            counts = (
                f"ran {s.executed} · waiting {s.waiting} · converted {s.converted}"
                if s
                else "ran 0 · waiting 0"
            )
        color = COLORS.get(kind, "#495057")
        parts.append(
            f'<g class="node" data-node="{escape(node_id)}"><title>{escape(node_id)}: '
            f"{escape(detail)} {escape(counts)}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="#fff" '
            f'stroke="{color}" stroke-width="2"/>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="6" height="{BOX_H}" rx="3" fill="{color}"/>'
            f'<text x="{x + 14:.0f}" y="{y + 18:.0f}" style="font-weight:600">'
            f"{escape(node_id[:24])}</text>"
            f'<text x="{x + 14:.0f}" y="{y + 35:.0f}" style="font-size:11px">'
            f"{escape(detail[:36])}</text>"
            f'<text x="{x + 14:.0f}" y="{y + 52:.0f}" style="font-size:11px;fill:#1e6b36">'
            f"{escape(counts)}</text></g>"
        )
    return Markup(
        f'<svg class="graph" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="Journey graph with live counts per node" style="max-width:{width:.0f}px">'
        f"{''.join(parts)}</svg>"
    )
