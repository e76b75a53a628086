"""Tiny models and small datasets for the slow model tests, built once per session and offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from vlmkit.cli import app

REPO = Path(__file__).resolve().parents[1]


def vlmkit(*args: str | Path):
    """Run the CLI in-process; stdout and stderr kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def vlmkit_process(*args: str | Path, **popen) -> subprocess.Popen:
    """Run the CLI as a real process (for kills and Ctrl-C), one thread like the tests."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "vlmkit", *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def letters_dataset(folder: Path, n: int = 6) -> Path:
    """A small circled-letter dataset (real synth output), unsplit."""
    result = vlmkit(
        "synth", "circled-letter", "--n", n, "--test-fraction", "0", "--image-size", "128",
        "--max-length", "6", "--workers", "1", "--seed", "3", "-o", folder,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder


def predictions(path: Path) -> list[tuple[str, str, str | None]]:
    """(id, prediction, error) of each line, in file order: what must not depend on timing."""
    return [(r["id"], r["prediction"], r.get("error")) for r in read_jsonl(path)]


def memory_dataset(folder: Path) -> Path:
    """Four samples a tiny model can learn by heart: each prompt names its sample, and the
    targets mix words, numbers, JSON and non-ASCII text (real images, drawn here)."""
    from PIL import Image, ImageDraw

    (folder / "images").mkdir(parents=True)
    targets = ["cat", "12.50", '{"total": "7"}', "grüße"]
    rows = []
    for i, target in enumerate(targets):
        image = Image.new("RGB", (64, 64), "white")
        ImageDraw.Draw(image).rectangle((8 * i, 8, 8 * i + 20, 40), fill=(200, 30, 30))
        image.save(folder / "images" / f"{i}.png")
        rows.append({"id": f"m{i}", "file_name": f"images/{i}.png", "task": "ocr",
                     "prompt": f"Item {i}: read it.", "target": target})  # fmt: skip
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return folder
