"""The report's charts as PNG files (matplotlib, Agg backend, imported only here)."""

from __future__ import annotations

import io
from pathlib import Path

from vlmkit.errors import MissingExtraError, UsageError
from vlmkit.records import write_bytes_atomic
from vlmkit.report.charts import BarChart


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError(
            "--png needs matplotlib, which is not installed",
            hint="pip install matplotlib (or pip install 'vlmkit[dev]')",
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def render_png(chart: BarChart) -> bytes:
    plt = _pyplot()
    n = len(chart.bars)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 + 0.55 * n), 3.4), dpi=150)
    try:
        xs = list(range(n))
        values = [b.value for b in chart.bars]
        ax.bar(xs, values, color=[b.colour for b in chart.bars], width=0.62)
        with_ci = [i for i, b in enumerate(chart.bars) if b.ci]
        if with_ci:
            lows = [values[i] - chart.bars[i].ci[0] for i in with_ci]  # type: ignore[index]
            highs = [chart.bars[i].ci[1] - values[i] for i in with_ci]  # type: ignore[index]
            ax.errorbar(
                with_ci,
                [values[i] for i in with_ci],
                yerr=[[max(v, 0.0) for v in lows], [max(v, 0.0) for v in highs]],
                fmt="none",
                ecolor="#222222",
                capsize=4,
                linewidth=1,
            )
        ax.set_xticks(xs)
        ax.set_xticklabels(
            [b.label for b in chart.bars],
            rotation=45 if n >= 7 else 0,
            ha="right" if n >= 7 else "center",
        )
        ax.set_ylim(0, chart.y_max)
        ax.set_ylabel(chart.y_label)
        ax.set_title(chart.title + (f"\n{chart.subtitle}" if chart.subtitle else ""), fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        buffer = io.BytesIO()
        # No timestamp in the file: the same report gives the same bytes.
        fig.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()
    finally:
        plt.close(fig)


def chart_path(folder: Path, chart: BarChart) -> Path:
    """Where `write_pngs` puts `chart`."""
    return folder / f"{chart.slug}.png"


def write_pngs(charts: list[BarChart], folder: Path) -> list[Path]:
    """Write each chart as `folder/<slug>.png`; returns the paths written."""
    _pyplot()  # fail before creating the folder when matplotlib is missing
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"--png {folder}: {error.strerror}", hint="choose another folder"
        ) from None
    written = []
    for chart in charts:
        path = chart_path(folder, chart)
        write_bytes_atomic(path, render_png(chart))
        written.append(path)
    return written
