"""wer and cer are exactly jiwer's numbers: corpus-level, per sample, and on awkward text."""

from __future__ import annotations

from importlib.metadata import version

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_helpers import vlmkit_metric

CASES = {
    "simple": (["the cat sat on the mat"], ["the cat sat on a mat"]),
    "corpus": (
        ["hello world", "a b c d", "one two three four five"],
        ["hello word", "a c d e f", "one two three four five"],
    ),
    "unicode": (
        ["Grüße aus Köln", "東京 タワー", "naïve café 🙂"],
        ["Grusse aus Köln", "東京タワー", "naive cafe 🙂"],
    ),
    "empty_prediction": (["some words here", "more"], ["", "more"]),
    "empty_reference": (["", "a b"], ["x y", "a b"]),
    "all_empty_references": ([""], ["inserted words"]),
    "both_empty": ([""], [""]),
    "multi_line": (["line one\nline two\n\nline three"], ["line one line two\nline 3"]),
    "whitespace_runs": (["  spaced   out\ttext  "], ["spaced out text"]),
    "long": (
        [" ".join(f"w{i % 97}" for i in range(2000))],
        [" ".join(f"w{(i * 7) % 97}" for i in range(1900))],
    ),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("name", "reference_fn"), [("wer", jiwer.wer), ("cer", jiwer.cer)])
def test_corpus_value_is_jiwers(case, name, reference_fn):
    refs, preds = CASES[case]
    result = vlmkit_metric(name, preds, refs)
    assert result.value == reference_fn(refs, preds)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("name", "reference_fn"), [("wer", jiwer.wer), ("cer", jiwer.cer)])
def test_per_sample_values_and_mean_are_jiwers(case, name, reference_fn):
    refs, preds = CASES[case]
    expected = [reference_fn(r, p) for r, p in zip(refs, preds, strict=True)]
    result = vlmkit_metric(name, preds, refs, aggregation="mean")
    assert result.sample_values() == pytest.approx(expected, rel=0, abs=1e-12)
    assert result.value == pytest.approx(sum(expected) / len(expected), rel=1e-12)


def test_normalisation_is_applied_before_jiwer():
    refs, preds = ["Hello, World!"], ["hello   world"]
    result = vlmkit_metric("wer", preds, refs, norm="lowercase+punctuation+whitespace")
    assert result.value == 0.0
    assert "norm:lowercase+punctuation+whitespace" in result.signature
    assert "agg:corpus" in result.signature


def test_signature_names_jiwer_version():
    result = vlmkit_metric("cer", ["a"], ["b"])
    assert result.signature.startswith("cer|")
    assert f"jiwer:{version('jiwer')}" in result.signature


words = st.lists(st.sampled_from(["a", "b", "cat", "Zoë", "東", "", "x y"]), max_size=12).map(
    " ".join
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(words, words), min_size=1, max_size=6))
def test_property_matches_jiwer(pairs):
    refs = [r for r, _ in pairs]
    preds = [p for _, p in pairs]
    for name, fn in (("wer", jiwer.wer), ("cer", jiwer.cer)):
        assert vlmkit_metric(name, preds, refs).value == fn(refs, preds)
