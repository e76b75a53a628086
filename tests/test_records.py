"""The JSONL contracts: streaming reads with path:line errors, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLE_CORD, write_jsonl

from vlmkit.errors import InputError
from vlmkit.records import (
    DatasetRecord,
    PredictionRecord,
    atomic_output,
    iter_jsonl,
    read_dataset,
    record_id,
    resolve_jsonl,
    write_jsonl_atomic,
)


def test_iter_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": 1}\n\n   \n{"id": 2}\n', "utf-8")
    lines = list(iter_jsonl(path))
    assert [(line.number, line.data["id"]) for line in lines] == [(1, 1), (4, 2)]
    assert lines[1].where == f"{path}:4"


def test_byte_order_mark_is_accepted(tmp_path: Path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a"}\n')
    assert next(iter_jsonl(path)).data == {"id": "a"}


def test_windows_line_endings_are_accepted(tmp_path: Path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b'{"id": "a"}\r\n{"id": "b"}\r\n')
    assert [line.data["id"] for line in iter_jsonl(path)] == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"id": 1}\n{"id": 2,\n', ":2: malformed JSON"),
        (b'{"id": 1}\n[1, 2]\n', ":2: expected a JSON object, got list"),
        (b'{"id": "caf\xe9"}\n', ":1: not UTF-8 (byte 0xe9 at column 12)"),
    ],
)
def test_bad_lines_name_path_and_line(tmp_path: Path, content: bytes, expected: str):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        list(iter_jsonl(path))
    assert str(path) + expected in info.value.message
    assert info.value.hint


def test_record_id_accepts_strings_and_ints_only(tmp_path: Path):
    path = write_jsonl(tmp_path / "ids.jsonl", [{"id": 7}, {"id": "x"}, {"id": 1.5}, {"n": 1}])
    lines = list(iter_jsonl(path))
    assert record_id(lines[0]) == "7" and record_id(lines[1]) == "x"
    with pytest.raises(InputError, match="must be a string or an integer"):
        record_id(lines[2])
    with pytest.raises(InputError, match=r":4: missing field 'id'") as info:
        record_id(lines[3])
    assert "--id-field" in info.value.hint and "fields on that line: n" in info.value.hint


def test_resolve_jsonl(tmp_path: Path):
    assert resolve_jsonl(EXAMPLE_CORD, role="dataset", flag="X").name == "metadata.jsonl"
    with pytest.raises(InputError, match=r"folder without a metadata\.jsonl"):
        resolve_jsonl(tmp_path, role="references", flag="REFS")
    with pytest.raises(InputError, match="does not exist") as info:
        resolve_jsonl(tmp_path / "nope.jsonl", role="references", flag="REFS")
    assert "REFS" in info.value.hint


def test_read_dataset_on_the_bundled_cord_sample():
    records = list(read_dataset(EXAMPLE_CORD))
    assert len(records) == 9
    first = records[0]
    assert isinstance(first, DatasetRecord)
    assert first.id == "cord-v2/test/000000" and first.task == "json"
    assert (EXAMPLE_CORD / first.file_name).is_file()
    assert json.loads(first.target)["total"]["total_price"] == "60.000"


@pytest.mark.parametrize("file_name", ["/etc/passwd", "../outside.png", "images/../../x.png"])
def test_read_dataset_refuses_paths_outside_the_folder(tmp_path: Path, file_name: str):
    write_jsonl(tmp_path / "metadata.jsonl", [{"id": "a", "file_name": file_name, "target": "x"}])
    with pytest.raises(InputError, match="must be a relative path inside the folder"):
        list(read_dataset(tmp_path))


def test_prediction_record_json_omits_unset_fields():
    assert PredictionRecord("a", "x").to_json() == {"id": "a", "prediction": "x"}
    full = PredictionRecord("a", "", error="boom", latency_s=0.5, new_tokens=0).to_json()
    assert full == {"id": "a", "prediction": "", "error": "boom", "latency_s": 0.5, "new_tokens": 0}


def test_atomic_output_keeps_the_old_file_when_writing_fails(tmp_path: Path):
    target = tmp_path / "out.jsonl"
    target.write_text("previous good result\n", "utf-8")
    with pytest.raises(RuntimeError), atomic_output(target) as out:
        out.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text("utf-8") == "previous good result\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary left behind


def test_write_jsonl_atomic_round_trips_unicode(tmp_path: Path):
    target = tmp_path / "sub" / "rows.jsonl"
    rows = [{"id": "東京", "prediction": "Grüße\n🙂"}]
    assert write_jsonl_atomic(target, rows) == 1
    assert "東京" in target.read_text("utf-8")  # written as UTF-8, not \\u escapes
    assert [line.data for line in iter_jsonl(target)] == rows


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from vlmkit.records import current_umask, write_text_atomic

    write_text_atomic(tmp_path / "out.json", "{}")
    mode = stat.S_IMODE(os.stat(tmp_path / "out.json").st_mode)
    assert mode == 0o666 & ~current_umask()
