"""Document-VQA metrics: ANLS, VQA accuracy, relaxed accuracy and OCRBench's match.

Each one reads a sample's acceptable answers (`Batch.answers`: the reference record's `answers`
list, with the reference itself where the list lacks it; VQA accuracy, which counts annotators,
reads the list alone) and follows its benchmark's official evaluation, quirks included,
so a vlmkit number can be put beside a published one. Where a popular harness computes the
metric differently, the difference is listed here (and in the README) and, where users compare
against the harness, offered as a variant (`vlmkit score --variant METRIC=NAME`). Every metric
is a mean of per-sample scores, so `--by`, `--per-sample`, the paired bootstrap and `report`
work as for the other metrics. `--norm` (default none) applies to predictions and answers
before the metric's own processing.

anls (DocVQA, InfographicVQA, ST-VQA; the RRC evaluation script)
    Per answer: both texts lower-cased, stripped and their inner whitespace collapsed to single
    spaces; NL = Levenshtein distance of those / max(len) of the two texts *as given* (before
    the collapsing, upper-cased: the official lengths), 0 when both are empty. The sample scores
    1 - min(NL) over its answers, set to 0 when below 0.5 (0.5 itself passes).

vqa_accuracy (VQAv2, TextVQA, VizWiz; GT-Vision-Lab/VQA vqaEval.py)
    Prediction and answers: newlines and tabs to spaces, stripped. When the annotators do not
    all agree, both sides also go through VQAv2's processing (`vqa_answers`: punctuation, number
    words, articles, contractions); when they all agree, the texts are compared as they are
    (so "Yes" against ten "yes" scores 0). The score is the mean over the N leave-one-out sets of
    min(1, matches among the other N-1 answers / 3). Designed for ten answers: with one answer
    it is always 0.

relaxed_accuracy (ChartQA; the evaluation of the ChartQA line of work, pix2struct's metrics.py)
    Per answer: when both texts read as numbers (Python's float(), a trailing "%" divided by
    100) and the answer's number is not 0, correct when |prediction - answer| / |answer| <= 0.05;
    otherwise correct when the lower-cased texts are equal (no stripping). Best over answers.

ocrbench_match (OCRBench; Yuliang-Liu/MultimodalOCR)
    Correct when some answer, lower-cased, stripped and with newlines as spaces, is a substring
    of the prediction treated the same way. The `hme` variant (its handwritten-math subset,
    HME100k) removes spaces and newlines instead, and keeps case.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import ClassVar

from rapidfuzz.distance import Levenshtein

from vlmkit.metrics import vqa_answers
from vlmkit.metrics.base import Batch, MeanMetric

ANLS_THRESHOLD = 0.5
RELAXED_TOLERANCE = 0.05


Score = Callable[[str, tuple[str, ...]], float]
"""One question's score: (prediction, acceptable answers) -> value."""


def _stripped(score: Score) -> Score:
    """`score` of the stripped prediction, as harnesses that strip every answer compute it."""
    return lambda prediction, answers: score(prediction.strip(), answers)


def anls(prediction: str, answers: tuple[str, ...]) -> float:
    """One question's ANLS, as the RRC evaluation computes it."""
    seen = " ".join(prediction.strip().lower().split())
    similarity = 0.0
    for answer in answers:
        expected = " ".join(answer.strip().lower().split())
        # The official lengths are those of the texts as given, not of the collapsed ones.
        length = max(len(answer.upper()), len(prediction.upper()))
        distance = Levenshtein.distance(expected, seen)
        similarity = max(similarity, 1.0 - (distance / length if length else 0.0))
    return similarity if similarity >= ANLS_THRESHOLD else 0.0


def vqa_accuracy(prediction: str, answers: tuple[str, ...]) -> float:
    """One question's VQA accuracy, as the official evaluation computes it."""
    seen = vqa_answers.clean(prediction)
    given = [vqa_answers.clean(answer) for answer in answers]
    if len(set(given)) > 1:
        given = [vqa_answers.processed(answer) for answer in given]
        seen = vqa_answers.processed(seen)
    return _leave_one_out(seen, given)


def lmms_eval_vqa_accuracy(prediction: str, answers: tuple[str, ...]) -> float:
    """lmms-eval's VQAv2 accuracy: both sides always processed, with EvalAI's comma rule."""
    commas = vqa_answers.COMMAS_BETWEEN_DIGITS
    seen = vqa_answers.processed(vqa_answers.clean(prediction), commas)
    given = [vqa_answers.processed(vqa_answers.clean(answer), commas) for answer in answers]
    if not given:
        return 0.0
    # statistics.mean, as lmms-eval averages: its exact mean can differ from sum/len in the
    # last bit.
    return statistics.mean(min(1.0, others / 3) for others in _matching_others(seen, given))


def _leave_one_out(seen: str, given: list[str]) -> float:
    """The mean over each answer left out of min(1, matches among the others / 3)."""
    if not given:
        return 0.0
    total = sum(min(1.0, others / 3) for others in _matching_others(seen, given))
    return total / len(given)


def _matching_others(seen: str, given: list[str]) -> list[int]:
    """For each answer left out, how many of the others match the prediction."""
    matches = sum(answer == seen for answer in given)
    return [matches - (answer == seen) for answer in given]


def _number(text: str) -> float | None:
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_accuracy(prediction: str, answers: tuple[str, ...]) -> float:
    """1.0 when the prediction is relaxed-correct for some answer, else 0.0."""
    predicted = _number(prediction)
    for answer in answers:
        expected = _number(answer)
        # A target of 0 (falsy in the official test) is compared as text, as officially.
        if predicted is not None and expected:
            if abs(predicted - expected) / abs(expected) <= RELAXED_TOLERANCE:
                return 1.0
        elif prediction.lower() == answer.lower():
            return 1.0
    return 0.0


def ocrbench_match(prediction: str, answers: tuple[str, ...]) -> float:
    seen = prediction.lower().strip().replace("\n", " ")
    return float(any(answer.lower().strip().replace("\n", " ") in seen for answer in answers))


_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def _folded(score: Score) -> Score:
    """`score` with full-width ASCII (U+FF01-U+FF5E) and the ideographic space folded."""
    return lambda prediction, answers: score(
        prediction.translate(_FULL_WIDTH), tuple(a.translate(_FULL_WIDTH) for a in answers)
    )


def ocrbench_hme(prediction: str, answers: tuple[str, ...]) -> float:
    def bare(text: str) -> str:
        return text.strip().replace("\n", " ").replace(" ", "")

    seen = bare(prediction)
    return float(any(bare(answer) in seen for answer in answers))


class _AnswersMetric(MeanMetric):
    """A metric of a prediction against a sample's acceptable answers: one score function per
    variant, in `scorers` (keys as in `variants`)."""

    scorers: ClassVar[dict[str, Score]]
    scores_answers = True

    def sample_scores(self, batch: Batch) -> list[float]:
        score = self.scorers[self.variant]
        answers = self.answers_of(batch)
        return [score(p, given) for p, given in zip(batch.predictions, answers, strict=True)]

    def answers_of(self, batch: Batch) -> list[tuple[str, ...]]:
        """The answers each prediction is scored against: any acceptable one (the reference
        included)."""
        return batch.answers


class Anls(_AnswersMetric):
    name = "anls"
    summary = "DocVQA's Average Normalised Levenshtein Similarity (best answer, 0 below 0.5)"
    variants: ClassVar[dict[str, str]] = {
        "official": "the RRC evaluation of DocVQA/InfographicVQA",
        "lmms-eval": "the prediction stripped first (lmms-eval strips every answer)",
    }
    scorers: ClassVar[dict[str, Score]] = {"official": anls, "lmms-eval": _stripped(anls)}


class VqaAccuracy(_AnswersMetric):
    name = "vqa_accuracy"
    summary = "VQAv2's soft accuracy: min(1, matching annotators / 3), leave-one-out mean"
    variants: ClassVar[dict[str, str]] = {
        "official": "GT-Vision-Lab/VQA: answers processed only where annotators disagree",
        "lmms-eval": "lmms-eval's VQAv2 task (75571cf): both sides always processed",
    }
    scorers: ClassVar[dict[str, Score]] = {
        "official": vqa_accuracy,
        "lmms-eval": lmms_eval_vqa_accuracy,
    }

    def answers_of(self, batch: Batch) -> list[tuple[str, ...]]:
        # The annotators' answers as listed: adding the reference would add an annotator.
        return batch.listed_answers


class RelaxedAccuracy(_AnswersMetric):
    name = "relaxed_accuracy"
    summary = "ChartQA's accuracy: numbers within 5 % of the answer, other texts equal"
    variants: ClassVar[dict[str, str]] = {
        "official": "pix2struct's relaxed_correctness, best over the answers",
        "lmms-eval": "the prediction stripped first (lmms-eval and VLMEvalKit strip it)",
    }
    scorers: ClassVar[dict[str, Score]] = {
        "official": relaxed_accuracy,
        "lmms-eval": _stripped(relaxed_accuracy),
    }


class OcrBenchMatch(_AnswersMetric):
    name = "ocrbench_match"
    summary = "OCRBench's rule: an answer, lower-cased and stripped, within the prediction"
    variants: ClassVar[dict[str, str]] = {
        "official": "lower-cased, stripped, newlines as spaces",
        "hme": "its handwritten-math rule: spaces and newlines removed, case kept",
        "lmms-eval": "full-width ASCII folded to ASCII first (lmms-eval since July 2026)",
    }
    scorers: ClassVar[dict[str, Score]] = {
        "official": ocrbench_match,
        "hme": ocrbench_hme,
        "lmms-eval": _folded(ocrbench_match),
    }


__all__ = [
    "anls",
    "lmms_eval_vqa_accuracy",
    "ocrbench_hme",
    "ocrbench_match",
    "relaxed_accuracy",
    "vqa_accuracy",
]
