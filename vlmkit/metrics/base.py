"""What every metric is: per-sample additive statistics, and a value computed from their sum.

This one shape serves everything `score` does. The corpus value is `value(sum of rows)`, which is
how jiwer and sacrebleu pool errors; a `--by` group is the same sum over the group's rows; a
bootstrap resample is a weighted sum; a per-sample value is `value(row)`. Metrics that are means
of per-sample numbers (accuracies) carry `(value, 1)` rows, so they fit the same mould.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from vlmkit import __version__
from vlmkit.normalize import Normalization


@dataclass(frozen=True)
class MetricOptions:
    """Settings that change what a metric measures; each appears in its signature."""

    normalization: Normalization = field(default_factory=Normalization)
    """Applied to predictions and references (to JSON leaf values for JSON metrics)."""
    letter_case_sensitive: bool = False
    """letter_accuracy compares letters case-insensitively by default, as the paper does."""
    workers: int | None = None
    """Processes for the metrics that can use several (TER); None lets them decide."""
    variants: tuple[tuple[str, str], ...] = ()
    """(metric, variant) pairs (`--variant anls=...`): a metric defined differently by the
    official evaluation and by a popular harness computes the named one."""

    def variant_of(self, metric: str) -> str | None:
        """The variant asked for `metric`, or None for its default."""
        return dict(self.variants).get(metric)


def as_text(value: Any) -> str:
    """A prediction or reference as text: strings as they are, JSON values serialised."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def _parse(value: Any) -> Any:
    """A prediction or reference as a `Parsed`: JSON values as they are, texts read leniently."""
    from vlmkit.structured import Parsed, parse_structured, within_depth

    if isinstance(value, (dict, list)):
        # A value nested absurdly deep would exhaust the recursion of the tree metrics.
        return Parsed(value, "json") if within_depth(value) else Parsed(None, "none")
    return parse_structured(as_text(value))


class Batch:
    """Predictions and references, with derived views computed once and shared by all metrics."""

    def __init__(
        self,
        predictions: Sequence[Any],
        references: Sequence[Any],
        options: MetricOptions,
        answers: Sequence[Sequence[str] | None] | None = None,
    ) -> None:
        if len(predictions) != len(references):
            raise ValueError("predictions and references must have the same length")
        if answers is not None and len(answers) != len(references):
            raise ValueError("answers and references must have the same length")
        self.raw_predictions = list(predictions)
        self.raw_references = list(references)
        self.raw_answers = list(answers) if answers is not None else [None] * len(references)
        """Each sample's acceptable answers (a VQA record's `answers`), None where it has none."""
        self.options = options
        self._derived: dict[str, Any] = {}

    def derived(self, key: str, compute: Callable[[Batch], Any]) -> Any:
        """A metric-specific view of this batch, computed once (e.g. Donut field counts that
        both the F1 value and its per-field table need)."""
        if key not in self._derived:
            self._derived[key] = compute(self)
        return self._derived[key]

    def __len__(self) -> int:
        return len(self.raw_references)

    @cached_property
    def predictions(self) -> list[str]:
        """Prediction texts after normalisation."""
        texts = [as_text(p) for p in self.raw_predictions]
        return self.options.normalization.apply(texts)

    @cached_property
    def references(self) -> list[str]:
        """Reference texts after normalisation."""
        texts = [as_text(r) for r in self.raw_references]
        return self.options.normalization.apply(texts)

    @cached_property
    def answers(self) -> list[tuple[str, ...]]:
        """Each sample's acceptable answers after normalisation: its `answers` list, with the
        reference added where the list lacks it; the reference alone where it has none."""
        out = []
        for listed, reference in zip(self.listed_answers, self.references, strict=True):
            out.append(listed if reference in listed else (*listed, reference))
        return out

    @cached_property
    def listed_answers(self) -> list[tuple[str, ...]]:
        """Each sample's `answers` list as given, after normalisation (the reference alone
        where it has none): what counts annotators (VQA accuracy) reads."""
        texts = [
            tuple(answers) if answers is not None else (as_text(reference),)
            for answers, reference in zip(self.raw_answers, self.raw_references, strict=True)
        ]
        flat = self.options.normalization.apply([text for group in texts for text in group])
        out, start = [], 0
        for group in texts:
            out.append(tuple(flat[start : start + len(group)]))
            start += len(group)
        return out

    @cached_property
    def parsed_predictions(self) -> list[Any]:
        """Predictions read back as JSON objects (vlmkit.structured), `Parsed` per sample."""
        return [_parse(p) for p in self.raw_predictions]

    @cached_property
    def parsed_references(self) -> list[Any]:
        return [_parse(r) for r in self.raw_references]

    @cached_property
    def prediction_trees(self) -> list[Any]:
        """Parsed predictions with normalised leaves ({} when nothing parsed)."""
        return [self._normalise_leaves(p.value) for p in self.parsed_predictions]

    @cached_property
    def reference_trees(self) -> list[Any]:
        return [self._normalise_leaves(r.value) for r in self.parsed_references]

    def _normalise_leaves(self, value: Any) -> Any:
        if value is None:
            return {}
        norm = self.options.normalization
        if not norm.steps:
            return value
        if isinstance(value, dict):
            return {k: self._normalise_leaves(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._normalise_leaves(v) for v in value]
        if isinstance(value, str):
            return norm.apply_one(value)
        return value


class Metric(ABC):
    """A metric: per-sample statistics whose column sums determine the value."""

    name: ClassVar[str]
    summary: ClassVar[str]
    """One line for `vlmkit metrics` and the README."""
    higher_is_better: ClassVar[bool] = True
    scale: ClassVar[str] = "0-1"
    """How to read the value: `0-1`, `0-100`, or `rate` (a fraction that can exceed 1)."""
    uses_normalization: ClassVar[bool] = True
    """False where the metric reads the raw text (JSON validity): its signature omits `norm`."""
    corpus_only: ClassVar[bool] = False
    """True where the reported value is a library's corpus-level dict (hf_*): no `mean`."""
    always_mean: ClassVar[bool] = False
    """True where the corpus value is by definition the mean of sample values (accuracies)."""
    scores_answers: ClassVar[bool] = False
    """True for the VQA metrics: a text answer scored against a list of acceptable answers."""
    variants: ClassVar[dict[str, str]] = {}
    """Named definitions of this metric (the first is the default) and what each one is; empty
    where there is only one."""

    def __init__(self, options: MetricOptions) -> None:
        self.options = options

    @property
    def variant(self) -> str:
        """The definition computed: the one asked with `--variant`, else the first."""
        return self.options.variant_of(self.name) or next(iter(self.variants), "")

    @abstractmethod
    def statistics(self, batch: Batch) -> np.ndarray:
        """An (n_samples, k) float array of additive sufficient statistics."""

    @abstractmethod
    def value(self, totals: np.ndarray) -> float:
        """The score from summed statistics (one row for a single sample)."""

    def sample_value(self, row: np.ndarray) -> float:
        """The score of one sample; differs from `value` where the library's does (BLEU)."""
        return self.value(row)

    def report(self, totals: np.ndarray) -> Any:
        """The JSON value reported for this metric (a number, or a dict for hf_*)."""
        return self.value(totals)

    def details(self, batch: Batch, stats: np.ndarray) -> dict[str, Any] | None:
        """Extra tables worth reporting (per-field scores, parse methods), or None."""
        return None

    def signature_fields(self) -> list[tuple[str, str]]:
        """Library-specific signature fields, e.g. [("jiwer", "4.0.0")]."""
        return []

    def signature(self, aggregation: str) -> str:
        fields = [*self.signature_fields()]
        if self.variants:
            fields.insert(0, ("variant", self.variant))
        if self.uses_normalization:
            fields.append(("norm", self.options.normalization.name))
        fields.append(("agg", "mean" if self.always_mean else aggregation))
        fields.append(("vlmkit", __version__))
        return "|".join([self.name, *(f"{key}:{val}" for key, val in fields)])


class MeanMetric(Metric):
    """A metric that is the mean of a per-sample score: rows are (score, 1)."""

    always_mean = True

    def statistics(self, batch: Batch) -> np.ndarray:
        scores = self.sample_scores(batch)
        out = np.ones((len(scores), 2), dtype=np.float64)
        out[:, 0] = scores
        return out

    @abstractmethod
    def sample_scores(self, batch: Batch) -> list[float]:
        """One score per sample."""

    def value(self, totals: np.ndarray) -> float:
        return float(totals[0] / totals[1]) if totals[1] else 0.0
