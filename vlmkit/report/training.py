"""`vlmkit report RUN_DIR`: one fine-tuning run drawn on one page, from its own files.

The training loss, every metric at each evaluation by generation, and for `--objective grpo`
the reward curves: the reward and each component's mean with its spread (the band is the mean
plus and minus the standard deviation over the step's completions), the share of groups whose
completions all got the same reward (they teach nothing), and the completions' lengths. Read
from `log.jsonl` and the manifest (`vlmkit-adapter.json`, or `finetune-run.json` while the run
is unfinished), so the page needs no model library.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from vlmkit import __version__
from vlmkit.finetune.output import LOG, RUN_FILE
from vlmkit.models.sources import ADAPTER_MANIFEST
from vlmkit.records import read_run_json, read_run_log
from vlmkit.report.charts import SYSTEM_COLOURS
from vlmkit.report.plots import Series, XYChart, render_xy
from vlmkit.report.style import CSS

MANIFEST = ADAPTER_MANIFEST


def is_training_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and (path / LOG).is_file()
        and ((path / MANIFEST).is_file() or (path / RUN_FILE).is_file())
    )


def render_training_page(run_dir: Path) -> tuple[str, int]:
    """The page, and how many charts it holds."""
    manifest = read_run_json(run_dir / MANIFEST) or read_run_json(run_dir / RUN_FILE) or {}
    rows = read_run_log(run_dir / LOG)
    charts = [render_xy(chart) for chart in training_charts(rows)]
    settings = manifest.get("settings", {})
    objective = manifest.get("objective", settings.get("objective", "?"))
    model = manifest.get("base_model", manifest.get("model", "?"))
    title = f"vlmkit finetune · {run_dir.name} · {objective}"
    finished = "finished" if (run_dir / MANIFEST).is_file() else "unfinished (no manifest yet)"
    steps = max((row["step"] for row in rows if isinstance(row.get("step"), int)), default=0)
    boxes = "".join(f'<div class="chart-box">{chart}</div>' for chart in charts)
    reward = manifest.get("reward") or _reward_of(settings)
    html = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{escape(title)}</h1><p class="note">{escape(str(model))} · '
        f"{steps} steps logged · {finished} · rendered by vlmkit {escape(__version__)}</p>"
        "</header>"
        + (_reward_section(reward) if reward else "")
        + '<section id="curves"><h2>Learning curves</h2>'
        + (
            f'<div class="charts">{boxes}</div>'
            if charts
            else '<p class="note">Nothing logged yet.</p>'
        )
        + "</section>"
        + _settings_section(settings)
        + "</body></html>\n"
    )
    return html, len(charts)


def training_charts(rows: list[dict[str, Any]]) -> list[XYChart]:
    """Loss, evaluations and (GRPO) rewards, lengths and uninformative groups, by step."""
    charts = []
    loss = _series(rows, "loss", "loss", 0)
    if loss.points:
        charts.append(XYChart("training loss", "step", "loss", (loss,)))
    metrics = sorted({key.removeprefix("eval/") for row in rows for key in row
                      if key.startswith("eval/")})  # fmt: skip
    if metrics:
        series = tuple(_series(rows, f"eval/{m}", m, i) for i, m in enumerate(metrics))
        charts.append(XYChart("metrics at each evaluation (generated)", "step", "value", series))
    components = sorted({key.split("/")[1] for row in rows for key in row
                         if key.startswith("rewards/") and key.endswith("/mean")})  # fmt: skip
    if components:
        series = [_series(rows, "reward", "reward (weighted sum)", 0)]
        for i, name in enumerate(components, start=1):
            series.extend(_band(rows, f"rewards/{name}", name, i))
        charts.append(XYChart("reward per step (mean; rings: mean ± std)", "step", "reward",
                              tuple(s for s in series if s.points)))  # fmt: skip
        zero = _series(rows, "frac_reward_zero_std", "groups with one reward for all", 0)
        charts.append(XYChart("share of groups that teach nothing", "step", "share", (zero,)))
        lengths = tuple(
            _series(rows, f"completions/{k}_length", f"{k} length", i)
            for i, k in enumerate(("mean", "min", "max"))
        )
        charts.append(XYChart("completion length (tokens)", "step", "tokens", lengths))
    return charts


def _series(rows: list[dict[str, Any]], key: str, label: str, index: int) -> Series:
    points = tuple((row["step"], float(row[key])) for row in rows
                   if isinstance(row.get(key), (int, float)) and isinstance(row.get("step"), int)
                   and "train_runtime" not in row)  # fmt: skip
    return Series(label, points, SYSTEM_COLOURS[index % len(SYSTEM_COLOURS)], line=True)


def _band(rows: list[dict[str, Any]], prefix: str, label: str, index: int) -> list[Series]:
    """A component's mean, and its mean ± std as rings."""
    mean = _series(rows, f"{prefix}/mean", label, index)
    spread = {row["step"]: float(row[f"{prefix}/std"]) for row in rows
              if isinstance(row.get(f"{prefix}/std"), (int, float))}  # fmt: skip
    colour = mean.colour
    high = tuple((step, value + spread.get(step, 0.0)) for step, value in mean.points)
    low = tuple((step, value - spread.get(step, 0.0)) for step, value in mean.points)
    return [mean, Series(f"{label} + std", high, colour, hollow=True),
            Series(f"{label} - std", low, colour, hollow=True)]  # fmt: skip


def _reward_of(settings: dict[str, Any]) -> dict[str, Any] | None:
    """An unfinished run's reward, from its settings (the manifest comes at the end)."""
    from vlmkit.errors import VlmkitError
    from vlmkit.finetune.rewards import parse_reward, reward_sum

    if not settings.get("reward"):
        return None
    try:
        components = parse_reward(str(settings["reward"]))
    except VlmkitError:
        return None
    return {"components": [c.to_json() for c in components], "sum": reward_sum(components)}


def _reward_section(reward: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(c.get('name')))}</td><td>{escape(str(c.get('weight')))}</td>"
        f"<td>{escape(str(c.get('rule')))}</td></tr>"
        for c in reward.get("components", [])
    )
    return (
        '<section id="reward"><h2>Reward</h2><table><thead><tr><th>component</th>'
        f"<th>weight</th><th>reward from the metric's value</th></tr></thead>{rows}</table>"
        f'<p class="note">{escape(str(reward.get("sum", "")))}</p></section>'
    )


def _settings_section(settings: dict[str, Any]) -> str:
    if not settings:
        return ""
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(json.dumps(v))}</td></tr>"
        for k, v in sorted(settings.items())
    )
    return f'<section id="settings"><h2>Settings</h2><table>{rows}</table></section>'
