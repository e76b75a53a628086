"""`vlmkit pairs`: which answers make pairs, what each pair records, and every bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app

TARGETS = {"a": "the cat sat", "b": "on the mat", "c": "a dog", "d": "grüße"}


def run(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, (rid, target) in enumerate(TARGETS.items()):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(folder / "images" / f"{rid}.png")
        rows.append({"id": rid, "file_name": f"images/{rid}.png", "task": "ocr",
                     "prompt": "Read it.", "target": target, "meta": {"n": i}})  # fmt: skip
    write_jsonl(folder / "metadata.jsonl", rows)
    return folder


def _preds(path: Path, **answers: str | dict) -> Path:
    rows = [{"id": rid, **(a if isinstance(a, dict) else {"prediction": a})}
            for rid, a in answers.items()]  # fmt: skip
    return write_jsonl(path, rows)


def _pairs(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


def test_reference_pairs_are_the_target_against_each_worse_answer(dataset, tmp_path):
    base = _preds(tmp_path / "base.jsonl", a="the cat sat", b="on a mat", c="",
                  d={"prediction": "x", "error": "image unreadable"})  # fmt: skip
    sampled = _preds(tmp_path / "s.jsonl", a="the bat", b="on a mat", c="a dig")
    out = tmp_path / "pairs"
    result = run("pairs", dataset, base, sampled, "-o", out, "--max-pairs-per-sample", "3")
    assert result.exit_code == 0, result.output
    assert "Wrote 3 pairs from 3 of 4 samples" in result.stdout
    assert "1 sample had only errored or empty answers." in result.stderr
    pairs = _pairs(out)
    assert [(p["id"], p["chosen"], p["rejected"]) for p in pairs] == [
        ("a", "the cat sat", "the bat"),  # the right answer is never a rejected side
        ("b", "on the mat", "on a mat"),  # the same mistake twice makes one pair
        ("c", "a dog", "a dig"),  # an empty answer is never a side
    ]
    pair = pairs[0]["meta"]["pair"]
    assert pair["metric"] == "cer" and pair["chosen_source"] == "reference"
    assert pair["chosen_score"] == 0.0 and pair["rejected_score"] > 0
    assert pair["rejected_source"] == str(sampled) and pairs[0]["meta"]["n"] == 0
    assert os.path.samefile(out / "images" / "a.png", dataset / "images" / "a.png")
    record = json.loads((out / "pairs.json").read_text())
    assert record["no_pair"] == {"had only errored or empty answers": 1}


def test_best_pairs_are_the_models_own_and_need_the_margin(dataset, tmp_path):
    first = _preds(tmp_path / "1.jsonl", a="the cat sat", b="on the mat", c="a dig", d="gruse")
    second = _preds(tmp_path / "2.jsonl", a="the cat", b="on the hat", c="a dog", d="grüse")
    out = tmp_path / "pairs"
    result = run("pairs", dataset, first, second, "-o", out, "--chosen", "best",
                 "--margin", "0.15")  # fmt: skip
    assert result.exit_code == 0, result.output
    chosen = {p["id"]: (p["chosen"], p["rejected"]) for p in _pairs(out)}
    # b: 1 edit in 10 characters (0.1) is under the margin; d: 0.2 against 0.4 is not.
    assert chosen == {"a": ("the cat sat", "the cat"), "c": ("a dog", "a dig"),
                      "d": ("grüse", "gruse")}  # fmt: skip
    assert "1 sample had no answer worse than the best by --margin 0.15." in result.stderr


def test_pairs_load_as_a_preference_dataset(dataset, tmp_path):
    from vlmkit.records import read_dataset

    out = tmp_path / "pairs"
    base = _preds(tmp_path / "b.jsonl", a="x", b="y", c="z", d="w")
    assert run("pairs", dataset, base, "-o", out).exit_code == 0
    records = list(read_dataset(out))
    assert all(r.is_preference and r.target is None for r in records)
    assert records[0].to_json()["chosen"] == "the cat sat" and "target" not in records[0].to_json()


@pytest.mark.slow
def test_the_pairs_folder_loads_with_datasets(dataset, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "pairs"
    base = _preds(tmp_path / "b.jsonl", a="x", b="y", c="z", d="w")
    assert run("pairs", dataset, base, "-o", out).exit_code == 0
    loaded = load_dataset("imagefolder", data_dir=str(out), split="train")
    assert loaded[0]["chosen"] == "the cat sat" and loaded[0]["rejected"] == "x"


def _error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.stderr


def test_bad_inputs(dataset, tmp_path):
    base = _preds(tmp_path / "b.jsonl", a="x", b="y")
    out = tmp_path / "pairs"
    other = _preds(tmp_path / "o.jsonl", zz="x")
    assert "id 'zz' has no reference" in _error(run("pairs", dataset, other, "-o", out), 1)
    assert "outside exact_match's range (0 to 1)" in _error(
        run("pairs", dataset, base, "-o", out, "--chosen", "best", "--margin", "2",
            "--metric", "exact_match"), 2
    )  # fmt: skip
    assert "--max-pairs-per-sample must be at least 1" in _error(
        run("pairs", dataset, base, "-o", out, "--max-pairs-per-sample", "0"), 2
    )
    assert "'cre'" in _error(run("pairs", dataset, base, "-o", out, "--metric", "cre"), 2)
    right = _preds(tmp_path / "r.jsonl", a="the cat sat", b="on the mat")
    error = _error(run("pairs", dataset, right, "-o", out), 1)
    assert "no sample" in error and "2 had no answer worse than the reference" in error
    assert not out.exists()
    assert run("pairs", dataset, base, "-o", out).exit_code == 0
    again = _error(run("pairs", out, base, "-o", tmp_path / "p2"), 1)
    assert "is already a preference pair" in again
    assert "would overwrite PREDS" in _error(run("pairs", dataset, base, "-o", base), 2)


def test_more_bad_inputs(dataset, tmp_path):
    base = _preds(tmp_path / "b.jsonl", a="x", b="y")
    out = tmp_path / "pairs"
    assert "answers are ranked by one metric" in _error(
        run("pairs", dataset, base, "-o", out, "--metric", "cer,wer"), 2
    )
    assert "--margin applies to --chosen best" in _error(
        run("pairs", dataset, base, "-o", out, "--margin", "0.5"), 2
    )
    assert "must be a finite number" in _error(
        run("pairs", dataset, base, "-o", out, "--chosen", "best", "--margin", "nan"), 2
    )
    # An error rate has no upper bound: a CER margin of 5 is a margin it can reach.
    assert run("pairs", dataset, base, base, "-o", out, "--chosen", "best",
               "--margin", "5").exit_code == 1  # (no pairs: the two files agree)  # fmt: skip
    partial = _preds(tmp_path / "run.jsonl.partial", a="x")
    assert "an unfinished `vlmkit infer` run" in _error(
        run("pairs", dataset, partial, "-o", out), 2
    )


def test_predictions_of_another_question_are_refused(dataset, tmp_path):
    from vlmkit.provenance import file_sha256

    base = _preds(tmp_path / "b.jsonl", a="x", b="y")
    record = tmp_path / "b.run.json"
    sha = file_sha256(dataset / "metadata.jsonl")
    record.write_text(json.dumps({"key": {"dataset_sha256": "0" * 64, "prompt": None}}))
    assert "answered another version of" in _error(
        run("pairs", dataset, base, "-o", tmp_path / "p"), 1
    )
    record.write_text(json.dumps({"key": {"dataset_sha256": sha, "prompt": "Describe it."}}))
    assert "was made with --prompt 'Describe it.'" in _error(
        run("pairs", dataset, base, "-o", tmp_path / "p"), 1
    )
    record.write_text(json.dumps({"key": {"dataset_sha256": sha, "prompt": None}}))
    assert run("pairs", dataset, base, "-o", tmp_path / "p").exit_code == 0


def test_extra_pairs_never_take_another_samples_id(tmp_path):
    from PIL import Image

    folder = tmp_path / "data"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "i.png")
    rows = [{"id": rid, "file_name": "i.png", "prompt": "Q", "target": "right"}
            for rid in ("a", "a#2")]  # fmt: skip
    write_jsonl(folder / "metadata.jsonl", rows)
    one = _preds(tmp_path / "1.jsonl", **{"a": "wrong", "a#2": "bad"})
    two = _preds(tmp_path / "2.jsonl", **{"a": "worse one", "a#2": "bad too"})
    out = tmp_path / "pairs"
    assert run("pairs", folder, one, two, "-o", out, "--max-pairs-per-sample", "2").exit_code == 0
    ids = [p["id"] for p in _pairs(out)]
    assert len(ids) == len(set(ids)) == 4 and {"a", "a#2"} <= set(ids)
