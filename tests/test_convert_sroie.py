"""`sroie`: the real SROIE receipts in ../shared/data (never copied here: unclear licence)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SHARED_DATA, write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app
from vlmkit.convert import converter_class
from vlmkit.convert.sroie import Box, reading_order
from vlmkit.convert.writer import ConvertOptions, convert
from vlmkit.errors import InputError, UsageError
from vlmkit.records import read_dataset

SROIE = SHARED_DATA / "sroie"
needs_sroie = pytest.mark.skipif(not SROIE.is_dir(), reason="../shared/data/sroie is absent")


def test_reading_order_groups_lines_and_sorts_them_left_to_right():
    boxes = [
        Box("TOTAL", top=100, bottom=120, left=10),
        Box("9.00", top=102, bottom=121, left=300),  # same line, slightly lower
        Box("SHOP", top=10, bottom=40, left=50),
        Box("THANK YOU", top=200, bottom=220, left=40),
    ]
    lines = [[b.text for b in line] for line in reading_order(list(reversed(boxes)))]
    assert lines == [["SHOP"], ["TOTAL", "9.00"], ["THANK YOU"]]


@needs_sroie
def test_json_targets_are_the_four_fields(tmp_path: Path):
    summaries = convert(converter_class("sroie")(str(SROIE)), tmp_path / "out", ConvertOptions())
    assert summaries["train"].written == 24
    records = list(read_dataset(tmp_path / "out" / "train"))
    first = next(r for r in records if r.id == "sroie/train/X00016469612")
    assert json.loads(first.target) == {
        "company": "BOOK TA .K (TAMAN DAYA) SDN BHD",
        "date": "25/12/2018",
        "address": "NO.53 55,57 & 59, JALAN SAGU 18, TAMAN DAYA, 81100 JOHOR BAHRU, JOHOR.",
        "total": "9.00",
    }
    for record in records:
        source = json.loads((SROIE / "train" / "entities" / f"{record.id.split('/')[-1]}.txt")
                            .read_text(encoding="utf-8-sig"))  # fmt: skip
        assert json.loads(record.target) == source  # all 24 have all four keys, in order
        copied = (tmp_path / "out" / "train" / record.file_name).read_bytes()
        assert copied == (SROIE / "train" / record.meta["source_file"]).read_bytes()


@needs_sroie
def test_ocr_targets_are_the_transcripts_in_reading_order(tmp_path: Path):
    converter = converter_class("sroie")(str(SROIE), "ocr")
    convert(converter, tmp_path / "out", ConvertOptions())
    records = {r.id: r for r in read_dataset(tmp_path / "out" / "train")}
    first = records["sroie/train/X00016469612"]
    assert first.task == "ocr"
    assert first.target.splitlines()[:3] == ["TAN WOON YANN", "BOOK TA .K(TAMAN DAYA) SDN BND",
                                             "789417-W"]  # fmt: skip
    assert "CODE/DESC PRICE DISC AMOUNT" in first.target.splitlines()
    # Every transcript of the box file is in the target, once.
    for record in records.values():
        box = SROIE / "train" / "box" / f"{record.id.split('/')[-1]}.txt"
        words = [line.split(",", 8)[8].strip() for line in
                 box.read_text(encoding="utf-8-sig").splitlines() if line.strip()]  # fmt: skip
        assert sorted(" ".join(words).split()) == sorted(record.target.split())


@needs_sroie
def test_cer_of_the_targets_against_themselves_is_zero(tmp_path: Path):
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", "sroie", str(SROIE), "--task", "ocr", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "train: 24 rows written" in result.stdout
    rows = [json.loads(x) for x in (out / "train" / "metadata.jsonl").read_text().splitlines()]
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": r["id"], "prediction": r["target"]}
                                               for r in rows])  # fmt: skip
    scored = runner.invoke(app, ["score", str(preds), str(out / "train"), "--json", "-"])
    assert json.loads(scored.stdout)["metrics"]["cer"] == 0.0


@pytest.fixture
def sroie_copy(tmp_path: Path) -> Path:
    if not SROIE.is_dir():
        pytest.skip("../shared/data/sroie is absent")
    return Path(shutil.copytree(SROIE, tmp_path / "sroie"))


@pytest.mark.parametrize("task", ["json", "ocr"])
def test_bad_sroie_rows(sroie_copy: Path, tmp_path: Path, task: str):
    train = sroie_copy / "train"
    (train / "img" / "X00016469612.jpg").unlink()
    (train / "entities" / "X51005303661.txt").write_text('{"company": ')
    (train / "box" / "X51005303661.txt").write_text("1,2,3,not a box line\n")
    with pytest.raises(InputError, match=r"no image img/X00016469612\.jpg"):
        convert(converter_class("sroie")(str(sroie_copy), task), tmp_path / "o", ConvertOptions())
    summaries = convert(converter_class("sroie")(str(sroie_copy), task), tmp_path / "o",
                        ConvertOptions(skip_bad=True))  # fmt: skip
    assert summaries["train"].written == 22
    assert dict(summaries["train"].skipped) == {"bad image": 1, "bad ground truth": 1}


@pytest.mark.parametrize(("task", "labels"), [("json", "entities"), ("ocr", "box")])
def test_an_image_without_its_label_file_is_a_listed_skip(sroie_copy, tmp_path, task, labels):
    (sroie_copy / "train" / labels / "X00016469612.txt").unlink()
    with pytest.raises(InputError, match=rf"train/img/X00016469612\.jpg: no {labels}/<ID>\.txt"):
        convert(converter_class("sroie")(str(sroie_copy), task), tmp_path / "o", ConvertOptions())
    summaries = convert(converter_class("sroie")(str(sroie_copy), task), tmp_path / "o",
                        ConvertOptions(skip_bad=True))  # fmt: skip
    assert summaries["train"].written == 23
    assert dict(summaries["train"].skipped) == {"no ground truth": 1}
    [skipped] = (tmp_path / "o" / "skipped.jsonl").read_text().splitlines()
    assert json.loads(skipped)["where"] == "train/img/X00016469612.jpg"


def test_task_errors(tmp_path: Path, cord_imagefolder: Path):
    with pytest.raises(UsageError, match="--task ocr: cord-v2 gives json targets"):
        converter_class("cord-v2")(str(cord_imagefolder), "ocr")
    with pytest.raises(UsageError, match="--task letter: sroie gives json or ocr targets"):
        converter_class("sroie")(str(tmp_path), "letter")
    with pytest.raises(InputError, match="not a sroie layout"):
        converter_class("sroie")(str(tmp_path))


def test_truncated_jpeg_non_utf8_labels_and_escaping_links(sroie_copy: Path, tmp_path: Path):
    train = sroie_copy / "train"
    jpeg = train / "img" / "X51005442378.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:20_000])  # verify() alone would let this through
    (train / "box" / "X51005447852.txt").write_bytes(b"1,2,3,4,5,6,7,8,caf\xe9\n")
    outside = tmp_path / "secret.jpg"
    shutil.copyfile(train / "img" / "X51005663293.jpg", outside)
    (train / "img" / "X51005663293.jpg").unlink()
    (train / "img" / "X51005663293.jpg").symlink_to(outside)
    summaries = convert(converter_class("sroie")(str(sroie_copy), "ocr"), tmp_path / "o",
                        ConvertOptions(skip_bad=True))  # fmt: skip
    assert summaries["train"].written == 21
    report = [json.loads(x) for x in (tmp_path / "o" / "skipped.jsonl").read_text().splitlines()]
    reasons = {r["where"].split("/")[-1]: r["reason"] for r in report}
    assert "not an image Pillow can read" in reasons["X51005442378.txt"]
    assert "not UTF-8" in reasons["X51005447852.txt"]
    assert "links outside SRC" in reasons["X51005663293.txt"]
