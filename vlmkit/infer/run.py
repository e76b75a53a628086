"""Drive a predictor over a run's samples: skip what is done, journal each batch, stop cleanly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from vlmkit.infer.journal import Journal
from vlmkit.infer.selection import Sample
from vlmkit.records import PredictionRecord


class AnswersBatches(Protocol):
    def answers(self, samples: list[Sample]) -> Iterator[list[PredictionRecord]]: ...


@dataclass
class RunCounts:
    """What a run did, for the summary and the sidecar."""

    selected: int = 0
    """Samples in this run (after --limit and --shard)."""
    already_done: int = 0
    """Samples with a line from an earlier run, not answered again."""
    todo: int = 0
    """Samples this run set out to answer."""
    answered: int = 0
    """Samples this run answered (with a prediction or an error)."""
    failed: int = 0
    """Of those, the ones recorded with an error."""
    errors_in_file: int = 0
    """Lines of the whole file that hold an error (earlier runs' included)."""
    first_error: str | None = None
    interrupted: bool = False
    new_tokens: int = 0
    generation_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "selected": self.selected,
            "already_done": self.already_done,
            "todo": self.todo,
            "answered": self.answered,
            "failed": self.failed,
            "errors_in_file": self.errors_in_file,
            "interrupted": self.interrupted,
            "new_tokens": self.new_tokens,
            "generation_s": round(self.generation_s, 3),
        }


def pending(
    samples: list[Sample], done: dict[str, dict[str, Any]], *, retry_errors: bool
) -> list[Sample]:
    """The samples still to answer: those without a line, and with `retry_errors` failed ones."""
    return [
        sample
        for sample in samples
        if sample.id not in done or (retry_errors and "error" in done[sample.id])
    ]


def batches(samples: list[Sample], size: int) -> Iterator[list[Sample]]:
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def run_batches(
    todo: list[Sample],
    predictor: AnswersBatches,
    journal: Journal,
    *,
    batch_size: int,
    counts: RunCounts,
    advance: Callable[[int], None] = lambda n: None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> None:
    """Answer `todo` batch by batch, writing each group of answers to the journal as the
    backend gives it (a local model: the whole batch; a server: each answer as it comes).

    `stop_requested` is checked between groups: an interrupt lets the group in flight finish
    and be written, so no answered sample is lost (a server's requests still in flight are
    called off, and asked again by the next run).
    """
    for batch in batches(todo, batch_size):
        if stop_requested():
            counts.interrupted = True
            return
        started = time.perf_counter()
        groups = predictor.answers(batch)
        try:
            for records in groups:
                if records:  # a server's heartbeat may bring none
                    journal.append(record.to_json() for record in records)
                for record in records:
                    counts.answered += 1
                    counts.new_tokens += record.new_tokens or 0
                    if record.error is not None:
                        counts.failed += 1
                        counts.first_error = counts.first_error or f"{record.id}: {record.error}"
                advance(len(records))
                if stop_requested() and counts.answered < len(todo):
                    counts.interrupted = True
                    return
        finally:
            counts.generation_s += time.perf_counter() - started
            close = getattr(groups, "close", None)
            if close is not None:
                close()  # a generator calls off what it still has in flight
    if stop_requested():
        counts.interrupted = counts.answered < len(todo)
