"""`vlmkit report`: the HTML page from real `vlmkit score` output, its notices and its errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import EXAMPLE_CORD, write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app as vlmkit_app
from vlmkit.report.media import char_diff

runner = CliRunner()

report_app = vlmkit_app


SCRIPT = "<script>alert(1)</script>"
NETWORK = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def run(*args: str | Path):
    return runner.invoke(report_app, ["report", *(str(a) for a in args)])


def score(*args: str | Path) -> None:
    result = runner.invoke(vlmkit_app, ["score", *(str(a) for a in args)])
    assert result.exit_code == 0, result.output


def _wrong(letter: str) -> str:
    return "z" if letter != "z" else "y"


@pytest.fixture(scope="module")
def letters(tmp_path_factory) -> dict[str, Path]:
    """20 synthetic circled letters; the system is right on the first 12 (braces) and says
    SCRIPT on sample 12; the baseline is right on the first 4 only."""
    root = tmp_path_factory.mktemp("letters")
    data = root / "data"
    synth = runner.invoke(
        vlmkit_app,
        ["synth", "circled-letter", "--n", "20", "--test-fraction", "0", "--image-size", "128",
         "--max-length", "6", "--workers", "1", "-o", str(data)],
    )  # fmt: skip
    assert synth.exit_code == 0, synth.output
    refs = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines()]
    system, baseline = [], []
    for i, ref in enumerate(refs):
        letter = ref["target"]
        answer = "{" + (letter if i < 12 else _wrong(letter)) + "}"
        system.append({"id": ref["id"], "prediction": SCRIPT if i == 12 else answer})
        baseline.append({"id": ref["id"], "prediction": letter if i < 4 else "no idea"})
    paths = {
        "data": data,
        "system": write_jsonl(root / "tuned.jsonl", system),
        "baseline": write_jsonl(root / "baseline.jsonl", baseline),
        "scores": root / "scores.json",
        "per_sample": root / "per-sample.jsonl",
    }
    score(paths["system"], data, "--baseline", paths["baseline"], "--json", paths["scores"],
          "--per-sample", paths["per_sample"], "--bootstrap", "200")  # fmt: skip
    return paths


@pytest.fixture(scope="module")
def cord(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cord")
    paths = {"b": root / "b.json", "a": root / "a.json", "per_sample": root / "ps.jsonl"}
    score(EXAMPLE_CORD / "predictions-b.jsonl", EXAMPLE_CORD, "--baseline",
          EXAMPLE_CORD / "predictions-a.jsonl", "--json", paths["b"], "--per-sample",
          paths["per_sample"], "--bootstrap", "200")  # fmt: skip
    score(EXAMPLE_CORD / "predictions-a.jsonl", EXAMPLE_CORD, "--json", paths["a"])
    return paths


def test_letter_report_has_table_charts_confusion_gallery(letters, tmp_path):
    out = tmp_path / "report.html"
    result = run(letters["scores"], "--per-sample", letters["per_sample"], "--by", "meta.font",
                 "--worst", "5", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Wrote {out} (20 samples")
    html = out.read_text("utf-8")
    scores = json.loads(letters["scores"].read_text())
    assert scores["metrics"]["letter_accuracy"] == pytest.approx(0.6)  # 12 of 20
    table = html[html.index('id="metric-table"') : html.index("</table>")]
    c = scores["comparison"]["letter_accuracy"]
    assert "letter_accuracy ↑" in table
    assert ">0.2000<" in table and ">0.6000<" in table  # baseline 4/20, system 12/20
    assert f">{c['delta']:+.4f}<" in table and f"{c['p_value']:.3f}" in table
    assert "[{:+.4f}, {:+.4f}]".format(*c["delta_ci95"]) in table
    assert 'class="num delta better"' in table  # a significant gain is coloured
    assert html.count("<svg") >= 3  # two metrics and the font breakdown
    assert "by meta.font" in html
    # Confusion matrix: 12 hits; the script answer has no letter; the others answered z (or y).
    confusion = html[html.index('class="confusion"') :]
    confusion = confusion[: confusion.index("</table>")]
    assert "<th>(none)</th>" in confusion and "<th>z</th>" in confusion
    hits = re.findall(r'class="cell hit"[^>]*>(\d*)<', confusion)
    assert sum(int(h) for h in hits if h) == 12
    # Gallery: the 5 worst are wrong answers, each with its embedded image and a diff.
    gallery = html[html.index('id="gallery"') :]
    assert gallery.count('src="data:image/png;base64,') == 5
    assert "<del>" in gallery and "<ins>" in gallery
    assert SCRIPT not in html and "&lt;script&gt;" in html
    assert not NETWORK.search(html)
    assert "image not found" not in html


def test_thumbnails_are_small(letters, tmp_path):
    import base64
    import io

    from PIL import Image

    out = tmp_path / "r.html"
    result = run(letters["scores"], "--per-sample", letters["per_sample"], "--out", out)
    assert result.exit_code == 0, result.output
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', out.read_text())
    assert uris
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri))) as image:
            assert max(image.size) <= 320


def test_json_task_two_systems_side_by_side(cord, tmp_path):
    out = tmp_path / "r.html"
    result = run(cord["b"], cord["a"], "--per-sample", cord["per_sample"], "--by",
                 "meta.menu_items", "--worst", "2", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    b = json.loads(cord["b"].read_text())
    a = json.loads(cord["a"].read_text())
    table = html[html.index('id="metric-table"') : html.index("</table>")]
    assert "<th>metric</th>" in table and ">predictions-b<" in table and ">predictions-a<" in table
    for name in ("field_f1", "ted_accuracy", "cer"):
        assert f">{b['metrics'][name]:.4f}<" in table and f">{a['metrics'][name]:.4f}<" in table
    assert "cer ↓" in table
    # cer fell: a lower-is-better metric going down is coloured as better.
    cer_row = table[table.index("cer ↓") :]
    assert f"{b['comparison']['cer']['delta']:+.4f}" in cer_row and "delta better" in cer_row
    assert "by meta.menu_items" in html and 'class="confusion"' not in html  # not a letter task
    assert html.count('src="data:image/png;base64,') == 2
    assert not NETWORK.search(html)
    assert "no baseline" not in html
    # Per-field F1 from score's own details, baseline beside each system.
    fields = html[html.index('id="fields"') :]
    fields = fields[: fields.index("</table>")]
    per_field = b["details"]["field_f1"]["per_field"]
    name, stats = next(iter(per_field.items()))
    row = fields[fields.index(f">{name}<") :]
    assert f">{stats['support']}<" in row and f">{stats['f1']:.4f}<" in row
    assert ">baseline F1<" in fields and ">predictions-b F1<" in fields


def test_without_per_sample_shows_what_it_can(letters, tmp_path):
    out = tmp_path / "r.html"
    result = run(letters["scores"], "--out", out)
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    assert 'id="metric-table"' in html and "<svg" in html
    assert 'class="notice"' in html and "no --per-sample file" in html
    assert 'id="gallery"' not in html and 'class="confusion"' not in html
    assert "no --per-sample file" in result.stderr and "Warning" in result.stderr


def test_missing_image_is_a_placeholder(letters, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(letters["data"], data)
    scores = json.loads(letters["scores"].read_text())
    scores["inputs"]["references"] = str(data / "metadata.jsonl")
    rows = [json.loads(x) for x in letters["per_sample"].read_text().splitlines()]
    worst = next(r for r in rows if r["scores"]["letter_accuracy"] == 0)
    (data / worst["file_name"]).unlink()
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(scores))
    out = tmp_path / "r.html"
    result = run(path, "--per-sample", letters["per_sample"], "--worst", "8", "--out", out)
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    assert f"image not found: {data / worst['file_name']}" in html
    assert html.count('src="data:image/png;base64,') == 7


def test_older_scores_file_gets_a_notice(letters, tmp_path):
    scores = json.loads(letters["scores"].read_text())
    scores["vlmkit_version"] = "0.0.1"
    del scores["higher_is_better"], scores["signatures"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(scores))
    out = tmp_path / "r.html"
    result = run(path, "--per-sample", letters["per_sample"], "--out", out)
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    assert "was written by vlmkit 0.0.1" in html and "lacks signatures, higher_is_better" in html
    assert 'id="metric-table"' in html and 'id="gallery"' in html
    assert "0.0.1" in result.stderr


def test_png_charts(letters, tmp_path):
    from PIL import Image

    out, charts = tmp_path / "r.html", tmp_path / "charts"
    result = run(letters["scores"], "--per-sample", letters["per_sample"], "--by", "meta.font",
                 "--out", out, "--png", charts)  # fmt: skip
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in charts.iterdir())
    assert names == [
        "by-meta-font-letter-accuracy.png",
        "metric-letter-accuracy-strict.png",
        "metric-letter-accuracy.png",
    ]
    for name in names:
        with Image.open(charts / name) as image:
            assert image.format == "PNG" and image.size[0] > 300
            low, high = image.convert("L").getextrema()
            assert low < 100 < high  # drawn, not blank


def test_bad_inputs(letters, cord, tmp_path):
    out = tmp_path / "r.html"
    missing = run(tmp_path / "nope.json", "--out", out)
    assert missing.exit_code == 1 and "Error:" in missing.stderr
    assert "nope.json does not exist" in missing.stderr

    not_json = tmp_path / "bad.json"
    not_json.write_text("{oops")
    result = run(not_json, "--out", out)
    assert result.exit_code == 1 and "bad.json:1: not JSON" in result.stderr

    other = tmp_path / "other.json"
    other.write_text('{"n": 3}')
    result = run(other, "--out", out)
    assert result.exit_code == 1 and 'other.json is not a vlmkit scores file (no "metrics")' in (
        result.stderr
    )

    mismatched = run(letters["scores"], "--per-sample", cord["per_sample"], "--out", out)
    assert mismatched.exit_code == 1 and "--per-sample" in mismatched.stderr

    renamed = tmp_path / "renamed.jsonl"
    rows = [json.loads(x) for x in letters["per_sample"].read_text().splitlines()]
    rows[3]["id"] = "not-a-sample"
    write_jsonl(renamed, rows)
    result = run(letters["scores"], "--per-sample", renamed, "--out", out)
    assert result.exit_code == 1 and "'not-a-sample'" in result.stderr

    by = run(letters["scores"], "--per-sample", letters["per_sample"], "--by", "meta.colour_x",
             "--out", out)  # fmt: skip
    assert by.exit_code == 2 and "--by meta.colour_x" in by.stderr
    assert "meta.font" in by.stderr and "meta.padding" in by.stderr

    no_rows = run(letters["scores"], "--by", "meta.font", "--out", out)
    assert no_rows.exit_code == 2 and "--by needs --per-sample" in no_rows.stderr
    assert not out.exists()  # nothing half-written on any error


def test_char_diff_escapes_and_marks_edits():
    diff = char_diff("a<b>c", "a<x>cd")
    assert diff == "a&lt;<del>b</del><ins>x</ins>&gt;c<ins>d</ins>"


def test_help():
    result = runner.invoke(report_app, ["report", "--help"])
    assert result.exit_code == 0 and "--per-sample" in result.stdout and "--png" in result.stdout


def test_unusable_intervals_and_inputs_found_from_elsewhere(letters, tmp_path, monkeypatch):
    """A null or NaN interval draws no whisker; a scores file read from another folder still
    finds its references and images (recorded relative to where `score` ran)."""
    data = json.loads(letters["scores"].read_text())
    first = next(iter(data["comparison"].values()))
    first["system_ci95"] = [None, None]
    first["delta_ci95"] = [float("nan"), 1.0]
    # As `score` records them when it runs in the folder above (here: the fixture's root).
    data["inputs"] = {"predictions": "tuned.jsonl", "references": "data/metadata.jsonl"}
    data["baseline"]["predictions"] = "baseline.jsonl"
    broken = letters["scores"].parent / "results" / "broken.json"  # a folder below the root
    broken.parent.mkdir(exist_ok=True)
    broken.write_text(json.dumps(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "r.html"
    result = run(broken, "--per-sample", letters["per_sample"], "--out", out)
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    assert '="nan"' not in html.lower()
    assert "could not be read" not in result.stderr
    assert 'src="data:image/png;base64,' in html
