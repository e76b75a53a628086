"""Lenient reading of structured outputs: each method, their precedence, and the round trips."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlmkit.structured import (
    PARSE_METHODS,
    Parsed,
    from_donut_tokens,
    from_kv_lines,
    is_strict_json,
    parse_structured,
    to_donut_tokens,
    to_kv_lines,
)

# The shared data sits beside the repository: <root>/main is the repo, <root>/shared the data.
CORD_METADATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "cord_v2" / "test" / "metadata.jsonl"
)


def _cord_ground_truths() -> list[dict[str, Any]]:
    if not CORD_METADATA.is_file():
        return []
    rows = [json.loads(line) for line in CORD_METADATA.read_text("utf-8").splitlines() if line]
    return [json.loads(row["ground_truth"])["gt_parse"] for row in rows]


CORD = _cord_ground_truths()
needs_cord = pytest.mark.skipif(not CORD, reason=f"real CORD v2 data absent: {CORD_METADATA}")
cord_cases = pytest.mark.parametrize("gt", CORD or [None], ids=lambda gt: "cord")


def read(text: str) -> tuple[Any, str]:
    parsed = parse_structured(text)
    return parsed.value, parsed.method


# --------------------------------------------------------------------------- the contract


def test_methods_are_tried_in_the_documented_order():
    assert PARSE_METHODS == ("json", "fenced", "braces", "python", "donut", "kv", "none")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_never_raises_on_any_text(text: str):
    parsed = parse_structured(text)
    assert isinstance(parsed, Parsed)
    assert parsed.method in PARSE_METHODS
    assert (parsed.value is None) == (parsed.method == "none")
    assert parsed.value is None or isinstance(parsed.value, (dict, list))
    is_strict_json(text)


# Fragments of every syntax the readers look for, so the fuzzing reaches their inner branches.
# fmt: off
_FRAGMENTS = st.sampled_from([
    "{", "}", "[", "]", '"', "'", "\\", ":", ",", "a", "1", "True", "null", "NaN", "```",
    "```json\n", "<s_a>", "</s_a>", "<S_b>", "</s_b>", "<s_", "</s_", "<sep/>", ">", "x.y[0]",
    "é", "\n", " ", "\u2028",
])
# fmt: on


@settings(max_examples=300)
@given(st.lists(_FRAGMENTS, max_size=40).map("".join))
def test_never_raises_on_fragments_of_every_syntax(text: str):
    parsed = parse_structured(text)
    assert (parsed.value is None) == (parsed.method == "none")
    if parsed.method == "donut":
        assert from_donut_tokens(text) == parsed.value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "hello world",
        "42",
        '"x"',
        "null",
        "{1, 2}",
        "[" + "9" * 5000 + "]",  # past int()'s digit limit, for json and literal_eval alike
        "[" * 300 + "None" + "]" * 300,  # not JSON, and past the Python parser's nesting limit
    ],
)
def test_text_without_an_object_or_array_reads_as_none(text: str):
    assert read(text) == (None, "none")


def test_degenerate_inputs_end_quickly():
    # Each of these makes a naive scan quadratic in its length; here each takes milliseconds.
    assert read("{" * 200_000)[1] == "none"
    assert read("[" * 50_000 + "]" * 50_000)[1] == "none"  # too deep for either decoder
    unclosed = "".join(f"<s_k{i}>" for i in range(5000)) + "</s_x>"
    assert read(unclosed)[1] == "none"
    looping = "<s_menu><s_nm>A</s_nm><sep/>" * 5000
    value, method = read(looping)
    assert method == "donut" and len(value) == 5000 and value[-1] == {"nm": "A"}


# --------------------------------------------------------------------------- json


@pytest.mark.parametrize("text", ['{"a": 1}', "  [1, 2]\n", '{"a": {"b": [true, null]}}', "[]"])
def test_strict_json_objects_and_arrays(text: str):
    assert is_strict_json(text)
    assert read(text) == (json.loads(text), "json")


@pytest.mark.parametrize(
    "text",
    [
        "42",
        '"x"',
        "null",
        '{"a": NaN}',  # Python's json accepts it; RFC 8259 does not
        "{'a': 1}",
        '{"a": 1} trailing',
        '```json\n{"a": 1}\n```',
        '{"a": 1,}',
    ],
)
def test_not_strict_json(text: str):
    assert not is_strict_json(text)
    assert read(text)[1] != "json"


def test_nan_is_read_leniently_but_not_as_strict_json():
    value, method = read('{"total": NaN}')
    assert method == "braces" and value["total"] != value["total"]


# --------------------------------------------------------------------------- fenced


def test_fenced_block_after_a_chatty_prefix():
    text = 'Here is the JSON:\n```json\n{"menu": {"nm": "BLACK SAKURA"}}\n```\nLet me know!'
    assert read(text) == ({"menu": {"nm": "BLACK SAKURA"}}, "fenced")


def test_bare_fence_and_the_first_block_that_parses():
    text = '```python\nprint("hi")\n```\nThen:\n```\n[{"nm": "A"}]\n```\n```json\n{"b": 2}\n```'
    assert read(text) == ([{"nm": "A"}], "fenced")


def test_unclosed_fence_runs_to_the_end():
    assert read('```json\n{"total": "60.000"}\n') == ({"total": "60.000"}, "fenced")


def test_fence_with_a_broken_body_falls_through_to_other_readers():
    text = '```json\n{"a": 1,}\n```\nSorry, corrected: {"a": 1}'
    assert read(text) == ({"a": 1}, "braces")


# --------------------------------------------------------------------------- braces


def test_braces_with_prefix_and_trailing_text():
    text = 'Sure! The receipt is {"total": {"total_price": "60.000"}} -- hope this helps.'
    assert read(text) == ({"total": {"total_price": "60.000"}}, "braces")


def test_braces_inside_strings_and_escaped_quotes_do_not_confuse_the_scan():
    text = 'Result: {"nm": "say \\"}{\\" [x", "price": "{1}"} and a closing } after'
    assert read(text) == ({"nm": 'say "}{" [x', "price": "{1}"}, "braces")


def test_the_largest_span_that_parses_wins():
    text = 'See [1] and [2, 3] below: {"menu": [{"nm": "A"}, {"nm": "B"}]} (from [4])'
    assert read(text) == ({"menu": [{"nm": "A"}, {"nm": "B"}]}, "braces")


def test_a_smaller_span_is_used_when_the_largest_does_not_parse():
    text = 'Draft {menu: oops, "x": [1]} then the answer {"a": "b"}'
    assert read(text) == ({"a": "b"}, "braces")


def test_stray_closers_in_the_prose_do_not_hide_the_value():
    text = 'Oops ] and } first, then: {"a": [1, {"b": 2}]}'
    assert read(text) == ({"a": [1, {"b": 2}]}, "braces")


def test_a_bracket_left_open_in_the_prose_hides_the_value():
    # The documented price of never reading an inner fragment of a truncated value.
    assert read('Use { with care: {"a": 1}') == (None, "none")


def test_subscripts_are_not_values():
    # `[0]` glued to a word is indexing (kv paths, code), so kv text is not read as [0].
    assert read("items[0]: A\nitems[1]: B") == ({"items": ["A", "B"]}, "kv")


@pytest.mark.parametrize(
    "text",
    [
        '{"menu": [{"nm": "A", "price": "1"}, {"nm": "B", "pri',  # truncated
        '{"menu": [{"nm": "A"}, "total": {"total_price": "1"}}',  # bracket mismatch
    ],
)
def test_a_broken_value_is_not_read_as_one_of_its_inner_objects(text: str):
    assert read(text) == (None, "none")


# --------------------------------------------------------------------------- python


@needs_cord
@cord_cases
def test_python_reads_str_of_real_cord_ground_truths(gt: dict):
    assert read(str(gt)) == (gt, "python")
    assert read(f"Prediction: {gt!s}\n") == (gt, "python")


def test_python_literal_values_become_json_values():
    text = "Here's what I found: {'nm': \"KING'S\", 'ok': True, 'tip': None, 'xy': (1, 2.5),}"
    value, method = read(text)
    assert method == "python"
    assert value == {"nm": "KING'S", "ok": True, "tip": None, "xy": [1, 2.5]}
    assert json.loads(json.dumps(value)) == value


def test_python_non_string_keys_become_their_json_text():
    assert read("{2: 'a', None: 'b', True: 'c', 2.5: 'd'}") == (
        {"2": "a", "null": "b", "true": "c", "2.5": "d"},
        "python",
    )


@pytest.mark.parametrize(
    "text",
    ["{'a': {1, 2}}", "{'a': b'x'}", "{'a': 1j}", "{[1]: 2}", "{'a': f(x)}", "[x for x in y]"],
)
def test_python_values_without_a_json_counterpart_are_rejected(text: str):
    assert read(text) == (None, "none")


# --------------------------------------------------------------------------- donut


def test_donut_tokens_keep_key_order_and_join_list_items():
    obj = {"menu": [{"nm": "A", "price": "1"}, {"nm": "B"}], "total": {"total_price": "3"}}
    tokens = to_donut_tokens(obj)
    assert tokens == (
        "<s_menu><s_nm>A</s_nm><s_price>1</s_price><sep/><s_nm>B</s_nm></s_menu>"
        "<s_total><s_total_price>3</s_total_price></s_total>"
    )
    assert from_donut_tokens(tokens) == obj
    assert read(tokens) == (obj, "donut")


@needs_cord
@cord_cases
def test_donut_round_trips_real_cord_ground_truths(gt: dict):
    tokens = to_donut_tokens(gt)
    assert from_donut_tokens(tokens) == gt
    assert read(tokens) == (gt, "donut")


def test_donut_nested_lists_of_sub_items():
    tokens = (
        "<s_menu><s_nm>[REG] BLACK SAKURA</s_nm><s_sub><s_nm>COOKIE</s_nm><s_price>0</s_price>"
        "<sep/><s_nm>NATA DE COCO</s_nm><s_price>0</s_price></s_sub></s_menu>"
    )
    assert from_donut_tokens(tokens) == {
        "menu": {
            "nm": "[REG] BLACK SAKURA",
            "sub": [{"nm": "COOKIE", "price": "0"}, {"nm": "NATA DE COCO", "price": "0"}],
        }
    }


def test_donut_truncated_generation_keeps_what_was_closed():
    # The unclosed <s_menu> and <s_price> are dropped; the closed field moves up a level.
    tokens = "<s_menu><s_nm>ICE BLACKCOFFE</s_nm><s_cnt>2</s_cnt><s_price>82,0"
    assert read(tokens) == ({"nm": "ICE BLACKCOFFE", "cnt": "2"}, "donut")


def test_donut_leaf_lists_top_level_lists_and_case():
    assert from_donut_tokens("<s_price>1 <sep/> 2</s_price>") == {"price": ["1", "2"]}
    assert from_donut_tokens("<s_a>x</s_a><sep/><s_a>y</s_a>") == [{"a": "x"}, {"a": "y"}]
    assert from_donut_tokens("<S_Total>5</s_TOTAL>") == {"Total": "5"}
    assert from_donut_tokens("<s_a>\n  x\n</s_a>") == {"a": "x"}  # Donut would drop it


def test_donut_with_a_task_prefix_and_end_token_as_models_emit_it():
    tokens = "<s_cord-v2><s_total><s_total_price>60.000</s_total_price></s_total></s>"
    assert read(tokens) == ({"total": {"total_price": "60.000"}}, "donut")


def test_donut_keys_are_matched_literally():
    assert from_donut_tokens("<s_a(b>x</s_a(b><s_c.d>y</s_c.d>") == {"a(b": "x", "c.d": "y"}


def test_donut_without_a_readable_key_is_a_text_sequence_and_reads_as_none():
    assert from_donut_tokens("no tags at all") == {"text_sequence": "no tags at all"}
    assert from_donut_tokens("<s_a>never closed") == {"text_sequence": "never closed"}
    assert read("<s_a>never closed</s_b>") == (None, "none")
    assert to_donut_tokens({"text_sequence": "plain"}) == "plain"


def test_donut_losses_are_the_documented_ones():
    assert from_donut_tokens(to_donut_tokens({"n": 1, "ok": True})) == {"n": "1", "ok": "True"}
    assert from_donut_tokens(to_donut_tokens({"a": [], "b": {}})) == {"a": "", "b": ""}
    assert from_donut_tokens(to_donut_tokens({"a": ["only"]})) == {"a": "only"}
    assert from_donut_tokens(to_donut_tokens({"a": [["x", "y"], ["z"]]})) == {"a": ["x", "y", "z"]}
    # A key under a key of the same name: the inner closing tag ends the outer key.
    assert from_donut_tokens(to_donut_tokens({"a": {"a": "x"}})) == {"a": "<s_a>x"}


def test_donut_absurd_nesting_is_read_as_text_not_a_crash():
    depth = 300
    tokens = (
        "".join(f"<s_k{i}>" for i in range(depth))
        + "x"
        + "".join(f"</s_k{i}>" for i in reversed(range(depth)))
    )
    value = from_donut_tokens(tokens)
    for i in range(100):
        value = value[f"k{i}"]
    assert isinstance(value, dict) and isinstance(value["k100"], str)


# Donut's own json2token/token2json, executed from the installed donut-python source (importing
# the package would import torch), with a stand-in tokenizer that has no categorical tokens.
def _donut_reference() -> SimpleNamespace | None:
    spec = importlib.util.find_spec("donut")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model.py"
    tree = ast.parse(path.read_text("utf-8"))
    model = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DonutModel")
    funcs = [n for n in model.body if getattr(n, "name", "") in ("json2token", "token2json")]
    namespace: dict[str, Any] = {"re": re, "Any": Any}
    exec(compile(ast.Module(body=funcs, type_ignores=[]), str(path), "exec"), namespace)
    tokenizer = SimpleNamespace(all_special_tokens=[], get_added_vocab=dict)
    self = SimpleNamespace(
        decoder=SimpleNamespace(tokenizer=tokenizer, add_special_tokens=lambda tokens: None)
    )
    self.json2token = lambda obj, update=True, sort=True: namespace["json2token"](
        self, obj, update, sort
    )
    self.token2json = lambda text, is_inner_value=False: namespace["token2json"](
        self, text, is_inner_value
    )
    return self


DONUT = _donut_reference()
needs_donut = pytest.mark.skipif(DONUT is None, reason="donut-python is not installed")


@needs_donut
@needs_cord
@cord_cases
def test_donut_matches_donut_itself_on_cord_and_every_truncation(gt: dict):
    tokens = DONUT.json2token(gt, False, False)
    assert to_donut_tokens(gt) == tokens
    for cut in range(0, len(tokens) + 1, 3):
        assert from_donut_tokens(tokens[:cut]) == DONUT.token2json(tokens[:cut])


# fmt: off
_DONUT_PIECES = st.sampled_from([
    "<s_a>", "</s_a>", "<s_b>", "</s_b>", "<S_A>", "</S_a>", "<sep/>", "<s_", "</s_", ">", "x",
    "y", " ", "\x1c",
])
# fmt: on


@needs_donut
@settings(max_examples=400)
@given(st.lists(_DONUT_PIECES, max_size=16).map("".join))
def test_donut_matches_donut_itself_on_malformed_sequences(tokens: str):
    try:
        expected = DONUT.token2json(tokens)
    except RecursionError:  # Donut recurses once per list item; we loop
        return
    assert from_donut_tokens(tokens) == expected


# Objects the Donut format keeps exactly: no key under a key of the same name (keys carry their
# depth), lists of two or more dicts or strings, leaves with no tags or surrounding whitespace.
_LEAF = st.text("ab1 .,-@", max_size=6).map(str.strip)


def _donut_objects(depth: int = 0) -> st.SearchStrategy:
    keys = st.text("nmpric", min_size=1, max_size=3).map(lambda k: f"{k}{depth}")
    if depth >= 2:
        values = _LEAF | st.lists(_LEAF, min_size=2, max_size=3)
    else:
        inner = _donut_objects(depth + 1)
        values = _LEAF | st.lists(_LEAF, min_size=2, max_size=3) | inner
        values |= st.lists(inner, min_size=2, max_size=3)
    return st.dictionaries(keys, values, min_size=1, max_size=3)


@given(_donut_objects())
def test_donut_round_trips_what_it_can_represent(obj: dict):
    assert from_donut_tokens(to_donut_tokens(obj)) == obj


# --------------------------------------------------------------------------- kv


def test_kv_lines_format():
    obj = {
        "menu": [{"nm": "J.STB PROMO", "price": "17500"}, {"nm": "Y.B.BAT", "price": ""}],
        "total": {"total_price": "91000"},
        "tags": ["a", "b"],
    }
    text = to_kv_lines(obj)
    assert text == (
        "menu[0].nm: J.STB PROMO\nmenu[0].price: 17500\nmenu[1].nm: Y.B.BAT\nmenu[1].price:\n"
        "total.total_price: 91000\ntags[0]: a\ntags[1]: b"
    )
    assert from_kv_lines(text) == obj
    assert read(text) == (obj, "kv")


@needs_cord
@cord_cases
def test_kv_round_trips_real_cord_ground_truths(gt: dict):
    text = to_kv_lines(gt)
    assert from_kv_lines(text) == gt
    assert read(text) == (gt, "kv")


@needs_cord
@cord_cases
def test_json_round_trips_real_cord_ground_truths(gt: dict):
    assert read(json.dumps(gt, ensure_ascii=False)) == (gt, "json")
    assert read(json.dumps(gt, indent=2)) == (gt, "json")


def test_kv_values_keep_their_spaces_and_colons():
    obj = {"time": "12:30:05", "note": "  padded  ", "list": [{"x": "a"}], "top": "[REG] x"}
    assert from_kv_lines(to_kv_lines(obj)) == obj


def test_kv_top_level_list():
    obj = [{"nm": "A"}, {"nm": "B"}]
    assert to_kv_lines(obj) == "[0].nm: A\n[1].nm: B"
    assert from_kv_lines(to_kv_lines(obj)) == obj


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ({"n": 1}, "n"),
        ({"a": {"b": None}}, "a.b"),
        ({"a": "two\nlines"}, "a"),
        ({"a": {}}, "a"),
        ({"a": []}, "a"),
        ({}, "the top"),
        ({"a.b": "x"}, "the top"),
        ({"a": {"k:v": "x"}}, "a"),
        ({" pad": "x"}, "the top"),
        ({"": "x"}, "the top"),
        ({"{x}": "x"}, "the top"),
    ],
)
def test_kv_refuses_what_would_not_come_back_equal(obj: Any, where: str):
    with pytest.raises(ValueError, match=re.escape(where)):
        to_kv_lines(obj)


def test_kv_reading_is_lenient_about_model_output():
    text = "  Total : 60.000\nitem: A\nitem: B\n\nrows[3].x: q\nrows[1].x: r\r\n"
    assert from_kv_lines(text) == {
        "Total": "60.000",
        "item": ["A", "B"],
        "rows": [{"x": "q"}, {"x": "r"}],
    }


def test_kv_contradicting_lines_keep_the_first():
    assert from_kv_lines("a: x\na.b: y\nc.d: 1\nc: 2\ne[0]: 3\ne.f: 4") == {
        "a": "x",
        "c": {"d": "1"},
        "e": ["3"],
    }


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no colon here",
        "total: 5\nand then some prose",
        '{"a": "b',  # truncated JSON is not kv
        '  "menu": "x",',
        "a..b: x",
        "a[x]: y",
        "a[\u0663]: y",  # an Arabic-Indic digit
        f"a[{'9' * 5000}]: y",  # int() would refuse it
    ],
)
def test_not_kv(text: str):
    assert from_kv_lines(text) is None


_KV_KEYS = st.text("abc_ 09'é-", min_size=1, max_size=5).filter(lambda k: k == k.strip())
_KV_LEAF = st.text(st.characters(blacklist_characters="\n\r"), max_size=8)
_KV_OBJECTS = st.recursive(
    _KV_LEAF,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(_KV_KEYS, inner, min_size=1, max_size=3)
    ),
    max_leaves=12,
).filter(lambda obj: isinstance(obj, (dict, list)))


@given(_KV_OBJECTS)
def test_kv_round_trips_what_it_can_represent(obj: dict | list):
    assert from_kv_lines(to_kv_lines(obj)) == obj


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(_ANY_JSON)
def test_kv_either_refuses_or_round_trips(obj: Any):
    try:
        text = to_kv_lines(obj)
    except ValueError:
        return
    assert from_kv_lines(text) == obj


# --------------------------------------------------------------------------- precedence


def test_precedence_between_methods():
    # Whole-text JSON first, even when its strings hold other syntaxes.
    assert read('{"a": "<s_b>x</s_b>", "c": "```"}')[1] == "json"
    # A fenced block beats a brace span outside it.
    fenced = '{"draft": 1, "note": "see below"}\n```json\n{"final": 2}\n```'
    assert read(fenced) == ({"final": 2}, "fenced")
    # JSON spans beat Python literals, which beat Donut tags and kv lines.
    assert read("{'a': 1} or {\"b\": 2}") == ({"b": 2}, "braces")
    assert read("answer: {'nm': '<s_x>y</s_x>'}") == ({"nm": "<s_x>y</s_x>"}, "python")
    assert read("nm: <s_nm>A</s_nm>") == ({"nm": "A"}, "donut")
    assert read("nm: A") == ({"nm": "A"}, "kv")


def test_kv_comes_last_so_a_value_holding_json_reads_as_braces():
    # The documented cost of the fixed order; `from_kv_lines` reads a known kv target whole.
    assert read("tags: [1, 2]") == ([1, 2], "braces")
    assert from_kv_lines("tags: [1, 2]") == {"tags": "[1, 2]"}


def test_a_chatty_one_liner_with_json_is_braces_not_kv():
    assert read('Here is the JSON: {"a": 1}') == ({"a": 1}, "braces")
