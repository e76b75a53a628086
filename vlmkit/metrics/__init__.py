"""The metric registry: every metric `vlmkit score` knows, and the default set for each task."""

from __future__ import annotations

import difflib

from vlmkit.errors import UsageError
from vlmkit.metrics.answer import ExactMatch, LetterAccuracy, StrictLetterAccuracy
from vlmkit.metrics.base import Batch, Metric, MetricOptions
from vlmkit.metrics.extraction import FieldF1, JsonStrict, JsonValid, TedAccuracy
from vlmkit.metrics.hf import HfBleu, HfTer
from vlmkit.metrics.text import CharacterErrorRate, WordErrorRate
from vlmkit.metrics.translation import Bleu, Chrf, Ter

METRICS: dict[str, type[Metric]] = {
    "cer": CharacterErrorRate,
    "wer": WordErrorRate,
    "bleu": Bleu,
    "chrf": Chrf,
    "ter": Ter,
    "hf_bleu": HfBleu,
    "hf_ter": HfTer,
    "exact_match": ExactMatch,
    "letter_accuracy": LetterAccuracy,
    "letter_accuracy_strict": StrictLetterAccuracy,
    "field_f1": FieldF1,
    "ted_accuracy": TedAccuracy,
    "json_valid": JsonValid,
    "json_strict": JsonStrict,
}

TASK_DEFAULTS: dict[str, tuple[str, ...]] = {
    "ocr": ("cer", "wer", "bleu", "chrf", "ter", "exact_match"),
    "json": ("field_f1", "ted_accuracy", "json_valid", "json_strict", "cer"),
    "letter": ("letter_accuracy", "letter_accuracy_strict"),
}


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


def default_metric_names(task: str) -> list[str]:
    """The metrics a task is scored with when --metrics is not given."""
    return list(TASK_DEFAULTS.get(task, TASK_DEFAULTS["ocr"]))


__all__ = [
    "METRICS",
    "TASK_DEFAULTS",
    "Batch",
    "Metric",
    "MetricOptions",
    "default_metric_names",
    "resolve_metric_names",
]
