"""CORD-like (prediction, reference) pairs for the JSON metrics: real receipts, model-like errors.

References are the real CORD v2 ``gt_parse`` objects in ``../shared/data/cord_v2`` (see its
README). Predictions are those references with the errors extraction models make: character
typos, dropped fields, values changed, items dropped, duplicated or swapped, one-item lists turned
into dicts and back, extra keys, fields under the wrong parent, number formats and JSON numbers
(0 included), nested ``sub`` items, output cut off part-way, empty output. Everything is seeded.

Used by tests/test_donut_tree.py and bench/bench_json.py; not part of the vlmkit package.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

Json = Any

CORD_METADATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cord_v2" / "test"
) / "metadata.jsonl"


def load_receipts(path: Path = CORD_METADATA) -> list[dict[str, Json]]:
    """The real CORD v2 ground-truth parses (``ground_truth`` is a JSON string)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(json.loads(line)["ground_truth"])["gt_parse"] for line in f if line]


# --------------------------------------------------------------------------- tree helpers


def _items(menu: Json) -> list[Json]:
    return list(menu) if isinstance(menu, list) else [menu]


def _dicts(tree: Json) -> list[dict[str, Json]]:
    """Every dict in the tree, the root first."""
    found: list[dict[str, Json]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _leaf_slots(tree: Json) -> list[tuple[dict[str, Json], str]]:
    """(dict, key) of every string leaf."""
    return [(d, k) for d in _dicts(tree) for k, v in d.items() if isinstance(v, str)]


def _typo(text: str, rng: random.Random) -> str:
    if not text:
        return rng.choice("abc")
    i = rng.randrange(len(text))
    op = rng.random()
    if op < 0.4:
        return text[:i] + rng.choice("0123456789ABCDEFGHIJ.,") + text[i + 1 :]
    if op < 0.7:
        return text[:i] + text[i + 1 :]
    return text[:i] + rng.choice("0O1lI ,.") + text[i:]


def truncate(value: Json, keep: float) -> Json:
    """The value as a model would leave it when cut off after a share ``keep`` of its text.

    Leaves are kept in output order until the character budget runs out; the leaf where it runs
    out is cut, the rest is dropped; open containers stay, as a lenient parser closes them.
    """
    budget = [int(sum(len(d[k]) for d, k in _leaf_slots(value)) * keep)]

    def cut(node: Json) -> tuple[Json, bool]:
        if isinstance(node, dict):
            out: dict[str, Json] = {}
            for key, child in node.items():
                kept, more = cut(child)
                out[key] = kept
                if not more:
                    return out, False
            return out, True
        if isinstance(node, list):
            items: list[Json] = []
            for child in node:
                kept, more = cut(child)
                items.append(kept)
                if not more:
                    return items, False
            return items, True
        if isinstance(node, str):
            if len(node) <= budget[0]:
                budget[0] -= len(node)
                return node, True
            text, budget[0] = node[: budget[0]], 0
            return text, False
        return node, True

    return cut(value)[0]


# --------------------------------------------------------------------------- perturbations


def drop_field(pred: Json, rng: random.Random) -> None:
    slots = _leaf_slots(pred)
    if slots:
        d, k = rng.choice(slots)
        del d[k]


def change_value(pred: Json, rng: random.Random) -> None:
    slots = _leaf_slots(pred)
    if slots:
        d, k = rng.choice(slots)
        d[k] = _typo(d[k], rng)


def drop_or_duplicate_item(pred: Json, rng: random.Random) -> None:
    if "menu" in pred:
        items = _items(pred["menu"])
        i = rng.randrange(len(items))
        if rng.random() < 0.6 and len(items) > 1:
            del items[i]
        else:
            items.insert(i, copy.deepcopy(items[i]))
        pred["menu"] = items


def swap_items(pred: Json, rng: random.Random) -> None:
    items = pred.get("menu")
    if isinstance(items, list) and len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        items[i], items[j] = items[j], items[i]


def list_dict(pred: Json, rng: random.Random) -> None:
    """A one-item list turned into its dict, or a dict into a one-item list."""
    if "menu" in pred:
        menu = pred["menu"]
        pred["menu"] = menu[0] if isinstance(menu, list) and menu else [menu]


def extra_key(pred: Json, rng: random.Random) -> None:
    rng.choice(_dicts(pred))[rng.choice(["etc", "nm", "cnt", "price"])] = _typo("0", rng)


def wrong_parent(pred: Json, rng: random.Random) -> None:
    total = pred.get("total")
    if isinstance(total, dict) and total:
        key = rng.choice(sorted(total))
        pred.setdefault("sub_total", {})[key] = total.pop(key)


def number_format(pred: Json, rng: random.Random) -> None:
    slots = _leaf_slots(pred)
    if slots:
        d, k = rng.choice(slots)
        d[k] = d[k].replace(",", ".") if "," in d[k] else d[k].replace(".", ",")


def sub_item(pred: Json, rng: random.Random) -> None:
    if "menu" in pred:
        item = rng.choice(_items(pred["menu"]))
        if isinstance(item, dict):
            item["sub"] = {"nm": _typo("ADD SAUCE", rng), "price": str(rng.randint(0, 9))}


def case(pred: Json, rng: random.Random) -> None:
    slots = _leaf_slots(pred)
    if slots:
        d, k = rng.choice(slots)
        d[k] = d[k].lower() if rng.random() < 0.5 else d[k].upper()


def json_number(pred: Json, rng: random.Random) -> None:
    """A JSON number (or bool) where the reference has a string, 0 and False included."""
    slots = _leaf_slots(pred)
    if slots:
        d, k = rng.choice(slots)
        d[k] = rng.choice([0, 1, 2, 10.5, 60000, 0.0, True, False])


EDITS: dict[str, Callable[[Json, random.Random], None]] = {
    "drop_field": drop_field,
    "change_value": change_value,
    "drop_or_duplicate_item": drop_or_duplicate_item,
    "swap_items": swap_items,
    "list_dict": list_dict,
    "extra_key": extra_key,
    "wrong_parent": wrong_parent,
    "number_format": number_format,
    "sub_item": sub_item,
    "case": case,
    "json_number": json_number,
}


def perturb_as(kind: str, ref: Json, rng: random.Random) -> Json:
    """A prediction with one kind of error (``exact``, ``empty``, ``garbage``, ``truncated``,
    ``mixed`` or a key of ``EDITS``)."""
    if kind == "exact":
        return copy.deepcopy(ref)
    if kind == "empty":
        return {}
    if kind == "garbage":  # unparseable output read back as a bare text field
        return {"text": "".join(rng.choice("abc ,.0123") for _ in range(rng.randint(1, 40)))}
    if kind == "truncated":
        return truncate(ref, rng.random())
    pred = copy.deepcopy(ref)
    if kind == "mixed":
        for _ in range(rng.randint(2, 6)):
            rng.choice(list(EDITS.values()))(pred, rng)
        return pred
    EDITS[kind](pred, rng)
    return pred


KINDS = ("exact", "empty", "garbage", "truncated", "mixed", *EDITS)


def perturb(ref: Json, rng: random.Random) -> Json:
    """One model-like prediction for a reference, its kind drawn at random."""
    roll = rng.random()
    if roll < 0.12:
        return perturb_as("exact", ref, rng)
    if roll < 0.14:
        return perturb_as("empty", ref, rng)
    if roll < 0.16:
        return perturb_as("garbage", ref, rng)
    if roll < 0.22:
        return perturb_as("truncated", ref, rng)
    pred = copy.deepcopy(ref)
    for _ in range(rng.randint(1, 6)):
        rng.choice(list(EDITS.values()))(pred, rng)
    return pred


def make_reference(receipts: list[dict[str, Json]], rng: random.Random) -> dict[str, Json]:
    """A real receipt, in 40% of cases with its menu grown by items of other receipts (real
    CORD receipts have up to ~20 items; the bundled ones at most 4)."""
    ref = copy.deepcopy(rng.choice(receipts))
    if rng.random() < 0.4:
        items = _items(ref["menu"])
        for _ in range(rng.randint(1, 10)):
            items.append(copy.deepcopy(rng.choice(_items(rng.choice(receipts)["menu"]))))
        ref["menu"] = items
    return ref


def make_pairs(
    n: int, seed: int = 0, receipts: list[dict[str, Json]] | None = None
) -> list[tuple[Json, Json]]:
    """n deterministic (prediction, reference) pairs."""
    rng = random.Random(seed)
    receipts = load_receipts() if receipts is None else receipts
    pairs = []
    for _ in range(n):
        ref = make_reference(receipts, rng)
        pairs.append((perturb(ref, rng), ref))
    return pairs
