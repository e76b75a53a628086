"""The report as one self-contained HTML page: inline CSS and SVG, images as data URIs, no script.

Every string that comes from a user file (ids, predictions, paths, group labels) goes through
`html.escape`; the only markup not built here is the SVG (escaped in vlmkit.report.svg) and the
diff (escaped in vlmkit.report.media).
"""

from __future__ import annotations

from html import escape
from typing import Any

from vlmkit import __version__
from vlmkit.report.analysis import NO_LETTER, MetricInfo
from vlmkit.report.build import GalleryItem, Report
from vlmkit.report.inputs import ScoresFile, is_number
from vlmkit.report.style import CSS
from vlmkit.report.svg import render_svg


def fmt(value: Any, scale: str) -> str:
    if not is_number(value):
        return "–"
    return f"{value:.2f}" if scale == "0-100" else f"{value:.4f}"


def signed(value: float, scale: str) -> str:
    return f"{value:+.2f}" if scale == "0-100" else f"{value:+.4f}"


def arrow(info: MetricInfo) -> str:
    return {True: " ↑", False: " ↓"}.get(info.higher_is_better, "")


def _delta_cells(scores: ScoresFile, info: MetricInfo) -> str:
    c = scores.comparison(info.name)
    if not c or not is_number(c.get("delta")):
        return '<td class="num">–</td>' * 3
    delta, p = float(c["delta"]), c.get("p_value")
    css = ""
    if is_number(p) and p < 0.05 and delta != 0 and info.higher_is_better is not None:
        css = " better" if (delta > 0) == info.higher_is_better else " worse"
    ci = c.get("delta_ci95")
    ci_text = (
        f"[{signed(ci[0], info.scale)}, {signed(ci[1], info.scale)}]"
        if isinstance(ci, list) and len(ci) == 2 and all(is_number(v) for v in ci)
        else "–"
    )
    p_text = f"{p:.3f}" if is_number(p) else "–"
    return (
        f'<td class="num delta{css}">{signed(delta, info.scale)}</td>'
        f'<td class="num">{ci_text}</td><td class="num">{p_text}</td>'
    )


def metric_table(report: Report) -> str:
    files = report.files
    base = next((f for f in files if f.has_baseline), None)
    head = ["<th>metric</th>"] + (['<th class="num">baseline</th>'] if base else [])
    for f in files:
        head.append(f'<th class="num">{escape(f.label)}</th>')
        if f.has_baseline:
            head.append('<th class="num">delta</th><th class="num">delta 95% CI</th>')
            head.append('<th class="num">p</th>')
    body = []
    for info in report.metrics:
        cells = [f'<th scope="row">{escape(info.name)}{arrow(info)}</th>']
        if base:
            cells.append(f'<td class="num">{fmt(base.baseline_value(info.name), info.scale)}</td>')
        for f in files:
            cells.append(f'<td class="num system">{fmt(f.value(info.name), info.scale)}</td>')
            if f.has_baseline:
                cells.append(_delta_cells(f, info))
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = ""
    if base:
        method = escape(str(base.data.get("comparison_method", "paired bootstrap")))
        note = (
            f'<p class="note">delta = system − baseline; 95% CI and p from a {method}. '
            'Deltas with p &lt; 0.05 are coloured: <span class="better">better</span>, '
            '<span class="worse">worse</span>. ↑ higher is better, ↓ lower is better.</p>'
        )
    return (
        '<table class="metrics" id="metric-table"><thead><tr>' + "".join(head) + "</tr></thead>"
        "<tbody>" + "".join(body) + "</tbody></table>" + note
    )


def inputs_section(report: Report) -> str:
    rows = []
    for f in report.files:
        d = f.data
        baseline = (d.get("baseline") or {}).get("predictions")
        fields = [
            ("scores file", str(f.path)),
            ("predictions", f.input_path("predictions")),
            ("references", f.input_path("references")),
            ("baseline", baseline),
            ("task", d.get("task")),
            ("samples", d.get("n")),
            ("aggregation", d.get("aggregation")),
            ("missing / errored predictions",
             f"{d.get('missing_predictions', '?')} / {d.get('errored_predictions', '?')}"),
            ("written by", f"vlmkit {d.get('vlmkit_version', '?')}"),
        ]  # fmt: skip
        items = "".join(
            f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in fields if v is not None
        )
        sigs = "".join(
            f"<li><code>{escape(str(s))}</code></li>" for s in (d.get("signatures") or {}).values()
        )
        sig_block = f'<p class="note">signatures</p><ul class="sigs">{sigs}</ul>' if sigs else ""
        rows.append(
            f'<div class="system"><h3>{escape(f.label)}</h3><dl>{items}</dl>{sig_block}</div>'
        )
    return (
        '<section id="inputs"><h2>Inputs</h2><div class="systems">'
        + "".join(rows)
        + "</div></section>"
    )


def breakdown_section(report: Report) -> str:
    if not report.breakdowns:
        return ""
    parts = [
        '<section id="breakdowns"><h2>Breakdowns</h2><p class="note">Means of per-sample values '
        "within each group (for corpus metrics such as cer these differ from the pooled values "
        "above); n = samples.</p>"
    ]
    charts = {c.title: c for c in report.group_charts}
    infos = [i for i in report.metrics if report.rows and i.name in report.rows[0]["scores"]]
    for path, groups in report.breakdowns.items():
        head = "".join(f'<th class="num">{escape(i.name)}{arrow(i)}</th>' for i in infos)
        body = "".join(
            f'<tr><th scope="row">{escape(label)}</th><td class="num">{g["n"]}</td>'
            + "".join(
                f'<td class="num">{fmt(g["metrics"].get(i.name), i.scale)}</td>' for i in infos
            )
            + "</tr>"
            for label, g in groups.items()
        )
        chart = charts.get(f"{report.primary.name} by {path}") if report.primary else None
        parts.append(
            f'<h3>by {escape(path)}</h3><div class="pair"><table class="breakdown">'
            f'<thead><tr><th>{escape(path)}</th><th class="num">n</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
            + (f'<div class="chart-box">{render_svg(chart)}</div>' if chart else "")
            + "</div>"
        )
    return "".join(parts) + "</section>"


def field_section(report: Report) -> str:
    """Per-field F1 (JSON tasks), from `score`'s own details: baseline and each system."""
    systems = [(f.label, _per_field(f.data)) for f in report.files]
    if not any(fields for _, fields in systems):
        return ""
    baseline = _per_field(report.files[0].data.get("baseline") or {})
    columns = ([("baseline", baseline)] if baseline else []) + systems
    names = sorted({name for _, fields in columns for name in fields})
    head = "".join(f'<th class="num">{escape(label)} F1</th>' for label, _ in columns)
    body = "".join(
        f'<tr><th scope="row">{escape(name)}</th>'
        f'<td class="num">{_support(columns, name)}</td>'
        + "".join(
            f'<td class="num">{fmt((fields.get(name) or {}).get("f1"), "0-1")}</td>'
            for _, fields in columns
        )
        + "</tr>"
        for name in names
    )
    return (
        '<section id="fields"><h2>Per field</h2><p class="note">Field F1 with Donut\'s '
        "semantics (exact leaf values, micro-averaged), as vlmkit score computed it; "
        "support = reference values.</p>"
        '<table class="breakdown"><thead><tr><th>field</th><th class="num">support</th>'
        + head
        + f"</tr></thead><tbody>{body}</tbody></table></section>"
    )


def _per_field(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = ((data.get("details") or {}).get("field_f1") or {}).get("per_field")
    return found if isinstance(found, dict) else {}


def _support(columns: list[tuple[str, dict[str, Any]]], name: str) -> str:
    for _, fields in columns:
        support = (fields.get(name) or {}).get("support")
        if isinstance(support, int):
            return str(support)
    return ""


def confusion_section(report: Report) -> str:
    c = report.confusion
    if c is None:
        return ""
    head = "".join(f"<th>{escape(p)}</th>" for p in c.predictions)
    body = []
    for r in c.references:
        total = c.row_total(r) or 1
        cells = []
        for p in c.predictions:
            count = c.counts[(r, p)]
            share = count / total
            kind = "hit" if p == r else "miss"
            style = f' style="--share:{share:.3f}"' if count else ""
            title = f"reference {r}, predicted {p}: {count} of {total}"
            cells.append(
                f'<td class="cell {kind}"{style} title="{escape(title)}">{count or ""}</td>'
            )
        body.append(f'<tr><th scope="row">{escape(r)}</th>{"".join(cells)}</tr>')
    return (
        '<section id="confusion"><h2>Confusion matrix</h2><p class="note">Rows: reference letter; '
        "columns: the letter extracted from the prediction as letter_accuracy extracts it "
        f"({escape(NO_LETTER)}: none found). Shade: share of the row.</p>"
        '<table class="confusion"><thead><tr><th>ref \\ pred</th>'
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></section>"
    )


def _card(item: GalleryItem, info: MetricInfo) -> str:
    row = item.row
    if item.image:
        picture = f'<img src="{item.image}" alt="{escape(str(row["id"]))}">'
    else:
        where = item.image_path or "(no file_name in the row)"
        picture = f'<div class="placeholder">image not found: {escape(where)}</div>'
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    meta_text = ", ".join(
        f"{k}={v}" for k, v in list(meta.items())[:8] if not isinstance(v, (dict, list))
    )
    baseline = ""
    if item.baseline_prediction is not None:
        baseline = f"<dt>baseline</dt><dd><pre>{escape(item.baseline_prediction)}</pre></dd>"
    flags = " (missing prediction)" if row.get("missing") else ""
    if row.get("error"):
        flags = f" (error: {row['error']})"
    return (
        f'<figure class="sample">{picture}<figcaption>'
        f'<p class="sid">{escape(str(row["id"]))}{escape(flags)}</p>'
        f'<p class="score">{escape(info.name)} = {fmt(item.score, info.scale)}</p>'
        f"<dl><dt>prediction</dt><dd><pre>{escape(str(row.get('prediction', '')))}</pre></dd>"
        f"<dt>reference</dt><dd><pre>{escape(str(row.get('reference', '')))}</pre></dd>"
        f'{baseline}<dt>diff</dt><dd><pre class="diff">{item.diff}</pre></dd></dl>'
        + (f'<p class="meta">{escape(meta_text)}</p>' if meta_text else "")
        + "</figcaption></figure>"
    )


def gallery_section(report: Report) -> str:
    if not report.gallery or report.primary is None:
        return ""
    info = report.primary
    order = "lowest" if info.higher_is_better is not False else "highest"
    cards = "".join(_card(item, info) for item in report.gallery)
    return (
        f'<section id="gallery"><h2>Worst {len(report.gallery)} samples</h2>'
        f'<p class="note">By {escape(info.name)}, {order} first. Diff: reference → prediction, '
        "<del>missing</del> and <ins>extra</ins> characters.</p>"
        f'<div class="gallery">{cards}</div></section>'
    )


def render_page(report: Report) -> str:
    first = report.files[0]
    title = f"vlmkit report · {first.data.get('task', '?')} · n={first.data.get('n', '?')}"
    systems = ", ".join(f.label for f in report.files)
    notices = "".join(f'<div class="notice">{escape(n)}</div>' for n in report.notices)
    charts = "".join(f'<div class="chart-box">{render_svg(c)}</div>' for c in report.charts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{escape(title)}</h1><p class="note">systems: {escape(systems)} · '
        f"rendered by vlmkit {escape(__version__)}</p></header>"
        + (f'<section id="notices">{notices}</section>' if notices else "")
        + '<section id="metrics"><h2>Metrics</h2>'
        + metric_table(report)
        + f'<div class="charts">{charts}</div></section>'
        + breakdown_section(report)
        + field_section(report)
        + confusion_section(report)
        + gallery_section(report)
        + inputs_section(report)
        + "</body></html>\n"
    )
