"""`vlmkit convert` through Typer's runner: summary lines, exit codes, and scoring its output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app
from vlmkit.cli import convert as cli_convert
from vlmkit.convert import CONVERTERS
from vlmkit.convert.targets import TARGET_FORMATS

runner = CliRunner()


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def test_help():
    result = run("convert", "--help")
    assert result.exit_code == 0 and "SOURCE_KIND" in result.stdout


def test_cli_choices_mirror_the_registry():
    assert ", ".join(CONVERTERS) == cli_convert.KINDS
    assert tuple(f.value for f in cli_convert.TargetFormat) == TARGET_FORMATS


def test_summary_line_per_split(cord_imagefolder: Path, tmp_path: Path):
    result = run("convert", "cord-v2", cord_imagefolder, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"test: 9 rows written ({tmp_path / 'out' / 'test'}), 0 skipped" in result.stdout
    assert "imagefolder layout" in result.stderr


@pytest.mark.parametrize("target_format", ["json", "donut", "kv"])
def test_score_reads_every_target_format_back(
    cord_imagefolder: Path, tmp_path: Path, target_format: str
):
    out = tmp_path / target_format
    assert run("convert", "cord-v2", cord_imagefolder, "--target-format", target_format,
               "-o", out).exit_code == 0  # fmt: skip
    rows = [json.loads(x) for x in (out / "test" / "metadata.jsonl").read_text().splitlines()]
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": r["id"], "prediction": r["target"]}
                                               for r in rows])  # fmt: skip
    scored = run("score", preds, out / "test", "--json", "-")
    assert scored.exit_code == 0, scored.output
    metrics = json.loads(scored.stdout)["metrics"]
    assert metrics["field_f1"] == 1.0 and metrics["ted_accuracy"] == 1.0


def test_skipped_rows_are_summarised(cord_imagefolder: Path, tmp_path: Path):
    import shutil

    src = Path(shutil.copytree(cord_imagefolder, tmp_path / "src"))
    (src / "test" / "receipt_00.png").unlink()
    result = run("convert", "cord-v2", src, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "receipt_00.png does not exist" in result.stderr
    result = run("convert", "cord-v2", src, "--skip-bad", "-o", tmp_path / "out")
    assert result.exit_code == 0
    assert "8 rows written" in result.stdout and "1 skipped (1 bad image)" in result.stdout


def test_errors_exit_codes(tmp_path: Path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    assert run("convert", "cord-v2", tmp_path / "nope", "-o", out).exit_code == 1
    typo = run("convert", "cordv2", src, "-o", out)
    assert typo.exit_code == 2 and "Did you mean 'cord-v2'?" in typo.stderr
    result = run("convert", "cord-v2", src, "--max-side", "4", "-o", out)
    assert result.exit_code == 2 and "--max-side 4" in result.stderr


def test_output_and_source_must_not_overlap(cord_imagefolder: Path, tmp_path: Path):
    for out, relation in (
        (cord_imagefolder, "would overwrite SRC"),
        (cord_imagefolder / "converted", "would be written inside SRC"),
        (cord_imagefolder.parent, "holds SRC"),
    ):
        result = run("convert", "cord-v2", cord_imagefolder, "-o", out, "--overwrite")
        assert result.exit_code == 2 and relation in result.stderr, result.stderr
    assert (cord_imagefolder / "test" / "metadata.jsonl").is_file()
