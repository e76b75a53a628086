"""`hf_bleu` and `hf_ter`: the dictionaries Hugging Face `evaluate`'s `bleu` and `ter` return.

Results published with `evaluate.load("bleu")` use TensorFlow NMT's BLEU (0-1 scale, no
smoothing, shortest reference length), not sacrebleu's; comparing them with sacrebleu numbers is
comparing different metrics. These reproduce `evaluate`'s outputs without `evaluate` (whose
`load` downloads the metric script, so it fails offline).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vlmkit.metrics.base import Batch, Metric
from vlmkit.metrics.nmt_bleu import BleuCounts, hf_bleu_from_statistics, hf_bleu_statistics
from vlmkit.metrics.translation import Ter

_MAX_ORDER = 4


class HfBleu(Metric):
    name = "hf_bleu"
    summary = "evaluate's `bleu` dict (TensorFlow NMT BLEU, 0-1, unsmoothed); table shows `bleu`"
    corpus_only = True

    def statistics(self, batch: Batch) -> np.ndarray:
        out = np.zeros((len(batch), 2 * _MAX_ORDER + 2), dtype=np.float64)
        for i, (pred, ref) in enumerate(zip(batch.predictions, batch.references, strict=True)):
            counts = hf_bleu_statistics(pred, [ref], max_order=_MAX_ORDER)
            out[i] = [
                *counts.matches_by_order,
                *counts.possible_by_order,
                counts.translation_length,
                counts.reference_length,
            ]
        return out

    @staticmethod
    def _counts(totals: np.ndarray) -> BleuCounts:
        ints = [int(x) for x in totals]
        return BleuCounts(
            matches_by_order=tuple(ints[:_MAX_ORDER]),
            possible_by_order=tuple(ints[_MAX_ORDER : 2 * _MAX_ORDER]),
            translation_length=ints[-2],
            reference_length=ints[-1],
        )

    def report(self, totals: np.ndarray) -> dict[str, Any]:
        return hf_bleu_from_statistics(self._counts(totals), max_order=_MAX_ORDER)

    def value(self, totals: np.ndarray) -> float:
        return float(self.report(totals)["bleu"])

    def signature_fields(self) -> list[tuple[str, str]]:
        return [("impl", "tf-nmt"), ("tok", "13a"), ("order", str(_MAX_ORDER)), ("smooth", "no")]


class HfTer(Ter):
    name = "hf_ter"
    summary = "evaluate's `ter` dict (sacrebleu TER with evaluate's defaults); table shows `score`"
    corpus_only = True

    def report(self, totals: np.ndarray) -> dict[str, Any]:
        return {
            "score": self.value(totals),
            "num_edits": int(totals[0]),
            "ref_length": float(totals[1]),
        }
