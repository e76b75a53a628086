"""exact_match and letter accuracy, with the paper's {x} extraction and the documented fallback."""

from __future__ import annotations

import pytest
from metric_helpers import vlmkit_metric

from vlmkit.metrics.answer import extract_letter


@pytest.mark.parametrize(
    ("answer", "letter", "how"),
    [
        ("{e}", "e", "braces"),
        ("The circled letter is {E}.", "E", "braces"),
        ("e.g. {a} ... my answer: { k }", "k", "braces"),  # the last braced letter wins
        ("e", "e", "bare"),
        ('"E".', "E", "bare"),
        ("**q**", "q", "bare"),
        ('The circled letter is "g".', "g", "phrase"),
        ("The character highlighted with a red oval is: n", "n", "phrase"),
        ("I think it is 'w' in this word", "w", "quoted"),
        ("I cannot tell.", None, "none"),
        ("", None, "none"),
        ("{ab}", None, "none"),  # not a single character
    ],
)
def test_extract_letter(answer, letter, how):
    assert extract_letter(answer) == (letter, how)


def test_strict_extraction_accepts_braces_only():
    assert extract_letter("{x}", strict=True) == ("x", "braces")
    assert extract_letter("x", strict=True) == (None, "none")


def test_letter_accuracy_case_insensitive_by_default():
    preds = ["{E}", "The letter is e.", "{a}", "nothing", "{c}"]
    refs = ["e", "e", "b", "n", "C"]
    assert vlmkit_metric("letter_accuracy", preds, refs).value == pytest.approx(3 / 5)
    assert vlmkit_metric("letter_accuracy_strict", preds, refs).value == pytest.approx(2 / 5)
    sensitive = vlmkit_metric("letter_accuracy", preds, refs, letter_case_sensitive=True)
    assert sensitive.value == pytest.approx(1 / 5)
    assert "case:sensitive" in sensitive.signature


def test_letter_accuracy_reports_how_answers_were_extracted():
    from vlmkit.metrics import metric_class
    from vlmkit.metrics.base import Batch, MetricOptions

    opts = MetricOptions()
    metric = metric_class("letter_accuracy")(opts)
    batch = Batch(["{a}", "b", "no idea"], ["a", "b", "c"], opts)
    details = metric.details(batch, metric.statistics(batch))
    assert details == {"extraction": {"bare": 1, "braces": 1, "none": 1}}


def test_exact_match_with_and_without_normalisation():
    preds = ["Total: 60.000", "abc ", "x"]
    refs = ["total 60.000", "abc", "x"]
    assert vlmkit_metric("exact_match", preds, refs).value == pytest.approx(1 / 3)
    assert vlmkit_metric("exact_match", preds, refs, norm="basic").value == 1.0


def test_exact_match_per_sample_values():
    result = vlmkit_metric("exact_match", ["a", "b"], ["a", "c"])
    assert result.sample_values() == [1.0, 0.0]


@pytest.mark.parametrize("norm", ["basic", "punctuation", "nfkc+lowercase"])
def test_normalisation_never_hides_the_braces(norm):
    # The punctuation step deletes "{" and "}": the letter is extracted first, then normalised.
    preds, refs = ["{E}", "The answer is {ｋ}."], ["e", "k"]
    assert vlmkit_metric("letter_accuracy_strict", preds, refs, norm=norm).value == (
        1.0 if "nfkc" in norm or norm == "basic" else 0.5
    )
