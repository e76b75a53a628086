"""`build_report`: read the inputs, compute every part the inputs allow, and say what is missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.errors import UsageError
from vlmkit.outputs import dataset_image_folders
from vlmkit.records import METADATA_FILE
from vlmkit.report import analysis
from vlmkit.report.analysis import Confusion, MetricInfo
from vlmkit.report.charts import BarChart, group_chart, metric_chart
from vlmkit.report.inputs import (
    ScoresFile,
    find_input,
    label_systems,
    load_per_sample,
    load_predictions,
    load_scores,
)
from vlmkit.report.media import char_diff, image_data_uri


@dataclass(frozen=True)
class ReportOptions:
    """What `vlmkit report` was asked for."""

    scores: tuple[Path, ...]
    """Scores files from `vlmkit score --json`, one per system."""
    per_sample: Path | None = None
    """The `--per-sample` JSONL of the first scores file."""
    by: tuple[str, ...] = ()
    """Dotted paths into the per-sample rows to break the metrics down by (meta.font)."""
    worst: int = 12
    """How many of the worst samples the gallery shows."""

    def __post_init__(self) -> None:
        if not self.scores:
            raise UsageError("no SCORES file given", hint="vlmkit report scores.json --out r.html")
        if self.worst < 0:
            raise UsageError(f"--worst {self.worst}: must be 0 or more", hint="e.g. --worst 12")
        if self.by and self.per_sample is None:
            raise UsageError(
                "--by needs --per-sample (breakdowns are computed from per-sample scores)",
                hint="pass the file written by `vlmkit score ... --per-sample FILE`",
            )


@dataclass
class GalleryItem:
    row: dict[str, Any]
    score: float
    image: str | None
    """A data URI, or None when the image is missing (then `image_path` says which)."""
    image_path: str
    diff: str
    baseline_prediction: str | None


@dataclass
class Report:
    """Everything the page shows, computed once; `notices` list what could not be shown."""

    files: list[ScoresFile]
    metrics: list[MetricInfo]
    charts: list[BarChart]
    notices: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] | None = None
    primary: MetricInfo | None = None
    breakdowns: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    group_charts: list[BarChart] = field(default_factory=list)
    confusion: Confusion | None = None
    gallery: list[GalleryItem] = field(default_factory=list)

    @property
    def all_charts(self) -> list[BarChart]:
        return self.charts + self.group_charts

    def sources(self) -> list[tuple[str, Path | None]]:
        """What the page reads besides SCORES: the files each scores file names (its
        predictions, references, baseline) and the dataset folder its images come from."""
        found = []
        for scores in self.files:
            baseline = (scores.data.get("baseline") or {}).get("predictions")
            for what, recorded in (("predictions", scores.input_path("predictions")),
                                   ("references", scores.input_path("references")),
                                   ("baseline", baseline)):  # fmt: skip
                path = find_input(recorded, scores.path)
                if path is not None:
                    found.append((f"the {what} {scores.path} names", path))
                    if what == "references" and path.name == METADATA_FILE:
                        found += dataset_image_folders(path, "its images")
        return found


def build_report(options: ReportOptions) -> Report:
    files = [load_scores(path) for path in options.scores]
    label_systems(files)
    notices = [notice for scores in files for notice in scores.notices]
    if (
        len({str(f.data.get("task")) for f in files}) > 1
        or len({f.data.get("n") for f in files}) > 1
    ):
        notices.append("the scores files differ in task or sample count: compare with care")
    baselines = {str(f.data["baseline"].get("predictions")) for f in files if f.has_baseline}
    if len(baselines) > 1:
        notices.append("the scores files have different baselines: each delta is against its own")

    names: list[str] = []
    for scores in files:
        names += [n for n in scores.metrics if n not in names]
    numeric = [n for n in names if any(f.value(n) is not None for f in files)]
    if len(numeric) < len(names):
        skipped = ", ".join(n for n in names if n not in numeric)
        notices.append(f"not a single number, so not shown: {skipped}")
    infos = [analysis.metric_info(n, files) for n in numeric]
    charts = [c for c in (metric_chart(info, files) for info in infos) if c is not None]
    if not any(f.has_baseline for f in files):
        notices.append(
            "no baseline in the scores file: run `vlmkit score --baseline BASE.jsonl` "
            "for deltas and confidence intervals"
        )
    report = Report(files, infos, charts, notices)

    if options.per_sample is None:
        notices.append(
            "no --per-sample file: the per-group breakdowns, the confusion matrix and the gallery "
            "of worst samples need the rows written by `vlmkit score --per-sample FILE`"
        )
        return report
    rows = load_per_sample(options.per_sample, files[0])
    for path in options.by:
        analysis.check_by(rows, path)
    report.rows = rows
    primary_name = analysis.primary_metric(files, rows)
    report.primary = next((i for i in infos if i.name == primary_name), None)
    sample_metrics = [i.name for i in infos if rows and i.name in rows[0]["scores"]]
    for path in options.by:
        groups = analysis.group_means(rows, path, sample_metrics)
        report.breakdowns[path] = groups
        if report.primary is not None:
            report.group_charts.append(group_chart(path, report.primary, groups))
    if files[0].data.get("task") == "letter":
        report.confusion = analysis.confusion(rows, analysis.case_sensitive(files))
    if report.primary is None:
        notices.append("no metric has a number for every sample: no gallery of worst samples")
    elif options.worst:
        report.gallery = _gallery(files[0], rows, report.primary, options.worst, notices)
    return report


def _gallery(
    scores: ScoresFile, rows: list[dict[str, Any]], info: MetricInfo, n: int, notices: list[str]
) -> list[GalleryItem]:
    from vlmkit.metrics.base import as_text

    references = find_input(scores.input_path("references"), scores.path)
    recorded = scores.input_path("references") or ""
    root = references.parent if references is not None else Path(recorded).parent
    baseline = load_predictions(
        find_input((scores.data.get("baseline") or {}).get("predictions"), scores.path)
    )
    items = []
    missing = 0
    for row in analysis.worst(rows, info, n):
        image, image_path = None, ""
        if isinstance(row.get("file_name"), str):
            image_path = str(root / row["file_name"])
            image = image_data_uri(Path(image_path))
            missing += image is None
        reference, prediction = as_text(row.get("reference")), as_text(row.get("prediction"))
        items.append(
            GalleryItem(
                row=row,
                score=float(row["scores"][info.name]),
                image=image,
                image_path=image_path,
                diff=char_diff(reference, prediction),
                baseline_prediction=baseline.get(row["id"]),
            )
        )
    if missing:
        notices.append(f"{missing} gallery images could not be read (placeholders shown)")
    return items
