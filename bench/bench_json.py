"""Time vlmkit's Donut-exact JSON metrics against Donut's own evaluator, same pairs, same run.

Pairs are CORD-like: references are the real CORD v2 receipts in ../shared/data (some with menus
grown by items spliced from other receipts, as real CORD has up to ~20 items), predictions are
the references with the errors extraction models make (typos, dropped or duplicated items and
fields, reordered items, one-item lists turned into dicts, extra keys, fields under the wrong
parent, number formats, nested `sub` items, empty or exact outputs). Everything is seeded.

Donut's tree edit distance costs ~0.05 s per pair here, so by default it is timed on an evenly
spaced subset of the pairs (``--donut-n``); its F1 runs on all of them. vlmkit runs on all pairs
and, for the ratios, on exactly the same subset.

    .venv/bin/python bench/bench_json.py [--n 10000] [--donut-n 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.oracles and, without an install, vlmkit

from tests.oracles.donut_evaluator import load_donut_evaluator  # noqa: E402
from vlmkit.metrics.donut_tree import (  # noqa: E402
    donut_f1,
    field_counts,
    ted_accuracy,
)

CORD = ROOT.parent / "shared" / "data" / "cord_v2" / "test" / "metadata.jsonl"

Json = Any


def load_receipts(path: Path = CORD) -> list[dict[str, Json]]:
    """The real CORD v2 ground-truth parses."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(json.loads(line)["ground_truth"])["gt_parse"] for line in f]


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


def make_reference(receipts: list[dict[str, Json]], rng: random.Random) -> dict[str, Json]:
    ref = copy.deepcopy(rng.choice(receipts))
    if rng.random() < 0.4:
        items = _items(ref["menu"])
        for _ in range(rng.randint(1, 10)):
            items.append(copy.deepcopy(rng.choice(_items(rng.choice(receipts)["menu"]))))
        ref["menu"] = items
    return ref


def perturb(ref: dict[str, Json], rng: random.Random) -> Json:
    """One model-like prediction for a reference."""
    roll = rng.random()
    if roll < 0.12:
        return copy.deepcopy(ref)
    if roll < 0.14:
        return {}
    if roll < 0.16:
        return {"text": "".join(rng.choice("abc ,.0123") for _ in range(rng.randint(1, 40)))}
    pred = copy.deepcopy(ref)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(11)
        slots = _leaf_slots(pred)
        if op == 0 and slots:  # character typo
            d, k = rng.choice(slots)
            d[k] = _typo(d[k], rng)
        elif op == 1 and slots:  # dropped field
            d, k = rng.choice(slots)
            del d[k]
        elif op == 2 and "menu" in pred:  # dropped or duplicated item
            items = _items(pred["menu"])
            i = rng.randrange(len(items))
            if rng.random() < 0.6 and len(items) > 1:
                del items[i]
            else:
                items.insert(i, copy.deepcopy(items[i]))
            pred["menu"] = items
        elif op == 3 and isinstance(pred.get("menu"), list) and len(pred["menu"]) > 1:
            items = pred["menu"]  # reordered items
            i, j = rng.sample(range(len(items)), 2)
            items[i], items[j] = items[j], items[i]
        elif op == 4 and "menu" in pred:  # a one-item list <-> a dict
            menu = pred["menu"]
            pred["menu"] = menu[0] if isinstance(menu, list) and menu else [menu]
        elif op == 5:  # an extra key
            rng.choice(_dicts(pred))[rng.choice(["etc", "nm", "cnt", "price"])] = _typo("0", rng)
        elif op == 6 and "total" in pred and isinstance(pred["total"], dict) and pred["total"]:
            key = rng.choice(sorted(pred["total"]))  # a field under the wrong parent
            pred.setdefault("sub_total", {})[key] = pred["total"].pop(key)
        elif op == 7 and slots:  # number format
            d, k = rng.choice(slots)
            d[k] = d[k].replace(",", ".") if "," in d[k] else d[k].replace(".", ",")
        elif op == 8 and "menu" in pred:  # a nested sub item
            item = rng.choice(_items(pred["menu"]))
            if isinstance(item, dict):
                item["sub"] = {"nm": _typo("ADD SAUCE", rng), "price": str(rng.randint(0, 9))}
        elif op == 9 and slots:  # case
            d, k = rng.choice(slots)
            d[k] = d[k].lower() if rng.random() < 0.5 else d[k].upper()
        elif op == 10 and slots:  # a number where the model emitted one, 0 included
            d, k = rng.choice(slots)
            d[k] = rng.choice([0, 1, 2, 10.5])
    return pred


def make_pairs(n: int, seed: int = 0) -> list[tuple[Json, Json]]:
    """n deterministic (prediction, reference) pairs."""
    rng = random.Random(seed)
    receipts = load_receipts()
    pairs = []
    for _ in range(n):
        ref = make_reference(receipts, rng)
        pairs.append((perturb(ref, rng), ref))
    return pairs


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def vlmkit_f1(pairs: list[tuple[Json, Json]]) -> float:
    tp = fp = fn = 0
    for pred, ref in pairs:
        counts = field_counts(pred, ref)
        tp, fp, fn = tp + counts.tp, fp + counts.fp, fn + counts.fn
    return donut_f1(tp, fp, fn)


def vlmkit_ted(pairs: list[tuple[Json, Json]]) -> list[float]:
    return [ted_accuracy(pred, ref) for pred, ref in pairs]


def donut_ted(evaluator: Any, pairs: list[tuple[Json, Json]]) -> list[float]:
    return [evaluator.cal_acc(pred, ref) for pred, ref in pairs]


def _line(name: str, n: str, donut_s: float, vlmkit_s: float, same: bool) -> str:
    return (
        f"json {name:<8} n={n}  donut {donut_s:.2f}s  vlmkit {vlmkit_s:.2f}s  "
        f"speedup {donut_s / vlmkit_s:.1f}x  identical={'yes' if same else 'NO'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of pairs")
    parser.add_argument(
        "--donut-n", type=int, default=1000, help="pairs on which Donut's TED is timed (0: all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    pairs = make_pairs(args.n, args.seed)
    step = max(1, args.n // args.donut_n) if 0 < args.donut_n < args.n else 1
    subset = pairs[::step]
    evaluator = load_donut_evaluator()
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]

    # Field F1 on every pair: Donut's is cheap.
    donut_f1_all, d_f1 = _timed(lambda: evaluator.cal_f1(preds, refs))
    vlmkit_f1_all, v_f1 = _timed(lambda: vlmkit_f1(pairs))
    print(_line("f1", str(args.n), d_f1, v_f1, donut_f1_all == vlmkit_f1_all))

    # TED accuracy: Donut on the subset, vlmkit on the subset and on everything.
    donut_acc, d_ted = _timed(lambda: donut_ted(evaluator, subset))
    vlmkit_acc, v_ted = _timed(lambda: vlmkit_ted(subset))
    # References are real receipts, never empty, so Donut's value is defined on every pair.
    same_ted = all(a == b for a, b in zip(donut_acc, vlmkit_acc, strict=True))
    label = f"{len(subset)}" + (f" (every {step}th of {args.n})" if step > 1 else "")
    print(_line("ted_acc", label, d_ted, v_ted, same_ted))

    # The same subset for both metrics, so the ratio compares like with like.
    sub_preds, sub_refs = [p for p, _ in subset], [r for _, r in subset]
    d_f1_sub = _timed(lambda: evaluator.cal_f1(sub_preds, sub_refs))[1]
    v_f1_sub = _timed(lambda: vlmkit_f1(subset))[1]
    print(_line("combined", label, d_f1_sub + d_ted, v_f1_sub + v_ted, same_ted))

    if step > 1:
        all_acc, v_all = _timed(lambda: vlmkit_ted(pairs))
        mean = sum(all_acc) / len(all_acc)
        per_pair = d_ted / len(subset)
        print(
            f"json ted_acc n={args.n}  vlmkit {v_all:.2f}s (mean {mean:.4f}); Donut at its "
            f"subset rate would take ~{per_pair * args.n:.0f}s"
        )
    return 0 if same_ted and donut_f1_all == vlmkit_f1_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
