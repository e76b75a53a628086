"""Minimum, median and maximum of samples' token counts, by part (what dry runs print)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenStats:
    """Minimum, median and maximum of a count over the samples."""

    minimum: int
    median: float
    maximum: int

    @classmethod
    def of(cls, values: list[int]) -> TokenStats:
        return cls(min(values), statistics.median(values), max(values))


def token_stats(samples: list[Any], parts: tuple[str, ...]) -> dict[str, TokenStats | None]:
    """Each part's statistics over `samples` (objects with those attributes); None for a part
    no sample has (Llama 3.2 Vision's image, outside the sequence)."""
    found: dict[str, TokenStats | None] = {}
    for part in parts:
        values = [value for s in samples if (value := getattr(s, part)) is not None]
        found[part] = TokenStats.of(values) if values else None
    return found
