"""Answer-level accuracies: exact match, and the circled-letter task's letter accuracy.

Letter answers are extracted the way *Vision Language Models Are Blind* asks for them: the
prompt ends "Please provide your answer in curly brackets, e.g. {a}", and the answer is the one
character inside the braces, compared case-insensitively. When several braced characters appear
(a model that reasons aloud, or echoes the example), the last one is its answer.

`letter_accuracy` falls back, for answers without braces, to (in order):
1. the whole answer, once surrounding whitespace, quotes, asterisks and final punctuation are
   removed, being a single character (`e`, `"e".`, `**E**`);
2. a phrase naming the letter: `... letter/character ... is X` (`The circled letter is "e".`);
3. a single character in quotes (`It is 'e'`).
The last match of the first rule that matches wins. `letter_accuracy_strict` accepts braces only.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from vlmkit.metrics.base import Batch, MeanMetric, as_text

_BRACED = re.compile(r"\{\s*([^\s{}])\s*\}")
_DECORATION = " \t\r\n\"'`*_.,:;!?()[]“”‘’"
_NAMED = re.compile(
    r"\b(?:letter|character)\b[^.\n]*?\bis\s*[:\-]?\s*[\"'“‘`*]*([^\W_])(?![\w])", re.IGNORECASE
)
_QUOTED = re.compile(r"[\"'“‘`]([^\W_])[\"'”’`]")


def extract_letter(text: str, *, strict: bool = False) -> tuple[str | None, str]:
    """Return (letter or None, how it was found: `braces`, `bare`, `phrase`, `quoted`, `none`)."""
    braced = _BRACED.findall(text)
    if braced:
        return braced[-1], "braces"
    if strict:
        return None, "none"
    bare = text.strip(_DECORATION)
    if len(bare) == 1:
        return bare, "bare"
    for rule, pattern in (("phrase", _NAMED), ("quoted", _QUOTED)):
        found = pattern.findall(text)
        if found:
            return found[-1], rule
    return None, "none"


class ExactMatch(MeanMetric):
    name = "exact_match"
    summary = "share of predictions equal to the reference (or one of its answers), normalised"

    def sample_scores(self, batch: Batch) -> list[float]:
        # `answers` is the reference alone where a sample has no list of acceptable answers.
        return [float(p in answers) for p, answers in zip(batch.predictions, batch.answers,
                                                           strict=True)]  # fmt: skip


class LetterAccuracy(MeanMetric):
    name = "letter_accuracy"
    summary = "share of answers whose {x} letter (or documented fallback) is the target letter"
    strict = False

    def _key(self, letter: str | None) -> str | None:
        if letter is None:
            return None
        # Normalisation applies to the extracted letter, never to the answer around it: the
        # punctuation step would delete the braces the answer is found by.
        letter = self.options.normalization.apply_one(letter)
        return letter if self.options.letter_case_sensitive else letter.casefold()

    def _extractions(self, batch: Batch) -> list[tuple[str | None, str]]:
        # Shared by the scores and the extraction counts of `details`: extracted once per batch.
        return batch.derived(
            f"letters:strict={self.strict}",
            lambda b: [extract_letter(as_text(p), strict=self.strict) for p in b.raw_predictions],
        )

    def sample_scores(self, batch: Batch) -> list[float]:
        scores = []
        for (letter, _), ref in zip(self._extractions(batch), batch.raw_references, strict=True):
            # References are plain letters; extracting from them too tolerates "{e}" targets.
            target, _ = extract_letter(as_text(ref))
            scores.append(float(letter is not None and self._key(letter) == self._key(target)))
        return scores

    def details(self, batch: Batch, stats: np.ndarray) -> dict[str, Any]:
        found = Counter(how for _, how in self._extractions(batch))
        return {"extraction": dict(sorted(found.items()))}

    def signature_fields(self) -> list[tuple[str, str]]:
        case = "sensitive" if self.options.letter_case_sensitive else "insensitive"
        return [("extract", "braces" if self.strict else "braces+fallback"), ("case", case)]


class StrictLetterAccuracy(LetterAccuracy):
    name = "letter_accuracy_strict"
    summary = "letter_accuracy counting only answers in the requested {x} form"
    strict = True
