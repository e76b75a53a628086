"""The metric registry: every metric `vlmkit score` knows, and the default set for each task."""

from __future__ import annotations

import difflib
import importlib
from functools import cache
from typing import TYPE_CHECKING

from vlmkit.errors import UsageError

if TYPE_CHECKING:
    from vlmkit.metrics.base import Metric

# name -> "module:Class". Classes are imported on first use, so choosing metrics costs nothing
# and a TER worker process (which imports vlmkit.metrics.fast_ter) does not load jiwer,
# sacrebleu and the JSON readers it never uses.
METRICS: dict[str, str] = {
    "cer": "vlmkit.metrics.text:CharacterErrorRate",
    "wer": "vlmkit.metrics.text:WordErrorRate",
    "bleu": "vlmkit.metrics.translation:Bleu",
    "chrf": "vlmkit.metrics.translation:Chrf",
    "ter": "vlmkit.metrics.translation:Ter",
    "hf_bleu": "vlmkit.metrics.hf:HfBleu",
    "hf_ter": "vlmkit.metrics.hf:HfTer",
    "exact_match": "vlmkit.metrics.answer:ExactMatch",
    "letter_accuracy": "vlmkit.metrics.answer:LetterAccuracy",
    "letter_accuracy_strict": "vlmkit.metrics.answer:StrictLetterAccuracy",
    "field_f1": "vlmkit.metrics.extraction:FieldF1",
    "ted_accuracy": "vlmkit.metrics.extraction:TedAccuracy",
    "json_valid": "vlmkit.metrics.extraction:JsonValid",
    "json_strict": "vlmkit.metrics.extraction:JsonStrict",
    "anls": "vlmkit.metrics.vqa:Anls",
    "vqa_accuracy": "vlmkit.metrics.vqa:VqaAccuracy",
    "relaxed_accuracy": "vlmkit.metrics.vqa:RelaxedAccuracy",
    "ocrbench_match": "vlmkit.metrics.vqa:OcrBenchMatch",
}


@cache
def metric_class(name: str) -> type[Metric]:
    """The class registered under `name` (a key of METRICS)."""
    module, _, cls = METRICS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


TASK_DEFAULTS: dict[str, tuple[str, ...]] = {
    "ocr": ("cer", "wer", "bleu", "chrf", "ter", "exact_match"),
    "json": ("field_f1", "ted_accuracy", "json_valid", "json_strict", "cer"),
    "letter": ("letter_accuracy", "letter_accuracy_strict"),
    "vqa": ("anls", "relaxed_accuracy", "ocrbench_match", "exact_match"),
}

ANNOTATED_ANSWERS = 10
"""VQA accuracy counts agreeing annotators and is meant for ten answers per question (VQAv2,
TextVQA, VizWiz): it joins the vqa defaults where every sample has at least this many, and is
not a default elsewhere (with one answer it is always 0)."""


def default_metric_names(task: str, answer_counts: list[int] | None = None) -> list[str]:
    """The metrics a task is scored with when --metrics is not given; `answer_counts` (each
    sample's number of acceptable answers) decides whether vqa includes vqa_accuracy."""
    names = list(TASK_DEFAULTS.get(task, TASK_DEFAULTS["ocr"]))
    if task == "vqa" and answer_counts and min(answer_counts) >= ANNOTATED_ANSWERS:
        names.insert(1, "vqa_accuracy")
    return names


def resolve_metric_names(spec: str, *, flag: str = "--metrics") -> list[str]:
    """Split `wer,cer` into known metric names, failing with a did-you-mean on a typo."""
    names: list[str] = []
    for raw in spec.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in METRICS:
            close = difflib.get_close_matches(name, METRICS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"{flag}: unknown metric {raw.strip()!r}",
                hint=f"{hint}known metrics: {', '.join(METRICS)}",
            )
        if name not in names:
            names.append(name)
    if not names:
        raise UsageError(f"{flag} is empty", hint=f"name one or more of: {', '.join(METRICS)}")
    return names


__all__ = [
    "ANNOTATED_ANSWERS",
    "METRICS",
    "TASK_DEFAULTS",
    "default_metric_names",
    "metric_class",
    "resolve_metric_names",
]
