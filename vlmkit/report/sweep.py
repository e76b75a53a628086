"""`vlmkit report SWEEP_DIR`: a sweep drawn on one page.

The ranking of the trials, the metric against each searched setting (pruned trials as rings,
at their last evaluation), Optuna's parameter importances, and the learning curves of the best
trials: the metric at each evaluation and the training loss, from each trial's own log. Read
from what the sweep wrote (sweep.json, trials.jsonl, importances.json, trials/*/log.jsonl), so
the page needs neither Optuna nor the study's storage.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from vlmkit import __version__
from vlmkit.records import read_run_json, read_run_log
from vlmkit.report.charts import SYSTEM_COLOURS, Bar, BarChart
from vlmkit.report.plots import Series, XYChart, render_xy
from vlmkit.report.style import CSS
from vlmkit.report.svg import render_svg
from vlmkit.sweep.results import ranked, shown_result

SWEEP_FILE = "sweep.json"
CURVES = 3
"""How many of the best trials' learning curves are drawn."""


def is_sweep_dir(path: Path) -> bool:
    return path.is_dir() and (path / SWEEP_FILE).is_file()


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """A JSONL file the sweep wrote (none yet: no rows; a last line cut by a kill: left out)."""
    return read_run_log(path)


def render_sweep_page(sweep_dir: Path) -> tuple[str, int]:
    """The page, and how many charts it holds."""
    meta = read_run_json(sweep_dir / SWEEP_FILE) or {}
    identity = meta.get("identity", {})
    metric, direction = identity.get("metric", "?"), identity.get("direction", "maximize")
    rows = _read_rows(sweep_dir / "trials.jsonl")
    importances = (read_run_json(sweep_dir / "importances.json") or {}).get("importances", {})
    params = list(identity.get("search", {})) or sorted({k for r in rows for k in r["params"]})
    ranked_rows = ranked(rows, direction)
    charts = [render_xy(c) for c in _param_charts(rows, params, identity, metric)]
    if importances:
        bars = tuple(Bar(name, value, SYSTEM_COLOURS[0]) for name, value in importances.items())
        charts.append(render_svg(BarChart("Parameter importance", "importance", bars,
                                          "share", 1.0, "PED-ANOVA (Optuna)")))  # fmt: skip
    curves = [render_xy(c) for c in _curves(sweep_dir, ranked_rows, metric)]
    title = f"vlmkit sweep · {meta.get('study', sweep_dir.name)} · {metric} ({direction})"
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no trials yet"
    boxes = "".join(f'<div class="chart-box">{c}</div>' for c in charts)
    curve_boxes = "".join(f'<div class="chart-box">{c}</div>' for c in curves)
    html = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{escape(title)}</h1><p class="note">{escape(summary)} · sampler '
        f"{escape(str(meta.get('sampler')))}, pruner {escape(str(meta.get('pruner')))} · study in "
        f"{escape(str(meta.get('storage')))} · rendered by vlmkit {escape(__version__)}</p>"
        "</header>"
        + '<section id="trials"><h2>Trials, best first</h2>'
        + _table(ranked_rows, params, metric)
        + "</section>"
        + '<section id="parameters"><h2>The metric against each setting</h2>'
        + '<p class="note">Filled: completed trials (their best evaluation); rings: pruned '
        "trials (their last evaluation).</p>"
        + f'<div class="charts">{boxes}</div></section>'
        + '<section id="curves"><h2>Learning curves of the best trials</h2>'
        + (
            f'<div class="charts">{curve_boxes}</div>'
            if curves
            else '<p class="note">No trial has completed yet.</p>'
        )
        + "</section>"
        + _settings_section(identity)
        + "</body></html>\n"
    )
    return html, len(charts) + len(curves)


def _shown_value(row: dict[str, Any]) -> float | None:
    shown = shown_result(row)
    return shown[0] if shown else None


def _table(rows: list[dict[str, Any]], params: list[str], metric: str) -> str:
    if not rows:
        return '<p class="note">No trials yet.</p>'
    head = "".join(f"<th>{escape(p)}</th>" for p in params)
    body = []
    rank = 0
    for row in rows:
        rank += row["state"] == "complete"
        value = _shown_value(row)
        cells = "".join(
            f'<td class="num">{escape(_fmt(row["params"].get(p)))}</td>' for p in params
        )
        duration = f"{row['duration_s']:.0f} s" if row.get("duration_s") is not None else ""
        body.append(
            f'<tr><td class="num">{rank if row["state"] == "complete" else ""}</td>'
            f'<td class="num">{row["number"]}</td>'
            f'<td class="num">{"" if value is None else f"{value:.4f}"}</td>'
            f'<td class="num">{escape(str(row.get("best_step") or ""))}</td>{cells}'
            f'<td>{escape(row["state"])}</td><td class="num">{duration}</td>'
            f"<td>{escape(str(row.get('device') or ''))}</td>"
            f"<td>{escape(str(row.get('error') or ''))[:120]}</td></tr>"
        )
    return (
        f"<table><thead><tr><th>rank</th><th>trial</th><th>{escape(metric)}</th><th>step</th>"
        f"{head}<th>state</th><th>time</th><th>device</th><th>error</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def _param_charts(
    rows: list[dict[str, Any]], params: list[str], identity: dict[str, Any], metric: str
) -> list[XYChart]:
    charts = []
    for name in params:
        spec = identity.get("search", {}).get(name, {})
        shown = [r for r in rows if name in r["params"] and _shown_value(r) is not None]
        values = [r["params"][name] for r in shown]
        numeric = values and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                 for v in values)  # fmt: skip
        categories: tuple[str, ...] = ()
        if not numeric:
            listed = spec.get("choice") or values
            categories = tuple(dict.fromkeys(str(v) for v in listed))
        log_x = bool(spec.get("log")) or (
            bool(numeric) and min(values) > 0 and max(values) / min(values) >= 100
        )

        series = (
            Series("complete", _points(shown, name, bool(numeric), "complete")),
            Series("pruned", _points(shown, name, bool(numeric), "pruned"),
                   colour=SYSTEM_COLOURS[1], hollow=True),
        )  # fmt: skip
        charts.append(XYChart(f"{metric} by {name}", name, metric,
                              tuple(s for s in series if s.points), log_x=log_x,
                              categories=categories))  # fmt: skip
    return charts


def _points(rows: list[dict[str, Any]], name: str, numeric: bool, state: str) -> tuple:
    """(the setting's value, the trial's shown metric) of the trials in `state`."""
    return tuple(
        (row["params"][name] if numeric else str(row["params"][name]), float(_shown_value(row)))
        for row in rows
        if row["state"] == state
    )


def _curves(sweep_dir: Path, ranked: list[dict[str, Any]], metric: str) -> list[XYChart]:
    best = [r for r in ranked if r["state"] == "complete"][:CURVES]
    evals, losses = [], []
    for i, row in enumerate(best):
        colour = SYSTEM_COLOURS[i % len(SYSTEM_COLOURS)]
        label = f"trial {row['number']}"
        points = tuple((step, value) for step, value in row.get("evaluations", []))
        if points:
            evals.append(Series(label, points, colour, line=True))
        log = _read_rows(sweep_dir / row["folder"] / "log.jsonl") if row.get("folder") else []
        loss = tuple((r["step"], r["loss"]) for r in log if "loss" in r and "step" in r)
        if loss:
            losses.append(Series(label, loss, colour, line=True))
    charts = []
    if evals:
        charts.append(XYChart(f"{metric} at each evaluation", "step", metric, tuple(evals)))
    if losses:
        charts.append(XYChart("training loss", "step", "loss", tuple(losses)))
    return charts


def _settings_section(identity: dict[str, Any]) -> str:
    if not identity:
        return ""
    shared = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(json.dumps(v))}</td></tr>"
        for k, v in sorted(identity.get("settings", {}).items())
    )
    searched = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(json.dumps(v))}</td></tr>"
        for k, v in identity.get("search", {}).items()
    )
    data = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(str(identity.get(k)))}</td></tr>"
        for k in ("model", "train", "split", "eval", "eval_split")
        if identity.get(k) is not None
    )
    return (
        '<section id="inputs"><h2>What was swept</h2><div class="pair">'
        f"<table><thead><tr><th colspan=2>data and model</th></tr></thead>{data}</table>"
        f"<table><thead><tr><th colspan=2>searched</th></tr></thead>{searched}</table>"
        f"<table><thead><tr><th colspan=2>shared settings</th></tr></thead>{shared}</table>"
        "</div></section>"
    )
