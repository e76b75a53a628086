"""`vlmkit report SCORES... --out report.html`: the results of `score` as one page to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlmkit.cli import console


def report_command(
    scores: Annotated[
        list[Path],
        typer.Argument(
            metavar="SCORES...",
            help="JSON files written by `vlmkit score --json` (several: systems side by side), "
            "or one SWEEP_DIR of `vlmkit sweep`, or one RUN_DIR of `vlmkit finetune`.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The HTML file to write (self-contained).")
    ],
    per_sample: Annotated[
        Path | None,
        typer.Option(
            "--per-sample",
            help="The `score --per-sample` JSONL of the first SCORES file: enables breakdowns, "
            "the letter confusion matrix and the gallery of worst samples.",
        ),
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option("--by", help="Break down by a per-sample field, e.g. meta.font (repeatable)."),
    ] = None,
    worst: Annotated[
        int, typer.Option("--worst", min=0, help="How many of the worst samples to show.")
    ] = 12,
    png: Annotated[
        Path | None,
        typer.Option("--png", help="Also write each chart as a PNG into this folder (matplotlib)."),
    ] = None,
) -> None:
    """Render scores as one self-contained HTML report: metric table, charts, breakdowns,
    a confusion matrix for letter tasks and a gallery of the worst samples.

    The page needs no network: styles and charts are inline, images are embedded. What the
    inputs cannot support (no per-sample file, no baseline, an older scores file) is said in
    the page.

    Examples:

        vlmkit report scores.json --out report.html

        vlmkit report scores.json --per-sample per-sample.jsonl --by meta.font --out report.html

        vlmkit report tuned.json other.json --out compare.html --png charts/

        vlmkit report sweeps/cord --out sweep.html

        vlmkit report runs/grpo --out grpo.html
    """
    from vlmkit.errors import UsageError
    from vlmkit.outputs import refuse_overlaps
    from vlmkit.records import check_writable, write_text_atomic
    from vlmkit.report import ReportOptions, build_report, render_page
    from vlmkit.report.png import chart_path, write_pngs

    if len(scores) == 1 and scores[0].is_dir():
        _folder_report(scores[0], out, per_sample=per_sample, by=by, png=png)
        return
    options = ReportOptions(
        scores=tuple(scores), per_sample=per_sample, by=tuple(by or ()), worst=worst
    )
    inputs = [*(("SCORES", path) for path in scores), ("--per-sample", per_sample)]
    check_writable(out, "--out")
    refuse_overlaps([("--out", out), ("--png", png)], inputs)
    if png is not None and png.exists() and not png.is_dir():
        raise UsageError(f"--png {png} is a file", hint="give --png a folder for the charts")
    report = build_report(options)
    inputs += report.sources()  # known once the scores files are read
    charts = [("--png", chart_path(png, chart)) for chart in report.all_charts] if png else []
    refuse_overlaps([("--out", out), *charts], inputs)
    for _, chart in charts:  # every output checked before the first is written
        if out.absolute() in chart.absolute().parents:
            raise UsageError(
                f"--png {png} is inside --out {out}, the page's own file",
                hint="give --png a folder beside the page, e.g. --png charts/",
            )
        check_writable(chart, "--png")
    html = render_page(report)
    # Files first: the summary line is worth nothing if writing failed.
    write_text_atomic(out, html)
    written = []
    if png is not None:
        written = write_pngs(report.all_charts, png)
        console.note(f"wrote {len(written)} PNG charts to {png}")
    for notice in report.notices:
        console.warn(notice)
    parts = [f"{len(report.files)} system{'s' if len(report.files) > 1 else ''}"]
    parts.append(f"{len(report.metrics)} metrics")
    if report.rows is not None:
        parts.insert(0, f"{len(report.rows)} samples")
        parts.append(f"{len(report.gallery)} in the gallery")
    if report.breakdowns:
        parts.append(f"{len(report.breakdowns)} breakdowns")
    if report.notices:
        parts.append(f"{len(report.notices)} notices")
    console.write_stdout(f"Wrote {out} ({', '.join(parts)})\n")


def _folder_report(
    folder: Path, out: Path, *, per_sample: Path | None, by: list[str] | None, png: Path | None
) -> None:
    """A sweep's page (ranking, the metric against each setting, importances, curves), or a
    fine-tuning run's (loss, evaluations, GRPO's rewards)."""
    from vlmkit.errors import UsageError
    from vlmkit.outputs import refuse_overlaps
    from vlmkit.records import check_writable, write_text_atomic
    from vlmkit.report.sweep import SWEEP_FILE, is_sweep_dir, render_sweep_page
    from vlmkit.report.training import LOG, is_training_dir, render_training_page

    if is_sweep_dir(folder):
        render, what = render_sweep_page, "the sweep"
    elif is_training_dir(folder):
        render, what = render_training_page, "the fine-tuning run"
    else:
        raise UsageError(
            f"{folder} is a folder with neither {SWEEP_FILE} nor a run's {LOG}: not a sweep's "
            "or a fine-tuning run's",
            hint="give the --out folder of `vlmkit sweep` or `vlmkit finetune`, or scores "
            "files of `vlmkit score`",
        )
    given = [flag for flag, value in (("--per-sample", per_sample), ("--by", by), ("--png", png))
             if value]  # fmt: skip
    if given:
        raise UsageError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to scores files, "
            f"not to {what}",
            hint=f"leave them out for {folder}",
        )
    check_writable(out, "--out")
    refuse_overlaps([("--out", out)], [("the folder", folder)])
    html, charts = render(folder)
    write_text_atomic(out, html)
    plural = "" if charts == 1 else "s"
    console.write_stdout(f"Wrote {out} ({what} in {folder}: {charts} chart{plural})\n")
