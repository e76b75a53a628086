"""`vlmkit report` rendered by a real browser (headless Chromium; skipped where it is absent)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import EXAMPLE_CORD
from typer.testing import CliRunner

from vlmkit.cli import app as vlmkit_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

runner = CliRunner()
report_app = vlmkit_app


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={profile}"]  # fmt: skip
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    scores, rows, out = root / "s.json", root / "ps.jsonl", root / "report.html"
    scored = runner.invoke(
        vlmkit_app,
        ["score", str(EXAMPLE_CORD / "predictions-b.jsonl"), str(EXAMPLE_CORD), "--baseline",
         str(EXAMPLE_CORD / "predictions-a.jsonl"), "--json", str(scores), "--per-sample",
         str(rows), "--bootstrap", "200"],
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    made = runner.invoke(
        report_app,
        ["report", str(scores), "--per-sample", str(rows), "--by", "meta.menu_items",
         "--worst", "3", "--out", str(out)],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    return out


def test_rendered_dom_has_table_charts_and_images(report, tmp_path):
    result = chromium(tmp_path / "profile", "--dump-dom", report.resolve().as_uri())
    dom = result.stdout
    assert result.returncode == 0 and "<body" in dom, result.stderr[-2000:]
    assert 'id="metric-table"' in dom and "<tbody><tr>" in dom
    assert dom.count("<svg") >= 6  # five metrics and one breakdown
    assert "<rect" in dom
    assert dom.count('src="data:image/png;base64,') == 3


def test_screenshot_is_not_blank(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    result = chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2000",
                      report.resolve().as_uri())  # fmt: skip
    assert shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1200, 2000)
        grey = image.convert("L")
        low, high = grey.getextrema()
        assert low < 80 and high > 200  # text and background
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50  # tables, bars and photos, not a blank page
