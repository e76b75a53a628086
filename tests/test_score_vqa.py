"""`vlmkit score` on VQA references: acceptable answers, the vqa task, variants, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app

runner = CliRunner()

TEN = ["nokia"] * 6 + ["Nokia"] * 2 + ["toshiba", "nokia phone"]


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def _error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Error:" in result.stderr and "Hint:" in result.stderr
    assert "Traceback" not in result.output
    return result.stderr


@pytest.fixture
def docvqa(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A vlmkit dataset as `convert vqa` writes it (task vqa, target + answers), two systems."""
    refs = write_jsonl(tmp_path / "refs.jsonl", [
        {"id": "q1", "task": "vqa", "target": "1/8/93", "answers": ["1/8/93", "1/8/1993"],
         "meta": {"type": "date"}},
        {"id": "q2", "task": "vqa", "target": "ITC", "answers": ["ITC"], "meta": {"type": "name"}},
        {"id": "q3", "task": "vqa", "target": "$ 2.50", "answers": ["$ 2.50", "2.50"],
         "meta": {"type": "money"}},
        {"id": "q4", "task": "vqa", "target": "12", "answers": ["12"], "meta": {"type": "money"}},
    ])  # fmt: skip
    tuned = write_jsonl(tmp_path / "tuned.jsonl", [
        {"id": "q1", "prediction": "1/8/1993"}, {"id": "q2", "prediction": "itc"},
        {"id": "q3", "prediction": "2.5"}, {"id": "q4", "prediction": "12.4"},
    ])  # fmt: skip
    base = write_jsonl(tmp_path / "base.jsonl", [
        {"id": "q1", "prediction": "August"}, {"id": "q2", "prediction": "ITC Ltd"},
        {"id": "q3", "prediction": "none"}, {"id": "q4", "prediction": "20"},
    ])  # fmt: skip
    return refs, tuned, base


def test_vqa_defaults_per_sample_breakdown_and_baseline(docvqa, tmp_path: Path):
    refs, tuned, base = docvqa
    per_sample = tmp_path / "per-sample.jsonl"
    result = run("score", tuned, refs, "--json", "-", "--per-sample", per_sample,
                 "--by", "meta.type", "--baseline", base, "--bootstrap", "200")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    metrics = summary["metrics"]
    # Few answers per question: vqa_accuracy is not a default (with one answer it is always 0).
    assert list(metrics) == ["anls", "relaxed_accuracy", "ocrbench_match", "exact_match"]
    # q1 matches its second answer exactly, q2 differs in case only, q3 "2.5" vs "2.50" (1 - 1/4),
    # q4: 12.4 vs 12 is 1 - 2/4 = 0.5, the threshold, which passes.
    assert metrics["anls"] == pytest.approx((1 + 1 + 0.75 + 0.5) / 4)
    # 1/8/1993 is an answer, "itc" equals "ITC" lower-cased, 2.5 = 2.50, 12.4 is within 5 % of 12.
    assert metrics["relaxed_accuracy"] == 1.0
    assert metrics["exact_match"] == pytest.approx(1 / 4)  # another answer counts
    assert summary["signatures"]["anls"].startswith("anls|variant:official|norm:none|agg:mean|")
    rows = [json.loads(line) for line in per_sample.read_text().splitlines()]
    assert rows[0]["answers"] == ["1/8/93", "1/8/1993"] and rows[0]["scores"]["anls"] == 1.0
    assert rows[2]["scores"]["anls"] == pytest.approx(0.75)
    assert summary["by"]["meta.type"]["money"]["metrics"]["anls"] == pytest.approx(0.625)
    anls = summary["comparison"]["anls"]
    assert anls["delta"] == pytest.approx(metrics["anls"] - anls["baseline"]) and anls["delta"] > 0


def test_ten_annotators_bring_vqa_accuracy_and_variants_change_it(tmp_path: Path):
    refs = write_jsonl(tmp_path / "refs.jsonl", [
        {"id": 1, "task": "vqa", "target": "nokia", "answers": TEN},
        {"id": 2, "task": "vqa", "target": "yes", "answers": ["yes"] * 10},
    ])  # fmt: skip
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": 1, "prediction": "Nokia."},
                                                   {"id": 2, "prediction": "Yes"}])  # fmt: skip
    official = json.loads(run("score", preds, refs, "--json", "-").stdout)
    assert "vqa_accuracy" in official["metrics"]
    # "Nokia." becomes "nokia" (annotators disagree): 6 others match, so 1.0; "Yes" against
    # ten identical "yes" is compared as written: 0.
    assert official["metrics"]["vqa_accuracy"] == pytest.approx(0.5)
    harness = run("score", preds, refs, "--json", "-", "--variant", "vqa_accuracy=lmms-eval")
    lmms = json.loads(harness.stdout)
    assert lmms["metrics"]["vqa_accuracy"] == pytest.approx(1.0)
    assert lmms["signatures"]["vqa_accuracy"].startswith("vqa_accuracy|variant:lmms-eval|")


def test_a_peer_file_with_answer_lists_is_scored_as_vqa(tmp_path: Path):
    # No task and no target: the answers list is found, and the task inferred from it, both said.
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"id": "a", "answers": ["42", "forty-two"]},
                                                 {"id": "b", "answers": ["7"]}])  # fmt: skip
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "prediction": "forty-two"},
                                                   {"id": "b", "prediction": "7.1"}])  # fmt: skip
    result = run("score", preds, refs, "--json", "-")
    assert result.exit_code == 0, result.output
    assert "scoring against 'answers'" in result.stderr
    assert "scoring them as vqa (every one is a list of acceptable answers" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["task"] == "vqa" and summary["metrics"]["exact_match"] == 0.5
    assert summary["metrics"]["relaxed_accuracy"] == 1.0  # 7.1 is within 5 % of 7 (1.4 %)


@pytest.mark.parametrize(
    ("answers", "said"),
    [
        ("42", "'answers' is text, not a list of answer strings"),
        ([], "'answers' is an empty list"),
        (["42", 42], "'answers' holds a number (42)"),
        ([{"text": "42"}], "'answers' holds an object"),
        (["42", " "], "'answers' holds an empty answer"),
    ],
)
def test_answers_that_are_not_a_list_of_strings(tmp_path: Path, answers, said):
    refs = write_jsonl(tmp_path / "refs.jsonl", [
        {"id": "a", "task": "vqa", "target": "1", "answers": ["1"]},
        {"id": "b", "task": "vqa", "target": "42", "answers": answers},
    ])  # fmt: skip
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "prediction": "1"},
                                                   {"id": "b", "prediction": "42"}])  # fmt: skip
    error = _error(run("score", preds, refs))
    assert "refs.jsonl:2: " in error and said in error


def test_a_vqa_metric_on_references_without_answers(tmp_path: Path):
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"id": "a", "target": "the cat"},
                                                 {"id": "b", "target": "a mat"}])  # fmt: skip
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "prediction": "the cat"},
                                                   {"id": "b", "prediction": "a mat"}])  # fmt: skip
    error = _error(run("score", preds, refs, "-m", "vqa_accuracy"), code=2)
    assert "vqa_accuracy: " in error and "refs.jsonl:1 has no 'answers' list" in error
    # ANLS needs no list: the target is the one acceptable answer.
    assert (
        json.loads(run("score", preds, refs, "-m", "anls", "--json", "-").stdout)["metrics"]["anls"]
        == 1.0
    )
    json_refs = write_jsonl(
        tmp_path / "json.jsonl",
        [{"id": "a", "target": {"total": "7"}}, {"id": "b", "target": {"total": "8"}}],
    )
    error = _error(run("score", preds, json_refs, "-m", "anls"), code=2)
    assert "json.jsonl:1 is a JSON target, not a text answer" in error


def test_few_annotators_warn_for_vqa_accuracy(docvqa):
    refs, tuned, _ = docvqa
    result = run("score", tuned, refs, "-m", "vqa_accuracy")
    assert result.exit_code == 0, result.output
    assert "4 of 4 references have fewer than 10 answers" in result.stderr


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("anls", "expected METRIC=VARIANT"),
        ("anls=harness", "anls has no variant 'harness'"),
        ("cer=lmms-eval", "cer has no variant 'lmms-eval'"),
        ("ansl=official", "unknown metric 'ansl'"),
        ("ocrbench_match=hme", "ocrbench_match is not computed"),
    ],
)
def test_bad_variants(docvqa, spec, said):
    refs, tuned, _ = docvqa
    error = _error(run("score", tuned, refs, "-m", "anls", "--variant", spec), code=2)
    assert said in error


def test_metrics_lists_variants_and_the_vqa_defaults():
    result = run("metrics")
    assert result.exit_code == 0
    assert "ocrbench_match" in result.stdout and "lmms-eval" in result.stdout
    assert "(+ vqa_accuracy" in result.stdout


def test_the_target_is_acceptable_even_where_the_list_lacks_it(tmp_path: Path):
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "prediction": "no"},
                                                   {"id": "b", "prediction": "maybe"}])  # fmt: skip
    refs = write_jsonl(tmp_path / "refs.jsonl", [
        {"id": "a", "task": "vqa", "target": "no", "answers": ["yes", "yes"]},
        {"id": "b", "task": "vqa", "target": "maybe", "answers": ["yes"]},
    ])  # fmt: skip
    summary = json.loads(run("score", preds, refs, "-m", "exact_match,anls,vqa_accuracy",
                             "--json", "-").stdout)  # fmt: skip
    # vqa_accuracy counts the listed annotators only.
    assert summary["metrics"] == {"exact_match": 1.0, "anls": 1.0, "vqa_accuracy": 0.0}
    gold = write_jsonl(tmp_path / "gold.jsonl", [
        {"id": "a", "target": "x", "gold": "no", "answers": ["yes"]},
        {"id": "b", "target": "y", "gold": "maybe", "answers": ["yes"]},
    ])  # fmt: skip
    summary = json.loads(run("score", preds, gold, "--ref-field", "gold", "-m", "exact_match",
                             "--json", "-").stdout)  # fmt: skip
    assert summary["metrics"] == {"exact_match": 1.0}  # --ref-field names an acceptable answer


def test_some_references_with_answer_lists_are_named_in_the_note(tmp_path: Path):
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"id": "a", "target": "x", "answers": ["x"]},
                                                 {"id": "b", "target": "y z"}])  # fmt: skip
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "prediction": "x"},
                                                   {"id": "b", "prediction": "y z"}])  # fmt: skip
    result = run("score", preds, refs)
    assert result.exit_code == 0, result.output
    assert "1 of 2 have an answers list: --task vqa" in " ".join(result.stderr.split())


def test_several_variants_in_one_flag_are_refused(docvqa):
    refs, tuned, _ = docvqa
    for spec in ("anls=lmms-eval,ocrbench_match=hme", "anls,cer=official"):
        error = _error(run("score", tuned, refs, "--variant", spec), code=2)
        assert "one METRIC=VARIANT per --variant" in error
    error = _error(run("score", tuned, refs, "--variant", "=lmms-eval"), code=2)
    assert "expected METRIC=VARIANT" in error


def test_a_list_target_of_a_json_record_is_not_answers(tmp_path: Path):
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"id": "a", "task": "json",
                                                  "target": ["tea", "cake"]}])  # fmt: skip
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "prediction": '["tea", "cake"]'}])
    error = _error(run("score", preds, refs))
    assert "refs.jsonl:1: reference field 'target' is a list, not text" in error
