"""Charts as inline SVG, drawn on the server: nothing to load, nothing from outside the box.

Each chart is an ``<svg role="img">`` with a ``<title>`` (what screen readers announce) and
the page shows the same numbers in a table beside it. Colours come from the stylesheet
(classes), so the Content-Security-Policy can forbid inline styles.
"""

from __future__ import annotations

from collections.abc import Sequence

from textback.web.html import Markup, join, render


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step:
            return float(step)
    return float(value)


def columns(title: str, bars: Sequence[tuple[str, float]], *, percent: bool = False,
            label_every: int = 1, width: int = 320, height: int = 160) -> Markup:
    """Vertical bars (one per label), value axis from 0; ``percent``: values are 0..1.
    ``width``: of the drawing (its text scales with it: match the box it is shown in)."""
    n = max(1, len(bars))
    left, bottom, top = 34, 22, 8
    plot_w, plot_h = width - left - 4, height - bottom - top
    top_value = 1.0 if percent else _nice_max(max((v for _, v in bars), default=0))
    slot = plot_w / n
    parts = []
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        tick = f"{round(frac * 100)}%" if percent else f"{frac * top_value:g}"
        parts.append(render('<line class="grid" x1="{x1}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}"/>'
                            '<text class="axis" x="{tx}" y="{ty:.1f}" text-anchor="end">{t}'
                            '</text>', x1=left, x2=width - 4, y=y, tx=left - 4, ty=y + 4,
                            t=tick))
    for i, (label, value) in enumerate(bars):
        h = plot_h * (value / top_value) if top_value else 0
        bar_w = min(slot * 0.7, 40.0)
        x = left + i * slot + (slot - bar_w) / 2
        shown = f"{round(value * 100)}%" if percent else f"{value:g}"
        parts.append(render('<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
                            'height="{h:.1f}"><title>{label}: {shown}</title></rect>',
                            x=x, y=top + plot_h - h, w=bar_w, h=h, label=label,
                            shown=shown))
        if i % label_every == 0:
            parts.append(render('<text class="axis" x="{x:.1f}" y="{y}" text-anchor="middle">'
                                '{label}</text>', x=x + bar_w / 2, y=height - 6,
                                label=label))
    return render('<svg class="chart" role="img" viewBox="0 0 {w} {h}" '
                  'preserveAspectRatio="xMinYMin meet"><title>{title}</title>{body}</svg>',
                  w=width, h=height, title=title, body=join(parts))


def funnel(title: str, steps: Sequence[tuple[str, int]]) -> Markup:
    """Horizontal bars, widest first, each with its count and share of the first step."""
    first = steps[0][1] if steps else 0
    width, row_h, label_w = 480, 30, 120
    parts = []
    for i, (label, value) in enumerate(steps):
        w = (width - label_w - 70) * (value / first) if first else 0
        share = f" ({round(100 * value / first)}%)" if first and i else ""
        y = i * row_h
        parts.append(render(
            '<text class="label" x="0" y="{ty}">{label}</text>'
            '<rect class="bar step{i}" x="{lx}" y="{y}" width="{w:.1f}" height="{bh}"/>'
            '<text class="value" x="{vx:.1f}" y="{ty}">{value}{share}</text>',
            ty=y + 19, label=label, i=i, lx=label_w, y=y + 4, w=w, bh=row_h - 8,
            vx=label_w + w + 6, value=value, share=share))
    return render('<svg class="chart funnel" role="img" viewBox="0 0 {w} {h}" '
                  'preserveAspectRatio="xMinYMin meet"><title>{title}</title>{body}</svg>',
                  w=width, h=len(steps) * row_h + 4, title=title, body=join(parts))
