"""`vlmkit score` on 100,000 OCR-like pairs vs calling jiwer and sacrebleu directly, same run.

The direct side is what a notebook does: the lists already in memory, `jiwer.wer`, `jiwer.cer`,
`BLEU().corpus_score` and `CHRF().corpus_score`, one after the other. The vlmkit side is the whole
command in a fresh process: interpreter start, reading both JSONL files, joining by id, the same
four metrics (with per-sample statistics for breakdowns and bootstrap), the table and the JSON.
Both must agree to the last digit; the requirement is vlmkit <= 1.3x the direct time.

    .venv/bin/python bench/bench_score.py [--n 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer
from sacrebleu.metrics import BLEU, CHRF

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocr_pairs import ocr_pairs

METRICS = "wer,cer,bleu,chrf"


def direct(references: list[str], predictions: list[str]) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    values = {
        "wer": jiwer.wer(references, predictions),
        "cer": jiwer.cer(references, predictions),
        "bleu": BLEU().corpus_score(predictions, [references]).score,
        "chrf": CHRF().corpus_score(predictions, [references]).score,
    }
    return values, time.perf_counter() - start


def via_cli(folder: Path) -> tuple[dict[str, float], float]:
    scores = folder / "scores.json"
    cli = [sys.executable, "-m", "vlmkit", "score", str(folder / "preds.jsonl"),
           str(folder / "refs.jsonl"), "-m", METRICS, "--json", str(scores)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cli, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    return json.loads(scores.read_text("utf-8"))["metrics"], elapsed


def write_inputs(folder: Path, references: list[str], predictions: list[str]) -> None:
    with (folder / "refs.jsonl").open("w", encoding="utf-8") as refs:
        for i, text in enumerate(references):
            refs.write(json.dumps({"id": i, "target": text, "task": "ocr"}, ensure_ascii=False))
            refs.write("\n")
    with (folder / "preds.jsonl").open("w", encoding="utf-8") as preds:
        # Reverse order: the join must go by id, and that costs something worth measuring.
        for i in reversed(range(len(predictions))):
            preds.write(json.dumps({"id": i, "prediction": predictions[i]}, ensure_ascii=False))
            preds.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    references, predictions = ocr_pairs(args.n, args.seed)
    chars = sum(map(len, references))
    print(f"{args.n} pairs, {chars / args.n:.0f} reference characters on average; {METRICS}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_inputs(folder, references, predictions)
        expected, direct_s = direct(references, predictions)
        got, cli_s = via_cli(folder)
    for name, value in expected.items():
        same = "identical" if got[name] == value else f"DIFFERENT (vlmkit {got[name]!r})"
        print(f"  {name:5s} {value:.6f}  {same}")
    print(f"direct jiwer + sacrebleu (lists in memory): {direct_s:7.2f} s")
    print(f"vlmkit score (whole process, from files):   {cli_s:7.2f} s")
    print(f"ratio vlmkit / direct: {cli_s / direct_s:.2f}x (requirement: <= 1.30x)")
    if got != expected:
        sys.exit("values differ")


if __name__ == "__main__":
    main()
