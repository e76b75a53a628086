"""Output people can read in a pipe, a log file or CI: no number is ever cut, at any width."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, write_jsonl


def _vlmkit(*args: str | Path, columns: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "vlmkit", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def system_and_baseline(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("width")
    draw = random.Random(0)
    words = "the cat sat on a mat with a quick brown fox over the lazy dog".split()
    refs, system, baseline = [], [], []
    for i in range(30):
        text = " ".join(draw.choice(words) for _ in range(8))
        font = draw.choice(["DejaVu Sans Condensed Bold Oblique", "Noto Serif"])
        refs.append({"id": f"s{i}", "target": text, "task": "ocr", "meta": {"font": font}})
        system.append({"id": f"s{i}", "prediction": text if draw.random() < 0.6 else text[:-3]})
        baseline.append({"id": f"s{i}", "prediction": text if draw.random() < 0.3 else "x" + text})
    return (write_jsonl(folder / "sys.jsonl", system), write_jsonl(folder / "refs.jsonl", refs),
            write_jsonl(folder / "base.jsonl", baseline))  # fmt: skip


@pytest.mark.parametrize("columns", [120, 80, 60, 40, 30])
def test_no_number_is_cut_at_any_width(system_and_baseline, columns):
    system, refs, baseline = system_and_baseline
    args = ("score", system, refs, "--baseline", baseline, "--by", "meta.font")
    result = _vlmkit(*args, columns=columns)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    scores = json.loads(_vlmkit(*args, "--json", "-", columns=columns).stdout)
    shown = result.stdout.replace(" ", "")
    for name, comparison in scores["comparison"].items():
        assert name in result.stdout
        # Every value is printed whole, at 3 or 4 decimals (2 fewer on 0-100 scales).
        fewer = 2 if scores["metrics"][name] > 1.5 else 0
        for key in ("system", "baseline", "delta"):
            forms = [f"{comparison[key]:+.{p - fewer}f}".lstrip("+-") for p in (3, 4)]
            assert any(form in shown for form in forms), (name, key, forms)
    signatures = result.stdout.partition("signatures:")[2]  # whole lines, to copy and paste
    for line in result.stdout.splitlines():
        assert len(line) <= columns or line in signatures, line


def test_a_closed_pipe_ends_the_command_quietly(system_and_baseline):
    system, refs, baseline = system_and_baseline
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmkit", "score", system, refs, "--baseline", baseline],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    process.stdout.close()  # `| head -0`: the reader is gone before anything is written
    stderr = process.stderr.read().decode()
    process.wait()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception" not in stderr


@pytest.mark.parametrize("columns", [80, 60, 40, 30])
def test_the_json_tables_never_cut_a_number(columns):
    from conftest import EXAMPLE_CORD

    args = ("score", EXAMPLE_CORD / "predictions-b.jsonl", EXAMPLE_CORD,
            "--baseline", EXAMPLE_CORD / "predictions-a.jsonl")  # fmt: skip
    result = _vlmkit(*args, columns=columns)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    scores = json.loads(_vlmkit(*args, "--json", "-", columns=columns).stdout)
    shown = result.stdout.replace(" ", "")
    for name, row in scores["details"]["field_f1"]["per_field"].items():
        assert any(f"{row['f1']:.{p}f}" in shown for p in (3, 4)), name
        assert name.replace(" ", "")[:8] in shown
