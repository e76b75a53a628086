"""Structured-extraction metrics with Donut's semantics: field F1, tree-edit accuracy, validity.

Predictions are read back leniently (`vlmkit.structured`); what could not be parsed counts as an
empty object, so a model that emits garbage scores low instead of crashing the evaluation.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from vlmkit.metrics.base import Batch, MeanMetric, Metric, as_text
from vlmkit.metrics.donut_tree import FieldCounts, donut_f1, field_counts, ted_accuracy
from vlmkit.structured import is_strict_json


def _parse_methods(batch: Batch) -> dict[str, int]:
    found = Counter(parsed.method for parsed in batch.parsed_predictions)
    return dict(sorted(found.items()))


class FieldF1(Metric):
    name = "field_f1"
    summary = "Donut's micro F1 over flattened (field, value) pairs, false negatives counted"

    @staticmethod
    def _counts(batch: Batch) -> list[FieldCounts]:
        return batch.derived(
            "donut_field_counts",
            lambda b: [
                field_counts(pred, ref)
                for pred, ref in zip(b.prediction_trees, b.reference_trees, strict=True)
            ],
        )

    def statistics(self, batch: Batch) -> np.ndarray:
        out = np.zeros((len(batch), 3), dtype=np.float64)
        for i, counts in enumerate(self._counts(batch)):
            out[i] = (counts.tp, counts.fp, counts.fn)
        return out

    def value(self, totals: np.ndarray) -> float:
        tp, fp, fn = (int(x) for x in totals)
        return donut_f1(tp, fp, fn)

    def details(self, batch: Batch, stats: np.ndarray) -> dict[str, Any]:
        per_field: dict[str, list[int]] = {}
        for counts in self._counts(batch):
            for name, triple in counts.per_field.items():
                acc = per_field.setdefault(name, [0, 0, 0])
                for k in range(3):
                    acc[k] += triple[k]
        table = {}
        for name in sorted(per_field):
            tp, fp, fn = per_field[name]
            table[name] = {
                "precision": tp / (tp + fp) if tp + fp else 0.0,
                "recall": tp / (tp + fn) if tp + fn else 0.0,
                "f1": donut_f1(tp, fp, fn),
                "support": tp + fn,
                "tp": tp,
                "fp": fp,
                "fn": fn,
            }
        return {"per_field": table, "parse_methods": _parse_methods(batch)}

    def signature_fields(self) -> list[tuple[str, str]]:
        return [("semantics", "donut"), ("parse", "lenient")]


class TedAccuracy(MeanMetric):
    name = "ted_accuracy"
    summary = "Donut's normalised tree-edit-distance accuracy, mean over samples"

    def sample_scores(self, batch: Batch) -> list[float]:
        return [
            ted_accuracy(pred, ref)
            for pred, ref in zip(batch.prediction_trees, batch.reference_trees, strict=True)
        ]

    def signature_fields(self) -> list[tuple[str, str]]:
        return [("semantics", "donut"), ("parse", "lenient")]


class JsonValid(MeanMetric):
    name = "json_valid"
    summary = "share of predictions read back as a JSON object or array by any lenient method"
    uses_normalization = False

    def sample_scores(self, batch: Batch) -> list[float]:
        return [float(parsed.value is not None) for parsed in batch.parsed_predictions]

    def details(self, batch: Batch, stats: np.ndarray) -> dict[str, Any]:
        return {"parse_methods": _parse_methods(batch)}

    def signature_fields(self) -> list[tuple[str, str]]:
        return [("parse", "lenient")]


class JsonStrict(MeanMetric):
    name = "json_strict"
    summary = "share of predictions that are, as a whole, one valid JSON object or array"
    uses_normalization = False

    def sample_scores(self, batch: Batch) -> list[float]:
        # Raw text: a normalisation such as `punctuation` would break any JSON.
        return [float(is_strict_json(as_text(p))) for p in batch.raw_predictions]

    def signature_fields(self) -> list[tuple[str, str]]:
        return [("parse", "strict")]
