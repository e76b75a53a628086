"""bleu, chrf and ter are exactly sacrebleu's corpus scores, with sacrebleu's signature."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_helpers import vlmkit_metric
from sacrebleu.metrics import BLEU, CHRF, TER

CASES = {
    "simple": (["the cat sat on the mat"], ["the cat sat on a mat"]),
    "corpus": (
        ["The quick brown fox jumps over the lazy dog.", "It is 3.14 and 2,000 items.", "ok"],
        ["The fast brown fox jumped over a lazy dog .", "It is 3.14 and 2,000 item.", "ok"],
    ),
    "unicode": (
        ["Grüße aus Köln", "東京タワーに行きました", "naïve café 🙂"],
        ["Grusse aus Koln", "東京タワー", "naive cafe 🙂"],
    ),
    "empty_prediction": (["some words here", "more words"], ["", "more words"]),
    "empty_reference": (["", "a b c d e"], ["x y", "a b c d e"]),
    "all_empty": ([""], [""]),
    "multi_line": (["line one\nline two\n\nline three"], ["line one line two\nline 3"]),
    "case": (["Total Price 60.000"], ["TOTAL PRICE 60.000"]),
    "long": (
        [" ".join(f"w{i % 97}" for i in range(400))],
        [" ".join(f"w{(i * 7) % 97}" for i in range(380))],
    ),
}

LIBRARY = {"bleu": BLEU, "chrf": CHRF, "ter": TER}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", LIBRARY)
def test_corpus_score_is_sacrebleus(case, name):
    refs, preds = CASES[case]
    expected = LIBRARY[name]().corpus_score(preds, [refs]).score
    assert vlmkit_metric(name, preds, refs).value == expected


@pytest.mark.parametrize("name", LIBRARY)
def test_signature_carries_sacrebleus_own(name):
    library = LIBRARY[name]()
    library.corpus_score(["a b"], [["a c"]])  # sacrebleu signs only after scoring
    own = library.get_signature().format()
    signature = vlmkit_metric(name, ["a b"], ["a c"]).signature
    assert signature.startswith(f"{name}|sacrebleu({own})|")
    assert "norm:none" in signature and "agg:corpus" in signature


def test_per_sample_bleu_is_sacrebleus_sentence_bleu():
    refs, preds = CASES["corpus"]
    result = vlmkit_metric("bleu", preds, refs, aggregation="mean")
    assert "eff:yes" in result.signature  # sentence BLEU turns effective order on
    expected = [
        BLEU(effective_order=True).sentence_score(p, [r]).score
        for p, r in zip(preds, refs, strict=True)
    ]
    assert result.sample_values() == pytest.approx(expected, abs=1e-9)


def test_per_sample_chrf_and_ter_are_sacrebleus_sentence_scores():
    refs, preds = CASES["corpus"]
    for name in ("chrf", "ter"):
        result = vlmkit_metric(name, preds, refs)
        expected = [
            LIBRARY[name]().sentence_score(p, [r]).score for p, r in zip(preds, refs, strict=True)
        ]
        assert result.sample_values() == pytest.approx(expected, abs=1e-9)


sentences = st.lists(
    st.sampled_from(["the", "The", "cat", "sat", "mat", ",", "3.14", "Köln", "東京", "a-b"]),
    max_size=15,
).map(" ".join)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(sentences, sentences), min_size=1, max_size=5))
def test_property_matches_sacrebleu(pairs):
    refs = [r for r, _ in pairs]
    preds = [p for _, p in pairs]
    for name, cls in LIBRARY.items():
        assert vlmkit_metric(name, preds, refs).value == cls().corpus_score(preds, [refs]).score
