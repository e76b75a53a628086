"""`cord-v2` and `donut` conversion on the real CORD v2 receipts, in every layout and format."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import REPO

from vlmkit.convert import converter_class
from vlmkit.convert.writer import ConvertOptions, convert
from vlmkit.errors import InputError
from vlmkit.records import read_dataset
from vlmkit.structured import parse_structured

GOLDEN = REPO / "tests" / "data" / "golden"
UPDATE_FLAG = "VLMKIT_UPDATE_GOLDEN"


def run(src: Path | str, out: Path, kind: str = "cord-v2", **options) -> dict:
    return convert(converter_class(kind)(str(src)), out, ConvertOptions(**options))


def source_parses(root: Path) -> list[dict]:
    lines = (root / "test" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(json.loads(line)["ground_truth"])["gt_parse"] for line in lines]


def test_golden_files_are_never_regenerated_silently():
    # Goldens change only when someone sets the flag on purpose, never in CI.
    assert UPDATE_FLAG not in os.environ


@pytest.mark.parametrize("target_format", ["json", "donut", "kv"])
def test_golden_records(cord_imagefolder: Path, tmp_path: Path, target_format: str):
    out = tmp_path / "out"
    summaries = run(cord_imagefolder, out, target_format=target_format)
    assert {s: (v.written, dict(v.skipped)) for s, v in summaries.items()} == {"test": (9, {})}
    written = (out / "test" / "metadata.jsonl").read_text(encoding="utf-8")
    golden = GOLDEN / f"cord-v2-{target_format}.jsonl"
    if os.environ.get(UPDATE_FLAG):
        golden.write_text(written, encoding="utf-8")
    assert written == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("target_format", ["json", "donut", "kv"])
def test_every_format_reads_back_to_the_source_object(
    cord_imagefolder: Path, tmp_path: Path, target_format: str
):
    run(cord_imagefolder, tmp_path / "out", target_format=target_format)
    records = list(read_dataset(tmp_path / "out" / "test"))
    parsed = [parse_structured(r.target) for r in records]
    assert [p.value for p in parsed] == source_parses(cord_imagefolder)
    assert {p.method for p in parsed} == {target_format}


def test_records_follow_the_contract(cord_imagefolder: Path, tmp_path: Path):
    run(cord_imagefolder, tmp_path / "out")
    records = list(read_dataset(tmp_path / "out" / "test"))
    # Ids carry the file's number: receipt_07.png is hub row 7, whatever its line.
    assert [r.id for r in records] == [
        f"cord-v2/test/{n:06d}" for n in (0, 1, 3, 4, 7, 8, 11, 12, 14)
    ]
    first = records[0]
    assert (first.task, first.prompt) == ("json", "Extract the receipt as JSON.")
    assert first.meta["source_file"] == "receipt_00.png" and first.meta["row"] == 0
    # Keys keep their original order (menu, sub_total, total), characters are not escaped.
    assert first.target.startswith('{"menu": {"nm": "-TICKET CP"')


def test_images_are_copied_byte_for_byte(cord_imagefolder: Path, tmp_path: Path):
    run(cord_imagefolder, tmp_path / "out")
    for record in read_dataset(tmp_path / "out" / "test"):
        copied = (tmp_path / "out" / "test" / record.file_name).read_bytes()
        original = (cord_imagefolder / "test" / record.meta["source_file"]).read_bytes()
        assert copied == original
        assert record.meta["image_sha256"] == hashlib.sha256(original).hexdigest()


def test_max_side_downsizes_and_records_it(cord_imagefolder: Path, tmp_path: Path):
    from PIL import Image

    run(cord_imagefolder, tmp_path / "out", max_side=300)
    for record in read_dataset(tmp_path / "out" / "test"):
        with Image.open(tmp_path / "out" / "test" / record.file_name) as image:
            assert max(image.size) == 300 and image.format == "PNG"
        width, height = record.meta["original_size"]
        assert max(width, height) > 300 and record.meta["max_side"] == 300


def test_prompt_override(cord_imagefolder: Path, tmp_path: Path):
    run(cord_imagefolder, tmp_path / "out", prompt="Read this receipt.")
    assert {r.prompt for r in read_dataset(tmp_path / "out" / "test")} == {"Read this receipt."}


def build_parquet(source: Path, shard: Path) -> None:
    """The hub's layout: image as {bytes, path}, ground_truth as a string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(x) for x in (source / "test" / "metadata.jsonl").read_text().splitlines()]
    images = [{"bytes": (source / "test" / r["file_name"]).read_bytes(), "path": r["file_name"]}
              for r in rows]  # fmt: skip
    table = pa.table({"image": images, "ground_truth": [r["ground_truth"] for r in rows]})
    shard.parent.mkdir(parents=True)
    pq.write_table(table, shard, row_group_size=4)


def test_parquet_and_save_to_disk_give_the_same_dataset(cord_imagefolder: Path, tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    build_parquet(cord_imagefolder, tmp_path / "hub" / "data" / "test-00000-of-00001.parquet")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(cord_imagefolder))
    loaded.save_to_disk(str(tmp_path / "saved"))
    outputs = {}
    for layout, src in [("imagefolder", cord_imagefolder), ("parquet", tmp_path / "hub"),
                        ("save_to_disk", tmp_path / "saved")]:  # fmt: skip
        converter = converter_class("cord-v2")(str(src))
        assert converter.layout == layout
        convert(converter, tmp_path / layout, ConvertOptions(target_format="donut"))
        outputs[layout] = [
            (r.id, r.target, r.meta["source_file"],
             (tmp_path / layout / "test" / r.file_name).read_bytes())
            for r in read_dataset(tmp_path / layout / "test")
        ]  # fmt: skip
    assert outputs["parquet"] == outputs["save_to_disk"]  # rows numbered 0-8 in both
    # The imagefolder's ids are the files' numbers; targets and image bytes are the same.
    assert [o[1:] for o in outputs["parquet"]] == [o[1:] for o in outputs["imagefolder"]]


def test_donut_kind_reads_any_donut_dataset(cord_imagefolder: Path, tmp_path: Path):
    run(cord_imagefolder, tmp_path / "out", kind="donut")
    records = list(read_dataset(tmp_path / "out" / "test"))
    assert records[0].id == "donut/test/000000"
    assert records[0].prompt == "Extract the document as JSON."
    assert [json.loads(r.target) for r in records] == source_parses(cord_imagefolder)


def test_sidecar_records_source_layout_and_counts(cord_imagefolder: Path, tmp_path: Path):
    run(cord_imagefolder, tmp_path / "out", target_format="kv")
    sidecar = json.loads((tmp_path / "out" / "convert.json").read_text())
    assert sidecar["converter"] == "cord-v2" and sidecar["layout"] == "imagefolder"
    assert sidecar["options"]["target_format"] == "kv"
    assert sidecar["splits"] == {"test": {"written": 9, "skipped": {}}}


def build_original_release(source: Path, root: Path) -> None:
    """The CORD release layout, v2 json files (gt_parse beside the word annotations)."""
    (root / "test" / "image").mkdir(parents=True)
    (root / "test" / "json").mkdir()
    for line in (source / "test" / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        number = int(row["file_name"].removeprefix("receipt_").removesuffix(".png"))
        stem = f"receipt_{number:05d}"
        (root / "test" / "image" / f"{stem}.png").write_bytes(
            (source / "test" / row["file_name"]).read_bytes()
        )
        document = {**json.loads(row["ground_truth"]), "valid_line": [], "meta": {"split": "test"}}
        (root / "test" / "json" / f"{stem}.json").write_text(json.dumps(document))


def test_original_release_layout_keeps_the_receipt_numbers(cord_imagefolder: Path, tmp_path: Path):
    build_original_release(cord_imagefolder, tmp_path / "CORD")
    converter = converter_class("cord-v2")(str(tmp_path / "CORD"))
    assert converter.layout == "original"
    convert(converter, tmp_path / "out", ConvertOptions())
    records = list(read_dataset(tmp_path / "out" / "test"))
    # Hub test row i is the release's test/image/receipt_0000i.png: the ids agree.
    assert [r.id for r in records] == [
        f"cord-v2/test/{n:06d}" for n in (0, 1, 3, 4, 7, 8, 11, 12, 14)
    ]
    assert [json.loads(r.target) for r in records] == source_parses(cord_imagefolder)
    (tmp_path / "CORD" / "test" / "image" / "receipt_00003.png").unlink()
    with pytest.raises(InputError, match=r"test/json/receipt_00003\.json: no image"):
        convert(converter_class("cord-v2")(str(tmp_path / "CORD")), tmp_path / "o2",
                ConvertOptions())  # fmt: skip


def test_a_cord_v1_json_without_gt_parse_says_so(cord_imagefolder: Path, tmp_path: Path):
    build_original_release(cord_imagefolder, tmp_path / "CORD")
    v1 = tmp_path / "CORD" / "test" / "json" / "receipt_00001.json"
    v1.write_text(json.dumps({"valid_line": [], "meta": {"split": "test"}}))
    with pytest.raises(InputError, match=r"receipt_00001\.json: .*a CORD v1 file\?"):
        convert(converter_class("cord-v2")(str(tmp_path / "CORD")), tmp_path / "out",
                ConvertOptions())  # fmt: skip
