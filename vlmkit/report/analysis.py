"""What the report computes from per-sample rows: group means, a letter confusion matrix, and
the worst samples by the task's primary metric."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from vlmkit.errors import UsageError
from vlmkit.report.inputs import ScoresFile, is_number
from vlmkit.scoring import MISSING_GROUP

NO_LETTER = "(none)"


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric: its direction (None when unknown) and its scale."""

    name: str
    higher_is_better: bool | None
    scale: str


def metric_info(name: str, files: list[ScoresFile]) -> MetricInfo:
    """Direction from the scores files (they record it), scale from the metric registry."""
    from vlmkit.metrics import METRICS, metric_class

    higher: bool | None = None
    for scores in files:
        recorded = (scores.data.get("higher_is_better") or {}).get(name)
        if isinstance(recorded, bool):
            higher = recorded
            break
    scale = "0-1"
    if name in METRICS:
        cls = metric_class(name)
        scale = cls.scale
        if higher is None:
            higher = cls.higher_is_better
    return MetricInfo(name, higher, scale)


def lookup(row: dict[str, Any], path: str) -> str:
    """A row's `--by` group: the value at a dotted path, as `vlmkit score --by` labels it."""
    node: Any = row
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING_GROUP
        node = node[part]
    if node is None:
        return MISSING_GROUP
    return node if isinstance(node, str) else json.dumps(node, ensure_ascii=False)


def available_fields(rows: list[dict[str, Any]]) -> list[str]:
    """The scalar `meta.*` fields of the rows, which a `--by` can group by."""
    fields: set[str] = set()
    for row in rows:
        for key, value in (row.get("meta") or {}).items():
            if not isinstance(value, (dict, list)):
                fields.add(f"meta.{key}")
    return sorted(fields)


def check_by(rows: list[dict[str, Any]], path: str) -> None:
    if any(lookup(row, path) != MISSING_GROUP for row in rows):
        return
    fields = available_fields(rows)
    raise UsageError(
        f"--by {path}: no per-sample row has that field",
        hint="available: " + (", ".join(fields) if fields else "no meta fields in these rows"),
    )


def _natural_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def group_means(
    rows: list[dict[str, Any]], path: str, metrics: list[str]
) -> dict[str, dict[str, Any]]:
    """label -> {"n", "metrics": {name: mean of per-sample values}}, groups in natural order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(lookup(row, path), []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for label in sorted(groups, key=_natural_key):
        members = groups[label]
        means = {}
        for name in metrics:
            values = [r["scores"][name] for r in members if is_number(r["scores"].get(name))]
            means[name] = sum(values) / len(values) if values else None
        out[label] = {"n": len(members), "metrics": means}
    return out


@dataclass
class Confusion:
    """Counts of (reference letter, predicted letter); predicted NO_LETTER where none was found."""

    references: list[str]
    predictions: list[str]
    counts: Counter[tuple[str, str]]

    def row_total(self, reference: str) -> int:
        return sum(self.counts[(reference, p)] for p in self.predictions)


def confusion(rows: list[dict[str, Any]], case_sensitive: bool) -> Confusion:
    """Letters extracted exactly as letter_accuracy does (vlmkit.metrics.answer.extract_letter)."""
    from vlmkit.metrics.answer import extract_letter
    from vlmkit.metrics.base import as_text

    def key(letter: str | None) -> str:
        if letter is None:
            return NO_LETTER
        return letter if case_sensitive else letter.casefold()

    counts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        reference, _ = extract_letter(as_text(row.get("reference")))
        predicted, _ = extract_letter(as_text(row.get("prediction")))
        counts[(key(reference), key(predicted))] += 1
    references = sorted({r for r, _ in counts}, key=lambda s: (s == NO_LETTER, s))
    extra = sorted({p for _, p in counts} - set(references), key=lambda s: (s == NO_LETTER, s))
    return Confusion(references, references + extra, counts)


def case_sensitive(files: list[ScoresFile]) -> bool:
    """letter_accuracy's case setting, read back from its signature."""
    signature = (files[0].data.get("signatures") or {}).get("letter_accuracy", "")
    return "case:sensitive" in str(signature).split("|")


def primary_metric(files: list[ScoresFile], rows: list[dict[str, Any]]) -> str | None:
    """The first metric of the scores file that every row scores (the task's default order puts
    the headline metric first: letter_accuracy, field_f1, cer)."""
    for name in files[0].metrics:
        if rows and all(is_number(row["scores"].get(name)) for row in rows):
            return name
    return None


def worst(rows: list[dict[str, Any]], info: MetricInfo, n: int) -> list[dict[str, Any]]:
    """The `n` worst rows by `info`'s per-sample value (file order among ties)."""
    sign = 1.0 if info.higher_is_better is not False else -1.0
    ranked = sorted(range(len(rows)), key=lambda i: (sign * rows[i]["scores"][info.name], i))
    return [rows[i] for i in ranked[:n]]
