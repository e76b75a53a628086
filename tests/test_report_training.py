"""`vlmkit report RUN_DIR`: a fine-tuning run's page from its own log, killed runs included."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vlmkit.cli import app

runner = CliRunner()


def _run_dir(folder: Path, *, torn: bool = False) -> Path:
    folder.mkdir()
    (folder / "finetune-run.json").write_text(json.dumps(
        {"settings": {"objective": "grpo", "reward": "letter_accuracy=1,format=0.2"}}))  # fmt: skip
    rows = []
    for step in range(1, 5):
        rows.append({"step": step, "loss": 0.1 * step, "reward": step / 4,
                     "rewards/letter_accuracy/mean": step / 4, "rewards/letter_accuracy/std": 0.1,
                     "frac_reward_zero_std": 0.5, "completions/mean_length": 3.0,
                     "completions/min_length": 1.0, "completions/max_length": 4.0})  # fmt: skip
    rows.append({"step": 4, "eval/letter_accuracy": 0.75})
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (folder / "log.jsonl").write_text(text + ('{"step": 5, "loss' if torn else ""))
    return folder


def test_a_grpo_run_is_drawn_with_its_reward_curves(tmp_path: Path):
    run = _run_dir(tmp_path / "run")
    result = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "page.html")])
    assert result.exit_code == 0, result.output
    assert "the fine-tuning run" in result.stdout and "5 charts" in result.stdout
    html = (tmp_path / "page.html").read_text()
    for title in ("training loss", "metrics at each evaluation", "reward per step",
                  "share of groups that teach nothing", "completion length"):  # fmt: skip
        assert title in html
    assert "unfinished" in html  # no manifest yet
    # The reward, from the unfinished run's settings.
    assert "reward = 1 * letter_accuracy + 0.2 * format" in html and "<td>format</td>" in html


def test_a_killed_runs_torn_last_line_is_left_out_and_others_are_errors(tmp_path: Path):
    run = _run_dir(tmp_path / "run", torn=True)
    result = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "page.html")])
    assert result.exit_code == 0, result.output
    lines = (run / "log.jsonl").read_text().splitlines()
    lines.insert(1, "{broken")
    (run / "log.jsonl").write_text("\n".join(lines))
    result = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "page.html")])
    assert result.exit_code == 1 and "log.jsonl:2" in result.stderr


def test_a_folder_that_is_no_run(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["report", str(tmp_path / "empty"), "--out",
                                 str(tmp_path / "page.html")])  # fmt: skip
    assert result.exit_code == 2
    assert "not a sweep's or a fine-tuning run's" in " ".join(result.stderr.split())
    run = _run_dir(tmp_path / "run")
    result = runner.invoke(app, ["report", str(run), "--out", str(run / "log.jsonl")])
    assert result.exit_code == 2 and "log.jsonl" in result.stderr
    assert "loss" in (run / "log.jsonl").read_text()  # the input is untouched
