"""The score engine: joining by id, task defaults, aggregation, breakdowns, paired bootstrap."""

from __future__ import annotations

from pathlib import Path

import jiwer
import numpy as np
import pytest
from conftest import EXAMPLE_CORD, write_jsonl

from vlmkit.errors import InputError, UsageError
from vlmkit.scoring import ScoreConfig, breakdown, evaluate, join, per_sample_rows, summary_json
from vlmkit.significance import paired_bootstrap


def test_join_is_by_id_not_position(refs_and_preds):
    preds, refs = refs_and_preds
    joined = join(preds, refs, ScoreConfig())
    assert joined.ids == ["a", "b", "c"]
    assert joined.predictions == ["the cat sat", "on a mat", "Grüsse 東京"]


def test_default_metrics_follow_the_task(refs_and_preds):
    preds, refs = refs_and_preds
    evaluation = evaluate(join(preds, refs, ScoreConfig()), ScoreConfig())
    assert evaluation.task == "ocr"
    assert list(evaluation.results) == ["cer", "wer", "bleu", "chrf", "ter", "exact_match"]
    expected = jiwer.cer(["the cat sat", "on the mat", "Grüße, 東京!"], joined_preds(evaluation))
    assert evaluation.results["cer"].value == expected


def joined_preds(evaluation):
    return evaluation.joined.predictions


def test_missing_predictions_score_as_empty_and_are_counted(tmp_path: Path, refs_and_preds):
    _, refs = refs_and_preds
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prediction": "the cat sat"}])
    joined = join(preds, refs, ScoreConfig())
    assert joined.missing == ["b", "c"]
    assert joined.predictions == ["the cat sat", "", ""]
    with pytest.raises(InputError, match="no prediction for id 'b'") as info:
        join(preds, refs, ScoreConfig(strict=True))
    assert "--strict" in info.value.hint


def test_errored_samples_score_as_empty(tmp_path: Path, refs_and_preds):
    _, refs = refs_and_preds
    preds = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "prediction": "the cat sat"},
            {"id": "b", "error": "unreadable image"},
            {"id": "c", "prediction": "partial", "error": "CUDA out of memory"},
        ],
    )
    joined = join(preds, refs, ScoreConfig())
    assert joined.errored == ["b", "c"]
    assert joined.predictions == ["the cat sat", "", ""]  # a partial output of a failure too


def test_null_prediction_counts_as_missing(tmp_path: Path, refs_and_preds):
    _, refs = refs_and_preds
    preds = write_jsonl(
        tmp_path / "p.jsonl",
        [{"id": "a", "prediction": None}, {"id": "b", "prediction": "x", "error": None}],
    )
    joined = join(preds, refs, ScoreConfig())
    assert joined.missing == ["a", "c"] and joined.errored == []
    assert joined.predictions == ["", "x", ""]


def test_custom_field_names(tmp_path: Path):
    refs = write_jsonl(tmp_path / "r.jsonl", [{"key": 1, "text": "a b"}, {"key": 2, "text": "c"}])
    preds = write_jsonl(tmp_path / "p.jsonl", [{"key": 2, "out": "c"}, {"key": 1, "out": "a"}])
    config = ScoreConfig(id_field="key", pred_field="out", ref_field="text", metrics=("wer",))
    evaluation = evaluate(join(preds, refs, config), config)
    assert evaluation.results["wer"].value == jiwer.wer(["a b", "c"], ["a", "c"])


def test_mixed_tasks_need_a_choice(tmp_path: Path):
    refs = write_jsonl(
        tmp_path / "r.jsonl",
        [{"id": 1, "target": "a", "task": "letter"}, {"id": 2, "target": "x", "task": "ocr"}],
    )
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "prediction": "a"}])
    joined = join(preds, refs, ScoreConfig())
    with pytest.raises(InputError, match="mixes tasks"):
        evaluate(joined, ScoreConfig())
    assert list(evaluate(joined, ScoreConfig(task="letter")).results) == [
        "letter_accuracy",
        "letter_accuracy_strict",
    ]


def test_mean_aggregation_is_the_mean_of_sample_values(refs_and_preds):
    preds, refs = refs_and_preds
    config = ScoreConfig(metrics=("wer",), aggregation="mean")
    evaluation = evaluate(join(preds, refs, config), config)
    refs_text = ["the cat sat", "on the mat", "Grüße, 東京!"]
    expected = np.mean(
        [jiwer.wer(r, p) for r, p in zip(refs_text, joined_preds(evaluation), strict=True)]
    )
    assert evaluation.results["wer"].value == pytest.approx(expected)
    assert "agg:mean" in evaluation.results["wer"].signature


def test_breakdown_by_meta_field(refs_and_preds):
    preds, refs = refs_and_preds
    config = ScoreConfig(metrics=("cer", "exact_match"))
    evaluation = evaluate(join(preds, refs, config), config)
    groups = breakdown(evaluation, "meta.font")
    assert list(groups) == ["sans", "serif"]
    assert groups["serif"] == {"n": 1, "metrics": {"cer": 0.0, "exact_match": 1.0}}
    sans_cer = jiwer.cer(["on the mat", "Grüße, 東京!"], ["on a mat", "Grüsse 東京"])
    assert groups["sans"]["metrics"]["cer"] == sans_cer
    with pytest.raises(UsageError, match=r"--by meta\.nothing"):
        breakdown(evaluation, "meta.nothing")


def test_json_metrics_on_the_bundled_cord_sample():
    config = ScoreConfig()
    evaluation = evaluate(join(EXAMPLE_CORD / "predictions-b.jsonl", EXAMPLE_CORD, config), config)
    assert evaluation.task == "json"
    values = evaluation.values()
    assert set(values) == {"field_f1", "ted_accuracy", "json_valid", "json_strict", "cer"}
    assert 0.5 < values["field_f1"] < 1.0
    assert values["json_valid"] == 1.0  # JSON or Donut tokens on every line
    assert values["json_strict"] == pytest.approx(8 / 9)  # the Donut line is not JSON
    details = evaluation.details["field_f1"]
    assert details["parse_methods"] == {"donut": 1, "json": 8}
    assert "total.total_price" in details["per_field"]


def test_summary_and_per_sample_rows(refs_and_preds):
    preds, refs = refs_and_preds
    config = ScoreConfig(metrics=("cer", "hf_bleu"))
    evaluation = evaluate(join(preds, refs, config), config)
    summary = summary_json(evaluation)
    assert summary["n"] == 3 and summary["metrics"]["cer"] == evaluation.results["cer"].value
    assert set(summary["metrics"]["hf_bleu"]) >= {"bleu", "precisions", "brevity_penalty"}
    rows = per_sample_rows(evaluation)
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["scores"]["cer"] == 0.0 and rows[0]["meta"] == {"font": "serif"}


def _two_systems(tmp_path: Path, good: list[str], bad: list[str], refs: list[str]):
    ref_file = write_jsonl(
        tmp_path / "r.jsonl", [{"id": i, "target": t} for i, t in enumerate(refs)]
    )
    config = ScoreConfig(metrics=("cer", "exact_match"))
    evals = []
    for name, preds in (("good", good), ("bad", bad)):
        pred_file = write_jsonl(
            tmp_path / f"{name}.jsonl", [{"id": i, "prediction": p} for i, p in enumerate(preds)]
        )
        evals.append(evaluate(join(pred_file, ref_file, config), config))
    return evals


def test_paired_bootstrap_detects_a_real_difference(tmp_path: Path):
    refs = [f"receipt line {i} total {i * 7}" for i in range(60)]
    good = list(refs)
    bad = [r.replace("total", "totl").replace("1", "l") for r in refs]
    system, baseline = _two_systems(tmp_path, good, bad, refs)
    comparisons = paired_bootstrap(system.results, baseline.results, resamples=500, seed=1)
    cer = comparisons["cer"]
    assert cer.delta == system.results["cer"].value - baseline.results["cer"].value < 0
    assert cer.delta_ci95[1] < 0 and cer.p_value < 0.01
    assert cer.system_ci95[0] <= cer.system <= cer.system_ci95[1]
    again = paired_bootstrap(system.results, baseline.results, resamples=500, seed=1)
    assert again["cer"] == cer  # seeded: reproducible


def test_paired_bootstrap_of_a_system_with_itself_is_not_significant(tmp_path: Path):
    refs = [f"line {i}" for i in range(30)]
    preds = [r if i % 3 else "wrong" for i, r in enumerate(refs)]
    system, baseline = _two_systems(tmp_path, preds, preds, refs)
    comparisons = paired_bootstrap(system.results, baseline.results, resamples=200, seed=3)
    assert comparisons["exact_match"].p_value == 1.0
    assert comparisons["exact_match"].delta_ci95 == (0.0, 0.0)
