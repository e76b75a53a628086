"""Rich tables for `vlmkit score`: the metric table, comparisons, breakdowns, per-field scores."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from vlmkit.scoring import Evaluation
from vlmkit.significance import Comparison


def fmt(value: float, scale: str) -> str:
    """Show a value at a precision that fits its scale (0-100 scores need fewer decimals)."""
    if value != value:  # NaN
        return "nan"
    return f"{value:.2f}" if scale == "0-100" else f"{value:.4f}"


def _direction(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def _signed(value: float, scale: str) -> str:
    return f"{value:+.2f}" if scale == "0-100" else f"{value:+.4f}"


def metric_table(evaluation: Evaluation, comparisons: dict[str, Comparison] | None) -> Table:
    title = f"vlmkit score · {evaluation.task} · n={evaluation.n}"
    table = Table(title=title, title_justify="left")
    # Metric names and intervals must stay on one line even in an 80-column pipe.
    table.add_column("metric", no_wrap=True)
    if comparisons:
        table.add_column("baseline", justify="right")
        table.add_column("system", justify="right")
        table.add_column("delta", justify="right", no_wrap=True)
        table.add_column("delta 95% CI", justify="right", no_wrap=True)
        table.add_column("p", justify="right")
    else:
        table.add_column("value", justify="right")
        table.add_column("scale", style="dim")
    for name, result in evaluation.results.items():
        metric = result.metric
        label = f"{name} {_direction(metric.higher_is_better)}"
        if comparisons and name in comparisons:
            c = comparisons[name]
            better = (c.delta > 0) == metric.higher_is_better and c.delta != 0
            style = ("green" if better else "red") if c.p_value < 0.05 else ""
            delta = (
                f"[{style}]{_signed(c.delta, metric.scale)}[/{style}]"
                if style
                else _signed(c.delta, metric.scale)
            )
            table.add_row(
                label,
                fmt(c.baseline, metric.scale),
                fmt(c.system, metric.scale),
                delta,
                "[{}, {}]".format(*(_signed(end, metric.scale) for end in c.delta_ci95)),
                f"{c.p_value:.3f}",
            )
        else:
            table.add_row(label, fmt(result.value, metric.scale), metric.scale)
    return table


def breakdown_table(path: str, groups: dict[str, dict[str, Any]], evaluation: Evaluation) -> Table:
    # Group labels and field names come from user files (or a model's invented keys): escape
    # them, or "[/x]" in a label would be read as rich markup and crash the table.
    table = Table(title=f"by {escape(path)}", title_justify="left")
    table.add_column(escape(path))
    table.add_column("n", justify="right")
    for name in evaluation.results:
        table.add_column(name, justify="right")
    for label, group in groups.items():
        cells = [
            fmt(group["metrics"][name], result.metric.scale)
            for name, result in evaluation.results.items()
        ]
        table.add_row(escape(label), str(group["n"]), *cells)
    return table


def field_table(per_field: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="per field (Donut semantics)", title_justify="left")
    for column in ("field", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "field" else "right")
    for name, row in per_field.items():
        table.add_row(
            escape(name),
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            str(row["support"]),
        )
    return table


def signature_lines(evaluation: Evaluation) -> list[str]:
    return [result.signature for result in evaluation.results.values()]
