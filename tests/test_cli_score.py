"""`vlmkit score` and `vlmkit metrics` through Typer's runner: streams, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import pytest
from conftest import EXAMPLE_CORD, write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app

runner = CliRunner()


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "command",
    [[], ["score"], ["metrics"], ["report"], ["infer"], ["finetune"], ["tiny-model"],
     ["convert"], ["synth", "circled-letter"], ["pairs"]],
)  # fmt: skip
def test_help_of_every_command(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_version():
    from vlmkit import __version__

    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"vlmkit {__version__}"


def test_metrics_lists_every_metric_and_preset():
    from vlmkit.metrics import METRICS

    result = run("metrics")
    assert result.exit_code == 0
    for name in [*METRICS, "basic", "whitespace"]:
        assert name in result.stdout


def test_table_on_stdout_and_notes_on_stderr(refs_and_preds, tmp_path: Path):
    preds, refs = refs_and_preds
    out = tmp_path / "scores.json"
    result = run("score", preds, refs, "--json", out)
    assert result.exit_code == 0, result.output
    assert "cer" in result.stdout and "signatures" in result.stdout
    assert "wrote" in result.stderr and "wrote" not in result.stdout
    payload = json.loads(out.read_text("utf-8"))
    assert payload["n"] == 3
    expected = jiwer.cer(
        ["the cat sat", "on the mat", "Grüße, 東京!"], ["the cat sat", "on a mat", "Grüsse 東京"]
    )
    assert payload["metrics"]["cer"] == expected
    assert payload["signatures"]["cer"].startswith("cer|")


def test_json_to_stdout_is_pure_json(refs_and_preds):
    preds, refs = refs_and_preds
    result = run("score", preds, refs, "-m", "wer,hf_bleu,hf_ter", "--json", "-")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload["metrics"]) == ["wer", "hf_bleu", "hf_ter"]
    assert set(payload["metrics"]["hf_ter"]) == {"score", "num_edits", "ref_length"}


def test_per_sample_breakdown_and_baseline(refs_and_preds, tmp_path: Path):
    preds, refs = refs_and_preds
    baseline = write_jsonl(
        tmp_path / "base.jsonl", [{"id": i, "prediction": ""} for i in ("a", "b", "c")]
    )
    per_sample = tmp_path / "per-sample.jsonl"
    result = run(
        "score", preds, refs, "-m", "cer,exact_match", "--by", "meta.font",
        "--baseline", baseline, "--bootstrap", "200", "--per-sample", per_sample, "--json", "-",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["by"]["meta.font"]) == {"sans", "serif"}
    assert payload["comparison"]["cer"]["delta"] < 0
    assert payload["comparison"]["cer"]["resamples"] == 200
    assert payload["baseline"]["metrics"]["cer"] == 1.0
    rows = [json.loads(line) for line in per_sample.read_text("utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]


def test_bundled_example_json_task():
    result = run("score", EXAMPLE_CORD / "predictions-b.jsonl", EXAMPLE_CORD,
                 "--baseline", EXAMPLE_CORD / "predictions-a.jsonl")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "field_f1" in result.stdout and "per field" in result.stdout
    assert "1 line carries an error field in" in result.stderr and "(baseline)" in result.stderr


def test_gates(refs_and_preds):
    preds, refs = refs_and_preds
    ok = run("score", preds, refs, "-m", "cer", "--fail-over", "cer=0.5")
    assert ok.exit_code == 0
    failed = run("score", preds, refs, "-m", "cer,exact_match", "--fail-under", "exact_match=0.9")
    assert failed.exit_code == 1
    assert "exact_match" in failed.stderr and "--fail-under exact_match=0.9" in failed.stderr
    assert "cer" in failed.stdout  # the scores are still shown


def test_missing_predictions_warn_or_fail_with_strict(refs_and_preds, tmp_path: Path):
    _, refs = refs_and_preds
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prediction": "the cat sat"}])
    result = run("score", preds, refs, "-m", "cer")
    assert result.exit_code == 0
    assert "2 of 3 references have no prediction" in result.stderr
    strict = run("score", preds, refs, "-m", "cer", "--strict")
    assert strict.exit_code == 1 and "no prediction for id 'b'" in strict.stderr


def _error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Error:" in result.stderr and "Hint:" in result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def test_malformed_json_names_file_and_line(refs_and_preds, tmp_path: Path):
    _, refs = refs_and_preds
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prediction": "x"}\n{"id": "b", "prediction": \n', "utf-8")
    assert f"{bad}:2: malformed JSON" in _error(run("score", bad, refs))


def test_non_utf8_names_file_line_and_byte(refs_and_preds, tmp_path: Path):
    _, refs = refs_and_preds
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"id": "a", "prediction": "café"}\n'.encode("latin-1"))
    stderr = _error(run("score", bad, refs))
    assert f"{bad}:1: not UTF-8" in stderr and "iconv" in stderr


def test_missing_prediction_field_names_the_flag(refs_and_preds, tmp_path: Path):
    _, refs = refs_and_preds
    bad = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "text": "x"}])
    stderr = _error(run("score", bad, refs))
    assert f"{bad}:1: missing field 'prediction'" in stderr and "--pred-field" in stderr


def test_missing_reference_field_names_the_flag(refs_and_preds):
    preds, refs = refs_and_preds
    stderr = _error(run("score", preds, refs, "--ref-field", "answer"))
    assert f"{refs}:1: missing field 'answer'" in stderr and "--ref-field" in stderr


def test_missing_id_names_the_flag(refs_and_preds, tmp_path: Path):
    _, refs = refs_and_preds
    bad = write_jsonl(tmp_path / "p.jsonl", [{"prediction": "x"}])
    assert "--id-field" in _error(run("score", bad, refs))


@pytest.mark.parametrize("side", ["predictions", "references"])
def test_duplicate_ids(refs_and_preds, tmp_path: Path, side: str):
    preds, refs = refs_and_preds
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "prediction": "x", "target": "x"}] * 2)
    args = (dup, refs) if side == "predictions" else (preds, dup)
    stderr = _error(run("score", *args))
    assert f"{dup}:2: duplicate id 'a' in {side} (first seen at {dup}:1)" in stderr


def test_prediction_without_reference(refs_and_preds, tmp_path: Path):
    _, refs = refs_and_preds
    bad = write_jsonl(tmp_path / "p.jsonl", [{"id": "zzz", "prediction": "x"}])
    stderr = _error(run("score", bad, refs))
    assert f"{bad}:1: id 'zzz' has no reference" in stderr and "same dataset" in stderr


@pytest.mark.parametrize("side", ["predictions", "references"])
def test_empty_files(refs_and_preds, tmp_path: Path, side: str):
    preds, refs = refs_and_preds
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", "utf-8")
    args = (empty, refs) if side == "predictions" else (preds, empty)
    assert f"{side} {empty} has no records" in _error(run("score", *args))


def test_unknown_metric_suggests_the_closest(refs_and_preds):
    preds, refs = refs_and_preds
    stderr = _error(run("score", preds, refs, "-m", "cer,chfr"), code=2)
    assert "--metrics: unknown metric 'chfr'" in stderr and "did you mean 'chrf'" in stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.jsonl", "does not exist"),
        (lambda p: p, "is a folder without a metadata.jsonl"),
    ],
)
def test_bad_refs_path(refs_and_preds, tmp_path: Path, make, message):
    preds, _ = refs_and_preds
    folder = tmp_path / "nothing_here"
    folder.mkdir()
    stderr = _error(run("score", preds, make(folder)))
    assert message in stderr and "REFS" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--norm", "lower"], "--norm: unknown normalisation 'lower'"),
        (["--fail-under", "cer"], "--fail-under 'cer': expected METRIC=VALUE"),
        (["--fail-over", "cerr=0.1"], "did you mean 'cer'"),
        (["-m", "cer", "--fail-over", "wer=0.1"], "wer was not computed"),
        (["--by", "meta.nothing"], "--by meta.nothing: no record has that field"),
    ],
)
def test_usage_errors_name_the_flag(refs_and_preds, args, message):
    preds, refs = refs_and_preds
    assert message in _error(run("score", preds, refs, *args), code=2)


def test_nothing_is_written_when_scoring_fails(refs_and_preds, tmp_path: Path):
    _, refs = refs_and_preds
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n", "utf-8")
    out = tmp_path / "scores.json"
    out.write_text("previous\n", "utf-8")
    _error(run("score", bad, refs, "--json", out))
    assert out.read_text("utf-8") == "previous\n"


def test_unparseable_json_predictions_never_crash(tmp_path: Path):
    refs = write_jsonl(
        tmp_path / "r.jsonl",
        [{"id": 1, "task": "json", "target": '{"total": {"price": "10"}}'}],
    )
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "prediction": "{{{ not json at all"}])
    result = run("score", preds, refs, "--json", "-")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["field_f1"] == 0.0 and metrics["json_valid"] == 0.0


def test_task_choices_are_the_registry_tasks():
    from vlmkit.cli.options import TaskChoice
    from vlmkit.metrics import TASK_DEFAULTS

    assert [t.value for t in TaskChoice] == list(TASK_DEFAULTS)


def test_markup_like_ids_and_keys_are_printed_verbatim(tmp_path: Path):
    # A model can invent any key; rich must not read "[/a]" as markup (it used to crash).
    refs = write_jsonl(
        tmp_path / "r.jsonl",
        [{"id": "[/x]", "task": "json", "target": '{"[/a]": "1", "b": "[red]2"}'}],
    )
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "[/x]", "prediction": '{"[/a]": "1"}'}])
    result = run("score", preds, refs, "--by", "id")
    assert result.exit_code == 0, result.output
    assert "[/a]" in result.stdout and "[/x]" in result.stdout
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": "[/x]", "prediction": "1"}] * 2)
    assert "duplicate id '[/x]'" in _error(run("score", dup, refs))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": ' + "9" * 5000 + "}\n", ":1: unreadable JSON"),
        ('{"id": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n", ":1: unreadable JSON"),
    ],
)
def test_pathological_json_lines_are_errors_not_tracebacks(
    refs_and_preds, tmp_path, content, message
):
    _, refs = refs_and_preds
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, "utf-8")
    assert f"{bad}{message}" in _error(run("score", bad, refs))


def test_deeply_nested_prediction_counts_as_unparsed(tmp_path: Path):
    refs = write_jsonl(tmp_path / "r.jsonl", [{"id": 1, "task": "json", "target": '{"a": "1"}'}])
    deep = '{"a": ' * 600 + '"1"' + "}" * 600
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "prediction": deep}])
    result = run("score", preds, refs, "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["json_valid"] == 0.0


@pytest.mark.parametrize("flag", ["--json", "--per-sample"])
def test_unwritable_outputs_fail_before_scoring(refs_and_preds, tmp_path: Path, flag: str):
    preds, refs = refs_and_preds
    assert f"{flag} {tmp_path} is a folder" in _error(run("score", preds, refs, flag, tmp_path), 2)


def test_unknown_task_in_records_names_the_line(tmp_path: Path):
    refs = write_jsonl(tmp_path / "r.jsonl", [{"id": 1, "task": "jsn", "target": "x"}])
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "prediction": "x"}])
    assert f"{refs}:1: unknown task 'jsn'" in _error(run("score", preds, refs))
    assert run("score", preds, refs, "-m", "cer").exit_code == 0
    assert run("score", preds, refs, "--task", "jsn").exit_code == 2  # a closed choice


def test_hf_metrics_refuse_mean_aggregation(refs_and_preds):
    preds, refs = refs_and_preds
    stderr = _error(run("score", preds, refs, "-m", "hf_bleu", "--aggregation", "mean"), 2)
    assert "--aggregation mean: hf_bleu" in stderr


def test_baseline_errors_name_the_baseline(refs_and_preds, tmp_path: Path):
    preds, refs = refs_and_preds
    base = write_jsonl(tmp_path / "base.jsonl", [{"id": "zzz", "prediction": "x"}])
    stderr = _error(run("score", preds, refs, "--baseline", base))
    assert "has no reference" in stderr and "are --baseline and REFS" in stderr


def test_gate_and_by_mistakes_fail_before_writing(refs_and_preds, tmp_path: Path):
    preds, refs = refs_and_preds
    out = tmp_path / "scores.json"
    _error(run("score", preds, refs, "-m", "cer", "--fail-over", "wer=0.1", "--json", out), 2)
    _error(run("score", preds, refs, "--by", "meta.nope", "--json", out), 2)
    assert not out.exists()
    assert "expected METRIC=VALUE" in _error(run("score", preds, refs, "--fail-over", "cer=nan"), 2)


def test_every_registered_metric_resolves_to_its_class():
    from vlmkit.metrics import METRICS, metric_class
    from vlmkit.metrics.base import Metric

    for name in METRICS:
        cls = metric_class(name)
        assert issubclass(cls, Metric) and cls.name == name


@pytest.mark.parametrize(
    ("side", "value", "kind"),
    [
        ("prediction", 42, "a number"),
        ("prediction", ["on", "a"], "a list"),  # an lmms-eval `filtered_resps`
        ("prediction", True, "true/false"),
        ("target", None, "null"),
        ("target", 5, "a number"),
        ("target", ["the", "cat"], "a list"),  # in a json record: not a list of answers
    ],
)
def test_answers_that_are_not_text_are_a_line_error(tmp_path: Path, side, value, kind):
    refs = [{"id": "a", "target": "the cat sat", "task": "ocr"},
            {"id": "b", "target": "on the mat", "task": "ocr"}]  # fmt: skip
    preds = [{"id": "a", "prediction": "the cat sat"}, {"id": "b", "prediction": "on a mat"}]
    rows = refs if side == "target" else preds
    rows[1][side] = value
    write_jsonl(tmp_path / "refs.jsonl", refs)
    write_jsonl(tmp_path / "preds.jsonl", preds)
    error = _error(run("score", tmp_path / "preds.jsonl", tmp_path / "refs.jsonl"))
    name = "refs" if side == "target" else "preds"
    assert f"{name}.jsonl:2: " in error and f"field {side!r} is {kind}, not text" in error


def test_a_null_prediction_means_missing_and_an_object_is_a_json_answer(tmp_path: Path):
    refs = [{"id": "a", "target": {"total": "7"}, "task": "json"},
            {"id": "b", "target": '{"total": "8"}', "task": "json"}]  # fmt: skip
    write_jsonl(tmp_path / "refs.jsonl", refs)
    preds = [{"id": "a", "prediction": {"total": "7"}}, {"id": "b", "prediction": None}]
    write_jsonl(tmp_path / "preds.jsonl", preds)
    result = run("score", tmp_path / "preds.jsonl", tmp_path / "refs.jsonl", "--json", "-")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["missing_predictions"] == 1 and scores["metrics"]["ted_accuracy"] == 0.5
    assert "no line, or a null one" in result.stderr
    strict = run("score", tmp_path / "preds.jsonl", tmp_path / "refs.jsonl", "--strict")
    assert "preds.jsonl:2: the prediction for id 'b' is null" in _error(strict)


def test_answers_cut_at_the_token_limit_are_counted(refs_and_preds, tmp_path: Path):
    """`truncated` lines (an answer cut by --max-new-tokens) are scored as they are, and said."""
    _, refs = refs_and_preds
    preds = write_jsonl(tmp_path / "cut.jsonl", [
        {"id": "a", "prediction": "the cat", "truncated": True, "finish_reason": "length"},
        {"id": "b", "prediction": "on the mat", "finish_reason": "stop"},
        {"id": "c", "prediction": "Grüße", "truncated": True},
    ])  # fmt: skip
    result = CliRunner().invoke(app, ["score", str(preds), str(refs), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["truncated_predictions"] == 2
    assert "2 of 3 answers were cut at the token limit" in " ".join(result.stderr.split())


def test_fields_by_path_a_found_reference_field_and_an_inferred_task(tmp_path: Path):
    """An lmms-eval-like file (the answer in a list, numeric ids) against references that keep
    JSON answers under `answer` and name no task: read with paths, and what was decided said."""
    refs = write_jsonl(tmp_path / "refs.jsonl", [
        {"doc_id": 1, "answer": '{"total": "7"}'}, {"doc_id": 2, "answer": '{"total": "9"}'},
    ])  # fmt: skip
    preds = write_jsonl(tmp_path / "log_samples.jsonl", [
        {"doc_id": 2, "filtered_resps": ['{"total": "9"}'], "resps": [["x"]]},
        {"doc_id": 1, "filtered_resps": ['{"total": "8"}'], "resps": [["y"]]},
    ])  # fmt: skip
    args = ["score", str(preds), str(refs), "--id-field", "doc_id", "--json", "-"]
    result = CliRunner().invoke(app, [*args, "--pred-field", "filtered_resps.0"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["task"] == "json" and scores["metrics"]["json_valid"] == 1.0
    assert scores["metrics"]["field_f1"] == 0.5
    notes = " ".join(result.stderr.split())
    assert "scoring against 'answer'" in notes and "scoring them as json" in notes
    result = CliRunner().invoke(app, [*args, "--pred-field", "filtered_resps.3"])
    assert result.exit_code == 1
    assert "'filtered_resps' is a list of 1 item, and '3' is not one of its positions" in (
        " ".join(result.stderr.split()))  # fmt: skip
    both = write_jsonl(tmp_path / "both.jsonl", [{"doc_id": 1, "answer": "a", "label": "b"}])
    result = CliRunner().invoke(app, ["score", str(preds), str(both), "--id-field", "doc_id"])
    assert result.exit_code == 1 and "several that could hold the reference: answer, label" in (
        " ".join(result.stderr.split()))  # fmt: skip


def test_single_character_references_are_scored_as_letters(tmp_path: Path):
    refs = write_jsonl(
        tmp_path / "refs.jsonl", [{"id": "a", "target": "e"}, {"id": "b", "target": "k"}]
    )
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prediction": "{e}"},
                                               {"id": "b", "prediction": "{x}"}])  # fmt: skip
    result = CliRunner().invoke(app, ["score", str(preds), str(refs), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["letter_accuracy"] == 0.5
    assert "scoring them as letter (every one is a single letter" in " ".join(
        result.stderr.split())  # fmt: skip
    # One digit each (counts, chart values) is not the letter task.
    digits = write_jsonl(tmp_path / "digits.jsonl", [{"id": "a", "target": "4"},
                                                    {"id": "b", "target": "7"}])  # fmt: skip
    result = CliRunner().invoke(app, ["score", str(preds), str(digits), "--json", "-"])
    assert json.loads(result.stdout)["task"] == "ocr"


def test_the_shards_of_a_run_are_scored_together(refs_and_preds, tmp_path: Path):
    preds, refs = refs_and_preds
    lines = preds.read_text().splitlines(keepends=True)
    one, two = tmp_path / "part-1.jsonl", tmp_path / "part-2.jsonl"
    one.write_text("".join(lines[:2]))
    two.write_text("".join(lines[2:]))
    whole = CliRunner().invoke(app, ["score", str(preds), str(refs), "--json", "-"])
    parts = CliRunner().invoke(app, ["score", str(one), str(two), str(refs), "--json", "-"])
    assert parts.exit_code == 0, parts.output
    assert json.loads(parts.stdout)["metrics"] == json.loads(whole.stdout)["metrics"]
    assert json.loads(parts.stdout)["inputs"]["prediction_files"] == [str(one), str(two)]
    # A shard left out: its samples are missing, and said; one given twice: an error naming both.
    result = CliRunner().invoke(app, ["score", str(one), str(refs)])
    assert result.exit_code == 0 and "1 of 3 references have no prediction" in result.stderr
    result = CliRunner().invoke(app, ["score", str(one), str(preds), str(refs)])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert f"{preds}:" in message and f"first seen at {one}:" in message


def test_a_dataset_with_splits_takes_split(refs_and_preds, tmp_path: Path):
    preds, refs = refs_and_preds
    dataset = tmp_path / "dataset"
    for split in ("train", "test"):
        (dataset / split).mkdir(parents=True)
        (dataset / split / "metadata.jsonl").write_text(refs.read_text())
    result = CliRunner().invoke(app, ["score", str(preds), str(dataset)])
    assert result.exit_code == 2 and "holds splits (test, train)" in " ".join(result.stderr.split())
    result = CliRunner().invoke(app, ["score", str(preds), str(dataset), "--split", "test"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["score", str(preds), str(dataset), "--split", "dev"])
    assert result.exit_code == 2 and "has no such split" in result.stderr
    result = CliRunner().invoke(app, ["score", str(preds), str(refs), "--split", "test"])
    assert result.exit_code == 2 and "is for a dataset folder" in result.stderr
