"""Time vlmkit's Donut-exact JSON metrics against Donut's own evaluator, same pairs, same run.

Pairs are CORD-like (tests/cord_pairs.py): references are the real CORD v2 receipts in
../shared/data/cord_v2 (40% of them with menus grown by items of other receipts, as real CORD
has up to ~20 items), predictions are the references with the errors extraction models make.
Everything is seeded. Donut's evaluator is clovaai/donut's ``JSONParseEvaluator``, loaded from the
installed donut-python by tests/oracles/donut_evaluator.py.

Field F1 is timed on every pair for both. Donut's TED accuracy (zss + nltk, ~0.1 s a pair) is
timed on every pair with ``--donut-n 0``, and by default on an evenly spaced subset of
``--donut-n`` pairs, its time for all pairs then extrapolated from that subset and printed as
such; vlmkit's TED accuracy runs on every pair, and also on the subset alone so that one ratio
compares like with like. Every number vlmkit computes on pairs Donut also scored is checked
for equality (floats with ``==``); the exit status is 1 if any differs.

    python bench/bench_json.py [--n 10000] [--donut-n 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # cord_pairs and oracles
sys.path.insert(0, str(ROOT))  # vlmkit, without an install

from cord_pairs import CORD_METADATA, make_pairs  # noqa: E402
from oracles.donut_evaluator import load_donut_evaluator  # noqa: E402

from vlmkit.metrics.donut_tree import FieldCounts, field_counts, ted_accuracy  # noqa: E402

Json = Any
Pairs = list[tuple[Json, Json]]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def vlmkit_f1(pairs: Pairs) -> float:
    """Corpus F1 as vlmkit's FieldF1 computes it: counts summed over pairs, then donut_f1."""
    tp = fp = fn = 0
    for pred, ref in pairs:
        counts = field_counts(pred, ref)
        tp, fp, fn = tp + counts.tp, fp + counts.fp, fn + counts.fn
    return FieldCounts(tp, fp, fn).f1


def vlmkit_ted(pairs: Pairs) -> list[float]:
    return [ted_accuracy(pred, ref) for pred, ref in pairs]


def donut_f1(evaluator: Any, pairs: Pairs) -> float:
    return evaluator.cal_f1([p for p, _ in pairs], [r for _, r in pairs])


def donut_ted(evaluator: Any, pairs: Pairs) -> list[float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # none expected: no empty references
        return [float(evaluator.cal_acc(pred, ref)) for pred, ref in pairs]


def _row(name: str, n: str, donut_s: float, vlmkit_s: float, same: str) -> str:
    return (
        f"{name:<22} {n:>24}  donut {donut_s:9.2f} s  vlmkit {vlmkit_s:7.2f} s  "
        f"{donut_s / vlmkit_s:7.1f}x  identical: {same}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of pairs")
    parser.add_argument(
        "--donut-n",
        type=int,
        default=1000,
        help="pairs on which Donut's TED accuracy is timed (0: all of them)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not CORD_METADATA.is_file():
        parser.error(f"CORD v2 receipts not found at {CORD_METADATA}")

    pairs = make_pairs(args.n, args.seed)
    step = args.n // args.donut_n if 0 < args.donut_n < args.n else 1
    subset = pairs[::step]
    evaluator = load_donut_evaluator()
    print(
        f"{args.n} CORD-like pairs (seed {args.seed}); Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, one process each"
    )
    ok = True

    # Field F1 (corpus, micro), every pair, both.
    d_f1, d_f1_s = _timed(lambda: donut_f1(evaluator, pairs))
    v_f1, v_f1_s = _timed(lambda: vlmkit_f1(pairs))
    ok &= d_f1 == v_f1
    print(_row("field F1", f"n={args.n}", d_f1_s, v_f1_s, f"{d_f1 == v_f1} ({v_f1!r})"))

    # TED accuracy per pair: Donut on the subset, vlmkit on the subset and on everything.
    d_acc, d_ted_s = _timed(lambda: donut_ted(evaluator, subset))
    v_acc_sub, v_ted_sub_s = _timed(lambda: vlmkit_ted(subset))
    same = d_acc == v_acc_sub
    ok &= same
    differ = sum(a != b for a, b in zip(d_acc, v_acc_sub, strict=True))
    label = f"n={len(subset)}" + (f" (every {step}th)" if step > 1 else "")
    print(_row("TED accuracy", label, d_ted_s, v_ted_sub_s, f"{same} ({differ} differ)"))
    v_acc, v_ted_s = _timed(lambda: vlmkit_ted(pairs))
    ok &= v_acc[::step] == d_acc
    mean_sub = sum(d_acc) / len(d_acc)

    # Both metrics, as `vlmkit score` computes them.
    d_sub_f1_s = _timed(lambda: donut_f1(evaluator, subset))[1]
    v_sub_f1_s = _timed(lambda: vlmkit_f1(subset))[1]
    print(_row("F1 + TED", label, d_sub_f1_s + d_ted_s, v_sub_f1_s + v_ted_sub_s, str(same)))
    if step > 1:
        d_all_s = d_f1_s + d_ted_s / len(subset) * args.n
        print(
            _row(
                "F1 + TED (extrapolated)",
                f"n={args.n}",
                d_all_s,
                v_f1_s + v_ted_s,
                f"on the {len(subset)} scored by both",
            )
        )
        print(
            f"  Donut's TED time for n={args.n} is its measured {d_ted_s:.1f} s on "
            f"{len(subset)} pairs scaled by {args.n / len(subset):g}; vlmkit's is measured."
        )
    else:
        print(_row("F1 + TED", f"n={args.n}", d_f1_s + d_ted_s, v_f1_s + v_ted_s, str(same)))
    print(
        f"mean TED accuracy: {sum(v_acc) / len(v_acc):.6f} over n={args.n} (vlmkit), "
        f"{mean_sub:.6f} over the {len(subset)} scored by both; corpus F1 {v_f1:.6f}"
    )
    print("all identical" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
