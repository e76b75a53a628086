"""The `score` engine: join predictions to references by id, compute metrics, break them down.

Nothing here prints. Input problems raise `InputError` naming `path:line` and the fix; a
prediction that is missing for a reference counts as empty (reported), unless `strict`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vlmkit import __version__
from vlmkit.errors import InputError, UsageError
from vlmkit.metrics import ANNOTATED_ANSWERS, TASK_DEFAULTS, default_metric_names, metric_class
from vlmkit.metrics.base import Batch, Metric, MetricOptions
from vlmkit.records import (
    ANSWERS_FIELD,
    Line,
    acceptable_answers,
    field_value,
    has_field,
    json_kind,
    record_id,
    require_field,
    resolve_jsonl,
)
from vlmkit.tables import iter_records

log = logging.getLogger(__name__)

Aggregation = Literal["corpus", "mean"]
DEFAULT_REF_FIELD = "target"
MISSING_GROUP = "(missing)"


@dataclass(frozen=True)
class ScoreConfig:
    """How to read the inputs and what to compute."""

    metrics: tuple[str, ...] | None = None
    """Metric names; None picks the task's defaults."""
    task: str | None = None
    """Overrides the references' `task` field when choosing default metrics."""
    aggregation: Aggregation = "corpus"
    """`corpus` pools statistics (jiwer, sacrebleu); `mean` averages per-sample values."""
    options: MetricOptions = field(default_factory=MetricOptions)
    id_field: str = "id"
    pred_field: str = "prediction"
    ref_field: str = "target"  # DEFAULT_REF_FIELD
    pred_format: str | None = None
    """The predictions files' format (`--format`); None: from each file's name or content."""
    pred_id_field: str | None = None
    """The predictions' id field where it differs from REFS' (a peer's file against a vlmkit
    dataset: lmms-eval's `doc_id`, VLMEvalKit's `index`); None: `id_field`."""
    join_by: str = "id"
    """`id` (always, unless asked); `line`: the N-th prediction answers the N-th reference, for
    files without ids (LLaMA-Factory's), only when both hold as many records."""
    strict: bool = False
    """A reference without a prediction is an error instead of an empty prediction."""

    def __post_init__(self) -> None:
        if self.aggregation not in ("corpus", "mean"):
            raise UsageError(
                f"--aggregation: unknown value {self.aggregation!r}", hint="use corpus or mean"
            )


@dataclass(frozen=True)
class Reference:
    id: str
    value: Any
    task: str | None
    record: dict[str, Any]
    where: str
    answers: tuple[str, ...] | None = None
    """Every acceptable answer (a VQA record's `answers`, or a references field that is a list
    of them), None where the reference alone is the answer."""


@dataclass
class Joined:
    """References in file order with their predictions (empty where missing)."""

    references: list[Reference]
    predictions: list[Any]
    prediction_records: list[dict[str, Any] | None]
    missing: list[str]
    errored: list[str]
    prediction_path: Path
    reference_path: Path
    notes: list[str] = field(default_factory=list)
    """What was decided about the inputs that the user should hear (a reference field found)."""
    prediction_paths: list[Path] = field(default_factory=list)
    """Every predictions file read (the shards of a run), `prediction_path` the first."""

    @property
    def predictions_label(self) -> str:
        """The predictions files, as messages name them."""
        more = len(self.prediction_paths) - 1
        return f"{self.prediction_path}" + (f" (+{more} more)" if more > 0 else "")

    @property
    def ids(self) -> list[str]:
        return [ref.id for ref in self.references]

    @property
    def truncated(self) -> list[str]:
        """Ids whose answer was cut by the token limit (`truncated` in its line)."""
        return [ref.id for ref, record in zip(self.references, self.prediction_records,
                                              strict=True)
                if record and record.get("truncated") is True]  # fmt: skip


def _duplicate(line: Line, rid: str, first: str, role: str) -> InputError:
    return InputError(
        f"{line.where}: duplicate id {rid!r} in {role} (first seen at {first})",
        hint="ids must be unique; remove or rename one of the two lines",
    )


def answer_value(line: Line, field: str, flag: str, *, role: str) -> str | dict[str, Any] | None:
    """A prediction or reference as scored: a string, or a JSON object (a structured answer).

    A number, a list or a boolean is refused, naming the line: scoring `42` or an evaluation
    harness' list of responses (`["A", "B"]`) as text would give a number that means nothing.
    A null prediction means "no prediction" (scored as empty, reported); a null reference has
    no such meaning.
    """
    if role == "reference":
        require_field(line, field, flag=flag)
    value = field_value(line.data, field)
    if isinstance(value, (str, dict)) or (value is None and role == "prediction"):
        return value
    hint = (
        "write the answer itself as a string (of a harness' list of answers, the one to score)"
        if isinstance(value, list)
        else f"write the {role} as a string (JSON answers as objects or JSON text)"
    )
    raise InputError(
        f"{line.where}: {role} field {field!r} is {json_kind(value)}, not text", hint=hint
    )


REFERENCE_FIELDS = ("reference", "answer", "answers", "label", "ground_truth")
"""Where references files without `target` keep the reference, by other tools' habits."""


def load_references(path: Path, config: ScoreConfig) -> tuple[Path, list[Reference], list[str]]:
    """Read REFS: a dataset folder, its metadata.jsonl, or any JSONL with an id and a reference.
    Also returns notes on what was decided (the reference field, when it was found)."""
    jsonl = resolve_jsonl(path, role="references", flag="REFS")
    seen: dict[str, str] = {}
    refs: list[Reference] = []
    notes: list[str] = []
    ref_field = config.ref_field
    for line in iter_records(jsonl):
        if not refs:
            ref_field = _reference_field(line, config.ref_field, notes)
        if config.join_by == "line" and not has_field(line.data, config.id_field):
            rid = f"#{len(refs) + 1}"  # by position: the record's place is its id
        else:
            rid = record_id(line, config.id_field)
        if rid in seen:
            raise _duplicate(line, rid, seen[rid], "references")
        seen[rid] = line.where
        value, answers = _reference_answers(line, ref_field)
        task = line.data.get("task")
        refs.append(
            Reference(rid, value, str(task) if task else None, line.data, line.where, answers)
        )
    if not refs:
        raise InputError(f"references {jsonl} has no records", hint="check REFS points at data")
    return jsonl, refs, notes


def _reference_answers(line: Line, ref_field: str) -> tuple[Any, tuple[str, ...] | None]:
    """(the reference, its acceptable answers): a references field that is a list of strings
    (in a vqa record, or one without a task) is the answers, its first the reference text; else
    the field, with the record's `answers` list beside it when it has one."""
    require_field(line, ref_field, flag="--ref-field")
    # A list is a question's acceptable answers (a peer's `answers`, lmms-eval's list target);
    # a record of another task keeps its old meaning: not text, an error naming the line.
    task = line.data.get("task")
    if isinstance(field_value(line.data, ref_field), list) and task in (None, "vqa"):
        answers = acceptable_answers(line, ref_field)
        assert answers is not None  # a list is either answers or an error
        return answers[0], answers
    value = answer_value(line, ref_field, "--ref-field", role="reference")
    return value, acceptable_answers(line, ANSWERS_FIELD)


def _by_position(
    lines: list[Line],
    refs: list[Reference],
    files: list[Path],
    ref_jsonl: Path,
    config: ScoreConfig,
) -> dict[str, Line]:
    """`--join line`: the N-th prediction for the N-th reference, when there are as many."""
    if len(lines) != len(refs):
        named = ", ".join(map(str, files))
        raise InputError(
            f"--join line: {named} holds {len(lines):,} records and {ref_jsonl} {len(refs):,}: "
            "they cannot be paired by position",
            hint="give the whole predictions file (every shard), or join by id "
            "(--id-field) where both files have one",
        )
    for ref, line in zip(refs, lines, strict=True):
        if not has_field(line.data, config.pred_field) and "error" not in line.data:
            require_field(line, config.pred_field, flag="--pred-field")
        own = field_value(line.data, config.pred_id_field or config.id_field)
        if own is not None and not ref.id.startswith("#") and str(own) != ref.id:
            raise InputError(
                f"{line.where}: --join line pairs it with {ref.where}, whose id {ref.id!r} is "
                f"not its own {str(own)!r}",
                hint="both files carry ids: join by id (leave --join out)",
            )
    return {ref.id: line for ref, line in zip(refs, lines, strict=True)}


def _reference_field(line: Line, asked: str, notes: list[str]) -> str:
    """`asked`, or where a file without the default `target` keeps its references: the one of
    REFERENCE_FIELDS its first record has (several: an error naming them)."""
    if asked != DEFAULT_REF_FIELD or has_field(line.data, asked):
        return asked
    present = [name for name in REFERENCE_FIELDS if name in line.data]
    if len(present) > 1:
        raise InputError(
            f"{line.where}: no {asked!r} field, and several that could hold the reference: "
            f"{', '.join(present)}",
            hint=f"name it with --ref-field (e.g. --ref-field {present[0]})",
        )
    if present:
        notes.append(f"references have no {asked!r} field: scoring against {present[0]!r} "
                     f"(--ref-field chooses another)")  # fmt: skip
        return present[0]
    return asked


def join(
    prediction_paths: Path | list[Path],
    reference_path: Path,
    config: ScoreConfig,
    *,
    flag: str = "PREDS",
) -> Joined:
    """Read both sides and pair them by id; never by position. Several predictions files (the
    shards of one run) are read as one: an id in two of them is an error naming both.

    `flag` names where the predictions came from (PREDS, --baseline) in errors.
    """
    paths = [prediction_paths] if isinstance(prediction_paths, Path) else list(prediction_paths)
    ref_jsonl, refs, notes = load_references(reference_path, config)
    wanted = {ref.id for ref in refs}
    role = "predictions" if flag == "PREDS" else f"{flag} predictions"
    files = [resolve_jsonl(path, role=role, flag=flag) for path in paths]
    given = [file.resolve() for file in files]
    for index, file in enumerate(given):
        if file in given[:index]:
            raise InputError(f"{role}: {files[index]} is given twice", hint="name each file once")
    pred_jsonl = files[0]
    found: dict[str, Line] = {}
    lines = (line for file in files for line in iter_records(file, config.pred_format))
    if config.join_by == "line":
        found = _by_position(list(lines), refs, files, ref_jsonl, config)
        notes.append(f"joined by position (--join line): record N of the predictions answers "
                     f"record N of {ref_jsonl}")  # fmt: skip
        lines = iter(())
    for line in lines:
        pid = record_id(line, config.pred_id_field or config.id_field)
        if pid in found:
            raise _duplicate(line, pid, found[pid].where, role)
        if pid not in wanted:
            raise InputError(
                f"{line.where}: id {pid!r} has no reference in {ref_jsonl}",
                hint=f"are {flag} and REFS from the same dataset and split? "
                "(ids are joined with --id-field, default 'id')",
            )
        # A failed sample may carry an `error` instead of a prediction; it scores as empty.
        if not has_field(line.data, config.pred_field) and "error" not in line.data:
            require_field(line, config.pred_field, flag="--pred-field")
        found[pid] = line
    if not found:
        raise InputError(
            f"{role} {', '.join(map(str, files))} {'has' if len(files) == 1 else 'have'} no "
            "records",
            hint="was the inference run interrupted before writing anything?",
        )
    predictions: list[Any] = []
    records: list[dict[str, Any] | None] = []
    missing: list[str] = []
    errored: list[str] = []
    for ref in refs:
        line = found.get(ref.id)
        if line is None:
            if config.strict:
                raise InputError(
                    f"{pred_jsonl}: no prediction for id {ref.id!r} ({ref.where})",
                    hint="rerun inference for the missing ids, or drop --strict to score "
                    "them as empty predictions",
                )
            missing.append(ref.id)
            predictions.append("")
            records.append(None)
            continue
        value = answer_value(line, config.pred_field, "--pred-field", role="prediction")
        records.append(line.data)
        if line.data.get("error"):
            # A failed sample scores as empty even if it kept a partial prediction.
            errored.append(ref.id)
            predictions.append("")
        elif value is None:
            if config.strict:
                raise InputError(
                    f"{line.where}: the prediction for id {ref.id!r} is null",
                    hint="rerun inference for it, or drop --strict to score it as empty",
                )
            missing.append(ref.id)  # "prediction": null says no more than a missing line
            predictions.append("")
        else:
            predictions.append(value)
    if missing:
        log.warning(
            "%d of %d references have no prediction; scored as empty", len(missing), len(refs)
        )
    return Joined(refs, predictions, records, missing, errored, pred_jsonl, ref_jsonl, notes,
                  files)  # fmt: skip


def choose_metrics(joined: Joined, config: ScoreConfig) -> tuple[str, list[str]]:
    """The task label and the metric names to compute."""
    tasks = sorted({ref.task for ref in joined.references if ref.task})
    if config.task:
        task = config.task
    elif len(tasks) > 1 and not config.metrics:
        raise InputError(
            f"{joined.reference_path} mixes tasks ({', '.join(tasks)})",
            hint="pick the metrics with --metrics, or the defaults of one task with --task",
        )
    elif tasks:
        task = tasks[0]
    else:
        task, why = inferred_task(joined.references)
        note = (
            f"the references name no task: scoring them as {task} ({why}; --task chooses another)"
        )
        if not config.metrics and note not in joined.notes:  # asked once per evaluation
            joined.notes.append(note)
    if not config.metrics and task not in TASK_DEFAULTS:
        where = next((ref.where for ref in joined.references if ref.task == task), "--task")
        raise InputError(
            f"{where}: unknown task {task!r}, so no default metrics",
            hint=f"known tasks: {', '.join(TASK_DEFAULTS)}; or choose metrics with --metrics",
        )
    counts = [len(ref.answers or ()) for ref in joined.references]
    names = list(config.metrics) if config.metrics else default_metric_names(task, counts)
    _check_answer_metrics(joined, names)
    if config.aggregation == "mean":
        dicts = [name for name in names if metric_class(name).corpus_only]
        if dicts:
            raise UsageError(
                f"--aggregation mean: {', '.join(dicts)} report evaluate's corpus-level dict",
                hint="use --aggregation corpus for them, or leave them out of --metrics",
            )
    return task, names


def _check_answer_metrics(joined: Joined, names: list[str]) -> None:
    """`check_answer_metrics`, and a note where vqa_accuracy has fewer annotators than ten."""
    check_answer_metrics(joined.references, names)
    if "vqa_accuracy" not in names:
        return
    few = sum(len(ref.answers or ()) < ANNOTATED_ANSWERS for ref in joined.references)
    note = (
        f"vqa_accuracy: {few} of {len(joined.references)} references have fewer than "
        f"{ANNOTATED_ANSWERS} answers; it is defined for ten annotators and cannot reach 1 with "
        "fewer than four"
    )
    if few and note not in joined.notes:
        joined.notes.append(note)


def check_answer_metrics(references: list[Reference], names: list[str]) -> None:
    """A VQA metric needs text answers, and vqa_accuracy annotators' answers: say so before
    computing a number that means nothing (finetune asks it of --eval before training)."""
    asked = [name for name in names if metric_class(name).scores_answers]
    if not asked:
        return
    for ref in references:
        if isinstance(ref.value, dict) or ref.task == "json":
            raise UsageError(
                f"{', '.join(asked)}: {ref.where} is a JSON target, not a text answer",
                hint="these metrics score short answers (task vqa); JSON extraction is scored "
                "with field_f1 and ted_accuracy",
            )
    if "vqa_accuracy" not in asked:
        return
    alone = [ref for ref in references if ref.answers is None]
    if alone:
        raise UsageError(
            f"vqa_accuracy: {alone[0].where} has no {ANSWERS_FIELD!r} list"
            + (
                f", and {len(alone) - 1:,} other references have none either"
                if len(alone) > 1
                else ""
            )
            + "; it counts agreeing annotators, so one reference would always score 0",
            hint="score against references with the annotators' answers (vlmkit convert vqa "
            "keeps them), or use anls / exact_match",
        )


def inferred_task(references: list[Reference]) -> tuple[str, str]:
    """The task references without one are scored as, and why: `vqa` when every one has a list
    of acceptable answers, `json` when every one is a JSON object or array (or its text),
    `letter` when every one is a single letter, else `ocr`."""
    if references and all(ref.answers is not None for ref in references):
        return "vqa", "every one is a list of acceptable answers"
    listed = sum(ref.answers is not None for ref in references)
    if listed:
        return "ocr", (f"free text; {listed} of {len(references)} have an answers list: --task "
                       "vqa scores them against it")  # fmt: skip
    values = [ref.value for ref in references]
    if values and all(_is_json_tree(value) for value in values):
        return "json", "every one is a JSON object or array"
    # Letters, not digits: one-digit answers (counts, chart values) are short answers.
    if values and all(isinstance(v, str) and len(v.strip()) == 1 and v.strip().isalpha()
                      for v in values):  # fmt: skip
        return "letter", "every one is a single letter"
    return "ocr", "free text"


def _is_json_tree(value: Any) -> bool:
    if isinstance(value, (dict, list)):
        return True
    text = value.strip() if isinstance(value, str) else ""
    if not text.startswith(("{", "[")):
        return False
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def column_totals(stats: np.ndarray) -> np.ndarray:
    """Sum each column as one contiguous 1-D array.

    numpy sums a 1-D array pairwise, as `np.mean` over a list does (which is what Donut and most
    notebooks call); `sum(axis=0)` on a 2-D array adds row by row and can differ in the last bit.
    """
    return np.ascontiguousarray(stats.T).sum(axis=1)


@dataclass
class MetricResult:
    """One metric over one system: additive rows under the chosen aggregation, and the value."""

    metric: Metric
    raw_stats: np.ndarray
    aggregation: Aggregation

    def __post_init__(self) -> None:
        if self.aggregation == "mean":
            # A mean of per-sample values is itself additive: rows of (value, 1).
            values = [self.metric.sample_value(row) for row in self.raw_stats]
            self.stats = np.column_stack([values, np.ones(len(values))]).reshape(-1, 2)
        else:
            self.stats = self.raw_stats

    def value_of(self, totals: np.ndarray) -> float:
        if self.aggregation == "mean":
            return float(totals[0] / totals[1]) if totals[1] else 0.0
        return self.metric.value(totals)

    def value_over(self, rows: np.ndarray | slice | Sequence[int]) -> float:
        return self.value_of(column_totals(self.stats[rows]))

    @property
    def value(self) -> float:
        return self.value_of(column_totals(self.stats))

    @property
    def report(self) -> Any:
        if self.aggregation == "mean":
            return self.value
        return self.metric.report(column_totals(self.raw_stats))

    @property
    def signature(self) -> str:
        return self.metric.signature(self.aggregation)

    def sample_values(self) -> list[float]:
        return [self.metric.sample_value(row) for row in self.raw_stats]


@dataclass
class Evaluation:
    """All metrics of one system on one joined set."""

    joined: Joined
    task: str
    results: dict[str, MetricResult]
    details: dict[str, dict[str, Any]]

    @property
    def n(self) -> int:
        return len(self.joined.references)

    def values(self) -> dict[str, float]:
        return {name: r.value for name, r in self.results.items()}


def evaluate(joined: Joined, config: ScoreConfig) -> Evaluation:
    """Compute every chosen metric once over the joined samples."""
    task, names = choose_metrics(joined, config)
    refs = joined.references
    batch = Batch(joined.predictions, [r.value for r in refs], config.options,
                  [r.answers for r in refs])  # fmt: skip
    results: dict[str, MetricResult] = {}
    details: dict[str, dict[str, Any]] = {}
    for name in names:
        metric = metric_class(name)(config.options)
        stats = metric.statistics(batch)
        results[name] = MetricResult(metric, stats, config.aggregation)
        extra = metric.details(batch, stats)
        if extra:
            details[name] = extra
    return Evaluation(joined, task, results, details)


def group_value(reference: Reference, prediction: dict[str, Any] | None, path: str) -> str:
    """The `--by` group of a sample: a dotted path into the reference, else the prediction."""
    for record in (reference.record, prediction or {}):
        node: Any = record
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            if node is None:
                return MISSING_GROUP
            return node if isinstance(node, str) else json.dumps(node, ensure_ascii=False)
    return MISSING_GROUP


def _natural_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def check_breakdown(joined: Joined, path: str) -> None:
    """Fail before any scoring when no record has the `--by` field."""
    for ref, pred in zip(joined.references, joined.prediction_records, strict=True):
        if group_value(ref, pred, path) != MISSING_GROUP:
            return
    raise UsageError(
        f"--by {path}: no record has that field",
        hint="use a dotted path into the reference records, e.g. meta.font or task",
    )


def breakdown(evaluation: Evaluation, path: str) -> dict[str, dict[str, Any]]:
    """Per-group metric values for `--by PATH` (groups sorted numerically, then alphabetically)."""
    joined = evaluation.joined
    groups: dict[str, list[int]] = {}
    for i, (ref, pred) in enumerate(zip(joined.references, joined.prediction_records, strict=True)):
        groups.setdefault(group_value(ref, pred, path), []).append(i)
    if set(groups) == {MISSING_GROUP}:
        check_breakdown(joined, path)
    out: dict[str, dict[str, Any]] = {}
    for label in sorted(groups, key=_natural_key):
        rows = groups[label]
        out[label] = {
            "n": len(rows),
            "metrics": {name: r.value_over(rows) for name, r in evaluation.results.items()},
        }
    return out


def summary_json(evaluation: Evaluation) -> dict[str, Any]:
    """The machine-readable result of one evaluation (each value on its library's own scale)."""
    from importlib.metadata import version

    joined = evaluation.joined
    any_result = next(iter(evaluation.results.values()), None)
    return {
        "vlmkit_version": __version__,
        "n": evaluation.n,
        "task": evaluation.task,
        "aggregation": any_result.aggregation if any_result else "corpus",
        "metrics": {name: r.report for name, r in evaluation.results.items()},
        "signatures": {name: r.signature for name, r in evaluation.results.items()},
        "higher_is_better": {
            name: r.metric.higher_is_better for name, r in evaluation.results.items()
        },
        "missing_predictions": len(joined.missing),
        "errored_predictions": len(joined.errored),
        "truncated_predictions": len(joined.truncated),
        "details": evaluation.details,
        "inputs": {
            "predictions": str(joined.prediction_path),
            **(
                {"prediction_files": [str(p) for p in joined.prediction_paths]}
                if len(joined.prediction_paths) > 1
                else {}
            ),
            "references": str(joined.reference_path),
        },
        "libraries": {lib: version(lib) for lib in ("jiwer", "sacrebleu")},
    }


def per_sample_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """One row per sample: id, texts, flags and each metric's per-sample value."""
    joined = evaluation.joined
    values = {name: r.sample_values() for name, r in evaluation.results.items()}
    missing, errored = set(joined.missing), set(joined.errored)
    rows = []
    for i, ref in enumerate(joined.references):
        row: dict[str, Any] = {
            "id": ref.id,
            "prediction": joined.predictions[i],
            "reference": ref.value,
            **({"answers": list(ref.answers)} if ref.answers is not None else {}),
            "scores": {name: vals[i] for name, vals in values.items()},
        }
        if ref.id in missing:
            row["missing"] = True
        if ref.id in errored:
            row["error"] = (joined.prediction_records[i] or {}).get("error")
        for key in ("file_name", "meta"):
            if key in ref.record:
                row[key] = ref.record[key]
        rows.append(row)
    return rows
