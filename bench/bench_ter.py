"""Time vlmkit's TER against sacrebleu's on the same OCR-like pairs in one run; check they agree.

sacrebleu is timed through `TER().corpus_score`. vlmkit is timed the way `vlmkit score` computes
the corpus score: per-pair statistics from `vlmkit.metrics.fast_ter.ter_statistics`, summed, then
sacrebleu's own `_compute_score_from_stats`, once in this process (`--workers 1`) and once with a
process pool (`--workers 2`, start-up of the helper processes included), best of `--repeat` runs
(sacrebleu runs once, being the slow one). The scores must be equal, not close. Pairs come from
`bench/ocr_pairs.py` (seeded; a few page-long segments dominate the cost).

    .venv/bin/python bench/bench_ter.py [--n 10000] [--seed 0] [--workers 1 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # without an install, vlmkit

from bench.ocr_pairs import ocr_pairs  # noqa: E402
from vlmkit.metrics.fast_ter import ter_statistics  # noqa: E402


def sacrebleu_score(predictions: list[str], references: list[str]) -> Any:
    from sacrebleu.metrics import TER

    return TER().corpus_score(predictions, [references])


def vlmkit_score(predictions: list[str], references: list[str], workers: int) -> Any:
    from sacrebleu.metrics import TER

    rows = ter_statistics(predictions, references, workers=workers)
    totals = [sum(row[0] for row in rows), sum(row[1] for row in rows)]
    return TER()._compute_score_from_stats(totals)


def timed(run: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="vlmkit runs per setting; best")
    args = parser.parse_args()

    references, predictions = ocr_pairs(args.n, seed=args.seed)
    words = sum(len(ref.split()) for ref in references)
    print(
        f"{args.n} pairs, {words} reference words, seed {args.seed}; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    expected, baseline = timed(lambda: sacrebleu_score(predictions, references))
    print(f"sacrebleu TER().corpus_score   {baseline:8.2f} s   TER = {expected.score!r}")
    for workers in args.workers:
        runs = [
            timed(lambda w=workers: vlmkit_score(predictions, references, w))
            for _ in range(max(1, args.repeat))
        ]
        score, seconds = min(runs, key=lambda run: run[1])
        same = (score.score, score.num_edits, score.ref_length) == (
            expected.score,
            expected.num_edits,
            expected.ref_length,
        )
        print(
            f"vlmkit ter_statistics, {workers} worker{'s' if workers > 1 else ' '} "
            f"{seconds:8.2f} s   {baseline / seconds:6.1f}x faster   "
            f"{'identical' if same else 'DIFFERENT: ' + repr(score.score)}"
        )
        if not same:
            raise SystemExit(f"TER differs with {workers} workers: {score} != {expected}")


if __name__ == "__main__":
    main()
