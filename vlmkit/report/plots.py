"""Scatter and line charts as inline SVG (the sweep page's): numeric, log or categorical x."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

from vlmkit.report.charts import SYSTEM_COLOURS

WIDTH, HEIGHT = 360, 250
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 40, 44


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[float | str, float], ...]
    colour: str = SYSTEM_COLOURS[0]
    line: bool = False
    hollow: bool = False
    """Drawn as rings (pruned trials: their last evaluation, not a final value)."""


@dataclass(frozen=True)
class XYChart:
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    log_x: bool = False
    subtitle: str = ""
    categories: tuple[str, ...] = field(default=())
    """Set for a categorical x: the values in order, evenly spaced."""


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * k / count for k in range(count + 1)]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100000 or abs(value) < 0.01:
        return f"{value:.0e}"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.3g}"


def render_xy(chart: XYChart) -> str:
    points = [p for s in chart.series for p in s.points]
    ys = [float(y) for _, y in points] or [0.0]
    y_low, y_high = min(ys), max(ys)
    if y_high == y_low:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    pad = (y_high - y_low) * 0.08
    y_low, y_high = y_low - pad, y_high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    if chart.categories:
        slots = {c: i for i, c in enumerate(chart.categories)}

        def x(value: float | str) -> float:
            return LEFT + plot_w * (slots[str(value)] + 0.5) / len(slots)

        x_ticks = [(x(c), c) for c in chart.categories]
    else:
        xs = [float(v) for v, _ in points] or [0.0]
        scale = (lambda v: math.log10(v)) if chart.log_x else (lambda v: v)
        x_low, x_high = scale(min(xs)), scale(max(xs))
        if x_high == x_low:
            x_low, x_high = x_low - 1, x_high + 1

        def x(value: float | str) -> float:
            return LEFT + plot_w * (scale(float(value)) - x_low) / (x_high - x_low)

        ticks = _ticks(x_low, x_high)
        x_ticks = [(LEFT + plot_w * (t - x_low) / (x_high - x_low),
                    _label(10**t if chart.log_x else t)) for t in ticks]  # fmt: skip

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - y_low) / (y_high - y_low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}">',
        f'<text x="{LEFT}" y="16" class="chart-title">{escape(chart.title)}</text>',
    ]
    if chart.subtitle:
        parts.append(f'<text x="{LEFT}" y="31" class="chart-sub">{escape(chart.subtitle)}</text>')
    for tick in _ticks(y_low + pad, y_high - pad):
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>'
            f'<text x="{LEFT - 5}" y="{ty + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(_label(tick))}</text>"
        )
    for tx, label in x_ticks:
        parts.append(
            f'<text x="{tx:.1f}" y="{HEIGHT - BOTTOM + 15}" class="tick" '
            f'text-anchor="middle">{escape(str(label)[:14])}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" class="tick" '
        f'text-anchor="middle">{escape(chart.x_label)}</text>'
        f'<text x="12" y="{TOP + plot_h / 2:.0f}" class="tick" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2:.0f})">{escape(chart.y_label)}</text>'
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" class="axis"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
        'class="axis"/>'
    )
    for series in chart.series:
        coords = [(x(px), y(float(py))) for px, py in series.points]
        if series.line and len(coords) > 1:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{series.colour}" '
                'stroke-width="1.8"/>'
            )
        fill = "none" if series.hollow else series.colour
        radius = 2 if series.line and len(coords) > 12 else 4  # a dense curve: small dots
        for (cx, cy), (px, py) in zip(coords, series.points, strict=True):
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{radius}" fill="{fill}" '
                f'stroke="{series.colour}" stroke-width="1.5"><title>'
                f"{escape(series.label)}: {escape(str(px))} → {py:.4g}</title></circle>"
            )
    legend_x = LEFT + 4
    for series in chart.series if len(chart.series) > 1 else ():
        parts.append(
            f'<text x="{legend_x}" y="{TOP - 2}" class="tick" fill="{series.colour}" '
            f'style="fill:{series.colour}">{escape(series.label[:16])}</text>'
        )
        legend_x += 8 + 6.2 * min(len(series.label), 16)
    parts.append("</svg>")
    return "".join(parts)
