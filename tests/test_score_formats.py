"""`vlmkit score` reads predictions in the formats other tools write: a JSON array, CSV, TSV,
Excel (VLMEvalKit's), and files whose name does not say; each the same scores as JSONL."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from conftest import write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app

ROWS = [{"index": 1, "prediction": "the cat sat"}, {"index": 2, "prediction": "on a mat"},
        {"index": 3, "prediction": "Grüsse, 東京"}]  # fmt: skip


@pytest.fixture
def refs(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "refs.jsonl", [
        {"index": 1, "target": "the cat sat", "task": "ocr"},
        {"index": 2, "target": "on the mat", "task": "ocr"},
        {"index": 3, "target": "Grüße, 東京!", "task": "ocr"},
    ])  # fmt: skip


def _score(preds: Path, refs: Path, *args: str):
    result = CliRunner().invoke(app, ["score", str(preds), str(refs), "--id-field", "index",
                                      "--json", "-", *args])  # fmt: skip
    return result


def _metrics(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["metrics"]


def _delimited(path: Path, delimiter: str) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["index", "prediction"], delimiter=delimiter)
        writer.writeheader()
        writer.writerows(ROWS)
    return path


def _excel(path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["index", "question", "prediction"])
    for row in ROWS:
        sheet.append([float(row["index"]), "read it", row["prediction"]])  # ids as Excel keeps them
    book.save(path)
    return path


def test_every_format_scores_as_jsonl(tmp_path: Path, refs: Path):
    jsonl = write_jsonl(tmp_path / "p.jsonl", ROWS)
    expected = _metrics(_score(jsonl, refs))
    array = tmp_path / "p.json"
    array.write_text(json.dumps(ROWS, ensure_ascii=False))
    lines_named_json = tmp_path / "generated.json"  # JSON Lines under a .json name
    lines_named_json.write_text(jsonl.read_text())
    unnamed = tmp_path / "predictions.txt"
    unnamed.write_text(jsonl.read_text())
    for path in (array, lines_named_json, unnamed, _delimited(tmp_path / "p.csv", ","),
                 _delimited(tmp_path / "p.tsv", "\t"), _excel(tmp_path / "p.xlsx")):  # fmt: skip
        assert _metrics(_score(path, refs)) == expected, path
    tsv_named_txt = _delimited(tmp_path / "vlmevalkit.txt", "\t")
    assert _metrics(_score(tsv_named_txt, refs, "--format", "tsv")) == expected


def test_unreadable_tables_are_named(tmp_path: Path, refs: Path, monkeypatch):
    odd = tmp_path / "p.dat"
    odd.write_text("index;prediction\n1;x\n")
    result = _score(odd, refs)
    assert result.exit_code == 1 and "cannot tell its format" in result.stderr
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"predictions": ROWS}))
    result = _score(nested, refs)
    assert result.exit_code == 1 and "its list is under 'predictions'" in result.stderr
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("index,prediction\n1,a,b\n")
    result = _score(ragged, refs)
    assert result.exit_code == 1 and "ragged.csv:2: more cells than the 2 columns" in (
        " ".join(result.stderr.split()))  # fmt: skip
    excel = _excel(tmp_path / "p.xlsx")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # as on an install without the extra
    result = _score(excel, refs)
    assert result.exit_code == 1 and "pip install 'vlmkit[tables]'" in result.stderr


def test_peer_files_are_recognised_and_read_their_way(tmp_path: Path):
    """Files in the layouts the tools write (from their sources): read without a flag, and
    what was recognised said; `--from none` reads them as vlmkit's own."""
    factory = write_jsonl(tmp_path / "generated_predictions.jsonl", [  # LLaMA-Factory
        {"prompt": "user\nRead it.\nassistant\n", "predict": "the cat", "label": "the cat"},
        {"prompt": "user\nRead it.\nassistant\n", "predict": "a mat", "label": "the mat"},
    ])  # fmt: skip
    result = CliRunner().invoke(app, ["score", str(factory), str(factory), "-m", "exact_match",
                                      "--json", "-"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["exact_match"] == 0.5
    notes = " ".join(result.stderr.split())
    assert "looks like LLaMA-Factory's output" in notes and "joined by position" in notes
    lmms = write_jsonl(tmp_path / "samples_docvqa.jsonl", [  # lmms-eval --log_samples
        {"doc_id": 0, "doc": {"question": "q"}, "target": "42", "arguments": [["q", {}]],
         "resps": [["42"]], "filtered_resps": ["42"], "filter": "none", "metrics": ["anls"]},
        {"doc_id": 1, "doc": {"question": "q"}, "target": "7", "arguments": [["q", {}]],
         "resps": [["8"]], "filtered_resps": ["8"], "filter": "none", "metrics": ["anls"]},
    ])  # fmt: skip
    result = CliRunner().invoke(app, ["score", str(lmms), str(lmms), "-m", "exact_match",
                                      "--json", "-"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["exact_match"] == 0.5
    assert "looks like lmms-eval's output" in result.stderr
    sheet = tmp_path / "model_DocVQA_VAL.tsv"  # VLMEvalKit
    sheet.write_text("index\tquestion\tanswer\tprediction\n1\tq\tyes\tyes\n2\tq\tno\tyes\n")
    result = CliRunner().invoke(app, ["score", str(sheet), str(sheet), "-m", "exact_match",
                                      "--json", "-"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["exact_match"] == 0.5
    result = CliRunner().invoke(app, ["score", str(factory), str(factory), "--from", "none"])
    assert result.exit_code == 1 and "missing field 'id'" in result.stderr


def test_join_by_line_needs_as_many_records(tmp_path: Path, refs: Path):
    preds = write_jsonl(tmp_path / "p.jsonl", [{"prediction": "the cat sat"},
                                               {"prediction": "on the mat"}])  # fmt: skip
    result = CliRunner().invoke(app, ["score", str(preds), str(refs), "--id-field", "index",
                                      "--join", "line"])  # fmt: skip
    assert result.exit_code == 1
    assert "holds 2 records and" in result.stderr and "3: they cannot be paired" in " ".join(
        result.stderr.split())  # fmt: skip


def test_what_a_probe_found(tmp_path: Path):
    """Tricky inputs a new user met: each an error naming the file and row, or read right."""

    def score(*args: str | Path):
        return CliRunner().invoke(app, ["score", *map(str, args), "--json", "-"])

    refs = write_jsonl(tmp_path / "refs.jsonl", [
        {"id": "0", "target": "42", "task": "ocr"}, {"id": "1", "target": "7", "task": "ocr"},
    ])  # fmt: skip
    lmms = write_jsonl(tmp_path / "samples.jsonl", [
        {"doc_id": 0, "target": "42", "filtered_resps": ["42"], "filter": "none"},
        {"doc_id": 1, "target": "7", "filtered_resps": ["8"], "filter": "none"},
    ])  # fmt: skip
    # A peer's file against a vlmkit dataset: its ids from doc_id, the dataset's own targets.
    result = score(lmms, refs, "-m", "exact_match")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["exact_match"] == 0.5
    # ...with a vlmkit baseline read its own way.
    base = write_jsonl(tmp_path / "base.jsonl", [{"id": "0", "prediction": "1"},
                                                 {"id": "1", "prediction": "7"}])  # fmt: skip
    result = score(lmms, refs, "-m", "exact_match", "--baseline", base)
    assert result.exit_code == 0, result.output
    result = score(lmms, lmms, "--pred-field", "filtered_resps.--1", "--id-field", "doc_id")
    assert result.exit_code == 1 and "is not one of its positions" in result.stderr
    # CSV: a quote left open, a column named twice.
    open_quote = tmp_path / "open.csv"
    open_quote.write_text('id,prediction\n0,"unterminated\n1,x\n')
    result = score(open_quote, refs)
    assert result.exit_code == 1 and "open.csv:" in result.stderr and "not readable as CSV" in (
        result.stderr)  # fmt: skip
    twice = tmp_path / "twice.csv"
    twice.write_text("id,id,prediction\n0,1,42\n")
    result = score(twice, refs)
    assert result.exit_code == 1 and "the column 'id' is in the header twice" in result.stderr
    # --join line where both sides carry ids that disagree; a file given twice.
    backwards = write_jsonl(tmp_path / "back.jsonl", [{"id": "1", "prediction": "7"},
                                                      {"id": "0", "prediction": "42"}])  # fmt: skip
    result = score(backwards, refs, "--join", "line")
    assert result.exit_code == 1 and "join by id" in result.stderr
    result = score(base, base, refs)
    assert result.exit_code == 1 and "is given twice" in result.stderr


def test_numbers_in_a_sheet_are_text(tmp_path: Path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["index", "question", "answer", "prediction"])
    book.active.append([1, "how many?", 5, 5.0])
    book.active.append([2, "how many?", 3, 4])
    book.save(tmp_path / "counts.xlsx")
    sheet = tmp_path / "counts.xlsx"
    result = CliRunner().invoke(app, ["score", str(sheet), str(sheet), "-m", "exact_match",
                                      "--json", "-"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["exact_match"] == 0.5


def test_a_field_flag_beside_a_recognised_file_wins_for_that_field(tmp_path: Path):
    lmms = write_jsonl(tmp_path / "samples.jsonl", [
        {"doc_id": 0, "target": "42", "filtered_resps": ["42"], "resps": [["x"]]},
        {"doc_id": 1, "target": "7", "filtered_resps": ["8"], "resps": [["y"]]},
    ])  # fmt: skip
    args = ["score", str(lmms), str(lmms), "-m", "exact_match", "--json", "-"]
    result = CliRunner().invoke(app, [*args, "--id-field", "doc_id"])  # the rest recognised
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["exact_match"] == 0.5
    result = CliRunner().invoke(app, [*args, "--id-field", "doc_id", "--pred-field", "resps.0.0"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["exact_match"] == 0.0  # read as told
