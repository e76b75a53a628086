"""Word and character error rates, computed by jiwer itself so the numbers are jiwer's."""

from __future__ import annotations

from importlib.metadata import version

import jiwer
import numpy as np

from vlmkit.metrics.base import Batch, Metric

# Columns of an error-rate statistics row.
_ERRORS, _REF_UNITS, _INSERTIONS = 0, 1, 2


class _ErrorRate(Metric):
    higher_is_better = False
    scale = "rate"

    def _process(self, batch: Batch) -> jiwer.WordOutput | jiwer.CharacterOutput:
        raise NotImplementedError

    def statistics(self, batch: Batch) -> np.ndarray:
        out = np.zeros((len(batch), 3), dtype=np.float64)
        if not len(batch):
            return out
        result = self._process(batch)
        # jiwer reports only corpus totals; each sentence's counts come from its alignment chunks,
        # which is the same alignment jiwer summed, so the totals agree exactly.
        for i, (chunks, ref) in enumerate(zip(result.alignments, result.references, strict=True)):
            errors = insertions = 0
            for chunk in chunks:
                if chunk.type == "equal":
                    continue
                if chunk.type == "insert":
                    insertions += chunk.hyp_end_idx - chunk.hyp_start_idx
                    errors += chunk.hyp_end_idx - chunk.hyp_start_idx
                else:  # substitute and delete both count reference units
                    errors += chunk.ref_end_idx - chunk.ref_start_idx
            out[i] = (errors, len(ref), insertions)
        return out

    def value(self, totals: np.ndarray) -> float:
        # jiwer's own edge case: with no reference words at all, the rate is the insertion count.
        if totals[_REF_UNITS] == 0:
            return float(totals[_INSERTIONS])
        return float(totals[_ERRORS]) / float(totals[_REF_UNITS])

    def signature_fields(self) -> list[tuple[str, str]]:
        return [("jiwer", version("jiwer"))]


class WordErrorRate(_ErrorRate):
    name = "wer"
    summary = "word error rate, jiwer's (S+D+I)/N over the corpus"

    def _process(self, batch: Batch) -> jiwer.WordOutput:
        return jiwer.process_words(batch.references, batch.predictions)


class CharacterErrorRate(_ErrorRate):
    name = "cer"
    summary = "character error rate, jiwer's (S+D+I)/N over the corpus"

    def _process(self, batch: Batch) -> jiwer.CharacterOutput:
        return jiwer.process_characters(batch.references, batch.predictions)
