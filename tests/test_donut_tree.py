"""vlmkit.metrics.donut_tree against clovaai/donut's own JSONParseEvaluator.

Three kinds of check:

* hand-computed values (always run): each case's arithmetic is in its comment, so a reader can
  verify Donut's definitions, quirks included, without Donut installed;
* the same cases, real CORD v2 receipts with model-like errors, and random JSON (hypothesis)
  compared with Donut's evaluator, loaded from the installed donut-python by
  tests/oracles/donut_evaluator.py (skipped when donut-python, zss or nltk are missing);
* properties that need no oracle (symmetry, bounds, the one-pass field reader).

Floats are compared with ``==``: vlmkit promises Donut's numbers, not approximations.
"""

from __future__ import annotations

import copy
import random
import warnings
from collections import Counter
from typing import Any

import numpy as np
import pytest
from cord_pairs import CORD_METADATA, KINDS, load_receipts, make_pairs, perturb_as
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlmkit.metrics import donut_tree
from vlmkit.metrics.donut_tree import (
    FieldCounts,
    donut_f1,
    field_counts,
    flatten_fields,
    normalize_tree,
    ted_accuracy,
    tree_edit_distance,
)

Json = Any


# --------------------------------------------------------------------------- the oracle


@pytest.fixture(scope="module")
def donut() -> Any:
    """Donut's real ``JSONParseEvaluator`` instance, or a skip saying what is missing."""
    try:
        from oracles.donut_evaluator import load_donut_evaluator

        return load_donut_evaluator()
    except ImportError as exc:
        pytest.skip(
            f"Donut's evaluator is unavailable ({exc}); "
            "pip install zss nltk && pip install --no-deps donut-python"
        )


def donut_distances(donut: Any, pred: Json, ref: Json) -> tuple[float, float]:
    """The two zss distances inside Donut's ``cal_acc``: (pred, ref) and (empty, ref).

    The same calls as cal_acc makes, with Donut's own tree builder and cost functions.
    """
    import zss

    def tree(value: Json) -> Any:
        return donut.construct_tree_from_dict(donut.normalize_dict(value))

    costs = {
        "get_children": zss.Node.get_children,
        "insert_cost": donut.insert_and_remove_cost,
        "remove_cost": donut.insert_and_remove_cost,
        "update_cost": donut.update_cost,
    }
    answer = tree(ref)
    return zss.distance(tree(pred), answer, **costs), zss.distance(tree({}), answer, **costs)


def donut_cal_acc(donut: Any, pred: Json, ref: Json) -> float:
    with warnings.catch_warnings():
        # Donut divides numpy zeros by zero for empty references (see test_empty_reference).
        warnings.simplefilter("ignore", RuntimeWarning)
        return donut.cal_acc(pred, ref)


def donut_cal_f1(donut: Any, preds: list[Json], refs: list[Json]) -> float | None:
    """Donut's corpus F1, or None where it divides by zero (no field on either side)."""
    try:
        return donut.cal_f1(preds, refs)
    except ZeroDivisionError:
        return None


def corpus_f1(pairs: list[tuple[Json, Json]]) -> float:
    """vlmkit's corpus F1: counts summed over samples, then donut_f1 (as FieldF1 does)."""
    total = sum((field_counts(p, r) for p, r in pairs), FieldCounts(0, 0, 0))
    return total.f1


def assert_same_as_donut(donut: Any, pred: Json, ref: Json, *, distances: bool = True) -> None:
    """Every number for one pair, each compared with Donut's.

    ``distances`` also compares the raw tree edit distances; without it (to halve the time
    Donut takes) the reference must have a size, and the accuracies, which are fractions of
    the distances, are compared.
    """
    assert repr(normalize_tree(pred)) == repr(donut.normalize_dict(pred))  # key order included
    assert flatten_fields(normalize_tree(ref)) == donut.flatten(donut.normalize_dict(ref))
    if distances:
        distance, size = donut_distances(donut, pred, ref)
        assert tree_edit_distance(pred, ref) == distance
        assert donut_tree._Tree(normalize_tree(ref)).size == size
    else:
        size = donut_tree._Tree(normalize_tree(ref)).size
        assert size > 0
    if size:
        assert ted_accuracy(pred, ref) == donut_cal_acc(donut, pred, ref)
    expected_f1 = donut_cal_f1(donut, [pred], [ref])
    if expected_f1 is not None:
        assert field_counts(pred, ref).f1 == expected_f1


# --------------------------------------------------------------------------- normalisation


def test_normalize_tree_drops_sorts_and_stringifies():
    value = {
        "b": "1",
        "aa": {"y": 0, "x": " v "},
        "c": [1, 0, "", " ", True, None, 2.5, ["n"], {"d": 1}],
    }
    # Keys sorted by (length, key): b, c, aa. "aa": 0 is dropped, " v " stripped, and the
    # normalised dict wrapped in a list. "c" is not all dicts, so only str/int/float items with
    # non-blank text stay: 1, 0 (falsy, kept in a list!) and 2.5; True (a bool), None, the
    # blanks, the nested list and the dict go.
    normalized = normalize_tree(value)
    assert normalized == {"b": ["1"], "c": ["1", "0", "2.5"], "aa": [{"x": ["v"]}]}
    assert list(normalized) == ["b", "c", "aa"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        (0, {}),  # falsy: dropped, while 0 inside a list survives
        (False, {}),
        ("", {}),
        ([], {}),
        ({}, {}),
        (" ", [""]),  # truthy, so kept, then stripped to a blank leaf
        ("  x ", ["x"]),
        (True, ["True"]),  # a bool scalar is str()-ed ...
        ([True, "x"], ["x"]),  # ... but dropped from a list
        (60000, ["60000"]),
        (10.5, ["10.5"]),
        ([{}], []),  # a list of dicts keeps the non-empty ones
        ([["x"], "y"], ["y"]),  # nested lists are dropped
        ([{"b": "x"}, "y"], ["y"]),  # a dict in a mixed list too
        ({"a": {"b": 0}}, {}),  # an emptied child is dropped, then its parent
        ({"a": [None]}, {}),
        ({"menu": {"nm": "A"}}, {"menu": [{"nm": ["A"]}]}),  # a dict child becomes [dict]
        ({"menu": [{"nm": "A"}]}, {"menu": [{"nm": ["A"]}]}),  # ... the same as a one-item list
    ],
)
def test_normalize_tree_cases(value, expected):
    assert normalize_tree(value) == expected
    assert type(normalize_tree(value)) is type(expected)


def test_flatten_fields():
    normalized = {"a": [{"b": ["x", "y"]}, {"b": ["z"]}], "c": ["w"]}
    # Items of a list share their parent's key; nested keys are joined with dots.
    assert flatten_fields(normalized) == [("a.b", "x"), ("a.b", "y"), ("a.b", "z"), ("c", "w")]
    assert flatten_fields(["x", "y"]) == [("", "x"), ("", "y")]  # top level: key ""
    assert flatten_fields({}) == []
    # A key with a dot and a nested key flatten to the same field (a Donut quirk).
    assert flatten_fields(normalize_tree({"a.b": "x"})) == [("a.b", "x")]
    assert flatten_fields(normalize_tree({"a": {"b": "x"}})) == [("a.b", "x")]


# --------------------------------------------------------------------------- field F1

F1_PRED = {"menu": [{"nm": "A", "cnt": "1"}, {"nm": "B"}, {"nm": "B"}]}
F1_REF = {"menu": [{"nm": "A", "cnt": "2"}, {"nm": "B"}], "total": {"total_price": "5"}}


def test_field_counts_by_hand():
    # pred fields: (menu.nm, A) (menu.cnt, 1) (menu.nm, B) (menu.nm, B)
    # ref fields:  (menu.nm, A) (menu.cnt, 2) (menu.nm, B) (total.total_price, 5)
    # Matched as multisets: A and one B -> tp 2; the second B and cnt 1 -> fp 2;
    # cnt 2 and total_price -> fn 2. F1 = 2 / (2 + (2 + 2) / 2) = 0.5.
    counts = field_counts(F1_PRED, F1_REF)
    assert (counts.tp, counts.fp, counts.fn) == (2, 2, 2)
    assert counts.f1 == donut_f1(2, 2, 2) == 0.5
    assert dict(counts.per_field) == {
        "menu.cnt": (0, 1, 1),
        "menu.nm": (2, 1, 0),
        "total.total_price": (0, 0, 1),
    }
    assert list(counts.per_field) == sorted(counts.per_field)


def test_field_counts_quirks_by_hand():
    # Item order does not matter to F1 (it does to TED, below).
    swapped = field_counts(
        {"menu": [{"nm": "B"}, {"nm": "A"}]}, {"menu": [{"nm": "A"}, {"nm": "B"}]}
    )
    assert (swapped.tp, swapped.fp, swapped.fn) == (2, 0, 0)
    # Values are compared exactly: case, spaces inside, number formats all count.
    case = field_counts({"nm": "abc", "price": "1.000"}, {"nm": "ABC", "price": "1,000"})
    assert (case.tp, case.fp, case.fn) == (0, 2, 2)
    assert case.f1 == 0.0  # 0 / (0 + 4 / 2)
    # JSON numbers and bools are compared as their str(): 60000 == "60000", 2.0 != "2",
    # True == "True"; 0 and False vanish as values (falsy), so they are neither tp nor fp.
    numbers = field_counts(
        {"a": 60000, "b": 2.0, "c": True, "d": 0, "e": False},
        {"a": "60000", "b": "2", "c": "True", "d": "0", "e": "False"},
    )
    # tp: a, c. fp: b ("2.0"). fn: b ("2"), d ("0"), e ("False").
    assert (numbers.tp, numbers.fp, numbers.fn) == (2, 1, 3)
    # A blank scalar stays as the field value "" (ref has (a, x) and (b, "")).
    blank = field_counts({"a": "x"}, {"a": "x", "b": "  "})
    assert (blank.tp, blank.fp, blank.fn) == (1, 0, 1)


def test_corpus_f1_is_micro_by_hand():
    pairs = [
        (F1_PRED, F1_REF),  # tp 2, fp 2, fn 2 (above)
        ({}, {"a": "x"}),  # tp 0, fp 0, fn 1
        ({"a": "x"}, {"a": "x"}),  # tp 1, fp 0, fn 0
    ]
    # Summed: tp 3, fp 2, fn 3 -> 3 / (3 + 5 / 2) = 3 / 5.5; not the mean of per-sample F1s.
    assert corpus_f1(pairs) == 3 / 5.5 == 0.5454545454545454
    total = sum((field_counts(p, r) for p, r in pairs), FieldCounts(0, 0, 0))
    assert (total.tp, total.fp, total.fn) == (3, 2, 3)
    assert total.per_field["a"] == (1, 0, 1)


def test_donut_f1_defined_where_donut_divides_by_zero():
    # No field predicted and none expected: Donut raises ZeroDivisionError; vlmkit says 1.0.
    assert donut_f1(0, 0, 0) == 1.0
    assert field_counts({}, {"a": None}).f1 == 1.0
    # Any error with no match is 0.0, as in Donut (0 / (0 + n / 2)).
    assert donut_f1(0, 3, 0) == donut_f1(0, 0, 1) == 0.0


# --------------------------------------------------------------------------- TED accuracy

MENU_1 = {"menu": {"nm": "A", "cnt": "2"}}
# Donut's tree of MENU_1 ("menu" is wrapped into a one-item list, so it gets a <subtree>):
#   <root> - menu - <subtree> - nm  - <leaf>A
#                             - cnt - <leaf>2
# Inner nodes cost 1 to insert or remove, leaves the length of their text: size (the distance
# from an empty <root>) = menu 1 + <subtree> 1 + nm 1 + A 1 + cnt 1 + "2" 1 = 6.

# (pred, ref, tree edit distance, reference size) with the arithmetic.
HAND_TED = {
    "identical": (MENU_1, MENU_1, 0, 6),
    "empty prediction": ({}, MENU_1, 6, 6),  # insert all 6 -> accuracy 0
    "one typo": ({"menu": {"nm": "B", "cnt": "2"}}, MENU_1, 1, 6),  # Levenshtein(B, A) = 1
    # ref: a 1 + "xy" 2 + b 1 + "1" 1 + "2" 1 = 6; "xyz" -> "xy" costs 1, inserting b and its
    # two leaves 3.
    "longer leaf, missing key": ({"a": "xyz"}, {"a": "xy", "b": ["1", "2"]}, 4, 6),
    # ref: menu 1 + 2 x (<subtree> 1 + nm 1 + leaf 1) = 7; relabelling both leaves costs 2,
    # moving a whole item (remove 3, insert 3) would cost 6.
    "swapped items": (
        {"menu": [{"nm": "B"}, {"nm": "A"}]},
        {"menu": [{"nm": "A"}, {"nm": "B"}]},
        2,
        7,
    ),
    # A dict and a one-item list of it normalise alike.
    "dict vs one-item list": ({"menu": {"nm": "A"}}, {"menu": [{"nm": "A"}]}, 0, 4),
    "falsy values vanish": (
        {"a": "x", "b": 0, "c": False, "d": None, "e": "", "f": [], "g": {}},
        {"a": "x"},
        0,
        2,
    ),
    # ref: a 1 + "x" 1 + b 1 + "" 0 = 3; inserting b and its blank leaf costs 1.
    "blank scalar kept": ({"a": "x"}, {"a": "x", "b": "  "}, 1, 3),
    # 60000 and True are str()-ed; size price 1 + "60000" 5 + cnt 1 + "True" 4 = 11.
    "numbers as text": ({"price": 60000, "cnt": True}, {"price": "60000", "cnt": "True"}, 0, 11),
    # "2.0" -> "2" is 2 deletions; size cnt 1 + "2" 1 = 2, so accuracy 1 - 2/2 = 0.
    "float vs string": ({"cnt": 2.0}, {"cnt": "2"}, 2, 2),
    # Inserting b (1) and "long value" (10) = 11 > size 2: accuracy clipped to 0.
    "clipped at zero": ({"a": "x", "b": "long value"}, {"a": "x"}, 11, 2),
    # A key containing "<leaf>" is costed as a leaf: "<leaf>x" costs len("x") = 1, so the
    # size is 1 + len("yz") = 3; turning it into the inner node "x" costs 1 + 1 = 2 either as
    # an update (leaf vs inner: 1 + length) or as remove 1 + insert 1.
    "key containing <leaf>": ({"x": "yz"}, {"<leaf>x": "yz"}, 2, 3),
    # Levenshtein over code points: ü->u, ß->s, insert s = 3; size nm 1 + 5 = 6.
    "unicode": ({"nm": "Grusse"}, {"nm": "Grüße"}, 3, 6),
    "cjk": ({"nm": "京都"}, {"nm": "東京"}, 2, 3),  # remove 東, insert 都
    # pred tree <root> - a.b - x, ref <root> - a - <subtree> - b - x: "a.b" relabelled to one
    # of a/<subtree>/b (1) and the other two inserted (2) = 3; size 4. (F1 says 1.0 here.)
    "dotted key vs nesting": ({"a.b": "x"}, {"a": {"b": "x"}}, 3, 4),
    # Top-level list: <root> - 2 x (<subtree> - nm - leaf); size 6, one item missing 3.
    "top-level list": ([{"nm": "A"}], [{"nm": "A"}, {"nm": "B"}], 3, 6),
    # Top-level scalar: <root> - <leaf>hello; Levenshtein(help, hello) = 2; size 5.
    "top-level scalar": ("help", "hello", 2, 5),
    # Nested lists vanish (the inner ["y"]); ref leaves x, z: a 1 + 1 + 1 = 3.
    "nested lists": ({"a": ["x", ["y"], "z"]}, {"a": ["x", "z"]}, 0, 3),
}


@pytest.mark.parametrize(("pred", "ref", "distance", "size"), HAND_TED.values(), ids=HAND_TED)
def test_ted_by_hand(pred, ref, distance, size):
    assert tree_edit_distance(pred, ref) == distance
    assert tree_edit_distance(ref, pred) == distance
    assert donut_tree._Tree(normalize_tree(ref)).size == size
    assert ted_accuracy(pred, ref) == max(0, 1 - distance / size)


def test_ted_accuracy_values_by_hand():
    assert ted_accuracy({"a": "xyz"}, {"a": "xy", "b": ["1", "2"]}) == 0.33333333333333337
    assert ted_accuracy(*HAND_TED["swapped items"][:2]) == 1 - 2 / 7
    assert ted_accuracy(*HAND_TED["unicode"][:2]) == 0.5
    assert ted_accuracy(*HAND_TED["clipped at zero"][:2]) == 0.0
    assert ted_accuracy(*HAND_TED["top-level scalar"][:2]) == 0.6


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ({}, {}, 1.0),  # both empty
        (None, {"a": None, "b": [None], "c": ""}, 1.0),  # the reference normalises to {}
        ({"a": "b"}, {}, 0.0),
        ({}, " ", 1.0),  # a blank scalar: <root> - <leaf> costing 0, size 0
        ("x", " ", 0.0),  # Levenshtein("x", "") = 1 > 0
    ],
)
def test_empty_reference_is_defined(pred, ref, expected):
    # Donut divides by a zero size here; vlmkit: 1.0 when the prediction is at distance 0.
    assert ted_accuracy(pred, ref) == expected


# --------------------------------------------------------------------------- vs Donut


@pytest.mark.parametrize(("pred", "ref", "distance", "size"), HAND_TED.values(), ids=HAND_TED)
def test_hand_cases_match_donut(donut, pred, ref, distance, size):
    assert donut_distances(donut, pred, ref) == (distance, size)
    assert_same_as_donut(donut, pred, ref)
    assert_same_as_donut(donut, ref, pred)


def test_f1_hand_cases_match_donut(donut):
    assert donut.cal_f1([F1_PRED], [F1_REF]) == 0.5
    pairs = [(F1_PRED, F1_REF), ({}, {"a": "x"}), ({"a": "x"}, {"a": "x"})]
    assert donut.cal_f1([p for p, _ in pairs], [r for _, r in pairs]) == corpus_f1(pairs)
    with pytest.raises(ZeroDivisionError):  # what vlmkit defines as 1.0
        donut.cal_f1([{}], [{"a": None}])


def test_empty_reference_in_donut(donut):
    # What vlmkit's convention replaces: with numpy, zss returns numpy floats and Donut's
    # cal_acc gives 0 for an empty reference, even when the prediction is empty too.
    assert donut_distances(donut, {}, {}) == (0, 0)
    assert donut_cal_acc(donut, {}, {}) == 0
    assert ted_accuracy({}, {}) == 1.0


needs_cord = pytest.mark.skipif(
    not CORD_METADATA.is_file(), reason=f"CORD v2 receipts not found at {CORD_METADATA}"
)


@pytest.fixture(scope="module")
def receipts() -> list[dict[str, Json]]:
    return load_receipts()


@needs_cord
@pytest.mark.parametrize("kind", KINDS)
def test_cord_receipts_match_donut(donut, receipts, kind):
    rng = random.Random(f"cord-{kind}")
    pairs = [(perturb_as(kind, ref, rng), ref) for ref in receipts]
    for pred, ref in pairs:
        assert_same_as_donut(donut, pred, ref, distances=False)
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
    assert corpus_f1(pairs) == donut.cal_f1(preds, refs)


@needs_cord
def test_cord_corpus_matches_donut(donut, receipts):
    # Grown references (menus with items from other receipts, as in real CORD) and mixed
    # errors; the corpus F1 is Donut's cal_f1 on the lists, TED accuracy per sample.
    pairs = make_pairs(10, seed=7, receipts=receipts)
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
    assert corpus_f1(pairs) == donut.cal_f1(preds, refs)
    assert [ted_accuracy(p, r) for p, r in pairs] == [donut_cal_acc(donut, p, r) for p, r in pairs]


@needs_cord
def test_vlmkit_metrics_report_donuts_numbers(donut, receipts):
    # End to end through the registry, as `vlmkit score` computes them: field_f1 is Donut's
    # cal_f1 on the lists, ted_accuracy the mean of cal_acc that Donut's test.py prints
    # (np.mean), float for float: vlmkit sums columns the way np.mean does.
    from metric_helpers import vlmkit_metric

    rng = random.Random("metrics")
    pairs = [(perturb_as(kind, ref, rng), ref) for ref in receipts for kind in ("mixed", "empty")]
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
    assert vlmkit_metric("field_f1", preds, refs).value == donut.cal_f1(preds, refs)
    accs = [donut_cal_acc(donut, p, r) for p, r in pairs]
    ted = vlmkit_metric("ted_accuracy", preds, refs)
    assert ted.sample_values() == accs
    assert ted.value == float(np.mean(accs))


# --------------------------------------------------------------------------- random JSON

KEYS = st.sampled_from(
    ["a", "b", "nm", "cnt", "menu", "a.b", "", " ", "<leaf>", "<leaf>x", "<root>", "<subtree>"]
) | st.text(max_size=3)
# Blanks, "<leaf>" inside values, combining and astral characters, and a lone surrogate (which
# json.loads gives for "\ud800"): strings are compared code point by code point.
SAMPLE_TEXTS = ["", " ", "x", "xy", "yx", " a ", "0", "1.0", "<leaf>", "a<leaf>b", "\t"]
SAMPLE_TEXTS += ["Grüße", "東京", "e\u0301", "\U0001f600", "x\ud800y"]
TEXTS = st.sampled_from(SAMPLE_TEXTS) | st.text(max_size=5)
SCALARS = st.none() | st.booleans() | st.integers(-2, 100) | st.floats(width=32) | TEXTS
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS, children, max_size=4)
        | st.lists(st.dictionaries(KEYS, children, max_size=3), max_size=3)
    ),
    max_leaves=14,
)


def _mutate(value: Json, rng: random.Random) -> Json:
    """A near copy: one container edited, as a model's near miss."""
    value = copy.deepcopy(value)
    containers = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, (dict, list)) and node:
            containers.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    if not containers:
        return value
    node = rng.choice(containers)
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    key = rng.choice(keys)
    op = rng.randrange(3)
    if op == 0:
        del node[key]
    elif op == 1:
        node[key] = rng.choice(["x", "yy", 0, 1.5, True, None, {"nm": "x"}, ["x", "y"]])
    elif isinstance(node, list):
        node.reverse()
    else:
        node[key + "x" if isinstance(key, str) else key] = node.pop(key)
    return value


PAIRS = st.one_of(
    st.tuples(JSON, JSON),
    st.builds(lambda ref, seed: (_mutate(ref, random.Random(seed)), ref), JSON, st.integers()),
)

HYPOTHESIS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(pair=PAIRS)
def test_random_json_matches_donut(donut, pair):
    pred, ref = pair
    assert_same_as_donut(donut, pred, ref)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(PAIRS, min_size=1, max_size=5))
def test_random_corpus_f1_matches_donut(donut, pairs):
    expected = donut_cal_f1(donut, [p for p, _ in pairs], [r for _, r in pairs])
    if expected is not None:
        assert corpus_f1(pairs) == expected


@HYPOTHESIS
@given(pair=PAIRS)
def test_random_json_properties(pair):
    pred, ref = pair
    # The one-pass field reader behind field_counts reads what normalise + flatten give.
    for value in pair:
        assert Counter(donut_tree._raw_fields(value)) == Counter(
            flatten_fields(normalize_tree(value))
        )
    distance = tree_edit_distance(pred, ref)
    assert distance == tree_edit_distance(ref, pred)  # Donut's costs are symmetric
    assert distance >= 0
    assert tree_edit_distance(ref, ref) == 0
    assert 0.0 <= ted_accuracy(pred, ref) <= 1.0
    assert ted_accuracy(ref, ref) == 1.0
    counts = field_counts(pred, ref)
    assert sum(map(sum, counts.per_field.values())) == counts.tp + counts.fp + counts.fn
    assert 0.0 <= counts.f1 <= 1.0
