"""GRPO's rewards: parsed and checked before any model loads, and equal, completion by completion,
to what `vlmkit score --per-sample` reports (brought to [0, 1] by the documented rule)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app
from vlmkit.errors import UsageError
from vlmkit.finetune.rewards import (
    Component,
    RewardFunctions,
    check_task,
    component_values,
    parse_reward,
    reward_rule,
)

runner = CliRunner()


def test_a_spec_becomes_weighted_components():
    assert parse_reward("field_f1") == (Component("field_f1", 1.0),)
    assert parse_reward("field_f1=1, json_valid=0.2,FORMAT=0.5") == (
        Component("field_f1", 1.0),
        Component("json_valid", 0.2),
        Component("format", 0.5),
    )
    assert reward_rule("cer") == "1 - min(value, 1)"
    assert reward_rule("ter") == "1 - min(value / 100, 1)"
    assert reward_rule("bleu") == "value / 100"


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("field_f1=high", "the weight of field_f1 is 'high', not a finite number"),
        ("field_f1=nan", "not a finite number"),
        ("field_f1=-1", "the weight of field_f1 is -1; weights are from 0 to 1000"),
        ("field_f1=1e308,cer=1e308", "weights are from 0 to 1000"),
        ("hf_bleu", "hf_bleu: it is a corpus-level figure"),
        ("feild_f1", "did you mean 'field_f1'"),
        ("cer,cer=2", "cer is named twice"),
        ("cer=0", "every weight is 0"),
        ("cer,,wer", "an empty reward name"),
    ],
)
def test_bad_specs(spec, said):
    with pytest.raises(UsageError, match=said):
        parse_reward(spec)


def test_a_reward_the_task_does_not_produce():
    with pytest.raises(UsageError, match="the letter task does not produce it"):
        check_task(parse_reward("field_f1"), {"letter"})
    with pytest.raises(UsageError, match="the ocr task does not produce it"):
        check_task(parse_reward("format"), {"ocr"})
    with pytest.raises(UsageError, match="mixes tasks"):
        check_task(parse_reward("cer"), {"ocr", "json"})


REFS = [
    {"id": "a", "task": "json", "target": '{"total": "7", "items": [{"nm": "tea"}]}'},
    {"id": "b", "task": "json", "target": '{"total": "12.50"}'},
    {"id": "c", "task": "json", "target": '{"name": "grüße", "total": "3"}'},
]
COMPLETIONS = ['{"total": "7", "items": [{"nm": "coffee"}]}', 'The total is {"total": "12.5"}',
               "no idea at all, really none"]  # fmt: skip


@pytest.mark.parametrize("metric", ["field_f1", "ted_accuracy", "cer", "bleu", "ter", "json_valid"])
def test_each_reward_is_the_per_sample_score(tmp_path: Path, metric: str):
    refs = write_jsonl(tmp_path / "refs.jsonl", REFS)
    rows = [{"id": r["id"], "prediction": c} for r, c in zip(REFS, COMPLETIONS, strict=True)]
    preds = write_jsonl(tmp_path / "preds.jsonl", rows)
    per_sample = tmp_path / "per-sample.jsonl"
    result = runner.invoke(app, ["score", str(preds), str(refs), "-m", metric,
                                 "--per-sample", str(per_sample)])  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = [json.loads(line)["scores"][metric] for line in per_sample.read_text().splitlines()]
    rewards = component_values(metric, COMPLETIONS, [r["target"] for r in REFS], ["json"] * 3)
    scale = 100.0 if metric in ("bleu", "ter") else 1.0
    lower_better = metric in ("cer", "ter")
    expected = [min(max(1 - min(v / scale, 1) if lower_better else v / scale, 0), 1)
                for v in scored]  # fmt: skip
    assert rewards == expected
    assert all(0.0 <= r <= 1.0 for r in rewards)


def test_a_spec_is_written_one_way_for_resume():
    from vlmkit.finetune.rewards import canonical_reward

    assert canonical_reward("Letter_Accuracy, format=0.20") == "letter_accuracy=1,format=0.2"


def test_rewards_stay_within_zero_and_one():
    assert component_values("bleu", ["abc def"], ["abc def"], ["ocr"]) == [1.0]
    assert component_values("cer", ["x" * 50], ["ab"], ["ocr"]) == [0.0]


def test_format_rewards_the_tasks_form():
    json_format = component_values("format", ['{"a": 1}', 'Here: {"a": 1}', "[1, 2]"],
                                   ["x"] * 3, ["json"] * 3)  # fmt: skip
    assert json_format == [1.0, 0.0, 1.0]
    letters = component_values("format", ["{e}", "e", "It is {e}."], ["e"] * 3, ["letter"] * 3)
    assert letters == [1.0, 0.0, 1.0]


def test_reward_functions_log_every_completion(tmp_path: Path):
    log = tmp_path / "completions.jsonl"
    rewards = RewardFunctions(parse_reward("letter_accuracy,format=0.5"), log)
    completions = [
        [{"role": "assistant", "content": "{e}"}],
        [{"role": "assistant", "content": "e"}],
    ]
    columns = {"id": ["x", "y"], "target": ["e", "e"], "task": ["letter", "letter"]}
    out = [fn(completions=completions, **columns) for fn in rewards.functions()]
    assert out == [[1.0, 1.0], [1.0, 0.0]]
    assert [fn.__name__ for fn in rewards.functions()] == ["letter_accuracy", "format"]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert (
        rows[0]["rewards"] == {"letter_accuracy": 1.0, "format": 1.0} and rows[0]["reward"] == 1.5
    )
    assert rows[1]["completion"] == "e" and rows[1]["reward"] == 1.0
