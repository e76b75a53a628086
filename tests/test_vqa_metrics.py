"""The document-VQA metrics against the official evaluations' own values.

tests/data/vqa_metrics_golden.json holds, for 1,070 (prediction, answers) cases, the values the
official code computes (its `_provenance` names each repository, path and commit: the RRC ANLS
script, GT-Vision-Lab/VQA's vqaEval.py, pix2struct's relaxed_correctness, OCRBench's scoring
loop) and those lmms-eval's code computes, for the `lmms-eval` variants. The first cases are the
edge cases where the definitions disagree; the rest are random. Every value must be identical,
not close.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from metric_helpers import vlmkit_metric

from vlmkit.metrics import metric_class
from vlmkit.metrics.base import Batch, MetricOptions
from vlmkit.metrics.vqa import anls, ocrbench_match, relaxed_accuracy, vqa_accuracy

GOLDEN = json.loads(
    (Path(__file__).parent / "data" / "vqa_metrics_golden.json").read_text(encoding="utf-8")
)
KEYS = sorted(GOLDEN["cases"][0]["expected"])


def test_the_goldens_say_where_they_come_from():
    sources = GOLDEN["_provenance"]["sources"]
    assert {"anls", "vqa_accuracy", "relaxed_accuracy", "ocrbench_match", "lmms-eval"} <= set(
        sources
    )
    assert all(len(source["commit"]) == 40 for source in sources.values())
    assert len(GOLDEN["cases"]) > 1000


@pytest.mark.parametrize("key", KEYS)
def test_every_case_equals_the_official_value(key: str):
    name, _, variant = key.partition("/")
    options = {"variants": ((name, variant),)} if variant else {}
    cases = GOLDEN["cases"]
    result = vlmkit_metric(
        name,
        [case["prediction"] for case in cases],
        [case["answers"][0] for case in cases],
        answers=[tuple(case["answers"]) for case in cases],
        **options,
    )
    got = result.sample_values()
    wrong = [
        (case["prediction"], case["answers"], value, case["expected"][key])
        for case, value in zip(cases, got, strict=True)
        if value != case["expected"][key]
    ]
    assert not wrong, f"{len(wrong)} differ, first: {wrong[0]}"
    assert result.signature.startswith(f"{name}|variant:{variant or 'official'}|")
    mean = sum(case["expected"][key] for case in cases) / len(cases)
    assert result.value == pytest.approx(mean, abs=1e-12)


@pytest.mark.parametrize(
    ("prediction", "answers", "value"),
    [
        ("ab", ("abcd",), 0.5),  # 1 - 2/4: exactly the threshold, which passes
        ("a", ("abcd",), 0.0),  # 0.25 < 0.5
        ("Dr. Lobo", ("dr. lobo",), 1.0),
        ("  dr lobo  ", ("Dr. Lobo",), 1 - 1 / 11),  # lengths of the raw texts: 11
        ("", ("",), 1.0),
        ("1993", ("1/8/93", "1/8/1993"), 1 - 4 / 8),  # the best answer counts
    ],
)
def test_anls_by_hand(prediction, answers, value):
    assert anls(prediction, answers) == pytest.approx(value)


def test_vqa_accuracy_by_hand():
    ten = ("yes",) * 10
    assert vqa_accuracy("yes", ten) == 1.0
    # Annotators who all agree are compared as written: no lower-casing, no punctuation rule.
    assert vqa_accuracy("Yes", ten) == 0.0 and vqa_accuracy("yes.", ten) == 0.0
    mixed = ("2",) * 2 + ("3",) * 8
    # "two" -> "2"; leaving out a "2" leaves 1 match (1/3), leaving out a "3" leaves 2 (2/3).
    assert vqa_accuracy("two", mixed) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert vqa_accuracy("yes", ("yes",)) == 0.0  # one answer: no other annotator agrees


def test_relaxed_accuracy_by_hand():
    assert relaxed_accuracy("10.5", ("10",)) == 1.0 and relaxed_accuracy("10.6", ("10",)) == 0.0
    assert relaxed_accuracy("50%", ("0.5",)) == 1.0
    # A target of 0 is compared as text, as the official code does (0 is falsy there).
    assert relaxed_accuracy("0", ("0",)) == 1.0 and relaxed_accuracy("0.0", ("0",)) == 0.0
    assert relaxed_accuracy("YES", ("yes",)) == 1.0 and relaxed_accuracy(" yes", ("yes",)) == 0.0


def test_ocrbench_by_hand():
    assert ocrbench_match("The sign reads STOP here", ("stop",)) == 1.0
    assert ocrbench_match("sto p", ("stop",)) == 0.0


def test_answers_default_to_the_reference_and_exact_match_accepts_any():
    options = MetricOptions()
    batch = Batch(["1/8/1993", "itc"], ["1/8/93", "ITC"], options, [("1/8/93", "1/8/1993"), None])
    assert batch.answers == [("1/8/93", "1/8/1993"), ("ITC",)]
    exact = metric_class("exact_match")(options)
    assert exact.sample_scores(batch) == [1.0, 0.0]


def test_norm_applies_to_predictions_and_answers_before_the_metric():
    result = vlmkit_metric("anls", ["ITC."], ["x"], answers=[("itc",)], norm="punctuation")
    assert result.value == 1.0 and "|norm:punctuation|" in result.signature
