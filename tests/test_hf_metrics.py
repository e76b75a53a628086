"""hf_bleu and hf_ter: Hugging Face `evaluate`'s `bleu` and `ter` dicts, without `evaluate`.

The goldens in tests/data/hf_bleu_golden.json and hf_ter_golden.json are the outputs of the real
metric scripts (huggingface/evaluate metrics/bleu + tensorflow/nmt's bleu.py, metrics/ter), run
offline outside the repository; their `_provenance` blocks give the commits, file hashes and
versions. Here they are compared with vlmkit to 1e-9, key by key and type by type; a few cases are
also worked out by hand, and where `evaluate` raises, vlmkit's defined results are pinned.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from metric_helpers import vlmkit_metric
from sacrebleu.metrics import TER

from vlmkit.metrics.nmt_bleu import (
    BleuCounts,
    hf_bleu,
    hf_bleu_from_statistics,
    hf_bleu_statistics,
    tokenize_13a,
)

DATA = Path(__file__).parent / "data"
BLEU_GOLDEN = json.loads((DATA / "hf_bleu_golden.json").read_text(encoding="utf-8"))
TER_GOLDEN = json.loads((DATA / "hf_ter_golden.json").read_text(encoding="utf-8"))
TOL = 1e-9

BLEU_KEYS = [
    "bleu",
    "precisions",
    "brevity_penalty",
    "length_ratio",
    "translation_length",
    "reference_length",
]
TER_KEYS = ["score", "num_edits", "ref_length"]


def _cases(golden: dict, *, raises: bool = False) -> list[Any]:
    return [
        pytest.param(case, id=case["name"])
        for case in golden["cases"]
        if ("raises" in case) == raises
    ]


def _single_reference_default(golden: dict) -> list[Any]:
    """Cases `vlmkit score` can express: one reference string per sample, evaluate's defaults."""
    return [
        pytest.param(case, id=case["name"])
        for case in golden["cases"]
        if "expected" in case
        and not case["kwargs"]
        and all(isinstance(r, str) for r in case["references"])
    ]


def assert_same_dict(actual: dict, expected: dict, types: dict[str, str] | None = None) -> None:
    """Same keys in the same order, same Python types, numbers equal to 1e-9."""
    assert list(actual) == list(expected)
    for key, want in expected.items():
        got = actual[key]
        if types is not None:
            assert type(got).__name__ == types[key], (key, got)
        if isinstance(want, list):
            assert isinstance(got, list), key
            assert len(got) == len(want), key
            for g, w in zip(got, want, strict=True):
                assert type(g) is float, (key, g)
                assert abs(g - w) <= TOL, (key, got, want)
        elif isinstance(want, int) and not isinstance(want, bool) and types is not None:
            assert got == want, (key, got, want)
        else:
            assert abs(got - want) <= TOL, (key, got, want)


def test_goldens_come_from_the_real_scripts():
    # Guard against hand-edited goldens: both files name the upstream code they ran.
    bleu_src = BLEU_GOLDEN["_provenance"]["sources"]
    assert bleu_src["huggingface/evaluate"]["commit"] == "a7dd338386a4fae9a1767e05eb9ef9479513d9e8"
    assert bleu_src["tensorflow/nmt"]["commit"] == "0be864257a76c151eef20ea689755f08bc1faf4e"
    ter_src = TER_GOLDEN["_provenance"]["sources"]["huggingface/evaluate"]
    assert ter_src["commit"] == "a7dd338386a4fae9a1767e05eb9ef9479513d9e8"
    assert len(BLEU_GOLDEN["cases"]) >= 40
    assert len(BLEU_GOLDEN["tokenize_13a"]) >= 50
    assert len(TER_GOLDEN["cases"]) >= 20


# --- tokenizer -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "item", BLEU_GOLDEN["tokenize_13a"], ids=[repr(t["input"]) for t in BLEU_GOLDEN["tokenize_13a"]]
)
def test_tokenize_13a_matches_evaluates_tokenizer(item):
    assert tokenize_13a(item["input"]) == item["tokens"]


def test_tokenize_13a_by_hand():
    # Period and comma stay inside numbers, split off elsewhere; a dash is split after a digit.
    assert tokenize_13a("3.14 2,000") == ["3.14", "2,000"]
    assert tokenize_13a("a...") == ["a", ".", ".", "."]
    assert tokenize_13a("1-2") == ["1", "-", "2"]
    assert tokenize_13a(".5 5.") == [".", "5", "5", "."]
    # "-\n" joins lines before anything else, so a trailing hyphen disappears with its newline.
    assert tokenize_13a("co-\nop x-\n") == ["coop", "x"]
    # ASCII punctuation other than ' , - . is padded; no lowercasing; entities are decoded.
    assert tokenize_13a("Total: $1,234.56 (incl. VAT)") == [
        "Total", ":", "$", "1,234.56", "(", "incl", ".", "VAT", ")",
    ]  # fmt: skip
    assert tokenize_13a("Fish &amp; Chips") == ["Fish", "&", "Chips"]


# --- hf_bleu against evaluate --------------------------------------------------------------------
@pytest.mark.parametrize("case", _cases(BLEU_GOLDEN))
def test_hf_bleu_matches_evaluate(case):
    ours = hf_bleu(case["predictions"], case["references"], **case["kwargs"])
    assert list(ours) == BLEU_KEYS
    assert_same_dict(ours, case["expected"], case["types"])


@pytest.mark.parametrize("case", _cases(BLEU_GOLDEN))
def test_summed_sample_statistics_give_the_corpus_dict(case):
    # The route HfBleu (and bootstrap resampling) takes: per-sample counts, summed.
    max_order = case["kwargs"].get("max_order", 4)
    counts = [
        hf_bleu_statistics(p, r, max_order=max_order)
        for p, r in zip(case["predictions"], case["references"], strict=True)
    ]
    ours = hf_bleu_from_statistics(sum(counts), **case["kwargs"])
    assert_same_dict(ours, case["expected"], case["types"])


def test_hf_bleu_by_hand_partial_overlap():
    # "the cat sat on the mat" vs "the cat is on the mat", 6 tokens each:
    #   1-grams 5/6 (all but "sat"), 2-grams 3/5 (the cat, on the, the mat),
    #   3-grams 1/4 (on the mat), 4-grams 0/3 -> unsmoothed BLEU 0, brevity penalty 1.
    out = hf_bleu(["the cat sat on the mat"], ["the cat is on the mat"])
    assert out["precisions"] == pytest.approx([5 / 6, 3 / 5, 1 / 4, 0.0], abs=TOL, rel=0)
    assert (out["bleu"], out["brevity_penalty"], out["length_ratio"]) == (0.0, 1.0, 1.0)
    # Lin & Och smoothing adds one to every count: 6/7, 4/6, 2/5, 1/4, product 2/35.
    smooth = hf_bleu(["the cat sat on the mat"], ["the cat is on the mat"], smooth=True)
    assert smooth["precisions"] == pytest.approx([6 / 7, 4 / 6, 2 / 5, 1 / 4], abs=TOL, rel=0)
    assert smooth["bleu"] == pytest.approx((2 / 35) ** 0.25, abs=TOL, rel=0)


def test_hf_bleu_by_hand_brevity_penalty():
    # A correct 5-token prefix of a 9-token reference: precisions 1, BP = exp(1 - 9/5).
    out = hf_bleu(["the quick brown fox jumps"], ["the quick brown fox jumps over the lazy dog"])
    assert out["precisions"] == [1.0, 1.0, 1.0, 1.0]
    assert out["length_ratio"] == pytest.approx(5 / 9, abs=TOL, rel=0)
    assert out["bleu"] == pytest.approx(math.exp(-0.8), abs=TOL, rel=0)
    assert out["brevity_penalty"] == out["bleu"]


def test_hf_bleu_by_hand_multiple_references():
    # "the" x7 is credited at most twice (its count in the richer reference); the reference
    # length is the shortest reference's (6), not the closest (7) as in sacrebleu.
    out = hf_bleu(
        ["the the the the the the the"],
        [["the cat is on the mat", "there is a cat on the mat"]],
    )
    assert out["precisions"] == pytest.approx([2 / 7, 0.0, 0.0, 0.0], abs=TOL, rel=0)
    assert (out["translation_length"], out["reference_length"]) == (7, 6)
    assert out["bleu"] == 0.0
    assert out["brevity_penalty"] == 1.0


def test_hf_bleu_documented_example():
    # The example in evaluate's bleu.py docstring prints 1.0.
    out = hf_bleu(
        ["hello there general kenobi", "foo bar foobar"],
        [["hello there general kenobi", "hello there!"], ["foo bar foobar"]],
    )
    assert out["bleu"] == 1.0


def test_short_predictions_score_zero_without_smoothing():
    # Fewer than 4 tokens everywhere: no 4-gram is possible, precision 0, BLEU 0 even when exact.
    assert hf_bleu(["a b c", "d e"], ["a b c", "d e"])["bleu"] == 0.0
    assert hf_bleu(["a b c", "d e"], ["a b c", "d e"], smooth=True)["bleu"] == 1.0
    assert hf_bleu(["a b c", "d e"], ["a b c", "d e"], max_order=2)["bleu"] == 1.0


# --- where evaluate raises -----------------------------------------------------------------------
ZEROS = [0.0, 0.0, 0.0, 0.0]
ONES = [1.0, 1.0, 1.0, 1.0]
# bleu, precisions, brevity_penalty, length_ratio, translation_length, reference_length
DEFINED = {
    # Nothing predicted: the brevity penalty's limit 0, so BLEU 0; ratio 0 / ref_len.
    "empty_prediction": (0.0, ZEROS, 0.0, 0.0, 0, 6),
    "whitespace_only_prediction": (0.0, ZEROS, 0.0, 0.0, 0, 4),
    "empty_prediction_smooth": (0.0, ONES, 0.0, 0.0, 0, 5),
    # Nothing to reference: ratio reported as 0.0 (sacrebleu's convention), not short: BP 1.
    "empty_reference": (0.0, ZEROS, 1.0, 0.0, 6, 0),
    "empty_reference_smooth": (
        (1 / 360) ** 0.25,  # (1/6 * 1/5 * 1/4 * 1/3) ** (1/4): no matches, 5, 4, 3, 2 possible
        [1 / 6, 1 / 5, 1 / 4, 1 / 3],
        1.0,
        0.0,
        5,
        0,
    ),
    "multi_refs_one_empty": (1.0, ONES, 1.0, 0.0, 5, 0),  # shortest reference is ""
    "all_empty": (0.0, ZEROS, 0.0, 0.0, 0, 0),
    "no_samples": (0.0, ZEROS, 0.0, 0.0, 0, 0),
}


def test_every_raising_golden_has_a_defined_result():
    assert {c["name"] for c in BLEU_GOLDEN["cases"] if "raises" in c} == set(DEFINED)


@pytest.mark.parametrize("case", _cases(BLEU_GOLDEN, raises=True))
def test_hf_bleu_defines_what_evaluate_raises_on(case):
    assert case["raises"]["evaluate"].split(":")[0] in ("ZeroDivisionError", "IndexError")
    ours = hf_bleu(case["predictions"], case["references"], **case["kwargs"])
    expected = dict(zip(BLEU_KEYS, DEFINED[case["name"]], strict=True))
    assert_same_dict(ours, expected, {k: type(v).__name__ for k, v in expected.items()})
    json.dumps(ours, allow_nan=False)  # finite, so it goes into reports as is


def test_hf_bleu_rejects_malformed_input():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        hf_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no reference"):
        hf_bleu(["a"], [[]])
    with pytest.raises(ValueError, match="max_order"):
        hf_bleu(["a"], ["a"], max_order=0)
    with pytest.raises(ValueError, match="max_order"):
        BleuCounts.zero(4) + BleuCounts.zero(2)
    with pytest.raises(ValueError, match="max_order"):
        hf_bleu_from_statistics(BleuCounts.zero(2), max_order=4)


def test_counts_add_up():
    a = hf_bleu_statistics("the cat sat on the mat", "the cat is on the mat")
    b = hf_bleu_statistics("a dog", ["a dog barked", "the dog"])
    assert a == BleuCounts((5, 3, 1, 0), (6, 5, 4, 3), 6, 6)
    assert b == BleuCounts((2, 1, 0, 0), (2, 1, 0, 0), 2, 2)
    assert sum([a, b]) == a + b == BleuCounts((7, 4, 1, 0), (8, 6, 4, 3), 8, 8)
    assert a + BleuCounts.zero() == a


# --- the metric classes, through vlmkit's scoring path -------------------------------------------
@pytest.mark.parametrize("case", _single_reference_default(BLEU_GOLDEN))
def test_hf_bleu_metric_reports_evaluates_dict(case):
    result = vlmkit_metric("hf_bleu", case["predictions"], case["references"])
    assert_same_dict(result.report, case["expected"], case["types"])
    assert result.value == pytest.approx(case["expected"]["bleu"], abs=TOL, rel=0)


def test_hf_bleu_metric_on_no_samples():
    result = vlmkit_metric("hf_bleu", [], [])
    assert result.report == dict(zip(BLEU_KEYS, DEFINED["no_samples"], strict=True))


def _evaluate_ter_recipe(predictions, references, **kwargs) -> dict:
    """What evaluate's Ter._compute does: references transposed into streams, sacrebleu TER."""
    if isinstance(references[0], str):
        references = [[r] for r in references]
    streams = [[refs[i] for refs in references] for i in range(len(references[0]))]
    ter = TER(
        normalized=kwargs.get("normalized", False),
        no_punct=kwargs.get("ignore_punct", False),
        asian_support=kwargs.get("support_zh_ja_chars", False),
        case_sensitive=kwargs.get("case_sensitive", False),
    )
    out = ter.corpus_score(predictions, streams)
    return {"score": out.score, "num_edits": out.num_edits, "ref_length": out.ref_length}


@pytest.mark.parametrize("case", _cases(TER_GOLDEN))
def test_installed_sacrebleu_reproduces_evaluates_ter(case):
    # hf_ter rests on sacrebleu; this pins that the installed version still gives evaluate's dicts.
    ours = _evaluate_ter_recipe(case["predictions"], case["references"], **case["kwargs"])
    assert_same_dict(ours, case["expected"], case["types"])


def test_ter_documented_examples():
    # The values printed in evaluate's ter.py docstring (examples 1-5).
    by_name = {c["name"]: c.get("expected") for c in TER_GOLDEN["cases"]}
    assert by_name["doc_example_1"] == {"score": 150.0, "num_edits": 15, "ref_length": 10.0}
    assert by_name["doc_example_2"] == {"score": 62.5, "num_edits": 5, "ref_length": 8.0}
    assert by_name["doc_example_3"] == {
        "score": 57.14285714285714,
        "num_edits": 6,
        "ref_length": 10.5,
    }
    assert by_name["doc_example_4"] == {"score": 0.0, "num_edits": 0, "ref_length": 8.0}
    assert by_name["doc_example_5"] == {"score": 100.0, "num_edits": 10, "ref_length": 10.0}


@pytest.mark.parametrize("case", _single_reference_default(TER_GOLDEN))
def test_hf_ter_metric_reports_evaluates_dict(case):
    result = vlmkit_metric("hf_ter", case["predictions"], case["references"])
    assert list(result.report) == TER_KEYS
    assert_same_dict(result.report, case["expected"], case["types"])
    assert result.value == pytest.approx(case["expected"]["score"], abs=TOL, rel=0)


def test_hf_ter_by_hand():
    # One block shift of "on the mat" turns the prediction into the reference: 1 edit / 6 words.
    # Case is ignored by default (evaluate's case_sensitive=False), so "The" is no edit.
    result = vlmkit_metric("hf_ter", ["On the mat the cat is"], ["the cat is on the mat"])
    assert_same_dict(
        result.report,
        {"score": 100 / 6, "num_edits": 1, "ref_length": 6.0},
        {"score": "float", "num_edits": "int", "ref_length": "float"},
    )


def test_hf_ter_metric_on_no_samples():
    # evaluate raises IndexError on an empty corpus; vlmkit reports zero edits over zero words.
    report = vlmkit_metric("hf_ter", [], []).report
    assert report == {"score": 0.0, "num_edits": 0, "ref_length": 0.0}
    assert [type(v) for v in report.values()] == [float, int, float]


def test_hf_metrics_report_plain_json():
    preds, refs = ["the cat sat on the mat", ""], ["the cat is on the mat", "a b"]
    for name in ("hf_bleu", "hf_ter"):
        report = vlmkit_metric(name, preds, refs).report
        assert not any(isinstance(v, np.generic) for v in report.values())
        json.dumps(report, allow_nan=False)
