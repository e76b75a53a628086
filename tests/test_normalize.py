"""Normalisation presets: canonical names, order-independence, errors naming the flag."""

from __future__ import annotations

import pytest

from vlmkit.errors import UsageError
from vlmkit.normalize import Normalization, describe_presets


def test_canonical_name_is_order_independent():
    a = Normalization.parse("whitespace+lowercase")
    b = Normalization.parse("lowercase+whitespace")
    assert a == b and a.name == "lowercase+whitespace"


def test_none_and_basic():
    assert Normalization.parse("none").name == "none"
    assert Normalization.parse("basic").name == "nfkc+lowercase+punctuation+whitespace"


def test_steps():
    text = "  Ｈｅｌｌｏ,\u00a0WORLD!\n\tBye…  "
    assert Normalization.parse("nfkc").apply_one("Ｈｅｌｌｏ") == "Hello"
    assert Normalization.parse("lowercase").apply_one("ÄBC") == "äbc"
    assert Normalization.parse("punctuation").apply_one("a, b! «c»") == "a b c"
    assert Normalization.parse("whitespace").apply_one(text) == "Ｈｅｌｌｏ, WORLD! Bye…"
    assert Normalization.parse("basic").apply_one(text) == "hello world bye"


def test_apply_keeps_length_and_order():
    assert Normalization.parse("lowercase").apply(["A", "", "B"]) == ["a", "", "b"]


def test_unknown_step_names_the_flag_and_choices():
    with pytest.raises(UsageError) as info:
        Normalization.parse("lowercase+stem")
    assert "--norm" in info.value.message and "'stem'" in info.value.message
    assert "whitespace" in info.value.hint


def test_every_step_is_described():
    described = describe_presets()
    for name in ("none", "basic", "nfkc", "lowercase", "punctuation", "whitespace"):
        assert described[name]
