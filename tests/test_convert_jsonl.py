"""`jsonl`: PaliGemma (Roboflow), chat (LLaVA/ShareGPT, messages) and mapped rows, real receipts."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from conftest import write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app
from vlmkit.convert.jsonl import FieldMap, JsonlConverter
from vlmkit.convert.writer import ConvertOptions, convert
from vlmkit.errors import InputError, UsageError
from vlmkit.records import read_dataset


@pytest.fixture
def receipts(cord_imagefolder: Path, tmp_path: Path) -> tuple[Path, list[tuple[str, dict]]]:
    """A folder with the real receipts' images, and (file name, gt_parse) for each."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    pairs = []
    for line in (cord_imagefolder / "test" / "metadata.jsonl").read_text().splitlines()[:4]:
        row = json.loads(line)
        shutil.copyfile(cord_imagefolder / "test" / row["file_name"], folder / row["file_name"])
        pairs.append((row["file_name"], json.loads(row["ground_truth"])["gt_parse"]))
    return folder, pairs


def convert_jsonl(src: Path, out: Path, task: str | None = None, fields=None, **options):
    return convert(JsonlConverter(str(src), task, fields), out, ConvertOptions(**options))


def test_roboflow_paligemma_export(receipts, tmp_path: Path):
    folder, pairs = receipts
    rows = [{"image": name, "prefix": "extract receipt", "suffix": json.dumps(gt)}
            for name, gt in pairs]  # fmt: skip
    write_jsonl(folder / "_annotations.train.jsonl", rows[:3])
    write_jsonl(folder / "_annotations.valid.jsonl", rows[3:])
    summaries = convert_jsonl(folder, tmp_path / "out", "json")
    assert {s: v.written for s, v in summaries.items()} == {"train": 3, "valid": 1}
    records = list(read_dataset(tmp_path / "out" / "train"))
    assert [json.loads(r.target) for r in records] == [gt for _, gt in pairs[:3]]
    assert records[0].prompt == "extract receipt" and records[0].id == "jsonl/train/000000"
    copied = (tmp_path / "out" / "train" / records[0].file_name).read_bytes()
    assert copied == (folder / pairs[0][0]).read_bytes()


def test_python_dict_targets_become_json(receipts, tmp_path: Path):
    # The notebook bug: targets written with str(dict), which no JSON parser reads.
    folder, pairs = receipts
    rows = [{"image": name, "prefix": "", "suffix": str(gt)} for name, gt in pairs]
    write_jsonl(folder / "train.jsonl", rows)
    convert_jsonl(folder / "train.jsonl", tmp_path / "out", "json", target_format="json")
    records = list(read_dataset(tmp_path / "out" / "train"))
    assert [json.loads(r.target) for r in records] == [gt for _, gt in pairs]


def test_chat_rows(receipts, tmp_path: Path):
    folder, pairs = receipts
    (name_a, gt_a), (name_b, gt_b) = pairs[:2]
    write_jsonl(folder / "chat.jsonl", [
        {"id": "llava-1", "image": name_a, "conversations": [
            {"from": "human", "value": "<image>\nRead the receipt."},
            {"from": "gpt", "value": json.dumps(gt_a)}]},
        {"messages": [
            {"role": "system", "content": "You read receipts."},
            {"role": "user", "content": [{"type": "image"},
                                         {"type": "text", "text": "What does it say?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": json.dumps(gt_b)}]}],
         "images": [name_b]},
    ])  # fmt: skip
    convert_jsonl(folder / "chat.jsonl", tmp_path / "out", "json", target_format="kv")
    first, second = read_dataset(tmp_path / "out" / "chat")
    assert (first.prompt, second.prompt) == ("Read the receipt.", "What does it say?")
    assert first.meta["source_id"] == "llava-1" and first.meta["target_format"] == "kv"
    assert first.target.startswith("menu.nm: -TICKET CP")


def test_mapped_fields_and_data_urls(receipts, tmp_path: Path):
    folder, pairs = receipts
    name, _ = pairs[0]
    url = "data:image/png;base64," + base64.b64encode((folder / name).read_bytes()).decode()
    write_jsonl(folder / "ocr.jsonl", [{"img": url, "question": "Read it.", "text": "TICKET CP"}])
    fields = FieldMap(image="img", prompt="question", target="text")
    convert_jsonl(folder / "ocr.jsonl", tmp_path / "out", None, fields)
    [record] = read_dataset(tmp_path / "out" / "ocr")
    assert (record.task, record.prompt, record.target) == ("ocr", "Read it.", "TICKET CP")
    assert (tmp_path / "out" / "ocr" / record.file_name).read_bytes() == (
        folder / name
    ).read_bytes()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"image": "../escape.png", "suffix": "x"}, "the image path '../escape.png' leaves"),
        ({"picture": "a.png", "answer": "x"}, "neither a PaliGemma row"),
        ({"messages": [{"role": "user", "content": "hi"}], "image": "a.png"},
         "no user turn followed by an assistant turn"),
        ({"image": "a.png", "suffix": "not json at all"}, "the target is not JSON"),
        ({"image": "data:image/png;base64,@@@", "suffix": "{}"},
         "the image data URL is not valid base64"),
    ],
)  # fmt: skip
def test_bad_rows(receipts, tmp_path: Path, row: dict, message: str):
    folder, _ = receipts
    write_jsonl(folder / "train.jsonl", [row])
    with pytest.raises(InputError, match=rf"train\.jsonl:1: {message}"):
        convert_jsonl(folder / "train.jsonl", tmp_path / "out", "json")


def test_layout_and_field_errors(tmp_path: Path):
    with pytest.raises(InputError, match="not a jsonl layout"):
        JsonlConverter(str(tmp_path))
    (tmp_path / "a.jsonl").write_text("{}\n")
    with pytest.raises(UsageError, match="--image-field and --target-field go together"):
        JsonlConverter(str(tmp_path), fields=FieldMap(prompt="q"))
    result = CliRunner().invoke(app, ["convert", "sroie", str(tmp_path), "--image-field", "x",
                                      "-o", str(tmp_path.parent / "o")])  # fmt: skip
    assert result.exit_code == 2 and "apply to jsonl sources" in result.stderr


def test_split_names_must_be_plain(receipts, tmp_path: Path):
    folder, pairs = receipts
    write_jsonl(folder / "my split.jsonl", [{"image": pairs[0][0], "suffix": "x"}])
    with pytest.raises(InputError, match="split name 'my split' is not a plain name"):
        convert_jsonl(folder / "my split.jsonl", tmp_path / "out")


def test_absolute_paths_inside_the_folder_and_chatter_around_json(receipts, tmp_path: Path):
    folder, pairs = receipts
    name, gt = pairs[0]
    write_jsonl(folder / "train.jsonl", [
        {"image": str((folder / name).resolve()), "suffix": json.dumps(gt)},
        {"image": name, "suffix": "Sure! Here it is: " + json.dumps(gt) + " Hope it helps."},
    ])  # fmt: skip
    summaries = convert_jsonl(folder / "train.jsonl", tmp_path / "out", "json", skip_bad=True)
    assert summaries["train"].written == 1
    [record] = read_dataset(tmp_path / "out" / "train")
    assert record.meta["target_read_as"] == "json"
    report = (tmp_path / "out" / "skipped.jsonl").read_text()
    assert "the target has text around its braces structured part" in report


def test_rows_without_a_prompt_are_reported(receipts, tmp_path: Path):
    folder, pairs = receipts
    write_jsonl(folder / "train.jsonl", [{"image": name, "suffix": "x"} for name, _ in pairs])
    result = CliRunner().invoke(app, ["convert", "jsonl", str(folder / "train.jsonl"),
                                      "-o", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "train: 4 records have an empty prompt" in " ".join(result.stderr.split())
    result = CliRunner().invoke(app, ["convert", "jsonl", str(folder / "train.jsonl"), "--prompt",
                                      "Read it.", "-o", str(tmp_path / "out2")])  # fmt: skip
    assert "empty prompt" not in result.stderr
