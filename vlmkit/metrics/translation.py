"""BLEU, chrF and TER with sacrebleu's definitions, defaults and signatures.

BLEU and chrF statistics come from sacrebleu itself. TER statistics come from vlmkit's own
implementation of sacrebleu's algorithm (`fast_ter`), which gives identical numbers much faster;
the score is then formed by sacrebleu's own code from the summed statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from vlmkit.metrics.base import Batch, Metric
from vlmkit.metrics.fast_ter import ter_statistics

if TYPE_CHECKING:
    from sacrebleu.metrics import BLEU, CHRF, TER

# sacrebleu is imported when one of its metrics is built, not with the registry: a `json` or
# `letter` scoring run never needs it, and it is a tenth of `vlmkit score`'s start-up.


class _SacreBleuMetric(Metric):
    scale = "0-100"

    def __init__(self, options) -> None:
        super().__init__(options)
        self.metric = self._make()
        # sacrebleu learns the reference count while reading references, and its signature needs
        # it; vlmkit always scores one reference per sample, and TER's statistics bypass that read.
        self.metric.num_refs = 1

    def _make(self) -> Any:
        raise NotImplementedError

    def statistics(self, batch: Batch) -> np.ndarray:
        if not len(batch):
            return np.zeros((0, 1), dtype=np.float64)
        # sacrebleu's own (private) route to sufficient statistics, used by its significance tests;
        # the corpus score formed from their sum is exactly `corpus_score`.
        stats = self.metric._extract_corpus_statistics(batch.predictions, [batch.references])
        return np.asarray(stats, dtype=np.float64)

    def value(self, totals: np.ndarray) -> float:
        return float(self.metric._compute_score_from_stats(self._as_stats(totals)).score)

    def _as_stats(self, totals: np.ndarray) -> list:
        return totals.tolist()

    def library_signature(self, aggregation: str) -> str:
        return self.metric.get_signature().format()

    def signature(self, aggregation: str) -> str:
        # sacrebleu's own signature, verbatim, so the number can be compared with papers that
        # print it; parenthesised so its fields (its own `norm`, `version`) are not vlmkit's.
        rest = super().signature(aggregation).split("|", 1)[1]
        return f"{self.name}|sacrebleu({self.library_signature(aggregation)})|{rest}"


class Bleu(_SacreBleuMetric):
    name = "bleu"
    summary = "sacrebleu corpus BLEU (13a, exp smoothing), 0-100"

    def _make(self) -> BLEU:
        from sacrebleu.metrics import BLEU

        self._sentence = BLEU(effective_order=True)
        self._sentence.num_refs = 1
        return BLEU()

    def library_signature(self, aggregation: str) -> str:
        # A mean of per-sample values is a mean of sacrebleu's sentence_bleu (effective order).
        metric = self._sentence if aggregation == "mean" else self.metric
        return metric.get_signature().format()

    def _as_stats(self, totals: np.ndarray) -> list:
        return [int(x) for x in totals]

    def sample_value(self, row: np.ndarray) -> float:
        # sacrebleu's sentence_bleu turns effective order on; per-sample values follow it.
        return float(self._sentence._compute_score_from_stats(self._as_stats(row)).score)


class Chrf(_SacreBleuMetric):
    name = "chrf"
    summary = "sacrebleu corpus chrF (char 6-grams, beta 2), 0-100"

    def _make(self) -> CHRF:
        from sacrebleu.metrics import CHRF

        return CHRF()

    def _as_stats(self, totals: np.ndarray) -> list:
        return [int(x) for x in totals]


class Ter(_SacreBleuMetric):
    name = "ter"
    summary = "sacrebleu corpus TER (shifts, case-insensitive), 0-100, lower is better"
    higher_is_better = False

    def _make(self) -> TER:
        from sacrebleu.metrics import TER

        return TER()

    def statistics(self, batch: Batch) -> np.ndarray:
        rows = ter_statistics(batch.predictions, batch.references, workers=self.options.workers)
        return np.asarray(rows, dtype=np.float64).reshape(len(batch), 2)
