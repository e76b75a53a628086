"""`vlmkit synth circled-letter` through Typer's runner: output, exit codes, every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_jsonl
from synth_helpers import records
from typer.testing import CliRunner

from vlmkit.cli import app
from vlmkit.cli import synth as cli_synth
from vlmkit.synth.circled_letter import PRESETS, config
from vlmkit.synth.fonts import STYLES

runner = CliRunner()


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def synth(*args: str | Path):
    return run("synth", "circled-letter", "--image-size", "160", *args)


@pytest.mark.parametrize("command", [["synth"], ["synth", "circled-letter"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_cli_choices_mirror_the_library():
    assert [p.value for p in cli_synth.Preset] == list(PRESETS)
    assert tuple(c.value for c in cli_synth.Case) == config.CASES
    assert tuple(s.value for s in cli_synth.Style) == STYLES
    assert tuple(p.value for p in cli_synth.PromptStyle) == config.PROMPT_STYLES
    assert tuple(a.value for a in cli_synth.AnswerFormat) == config.ANSWER_FORMATS


def test_writes_a_split_dataset_and_reports_it(tmp_path: Path):
    out = tmp_path / "d"
    result = synth("--n", "12", "--test-fraction", "0.25", "--seed", "5", "-o", out)
    assert result.exit_code == 0, result.output
    assert "Wrote 12 images (9 in" in result.stdout and "3 in" in result.stdout
    assert len(records(out / "train")) == 9 and len(records(out / "test")) == 3
    sidecar = json.loads((out / "synth.json").read_text())
    assert sidecar["config"]["seed"] == 5 and sidecar["config"]["n"] == 12
    assert sidecar["images"] == {"train": 9, "test": 3}
    assert {f["family"] for f in sidecar["fonts"]} >= {"Liberation Sans", "DejaVu Sans"}
    assert len(sidecar["fonts"][0]["sha256"]) == 64
    assert sidecar["words"]["source"] == "bundled" and sidecar["test_words"]


def test_flags_reach_the_records(tmp_path: Path):
    out = tmp_path / "d"
    args = ["--n", "6", "--thickness", "3,7", "--padding", "10", "--spacing", "1",
            "--family", "liberation-serif", "--style", "bold", "--case", "upper",
            "--prompt", "highlighted", "--answer-format", "plain", "--color", "blue",
            "--oval-scale", "1.6", "--paper-ovals", "-o", out]  # fmt: skip
    assert synth(*args).exit_code == 0
    rows = records(out)
    meta = rows[0]["meta"]
    assert {r["meta"]["thickness"] for r in rows} <= {3, 7}
    assert (meta["padding"], meta["spacing"], meta["font"]) == (10, 1, "Liberation Serif")
    assert meta["font_style"] == "bold" and meta["word"].isupper()
    assert rows[0]["prompt"] == "Which character is being highlighted with a blue oval?"
    assert meta["colour"] == "blue" and meta["oval_narrowed"] is False


def test_paper_preset_scores_perfectly_against_itself(tmp_path: Path):
    out = tmp_path / "paper"
    result = run("synth", "circled-letter", "--preset", "paper", "--image-size", "160",
                 "--padding", "25", "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = records(out)
    assert len(rows) == 52 * 2 * 3  # one padding instead of four
    preds = write_jsonl(
        tmp_path / "preds.jsonl",
        [{"id": r["id"], "prediction": f"{{{r['target']}}}"} for r in rows],
    )
    scored = run("score", preds, out, "--json", "-")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["metrics"]["letter_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--thickness", "4,x"], "--thickness '4,x': 'x' is not a number"),
        (["--thickness", "0"], "--thickness 0: must be a finite number, above 0"),
        (["--padding", "-5"], "--padding -5: must be a finite number, 0 or more"),
        (["--spacing", "nan"], "--spacing 'nan': 'nan' is not a finite number"),
        (["--image-size", "big"], "--image-size 'big': expected N or WIDTHxHEIGHT"),
        (["--image-size", "8"], "--image-size 8x8: each side must be 32 to 4096"),
        (["--min-length", "8", "--max-length", "3"], "need 1 <= min <= max"),
        (["--test-fraction", "1"], "--test-fraction 1: must be at least 0 and below 1"),
        (["--oval-scale", "0.5"], "--oval-scale 0.5: must be between 1 and 3"),
        (["--color", "reed"], "--color 'reed': not a colour"),
        (["--color", "white"], "--color 'white': too pale to see"),
        (["--seed", "-1"], "--seed -1: must be 0 or more"),
        (["--n", "0"], "--n must be at least 1"),
        (["--preset", "paper", "--n", "5"], "--n: a grid's size follows"),
        (["--family", "Comic Sans"], "--family 'Comic Sans': no font of that family"),
        (["--thickness", "4,25"], "--thickness 25: at most 20 points"),
    ],
)
def test_usage_errors_name_the_flag(tmp_path: Path, args, message):
    result = synth(*args, "-o", tmp_path / "d")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_input_errors_name_the_file(tmp_path: Path):
    result = synth("--words", tmp_path / "missing.txt", "-o", tmp_path / "d")
    assert result.exit_code == 1
    assert "missing.txt does not exist" in " ".join(result.stderr.split())
    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "bad.otf").write_bytes(b"\x00\x01junk")
    result = synth("--fonts", tmp_path / "fonts", "-o", tmp_path / "d")
    assert result.exit_code == 1
    assert "bad.otf: FreeType cannot load this font" in " ".join(result.stderr.split())
    (tmp_path / "w.txt").write_text("fine\nnot fine\n")
    result = synth("--words", tmp_path / "w.txt", "-o", tmp_path / "d")
    assert result.exit_code == 1
    assert "w.txt:2: 'not fine' is not a single word" in " ".join(result.stderr.split())


def test_existing_output_needs_overwrite(tmp_path: Path):
    out = tmp_path / "d"
    assert synth("--n", "2", "-o", out).exit_code == 0
    refused = synth("--n", "3", "-o", out)
    assert refused.exit_code == 2 and "--overwrite" in refused.stderr
    assert len(records(out)) == 2
    assert synth("--n", "3", "-o", out, "--overwrite").exit_code == 0
    assert len(records(out)) == 3


def test_a_family_asked_twice_is_drawn_once(tmp_path: Path):
    twice = ["--family", "Open Sans", "--family", "open-sans"]
    result = synth("--preset", "paper", "--padding", "25", "--thickness", "4", *twice,
                   "-o", tmp_path / "d")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(records(tmp_path / "d")) == 52
    assert len(json.loads((tmp_path / "d" / "synth.json").read_text())["fonts"]) == 1


def test_the_held_out_share_is_reported(tmp_path: Path):
    result = synth("--preset", "paper", "--padding", "25", "--thickness", "4",
                   "--test-fraction", "0.01", "-o", tmp_path / "d")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Held out 1 word (33.3% of them)" in " ".join(result.stderr.split())
