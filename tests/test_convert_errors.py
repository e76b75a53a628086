"""Every bad input of `vlmkit convert`: a clear error, or with --skip-bad a counted, listed skip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vlmkit.convert import converter_class
from vlmkit.convert.writer import ConvertOptions, convert
from vlmkit.errors import InputError, UsageError


def run(src: Path | str, out: Path, **options) -> dict:
    return convert(converter_class("cord-v2")(str(src)), out, ConvertOptions(**options))


@pytest.fixture
def cord_copy(cord_imagefolder: Path, tmp_path: Path) -> Path:
    """A writable copy of the real receipts, to damage."""
    return Path(shutil.copytree(cord_imagefolder, tmp_path / "src"))


def edit_line(root: Path, number: int, **changes) -> None:
    path = root / "test" / "metadata.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[number - 1])
    row.update(changes)
    lines[number - 1] = json.dumps(row, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_unknown_layout_lists_the_accepted_ones_and_what_was_found(tmp_path: Path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"not a cord-v2 layout .*found: notes\.txt") as error:
        converter_class("cord-v2")(str(tmp_path / "stuff"))
    for layout in ("parquet", "save_to_disk", "imagefolder", "hub id"):
        assert layout in error.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="the folder is empty"):
        converter_class("donut")(str(tmp_path / "empty"))


@pytest.mark.parametrize(
    ("damage", "message", "category"),
    [
        (
            {"ground_truth": '{"gt_parse": {"menu": '},
            "ground_truth is not JSON",
            "bad ground truth",
        ),
        ({"ground_truth": '{"parse": {}}'}, "has no gt_parse or gt_parses", "bad ground truth"),
        ({"file_name": "missing.png"}, "missing.png does not exist", "bad image"),
        ({"file_name": "../outside.png"}, "'../outside.png' leaves the dataset", "bad image path"),
        ({"file_name": "/etc/passwd"}, "'/etc/passwd' leaves the dataset", "bad image path"),
    ],
)
def test_bad_rows_stop_the_run_or_are_skipped(
    cord_copy: Path, tmp_path: Path, damage: dict, message: str, category: str
):
    (cord_copy / "outside.png").write_bytes((cord_copy / "test" / "receipt_00.png").read_bytes())
    edit_line(cord_copy, 3, **damage)
    with pytest.raises(InputError, match=rf"metadata\.jsonl:3: .*{message}") as error:
        run(cord_copy, tmp_path / "out")
    assert "--skip-bad" in error.value.hint
    assert not (tmp_path / "out").exists()  # nothing half-written under the final name
    summaries = run(cord_copy, tmp_path / "out", skip_bad=True)
    # A row that names another file leaves its receipt's image named by no row: listed too.
    unnamed = {"no ground truth": 1} if "file_name" in damage else {}
    assert summaries["test"].written == 8
    assert dict(summaries["test"].skipped) == {category: 1, **unnamed}
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").open()]
    assert skipped[0]["where"].endswith("metadata.jsonl:3")
    if unnamed:
        assert skipped[1]["where"].startswith("test/receipt_")
        assert "no metadata.jsonl row names it" in skipped[1]["reason"]


def test_corrupt_image(cord_copy: Path, tmp_path: Path):
    image = cord_copy / "test" / "receipt_03.png"
    image.write_bytes(image.read_bytes()[:2000])  # truncated mid-stream
    (cord_copy / "test" / "receipt_04.png").write_bytes(b"not an image at all")
    summaries = run(cord_copy, tmp_path / "out", skip_bad=True)
    assert dict(summaries["test"].skipped) == {"bad image": 2}
    reasons = (tmp_path / "out" / "skipped.jsonl").read_text()
    assert "not an image Pillow can read" in reasons


def test_a_target_that_cannot_be_written_in_the_format_is_a_bad_row(
    cord_copy: Path, tmp_path: Path
):
    edit_line(cord_copy, 2, ground_truth=json.dumps({"gt_parse": {"total": {"price": 12}}}))
    with pytest.raises(InputError, match="cannot be written as kv lines"):
        run(cord_copy, tmp_path / "out", target_format="kv")
    # Donut tokens would bring 12 back as "12": refused rather than silently changed.
    with pytest.raises(InputError, match="does not survive the donut format"):
        run(cord_copy, tmp_path / "out", target_format="donut")
    assert run(cord_copy, tmp_path / "out", target_format="json")["test"].written == 9


def test_existing_output_is_refused_unless_overwrite(cord_imagefolder: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(UsageError, match="already exists and is not empty"):
        run(cord_imagefolder, out)
    with pytest.raises(UsageError, match="only replaces a folder that vlmkit convert wrote"):
        convert(converter_class("cord-v2")(str(cord_imagefolder)), out, ConvertOptions(),
                overwrite=True)  # fmt: skip
    assert (out / "mine.txt").read_text() == "keep"
    shutil.rmtree(out)
    run(cord_imagefolder, out)
    convert(converter_class("cord-v2")(str(cord_imagefolder)), out,
            ConvertOptions(target_format="kv"), overwrite=True)  # fmt: skip
    assert json.loads((out / "convert.json").read_text())["options"]["target_format"] == "kv"


def test_hub_id_offline_says_how_to_use_local_files(monkeypatch, tmp_path: Path):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never touch the network in tests
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(InputError, match="cannot download it from the Hugging Face hub") as error:
        converter_class("cord-v2")("naver-clova-ix/cord-v2")
    assert "--local-dir DIR" in error.value.hint


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target_format": "yaml"}, "--target-format 'yaml'"),
        ({"max_side": 8}, "--max-side 8: must be at least 16"),
        ({"prompt": "  "}, "--prompt is empty"),
    ],
)
def test_option_errors(options, message):
    with pytest.raises(UsageError, match=message):
        ConvertOptions(**options)


def test_a_decompression_bomb_is_a_bad_image(cord_copy: Path, tmp_path: Path, monkeypatch):
    from PIL import Image

    # Pillow refuses images over twice MAX_IMAGE_PIXELS; make every receipt count as one.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputError, match="refused as a decompression bomb"):
        run(cord_copy, tmp_path / "out")


def test_a_null_ground_truth_is_a_bad_target(cord_copy: Path, tmp_path: Path):
    edit_line(cord_copy, 1, ground_truth='{"gt_parse": null}')
    with pytest.raises(InputError, match="the target is null, not a non-empty object"):
        run(cord_copy, tmp_path / "out")


def test_two_rows_with_one_id_are_refused(cord_copy: Path, tmp_path: Path):
    # receipt_07.png and copy_7.png would both be cord-v2/test/000007.
    shutil.copyfile(cord_copy / "test" / "receipt_07.png", cord_copy / "test" / "copy_7.png")
    edit_line(cord_copy, 1, file_name="copy_7.png")
    with pytest.raises(InputError, match=r"its id cord-v2/test/000007 is also .*metadata\.jsonl:1"):
        run(cord_copy, tmp_path / "out")


def test_wrong_parquet_schema_is_one_file_error(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "src" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"img": [b"x"], "label": ["y"]}),
                   tmp_path / "src" / "data" / "train-00000.parquet")  # fmt: skip
    with pytest.raises(InputError, match=r"no column image, ground_truth \(it has img, label"):
        run(tmp_path / "src", tmp_path / "out", skip_bad=True)


def test_empty_splits_are_left_out_and_nothing_at_all_is_an_error(cord_copy: Path, tmp_path: Path):
    (cord_copy / "validation").mkdir()
    (cord_copy / "validation" / "metadata.jsonl").write_text("")
    summaries = run(cord_copy, tmp_path / "out")
    assert summaries["validation"].written == 0 and summaries["test"].written == 9
    assert not (tmp_path / "out" / "validation").exists()
    for number in range(1, 10):
        edit_line(cord_copy, number, ground_truth="broken")
    with pytest.raises(InputError, match=r"no row could be converted \(9 bad, 0 good\)"):
        run(cord_copy, tmp_path / "out2", skip_bad=True)
    assert not (tmp_path / "out2").exists()


def test_a_damaged_parquet_shard_is_named(tmp_path: Path):
    (tmp_path / "src" / "data").mkdir(parents=True)
    (tmp_path / "src" / "data" / "test-00000.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match=r"test-00000\.parquet: cannot read this parquet") as e:
        run(tmp_path / "src", tmp_path / "out")
    assert "truncated" in e.value.hint
    assert not (tmp_path / "out").exists()


def test_unreadable_metadata_lines_are_skippable(cord_copy: Path, tmp_path: Path):
    path = cord_copy / "test" / "metadata.jsonl"
    lines = path.read_bytes().splitlines()
    lines[1] = b'{"file_name": "receipt_01.png", "ground_truth": '  # cut short
    lines[2] = b'{"file_name": "caf\xe9.png"}'  # latin-1, not UTF-8
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(InputError, match=r"metadata\.jsonl:2: malformed JSON"):
        run(cord_copy, tmp_path / "out")
    summaries = run(cord_copy, tmp_path / "out", skip_bad=True)
    assert summaries["test"].written == 7
    # The two receipts those lines described: images now named by no row, listed as well.
    assert dict(summaries["test"].skipped) == {"bad row": 2, "no ground truth": 2}
    report = (tmp_path / "out" / "skipped.jsonl").read_text()
    assert "malformed JSON" in report and "not UTF-8" in report


def test_the_library_refuses_an_output_inside_its_source(cord_imagefolder: Path):
    with pytest.raises(UsageError, match="would be written inside SRC"):
        run(cord_imagefolder, cord_imagefolder / "converted")
    assert not (cord_imagefolder / "converted").exists()
