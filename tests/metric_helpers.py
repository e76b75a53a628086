"""Compute a vlmkit metric over lists the way `vlmkit score` does, for comparison with libraries."""

from __future__ import annotations

from typing import Any

from vlmkit.metrics import metric_class
from vlmkit.metrics.base import Batch, MetricOptions
from vlmkit.normalize import Normalization
from vlmkit.scoring import MetricResult


def vlmkit_metric(
    name: str,
    predictions: list[Any],
    references: list[Any],
    *,
    aggregation: str = "corpus",
    norm: str = "none",
    answers: list[tuple[str, ...] | None] | None = None,
    **options: Any,
) -> MetricResult:
    opts = MetricOptions(normalization=Normalization.parse(norm), **options)
    metric = metric_class(name)(opts)
    batch = Batch(predictions, references, opts, answers)
    return MetricResult(metric, metric.statistics(batch), aggregation)
