"""Chart specifications, drawn twice from one description: as inline SVG and as PNG."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from vlmkit.report.analysis import MetricInfo
from vlmkit.report.inputs import ScoresFile, is_number

BASELINE_COLOUR = "#9aa5b1"
SYSTEM_COLOURS = ("#2b6cb0", "#d97706", "#2f855a", "#9b2c2c", "#6b46c1", "#0e7490")
MAX_GROUP_BARS = 40


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    colour: str
    ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class BarChart:
    """One metric's bars; `slug` names its PNG file."""

    title: str
    slug: str
    bars: tuple[Bar, ...]
    y_label: str
    y_max: float
    subtitle: str = ""


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "chart"


def _y_max(info: MetricInfo, bars: list[Bar]) -> float:
    if info.scale == "0-1":
        return 1.0
    if info.scale == "0-100":
        return 100.0
    top = max([b.value for b in bars] + [b.ci[1] for b in bars if b.ci] + [0.0])
    if top <= 0:
        return 1.0
    # A round axis end (0.5, 1, 2, 2.5, 5, 10, ...) just above the tallest bar or whisker.
    power = 10.0 ** math.floor(math.log10(top))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= top)


def _ci(value: Any) -> tuple[float, float] | None:
    """An interval to draw: two finite numbers (a null or NaN end draws no whisker)."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(is_number, value)):
        return (float(value[0]), float(value[1]))
    return None


def metric_chart(info: MetricInfo, files: list[ScoresFile]) -> BarChart | None:
    """Baseline (of the first file that has one) and each system, with 95% CI whiskers."""
    bars: list[Bar] = []
    base_file = next((f for f in files if f.baseline_value(info.name) is not None), None)
    if base_file is not None:
        value = base_file.baseline_value(info.name)
        assert value is not None
        ci = _ci((base_file.comparison(info.name) or {}).get("baseline_ci95"))
        bars.append(Bar("baseline", value, BASELINE_COLOUR, ci))
    for i, scores in enumerate(files):
        value = scores.value(info.name)
        if value is None:
            continue
        ci = _ci((scores.comparison(info.name) or {}).get("system_ci95"))
        bars.append(Bar(scores.label, value, SYSTEM_COLOURS[i % len(SYSTEM_COLOURS)], ci))
    if not bars:
        return None
    direction = {True: "higher is better", False: "lower is better"}.get(info.higher_is_better, "")
    whiskers = any(b.ci for b in bars)
    subtitle = ", ".join(x for x in (direction, "whiskers: 95% CI" if whiskers else "") if x)
    return BarChart(
        title=info.name,
        slug=f"metric-{slugify(info.name)}",
        bars=tuple(bars),
        y_label=info.scale,
        y_max=_y_max(info, bars),
        subtitle=subtitle,
    )


def group_chart(path: str, info: MetricInfo, groups: dict[str, dict[str, Any]]) -> BarChart:
    """One bar per `--by` group: the mean per-sample value of the primary metric."""
    colour = SYSTEM_COLOURS[0]
    bars = [
        Bar(label, group["metrics"][info.name], colour)
        for label, group in groups.items()
        if group["metrics"].get(info.name) is not None
    ]
    shown = bars[:MAX_GROUP_BARS]
    subtitle = f"mean per-sample {info.name}"
    if len(bars) > len(shown):
        subtitle += f"; first {len(shown)} of {len(bars)} groups (all in the table)"
    return BarChart(
        title=f"{info.name} by {path}",
        slug=f"by-{slugify(path)}-{slugify(info.name)}",
        bars=tuple(shown),
        y_label=info.scale,
        y_max=_y_max(info, shown),
        subtitle=subtitle,
    )
