"""Charts as SVG drawn on the server: bars, histograms, lines, heat maps and funnels.

Each function takes plain numbers and returns markup safe to put in a template. Every chart has
a ``<title>`` and a text table nearby on its page, so a screen reader gets the numbers too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

W, H = 560, 240
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 14, 40
PALETTE = ("#0b5cad", "#d9822b", "#2b8a3e", "#a32020", "#6741d9", "#0c8599", "#8a5a00", "#495057")


def _svg(title: str, body: str, width: int = W, height: int = H) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{body}</svg>'
    )


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _axes(top: float, unit: str = "") -> str:
    parts = []
    for i in range(5):
        value = top * i / 4
        y = H - PAD_B - (H - PAD_T - PAD_B) * i / 4
        parts.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e8ef"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}{unit}</text>'
        )
    return "".join(parts)


def bars(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    unit: str = "",
    color: str = PALETTE[0],
) -> Markup:
    """Vertical bars, one per label (a histogram when the labels are bins)."""
    if not values:
        return empty(title)
    top = _nice_max(max(values))
    inner_w = W - PAD_L - PAD_R
    slot = inner_w / len(values)
    parts = [_axes(top, unit)]
    every = max(1, math.ceil(len(labels) / 10))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (H - PAD_T - PAD_B) * value / top
        x = PAD_L + i * slot + slot * 0.1
        parts.append(
            f'<rect x="{x:.1f}" y="{H - PAD_B - h:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{h:.1f}" fill="{color}"><title>{escape(label)}: {_fmt(value)}{unit}'
            f"</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.4:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    return _svg(title, "".join(parts))


def lines(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    unit: str = "",
    low: float | None = None,
) -> Markup:
    """One line per series over shared labels; gaps where a value is missing."""
    points = [v for s in series.values() for v in s if v is not None]
    if not labels or not points:
        return empty(title)
    bottom = min(min(points), 0.0) if low is None else low
    top = _nice_max(max(points) - bottom) + bottom
    span = (top - bottom) or 1.0
    step = (W - PAD_L - PAD_R) / max(1, len(labels) - 1)
    parts = []
    for i in range(5):
        value = bottom + span * i / 4
        y = H - PAD_B - (H - PAD_T - PAD_B) * i / 4
        parts.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e8ef"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}{unit}</text>'
        )
    every = max(1, math.ceil(len(labels) / 8))
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(
                f'<text x="{PAD_L + i * step:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    for n, (name, values) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        path, pen = [], "M"
        for i, point in enumerate(values):
            if point is None:
                pen = "M"
                continue
            value = point
            x = PAD_L + i * step
            y = H - PAD_B - (H - PAD_T - PAD_B) * (value - bottom) / span
            path.append(f"{pen}{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>'
                f"{escape(name)} {escape(labels[i])}: {_fmt(value)}{unit}</title></circle>"
            )
            pen = "L"
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(
            f'<rect x="{PAD_L + n * 110}" y="{H - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{PAD_L + n * 110 + 14}" y="{H - 5}">{escape(name)}</text>'
        )
    return _svg(title, "".join(parts))


def heatmap(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
) -> Markup:
    """A grid of shares (0–1) shaded from white to the brand colour; empty cells stay blank."""
    if not rows:
        return empty(title)
    left, top = 110, 22
    cw = (W - left - 6) / max(1, len(columns))
    ch = 20
    height = top + ch * len(rows) + 8
    parts = []
    for j, col in enumerate(columns):
        parts.append(
            f'<text x="{left + j * cw + cw / 2:.1f}" y="{top - 8}" text-anchor="middle">'
            f"{escape(col)}</text>"
        )
    for i, row in enumerate(rows):
        y = top + i * ch
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(row)}</text>')
        for j, value in enumerate(values[i]):
            if value is None:
                continue
            shade = max(0.0, min(1.0, value))
            fill = f"rgba(11,92,173,{0.08 + 0.92 * shade:.2f})"
            ink = "#fff" if shade > 0.45 else "#1b2430"
            x = left + j * cw
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{cw - 2:.1f}" height="{ch - 2}" '
                f'fill="{fill}"><title>{escape(row)} +{escape(columns[j])}: '
                f"{value * 100:.0f}%</title></rect>"
                f'<text x="{x + cw / 2 - 1:.1f}" y="{y + 13}" text-anchor="middle" '
                f'style="fill:{ink}">{value * 100:.0f}</text>'
            )
    return _svg(title, "".join(parts), W, int(height))


def funnel(title: str, steps: Sequence[tuple[str, float]]) -> Markup:
    """Horizontal bars narrowing step by step, each with its count and share of the first."""
    if not steps or steps[0][1] <= 0:
        return empty(title)
    first = steps[0][1]
    bar_h, gap, left = 26, 8, 150
    height = len(steps) * (bar_h + gap) + 6
    parts = []
    for i, (label, value) in enumerate(steps):
        y = i * (bar_h + gap) + 4
        w = (W - left - 70) * value / first
        parts.append(
            f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 17}">{_fmt(value)} '
            f"({value / first * 100:.0f}%)</text>"
        )
    return _svg(title, "".join(parts), W, height)


def share_bars(title: str, items: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """Horizontal bars for a breakdown (channel mix, attribution), largest first."""
    items = sorted(items, key=lambda kv: -kv[1])
    if not items or max(v for _, v in items) <= 0:
        return empty(title)
    top = max(v for _, v in items)
    bar_h, gap, left = 20, 6, 120
    height = len(items) * (bar_h + gap) + 6
    parts = []
    for i, (label, value) in enumerate(items):
        y = i * (bar_h + gap) + 4
        w = (W - left - 90) * value / top
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 14}">{_fmt(value)}{unit}</text>'
        )
    return _svg(title, "".join(parts), W, height)


def empty(title: str) -> Markup:
    return _svg(
        title,
        f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">No data yet</text>',
    )


def histogram(values: Sequence[float], bins: int = 12) -> tuple[list[str], list[float]]:
    """Equal-width bins from 0 to the 98th percentile (the long tail goes in the last bin)."""
    positive = sorted(v for v in values if v > 0)
    if not positive:
        return [], []
    edge = positive[min(len(positive) - 1, int(len(positive) * 0.98))]
    width = _nice_max(edge / bins) if edge > 0 else 1.0
    counts = [0.0] * bins
    for v in positive:
        counts[min(bins - 1, int(v // width))] += 1
    labels = [_fmt(i * width) for i in range(bins)]
    labels[-1] += "+"
    return labels, counts
