"""Every dataset vlmkit writes loads with `datasets.load_dataset("imagefolder")`, as promised.

Arrow gives each `meta` key one type across all rows of a split: a key whose JSON type differs
between rows (an id that is 1 in one row and "r-3" in another) fails the load with ArrowInvalid,
and a key that only some rows have must come back as null in the others.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SHARED_DATA, write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app

pytestmark = pytest.mark.slow


def run(*args: str | Path) -> Path:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return Path(args[args.index("-o") + 1])


def _load_every_split(out: Path) -> dict[str, int]:
    from datasets import load_dataset

    splits = sorted(p.parent.name for p in out.glob("*/metadata.jsonl")) or [None]
    counts = {}
    for split in splits:
        folder = out / split if split else out
        loaded = load_dataset("imagefolder", data_dir=str(folder), split="train")
        lines = (folder / "metadata.jsonl").read_text("utf-8").splitlines()
        assert len(loaded) == len(lines)
        first = json.loads(lines[0])
        assert loaded[0]["id"] == first["id"] and loaded[0]["image"].size[0] > 0
        counts[split or "."] = len(loaded)
    return counts


def test_synth(tmp_path: Path):
    out = run("synth", "circled-letter", "--n", "6", "--image-size", "96", "--max-length", "5",
              "--workers", "1", "--test-fraction", "0.3", "-o", tmp_path / "letters")  # fmt: skip
    assert sum(_load_every_split(out).values()) == 6


@pytest.mark.parametrize("kind", ["cord-v2", "donut"])
def test_donut_format_converters(cord_imagefolder: Path, tmp_path: Path, kind: str):
    out = run("convert", kind, cord_imagefolder, "--max-side", "300", "-o", tmp_path / kind)
    assert _load_every_split(out) == {"test": 9}


def test_cord_release_layout(cord_imagefolder: Path, tmp_path: Path):
    src = tmp_path / "cord" / "test"
    (src / "json").mkdir(parents=True)
    (src / "image").mkdir()
    for line in (cord_imagefolder / "test" / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        stem = Path(row["file_name"]).stem
        (src / "json" / f"{stem}.json").write_text(row["ground_truth"])
        shutil.copyfile(
            cord_imagefolder / "test" / row["file_name"], src / "image" / row["file_name"]
        )
    out = run("convert", "cord-v2", tmp_path / "cord", "-o", tmp_path / "out")
    assert _load_every_split(out) == {"test": 9}


@pytest.mark.parametrize("task", ["json", "ocr"])
def test_sroie(tmp_path: Path, task: str):
    if not (SHARED_DATA / "sroie").is_dir():
        pytest.skip("../shared/data/sroie is absent")
    out = run("convert", "sroie", SHARED_DATA / "sroie", "--task", task, "-o", tmp_path / task)
    assert _load_every_split(out) == {"train": 24}


def test_jsonl_with_mixed_id_types_and_keys_only_some_rows_have(cord_imagefolder, tmp_path):
    src = tmp_path / "export"
    src.mkdir()
    images = sorted((cord_imagefolder / "test").glob("*.png"))[:4]
    for image in images:
        shutil.copyfile(image, src / image.name)
    rows = [
        {"id": 1, "image": images[0].name, "prefix": "Total?", "suffix": '{"total": "7"}'},
        {"id": "r-3", "image": images[1].name, "prefix": "Total?", "suffix": "{'total': '8'}"},
        {"image": images[2].name, "prefix": "Total?", "suffix": '{"total": "9"}'},
        {"id": 4, "image": images[3].name, "prefix": "Total?", "suffix": "<s_total>6</s_total>"},
    ]
    write_jsonl(src / "train.jsonl", rows)
    out = run("convert", "jsonl", src, "--task", "json", "--max-side", "200", "-o", tmp_path / "o")
    assert _load_every_split(out) == {"train": 4}
    from datasets import load_dataset

    meta = load_dataset("imagefolder", data_dir=str(out / "train"), split="train")["meta"]
    assert [m["source_id"] for m in meta] == ["1", "r-3", None, "4"]
    assert [m["target_read_as"] for m in meta] == ["json", "python", "json", "donut"]
