"""Bar charts as inline SVG: no script, no external font or file, every label escaped."""

from __future__ import annotations

from html import escape

from vlmkit.report.charts import BarChart

LEFT, RIGHT, TOP = 62, 16, 58
PLOT_HEIGHT = 170
BAR_SLOT = 56
ROTATE_FROM = 7  # this many bars or more: slanted labels
MAX_LABEL = 18


def _number(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def render_svg(chart: BarChart) -> str:
    n = max(len(chart.bars), 1)
    longest = max((len(_short(b.label)) for b in chart.bars), default=1)
    # Few bars: each slot as wide as its label (up to a point); many: narrow, slanted labels.
    rotate = n >= ROTATE_FROM or longest * 6.6 + 10 > 130
    slot = 30 if rotate else max(BAR_SLOT, longest * 6.6 + 10)
    bottom = 96 if rotate else 40
    width = int(max(320, LEFT + RIGHT + n * slot))
    height = TOP + PLOT_HEIGHT + bottom
    base_y = TOP + PLOT_HEIGHT

    def y(value: float) -> float:
        clipped = min(max(value, 0.0), chart.y_max)
        return base_y - PLOT_HEIGHT * clipped / chart.y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(chart.title)}">',
        f'<text x="{LEFT}" y="18" class="chart-title">{escape(chart.title)}</text>',
    ]
    if chart.subtitle:
        parts.append(f'<text x="{LEFT}" y="34" class="chart-sub">{escape(chart.subtitle)}</text>')
    for k in range(5):
        tick = chart.y_max * k / 4
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" class="tick" text-anchor="end">'
            f"{_number(tick)}</text>"
        )
    parts.append(
        f'<text x="12" y="{TOP + PLOT_HEIGHT / 2:.0f}" class="tick" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + PLOT_HEIGHT / 2:.0f})">{escape(chart.y_label)}</text>'
    )
    bar_width = slot * 0.62
    for i, bar in enumerate(chart.bars):
        cx = LEFT + slot * (i + 0.5)
        top = y(bar.value)
        ci = f", 95% CI [{_number(bar.ci[0])}, {_number(bar.ci[1])}]" if bar.ci else ""
        parts.append(
            f'<g class="bar"><title>{escape(bar.label)}: {_number(bar.value)}{escape(ci)}</title>'
            f'<rect x="{cx - bar_width / 2:.1f}" y="{top:.1f}" width="{bar_width:.1f}" '
            f'height="{base_y - top:.1f}" fill="{bar.colour}"/>'
        )
        label_y = top - 4
        if bar.ci:
            lo, hi = y(bar.ci[0]), y(bar.ci[1])
            parts.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{lo:.1f}" y2="{hi:.1f}" class="whisker"/>'
                f'<line x1="{cx - 6:.1f}" x2="{cx + 6:.1f}" y1="{lo:.1f}" y2="{lo:.1f}" '
                f'class="whisker"/><line x1="{cx - 6:.1f}" x2="{cx + 6:.1f}" y1="{hi:.1f}" '
                f'y2="{hi:.1f}" class="whisker"/>'
            )
            label_y = min(label_y, hi - 4)
        if not rotate:
            parts.append(
                f'<text x="{cx:.1f}" y="{label_y:.1f}" class="value" text-anchor="middle">'
                f"{_number(bar.value)}</text>"
            )
        label = escape(_short(bar.label))
        if rotate:
            parts.append(
                f'<text x="{cx:.1f}" y="{base_y + 12}" class="tick" text-anchor="end" '
                f'transform="rotate(-45 {cx:.1f} {base_y + 12})">{label}</text></g>'
            )
        else:
            parts.append(
                f'<text x="{cx:.1f}" y="{base_y + 16}" class="tick" text-anchor="middle">'
                f"{label}</text></g>"
            )
    parts.append(
        f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{base_y}" y2="{base_y}" class="axis"/></svg>'
    )
    return "".join(parts)
