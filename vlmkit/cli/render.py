"""Rich tables for `vlmkit score`: the metric table, comparisons, breakdowns, per-field scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from vlmkit.scoring import Evaluation
from vlmkit.significance import Comparison


@dataclass(frozen=True)
class Style:
    """How much room the numbers get: tables try the widest style that fits the console."""

    decimals: int
    """For 0-1 scales; 0-100 scales get two fewer."""
    short_headers: bool
    borders: bool = True
    """False: no vertical rules (a dozen columns saved)."""


STYLES = (
    Style(4, False),
    Style(4, True),
    Style(3, True),
    Style(3, True, borders=False),
)


def fmt(value: float, scale: str, decimals: int = 4, sign: str = "") -> str:
    """Show a value at a precision that fits its scale (0-100 scores need fewer decimals)."""
    if value != value:  # NaN
        return "nan"
    places = max(decimals - 2, 0) if scale == "0-100" else decimals
    return f"{value:{sign}.{places}f}"


def _direction(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def fits(console: Console, renderable: Any, *, wrapping: bool = False) -> bool:
    """Whether `renderable` prints within the console's width without cutting anything.

    `wrapping`: its label column may wrap (numbers never do), so its narrowest form counts.
    """
    # Measured with room to spare: a measurement is otherwise clamped to the console's width.
    unbounded = console.options.update(max_width=10 * console.width + 1000)
    measured = Measurement.get(console, unbounded, renderable)
    return (measured.minimum if wrapping else measured.maximum) <= console.width


def metric_tables(
    console: Console, evaluation: Evaluation, comparisons: dict[str, Comparison] | None
) -> list[Any]:
    """The metric table in the widest style that fits `console`; if none fits, one small block
    per metric. No number is ever cut short (a pipe or CI log is often 80 columns or less)."""
    for style in STYLES:
        table = metric_table(evaluation, comparisons, style)
        if fits(console, table):
            return [table]
    return metric_blocks(evaluation, comparisons)


def metric_table(
    evaluation: Evaluation, comparisons: dict[str, Comparison] | None, style: Style = STYLES[0]
) -> Table:
    title = f"vlmkit score · {evaluation.task} · n={evaluation.n}"
    table = Table(title=title, title_justify="left")
    if not style.borders:
        table.box, table.show_edge, table.pad_edge = box.SIMPLE_HEAD, False, False
    # Metric names and intervals must stay on one line even in an 80-column pipe.
    table.add_column("metric", no_wrap=True)
    if comparisons:
        short = style.short_headers
        for header in ("base", "sys", "Δ", "Δ 95% CI") if short else (
            "baseline", "system", "delta", "delta 95% CI"
        ):  # fmt: skip
            table.add_column(header, justify="right", no_wrap=True)
        table.add_column("p", justify="right", no_wrap=True)
    else:
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("scale", style="dim", no_wrap=True)
    for name, result in evaluation.results.items():
        metric = result.metric
        label = f"{name} {_direction(metric.higher_is_better)}"
        if comparisons and name in comparisons:
            table.add_row(label, *_comparison_cells(comparisons[name], metric, style))
        else:
            table.add_row(label, fmt(result.value, metric.scale, style.decimals), metric.scale)
    return table


def _comparison_cells(c: Comparison, metric: Any, style: Style) -> list[str]:
    def signed(value: float) -> str:
        return fmt(value, metric.scale, style.decimals, sign="+")

    better = (c.delta > 0) == metric.higher_is_better and c.delta != 0
    colour = ("green" if better else "red") if c.p_value < 0.05 else ""
    delta = f"[{colour}]{signed(c.delta)}[/{colour}]" if colour else signed(c.delta)
    gap = "," if style.short_headers else ", "
    return [
        fmt(c.baseline, metric.scale, style.decimals),
        fmt(c.system, metric.scale, style.decimals),
        delta,
        f"[{signed(c.delta_ci95[0])}{gap}{signed(c.delta_ci95[1])}]",
        f"{c.p_value:.3f}",
    ]


def metric_blocks(evaluation: Evaluation, comparisons: dict[str, Comparison] | None) -> list[Any]:
    """One metric per block, one number per line: what fits a console of any width."""
    blocks: list[Any] = [f"vlmkit score · {evaluation.task} · n={evaluation.n}"]
    for name, result in evaluation.results.items():
        metric = result.metric
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        if comparisons and name in comparisons:
            cells = _comparison_cells(comparisons[name], metric, STYLES[0])
            keys = ("baseline", "system", "delta", "95% CI", "p")
            for key, cell in zip(keys, cells, strict=True):
                grid.add_row(f"  {key}", cell)
        else:
            grid.add_row(f"  {metric.scale}", fmt(result.value, metric.scale))
        blocks += [_heading(f"{name} {_direction(metric.higher_is_better)}"), grid]
    return blocks


def _heading(text: str) -> Table:
    """A block's title, wrapped to the width (a long group label or field name)."""
    grid = Table.grid()
    grid.add_column(overflow="fold")
    grid.add_row(f"[bold]{escape(text)}[/bold]")
    return grid


def breakdown_tables(
    console: Console, path: str, groups: dict[str, dict[str, Any]], evaluation: Evaluation
) -> list[Any]:
    """The `--by` table, its metrics split over as many tables as the console's width needs."""
    names = list(evaluation.results)
    for size in range(len(names), 0, -1):
        chunks = [names[i : i + size] for i in range(0, len(names), size)]
        tables = [breakdown_table(path, groups, evaluation, chunk) for chunk in chunks]
        if all(fits(console, table, wrapping=True) for table in tables):
            return tables
    # Narrower still: one group per block, one number per line.
    blocks: list[Any] = [f"by {escape(path)}"]
    for label, group in groups.items():
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row("  n", str(group["n"]))
        for name, result in evaluation.results.items():
            grid.add_row(f"  {name}", fmt(group["metrics"][name], result.metric.scale))
        blocks += [_heading(label), grid]
    return blocks


def breakdown_table(
    path: str,
    groups: dict[str, dict[str, Any]],
    evaluation: Evaluation,
    metrics: list[str] | None = None,
) -> Table:
    # Group labels and field names come from user files (or a model's invented keys): escape
    # them, or "[/x]" in a label would be read as rich markup and crash the table.
    table = Table(title=f"by {escape(path)}", title_justify="left")
    table.add_column(escape(path), overflow="fold", min_width=8)
    table.add_column("n", justify="right", no_wrap=True)
    names = metrics or list(evaluation.results)
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    for label, group in groups.items():
        results = [evaluation.results[name] for name in names]
        cells = [fmt(group["metrics"][r.metric.name], r.metric.scale) for r in results]
        table.add_row(escape(label), str(group["n"]), *cells)
    return table


FIELD_COLUMNS = ("precision", "recall", "f1", "support")


def field_tables(console: Console, per_field: dict[str, dict[str, Any]]) -> list[Any]:
    """The per-field table in the widest style that fits; else one block per field."""
    for style in (STYLES[0], STYLES[3]):
        table = field_table(per_field, style)
        if fits(console, table, wrapping=True):
            return [table]
    blocks: list[Any] = ["per field (Donut semantics)"]
    for name, row in per_field.items():
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        for column, cell in zip(FIELD_COLUMNS, _field_cells(row, 4), strict=True):
            grid.add_row(f"  {column}", cell)
        blocks += [_heading(name), grid]
    return blocks


def field_table(per_field: dict[str, dict[str, Any]], style: Style = STYLES[0]) -> Table:
    table = Table(title="per field (Donut semantics)", title_justify="left")
    if not style.borders:
        table.box, table.show_edge, table.pad_edge = box.SIMPLE_HEAD, False, False
    # A narrow console wraps the field names, never the numbers.
    table.add_column("field", overflow="fold", min_width=8)
    headers = ("P", "R", "F1", "n") if style.short_headers else FIELD_COLUMNS
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for name, row in per_field.items():
        table.add_row(escape(name), *_field_cells(row, style.decimals))
    return table


def _field_cells(row: dict[str, Any], decimals: int) -> list[str]:
    return [*(f"{row[k]:.{decimals}f}" for k in ("precision", "recall", "f1")), str(row["support"])]


def signature_lines(evaluation: Evaluation) -> list[str]:
    return [result.signature for result in evaluation.results.values()]
