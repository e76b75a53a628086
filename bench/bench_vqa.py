"""Time vlmkit's `anls` and `vqa_accuracy` against the official evaluation scripts, same pairs.

The official scripts are not packages, and their code stays out of this repository: pass the
folder that holds them (`--official DIR`, or VLMKIT_OFFICIAL_VQA):
- `vqaEval.py`, from GT-Vision-Lab/VQA (PythonEvaluationTools/vqaEvaluation/, commit a013f00).
  It is Python 2 only by its two `print "..."` progress lines; they are dropped as it loads.
- `infographicsvqa_eval.py`, the RRC evaluation script of InfographicVQA/DocVQA (docvqa.org, or
  QwenLM/Qwen-VL eval_mm/, commit aa00ed0).

Both sides read the same files and compute per-question values: the official ANLS script runs
its `evaluate_method` on a ground-truth JSON and a submission JSON, as a user runs it; the
official VQA class runs `evaluate()` on question dicts read from a JSON file (vqaTools' VQA
class, which only loads that JSON, is stood in for). vlmkit joins a predictions JSONL to a
references JSONL and evaluates, in process, as `vlmkit score` does. Every per-question value
is compared with `==`; the exit status is 1 if any differs.

Pairs are seeded and VQA-like: 100,000 questions, DocVQA-like for ANLS (one to three answers,
predictions with case, spacing, punctuation and OCR errors), VQAv2-like for VQA accuracy (ten
annotators, who agree on some questions and not on others).

    python bench/bench_vqa.py --official DIR [--n 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # vlmkit, without an install

from vlmkit.metrics.base import MetricOptions  # noqa: E402
from vlmkit.scoring import ScoreConfig, evaluate, join  # noqa: E402

WORDS = ["total", "invoice", "date", "1/8/93", "ITC", "$ 2.50", "yes", "no", "two", "2", "red",
         "the", "a", "cat", "dogs", "Dr. Lobo", "R&D", "12.5", "1,000", "none", "left", "right",
         "don't", "dont", "St. Louis", "98%", "(a)", "x-ray"]  # fmt: skip


def _noisy(rng: random.Random, text: str) -> str:
    """A model's version of an answer: often right, else with the errors models make."""
    roll = rng.random()
    if roll < 0.45:
        return text
    if roll < 0.55:
        return text.upper() if rng.random() < 0.5 else text.capitalize()
    if roll < 0.65:
        return f" {text}." if rng.random() < 0.5 else text.replace(" ", "  ")
    if roll < 0.8 and text:
        i = rng.randrange(len(text))
        return text[:i] + rng.choice("ao1l ") + text[i + 1 :]
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))


def _phrase(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 1, 1, 2, 3])))


Pairs = list[tuple[str, list[str]]]


def make_pairs(n: int, seed: int) -> tuple[Pairs, Pairs]:
    """(DocVQA-like pairs, VQAv2-like pairs): (prediction, answers)."""
    rng = random.Random(seed)
    doc, vqa = [], []
    for _ in range(n):
        answer = _phrase(rng)
        answers = [answer] + [_noisy(rng, answer) for _ in range(rng.choice([0, 0, 1, 2]))]
        doc.append((_noisy(rng, answer), answers))
        common = _phrase(rng)
        ten = [common if rng.random() < rng.choice([1.0, 0.7, 0.4]) else _noisy(rng, common)
               for _ in range(10)]  # fmt: skip
        vqa.append((_noisy(rng, common), ten))
    return doc, vqa


def _load(path: Path, name: str, python2_prints: bool = False) -> ModuleType:
    if not path.is_file():
        sys.exit(f"{path}: not found (see this script's docstring for where to get it)")
    source = path.read_text(encoding="utf-8")
    if python2_prints:
        source = re.sub(r'^(\s*)print "[^"\n]*"\s*$', r"\1pass", source, flags=re.M)
    module = ModuleType(name)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def official_anls(script: Path, folder: Path, pairs: Pairs) -> list[float]:
    """The RRC script's evaluate_method on its own file formats; per-question ANLS."""
    gt = folder / "gt.json"
    submission = folder / "submission.json"
    gt.write_text(json.dumps({"data": [{"questionId": i, "question": "?", "answers": answers}
                                       for i, (_, answers) in enumerate(pairs)]}))  # fmt: skip
    submission.write_text(json.dumps([{"questionId": i, "answer": prediction}
                                      for i, (prediction, _) in enumerate(pairs)]))  # fmt: skip
    module = _load(script, "infographicsvqa_eval")
    params = SimpleNamespace(anls_threshold=0.5, answer_types=False)
    result = module.evaluate_method(str(gt), str(submission), params)
    per_sample = result["per_sample_result"]
    return [float(per_sample[str(i)]["score"]) for i in range(len(pairs))]


class _Annotations:
    """What vqaTools' VQA class gives VQAEval: `qa` by question id, and the ids."""

    def __init__(self, qa: dict[int, Any]) -> None:
        self.qa = qa

    def getQuesIds(self) -> list[int]:
        return list(self.qa)


def official_vqa(script: Path, folder: Path, pairs: Pairs) -> list[float]:
    """VQAEval.evaluate on annotations and results read from JSON; per-question accuracy."""
    path = folder / "vqa.json"
    path.write_text(json.dumps(pairs))
    loaded = json.loads(path.read_text())
    gts = {i: {"answers": [{"answer": a, "answer_id": k + 1} for k, a in enumerate(answers)],
               "question_type": "what", "answer_type": "other"}
           for i, (_, answers) in enumerate(loaded)}  # fmt: skip
    res = {i: {"answer": prediction} for i, (prediction, _) in enumerate(loaded)}
    module = _load(script, "vqaEval", python2_prints=True)
    evaluator = module.VQAEval(_Annotations(gts), _Annotations(res), n=2)
    raw: dict[int, float] = {}
    evaluator.setEvalQA = lambda ques_id, acc: raw.__setitem__(ques_id, acc)
    evaluator.updateProgress = lambda progress: None
    evaluator.evaluate()
    return [float(raw[i]) for i in range(len(pairs))]


def vlmkit_values(folder: Path, pairs: Pairs, metric: str) -> list[float]:
    """vlmkit's per-question values, from a predictions JSONL and a references JSONL."""
    preds, refs = folder / f"{metric}-preds.jsonl", folder / f"{metric}-refs.jsonl"
    with preds.open("w") as p, refs.open("w") as r:
        for i, (prediction, answers) in enumerate(pairs):
            p.write(json.dumps({"id": i, "prediction": prediction}) + "\n")
            r.write(json.dumps({"id": i, "task": "vqa", "target": answers[0],
                                "answers": answers}) + "\n")  # fmt: skip
    config = ScoreConfig(metrics=(metric,), options=MetricOptions())
    evaluation = evaluate(join(preds, refs, config), config)
    return evaluation.results[metric].sample_values()


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, default=os.environ.get("VLMKIT_OFFICIAL_VQA"))
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.official is None:
        print("bench_vqa: skipped: pass --official DIR holding vqaEval.py and "
              "infographicsvqa_eval.py (see the docstring)")  # fmt: skip
        return 0
    doc, vqa = make_pairs(args.n, args.seed)
    print(f"{args.n:,} questions per metric; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}", flush=True)  # fmt: skip
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for metric, pairs, official, script in (
            ("anls", doc, official_anls, args.official / "infographicsvqa_eval.py"),
            ("vqa_accuracy", vqa, official_vqa, args.official / "vqaEval.py"),
        ):
            theirs, their_s = _timed(official, script, folder, pairs)
            ours, our_s = _timed(vlmkit_values, folder, pairs, metric)
            differ = sum(a != b for a, b in zip(ours, theirs, strict=True))
            failed |= differ > 0
            mean_ours, mean_theirs = sum(ours) / len(ours), sum(theirs) / len(theirs)
            print(f"{metric:13s} official {their_s:6.2f} s, vlmkit {our_s:6.2f} s "
                  f"(files to values): {their_s / our_s:5.1f}x faster; value {mean_ours:.6f} vs "
                  f"{mean_theirs:.6f}; {differ} of {len(ours):,} questions differ")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
