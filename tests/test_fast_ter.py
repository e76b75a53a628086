"""vlmkit's TER statistics must be sacrebleu's, pair by pair and for the corpus, to the last bit."""

from __future__ import annotations

import os
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein
from sacrebleu.metrics import TER, lib_ter

from vlmkit.metrics import fast_ter
from vlmkit.metrics.fast_ter import ter_statistics


def sacrebleu_statistics(hypotheses: list[str], references: list[str]) -> list[tuple[float, ...]]:
    rows = TER()._extract_corpus_statistics(hypotheses, [references])
    return [tuple(float(x) for x in row) for row in rows]


def assert_same(hypotheses: list[str], references: list[str], workers: int = 1) -> None:
    ours = ter_statistics(hypotheses, references, workers=workers)
    assert ours == sacrebleu_statistics(hypotheses, references)
    # the corpus number vlmkit reports: sacrebleu's own formula on the summed statistics
    totals = [sum(row[0] for row in ours), sum(row[1] for row in ours)]
    expected = TER().corpus_score(hypotheses, [references])
    assert TER()._compute_score_from_stats(totals).score == expected.score


def words(count: int, prefix: str = "w") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def moved_blocks(reference: list[str], moves: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    hypothesis = list(reference)
    for _ in range(moves):
        start = rng.randrange(len(hypothesis) - 5)
        block = hypothesis[start : start + 5]
        del hypothesis[start : start + 5]
        at = rng.randrange(len(hypothesis) + 1)
        hypothesis[at:at] = block
    return hypothesis


LONG = words(120)
# The optimal alignment of this pair runs 55 cells off the diagonal, outside sacrebleu's beam.
OFF_BEAM = (" ".join(words(55, "x") + LONG[:60]), " ".join(LONG[:60]))

CASES = {
    "both empty": ("", ""),
    "empty hypothesis": ("", "the total is 12.00"),
    "empty reference": ("the total is 12.00", ""),
    "whitespace only": ("   \n\t ", " "),
    "identical": ("Total 12.00 CASH", "Total 12.00 CASH"),
    "case only": ("TOTAL Cash", "total cash"),
    "dotted capital I and sharp s": ("İstanbul STRASSE", "i̇stanbul straße"),
    "greek final sigma": ("ΟΔΟΣ ΟΔΟΣ.", "οδος οδοσ."),
    "accents": ("café crème brûlée", "cafe crème brulee"),
    "cjk": ("東京 日本 ラーメン", "日本 東京 ラーメン"),
    "cjk unspaced": ("東京日本", "日本東京"),
    "emoji": ("pay 🙂 now 👍🏽", "pay now 👍🏽 🙂"),
    "punctuation glued": ("total: 12.00, thanks!", "total : 12.00 , thanks !"),
    "punctuation only": ("... ,,, !!", ". , !"),
    "multi-line": ("line one\nline two\n-hyphen\n", "line two\nline one -hyphen"),
    "trailing spaces": ("a b c   ", "a b c"),
    "repeated words": ("the the the of the", "the of the the the the"),
    "one word moved": ("b c d e a", "a b c d e"),
    "block moved": ("f g h a b c d e", "a b c d e f g h"),
    "two blocks swapped": ("d e f a b c x", "a b c x d e f"),
    "block moved and typos": ("teh c d a b e fx", "a b c d e f g"),
    "hypothesis much longer": (" ".join(words(90)), "w3 w50"),
    "reference much longer": ("w3 w50", " ".join(words(90))),
    "reversed": (" ".join(reversed(LONG[:30])), " ".join(LONG[:30])),
    "long rotated thirds": (" ".join(LONG[80:] + LONG[40:80] + LONG[:40]), " ".join(LONG)),
    "long with moved blocks": (" ".join(moved_blocks(LONG, 6, seed=1)), " ".join(LONG)),
    "long off the beam": OFF_BEAM,
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_sacrebleu_on_edge_cases(name: str) -> None:
    hypothesis, reference = CASES[name]
    assert_same([hypothesis], [reference])


def test_all_edge_cases_as_one_corpus() -> None:
    hypotheses, references = zip(*CASES.values(), strict=True)
    assert_same(list(hypotheses), list(references))


def test_the_off_beam_case_does_exercise_the_beam() -> None:
    hyp, ref = (text.split() for text in OFF_BEAM)
    beam_distance, _ = lib_ter.BeamEditDistance(ref)(hyp)
    assert beam_distance > Levenshtein.distance(hyp, ref)


def test_many_repeats_reach_the_candidate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    reference = [rng.choice("ab") for _ in range(40)]
    hypothesis = list(reference)
    rng.shuffle(hypothesis)
    seen = []
    original = lib_ter._shift

    def counting_shift(*args):
        result = original(*args)
        seen.append(result[2])
        return result

    monkeypatch.setattr(lib_ter, "_shift", counting_shift)
    assert_same([" ".join(hypothesis)], [" ".join(reference)])
    assert max(seen) >= lib_ter._MAX_SHIFT_CANDIDATES


def test_huge_vocabularies_fall_back_to_integer_tuples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_ter, "_MAX_CHAR_CODE", 0)
    short = [pair for pair in CASES.values() if len(pair[1]) < 300]
    assert_same([pair[0] for pair in short], [pair[1] for pair in short])


WORD = st.sampled_from(["a", "b", "c", "d", "A", "e.", "Ü"])


@st.composite
def pairs(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    reference = draw(st.lists(WORD, max_size=40))
    if draw(st.booleans()):
        return draw(st.lists(WORD, max_size=40)), reference
    # an edited copy: moved blocks and word edits, the cases TER's shifts exist for
    hypothesis = list(reference)
    for _ in range(draw(st.integers(0, 4))):
        if len(hypothesis) < 2:
            break
        start = draw(st.integers(0, len(hypothesis) - 1))
        block = hypothesis[start : start + draw(st.integers(1, 12))]
        del hypothesis[start : start + len(block)]
        at = draw(st.integers(0, len(hypothesis)))
        hypothesis[at:at] = block
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(hypothesis)))
        hypothesis.insert(at, draw(WORD))
    return hypothesis, reference


@settings(max_examples=200, deadline=None)
@given(pairs())
def test_property_matches_sacrebleu(pair: tuple[list[str], list[str]]) -> None:
    hypothesis, reference = pair
    assert_same([" ".join(hypothesis)], [" ".join(reference)])


def ocr_like_pairs(count: int, seed: int) -> tuple[list[str], list[str]]:
    """Receipt-like references and predictions with OCR errors, a few of them paragraphs."""
    rng = random.Random(seed)
    pool = ["total", "tax", "cash", "item", "qty", "price", "nasi", "ayam", "teh", "the", "of"]
    pool += ["and", "to", "12.00", "5,500", "-", ":", "€", "東京"]
    hypotheses, references = [], []
    for _ in range(count):
        length = rng.randint(1, 12) if rng.random() < 0.85 else rng.randint(13, 50)
        reference = [rng.choice(pool) for _ in range(length)]
        hypothesis = [w.upper() if rng.random() < 0.1 else w for w in reference]
        rate = rng.choice([0.0, 0.05, 0.2, 0.4])
        for _ in range(int(length * rate) + 1):
            roll = rng.random()
            if roll < 0.3 and hypothesis:
                hypothesis[rng.randrange(len(hypothesis))] += rng.choice("xo1")
            elif roll < 0.5 and hypothesis:
                del hypothesis[rng.randrange(len(hypothesis))]
            elif roll < 0.7:
                hypothesis.insert(rng.randrange(len(hypothesis) + 1), rng.choice(pool))
            elif len(hypothesis) > 3:
                start = rng.randrange(len(hypothesis) - 2)
                block = hypothesis[start : start + rng.randint(1, 3)]
                del hypothesis[start : start + len(block)]
                at = rng.randrange(len(hypothesis) + 1)
                hypothesis[at:at] = block
        hypotheses.append(" ".join(hypothesis) if rng.random() > 0.02 else "")
        references.append(" ".join(reference))
    return hypotheses, references


def test_ocr_like_corpus_matches_sacrebleu() -> None:
    hypotheses, references = ocr_like_pairs(150, seed=7)
    assert_same(hypotheses, references)


def slow_here(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Slow this process's chunks down (spawned helpers import the real module), so the helper
    gets to take chunks; returns the sizes of the chunks scored here."""
    scored_here: list[int] = []
    original = fast_ter._chunk_statistics

    def slow(pairs):
        scored_here.append(len(pairs))
        time.sleep(0.4)
        return original(pairs)

    monkeypatch.setattr(fast_ter, "_chunk_statistics", slow)
    monkeypatch.setattr(fast_ter, "_POOL_MIN_PAIRS", 0)
    return scored_here


def test_two_workers_give_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    hypotheses, references = ocr_like_pairs(80, seed=11)
    expected = ter_statistics(hypotheses, references, workers=1)
    scored_here = slow_here(monkeypatch)
    assert ter_statistics(hypotheses, references, workers=2) == expected
    assert 0 < sum(scored_here) < len(hypotheses)  # both processes did part of the work


def take_one_chunk_and_die(path, bounds, done) -> None:
    """A helper that takes the first chunk and is killed before it answers."""
    fast_ter._claim(bounds, front=True)
    os._exit(1)


def test_chunks_of_a_dead_helper_are_scored_here(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hypotheses, references = ocr_like_pairs(40, seed=12)
    scored_here = slow_here(monkeypatch)
    monkeypatch.setattr(fast_ter, "_helper", take_one_chunk_and_die)
    rows = ter_statistics(hypotheses, references, workers=2)
    assert rows == sacrebleu_statistics(hypotheses, references)
    assert sum(scored_here) == len(hypotheses)
    assert "scoring 1 chunks here" in caplog.text


def test_small_inputs_stay_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for a handful of pairs")

    monkeypatch.setattr(fast_ter, "_pool_statistics", no_pool)
    assert_same(["a b c", "c b a"], ["a b c", "a b c"], workers=4)


def test_worker_counts_below_two_and_none_are_accepted() -> None:
    for workers in (None, 0, -1, 1):
        assert ter_statistics(["b a"], ["a b"], workers=workers) == [(1.0, 2.0)]


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="pair up"):
        ter_statistics(["a"], ["a", "b"])
