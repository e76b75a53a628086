"""`vlmkit convert vqa`: DocVQA, InfographicVQA, ChartQA and TextVQA in the layouts the hub uses.

The fixtures are written by `datasets` itself (`Dataset.to_parquet`, `save_to_disk`), with the
column names and types of the hub's copies: lmms-lab/DocVQA (questionId, question,
question_types, image, docId, answers, data_split; a test split with answers null),
HuggingFaceM4/ChartQA (image, query, label, human_or_machine), lmms-lab/ChartQA (type, question,
answer, image) and lmms-lab/textvqa (question_id, question, image, answers x10, ocr_tokens).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from vlmkit.convert import converter_class
from vlmkit.convert.writer import ConvertOptions, convert
from vlmkit.errors import InputError, UsageError
from vlmkit.records import read_dataset

datasets = pytest.importorskip("datasets")


def png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40 + seed, 30), (seed * 40 % 256, 90, 160)).save(out, format="PNG")
    return out.getvalue()


def image_features(**columns):
    return datasets.Features({"image": datasets.Image(), **columns})


def docvqa(split: str, *, hidden: bool = False):
    """Three questions on two pages, as lmms-lab/DocVQA's DocVQA configuration has them."""
    pages = [png(1), png(2), png(1)]
    answers = None if hidden else [["1/8/93", "1/8/1993"], ["ITC"], ["$ 2.50"]]
    return datasets.Dataset.from_dict(
        {"questionId": [337, 338, 339],
         "question": ["What is the date?", "Who sent it?", "What is the total?"],
         "question_types": [["form"], ["layout"], ["table/list"]],
         "image": [{"bytes": page, "path": None} for page in pages],
         "docId": [279, 280, 279],
         "answers": answers or [None, None, None],
         "data_split": [split] * 3},
        features=image_features(
            questionId=datasets.Value("int32"), question=datasets.Value("string"),
            question_types=datasets.Sequence(datasets.Value("string")),
            docId=datasets.Value("int32"),
            answers=datasets.Sequence(datasets.Value("string")),
            data_split=datasets.Value("string")),
    )  # fmt: skip


def run(src: Path, out: Path, **options) -> dict:
    return convert(converter_class("vqa")(str(src)), out, ConvertOptions(**options))


def records(folder: Path) -> list[dict]:
    lines = (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_docvqa_parquet_with_a_hidden_test_split(tmp_path: Path):
    config = tmp_path / "DocVQA" / "DocVQA"
    config.mkdir(parents=True)
    docvqa("val").to_parquet(str(config / "validation-00000-of-00001.parquet"))
    docvqa("test", hidden=True).to_parquet(str(config / "test-00000-of-00001.parquet"))

    # The repository root holds two configurations: which one is the user's to say.
    (tmp_path / "DocVQA" / "InfographicVQA").mkdir()
    docvqa("val").to_parquet(str(tmp_path / "DocVQA" / "InfographicVQA" / "val.parquet"))
    with pytest.raises(InputError, match=r"several configurations \(DocVQA, InfographicVQA\)"):
        converter_class("vqa")(str(tmp_path / "DocVQA"))

    with pytest.raises(InputError, match=r"test-00000-of-00001.parquet row 0: no answers"):
        run(config, tmp_path / "strict")
    summaries = run(config, tmp_path / "out", skip_bad=True)
    assert summaries["validation"].written == 3 and summaries["test"].skipped["no answers"] == 3
    rows = records(tmp_path / "out" / "validation")
    assert [r["id"] for r in rows] == ["vqa/validation/337", "vqa/validation/338",
                                       "vqa/validation/339"]  # fmt: skip
    first = rows[0]
    assert first["task"] == "vqa" and first["prompt"] == "What is the date?"
    assert first["answers"] == ["1/8/93", "1/8/1993"] and first["target"] == "1/8/93"
    assert first["meta"]["question_types"] == ["form"] and first["meta"]["docId"] == 279
    # DocVQA's own `data_split` column is kept; vlmkit's `split` is the folder's.
    assert first["meta"]["split"] == "validation" and first["meta"]["data_split"] == "val"
    # Two questions about the same page share one image file.
    assert rows[0]["file_name"] == rows[2]["file_name"] != rows[1]["file_name"]
    assert len(list((tmp_path / "out" / "validation" / "images").iterdir())) == 2
    # The records are a vlmkit dataset that infer, finetune and score read.
    loaded = list(read_dataset(tmp_path / "out" / "validation"))
    assert loaded[0].answers == ("1/8/93", "1/8/1993") and loaded[0].task == "vqa"


def test_chartqa_both_hub_copies(tmp_path: Path):
    m4 = datasets.Dataset.from_dict(
        {"image": [{"bytes": png(3), "path": "a.png"}, {"bytes": png(4), "path": "b.png"}],
         "query": ["How many bars?", "Highest value?"],
         "label": [["4"], ["61.3"]],
         "human_or_machine": [0, 1]},
        features=image_features(query=datasets.Value("string"),
                                label=datasets.Sequence(datasets.Value("string")),
                                human_or_machine=datasets.Value("int64")),
    )  # fmt: skip
    (tmp_path / "m4" / "data").mkdir(parents=True)
    m4.to_parquet(str(tmp_path / "m4" / "data" / "test-00000-of-00001.parquet"))
    lmms = datasets.Dataset.from_dict(
        {"type": ["human_test"], "question": ["What is the peak?"], "answer": ["12"],
         "image": [{"bytes": png(5), "path": None}]},
        features=image_features(type=datasets.Value("string"), question=datasets.Value("string"),
                                answer=datasets.Value("string")),
    )  # fmt: skip
    (tmp_path / "lmms" / "data").mkdir(parents=True)
    lmms.to_parquet(str(tmp_path / "lmms" / "data" / "test-00000-of-00001.parquet"))

    run(tmp_path / "m4", tmp_path / "out-m4", prompt="{question} Answer with a number.")
    rows = records(tmp_path / "out-m4" / "test")
    assert [r["prompt"] for r in rows] == ["How many bars? Answer with a number.",
                                           "Highest value? Answer with a number."]  # fmt: skip
    assert rows[1]["answers"] == ["61.3"] and rows[1]["meta"]["human_or_machine"] == 1
    assert rows[0]["id"] == "vqa/test/row-000000"  # no question id: the row number

    run(tmp_path / "lmms", tmp_path / "out-lmms")
    [row] = records(tmp_path / "out-lmms" / "test")
    assert row["answers"] == ["12"] and row["target"] == "12"
    assert row["meta"]["type"] == "human_test"


def test_textvqa_save_to_disk_keeps_ten_answers_and_trains_on_the_commonest(tmp_path: Path):
    ten = ["nokia", "nokia ", "Nokia", "nokia", "nokia", "toshiba", "nokia", "Nokia", "nokia", "x"]
    textvqa = datasets.Dataset.from_dict(
        {"question_id": [34602], "question": ["what brand is this?"],
         "image": [{"bytes": png(6), "path": None}], "answers": [ten],
         "ocr_tokens": [[f"t{i}" for i in range(50)]]},
        features=image_features(question_id=datasets.Value("int64"),
                                question=datasets.Value("string"),
                                answers=datasets.Sequence(datasets.Value("string")),
                                ocr_tokens=datasets.Sequence(datasets.Value("string"))),
    )  # fmt: skip
    datasets.DatasetDict({"validation": textvqa}).save_to_disk(str(tmp_path / "saved"))
    converter = converter_class("vqa")(str(tmp_path / "saved"))
    assert converter.layout == "save_to_disk"
    convert(converter, tmp_path / "out", ConvertOptions())
    [row] = records(tmp_path / "out" / "validation")
    assert row["answers"] == ten and row["target"] == "nokia"  # six of ten
    assert "ocr_tokens" not in row["meta"]  # fifty tokens: not worth a line each


def test_imagefolder_with_question_and_answers_columns(tmp_path: Path):
    split = tmp_path / "src" / "train"
    split.mkdir(parents=True)
    (split / "page.png").write_bytes(png(7))
    lines = [{"file_name": "page.png", "question": "Title?",
              "answers": [{"answer": "Annual report", "answer_id": 1}, " ",
                          {"answer": "annual report", "answer_id": 2}]},
             {"file_name": "page.png", "question": "Year?", "answers": ["2019", "2019."]},
             {"file_name": "page.png", "question": "Pages?", "answers": [3, "three"]},
             {"file_name": "page.png", "question": "", "answers": ["x"]},
             {"file_name": "page.png", "question": "Why?", "answers": {"a": 1}}]  # fmt: skip
    (split / "metadata.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    summaries = run(tmp_path / "src", tmp_path / "out", skip_bad=True)
    assert summaries["train"].written == 3
    assert dict(summaries["train"].skipped) == {"bad question": 1, "bad answers": 1}
    rows = records(tmp_path / "out" / "train")
    # VQAv2's annotator entries become their answers; a blank answer is dropped.
    assert rows[0]["answers"] == ["Annual report", "annual report"]
    assert rows[2]["answers"] == ["3", "three"]  # a number answer becomes its text
    assert len({r["file_name"] for r in rows}) == 1
    skipped = (tmp_path / "out" / "skipped.jsonl").read_text()
    assert "metadata.jsonl:4" in skipped and "the question is empty" in skipped
    assert "the answers are dict, not a list of strings" in skipped


def test_a_table_without_the_columns_or_a_prompt_without_the_question(tmp_path: Path):
    (tmp_path / "src" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(
        {"image": [{"bytes": png(8), "path": None}], "question": ["Q?"]},
        features=image_features(question=datasets.Value("string")),
    ).to_parquet(str(tmp_path / "src" / "data" / "test-0.parquet"))
    with pytest.raises(InputError, match=r"no column answers or label or answer \(it has image"):
        run(tmp_path / "src", tmp_path / "out")
    with pytest.raises(UsageError, match=r"--prompt 'Read it.': a vqa record's prompt is its own"):
        run(tmp_path / "src", tmp_path / "out2", prompt="Read it.")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_question_ids_with_gaps_and_row_numbers_never_collide(tmp_path: Path):
    # A float column (an id missing, as pandas writes it) and a null id beside a real id 0.
    (tmp_path / "src" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(
        {"image": [{"bytes": png(i), "path": None} for i in range(3)],
         "question": ["A?", "B?", "C?"], "answers": [["1"], ["2"], [float("nan")]],
         "question_id": [10.0, None, 0.0]},
        features=image_features(question=datasets.Value("string"),
                                answers=datasets.Sequence(datasets.Value("float64")),
                                question_id=datasets.Value("float64")),
    ).to_parquet(str(tmp_path / "src" / "data" / "test-0.parquet"))  # fmt: skip
    summaries = run(tmp_path / "src", tmp_path / "out", skip_bad=True)
    rows = records(tmp_path / "out" / "test")
    assert [r["id"] for r in rows] == ["vqa/test/10", "vqa/test/row-000001"]
    assert rows[0]["answers"] == ["1.0"]  # a number answer becomes its text
    assert dict(summaries["test"].skipped) == {"bad answers": 1}  # NaN is no answer


def test_the_hubs_converted_layout_of_split_folders(tmp_path: Path):
    for split in ("validation", "test"):
        (tmp_path / "src" / split).mkdir(parents=True)
        docvqa(split).to_parquet(str(tmp_path / "src" / split / "0000.parquet"))
        # Split folders whose shards are named after the split too.
        (tmp_path / "named" / split).mkdir(parents=True)
        docvqa(split).to_parquet(str(tmp_path / "named" / split / f"{split}-00000.parquet"))
    summaries = run(tmp_path / "src", tmp_path / "out")
    assert set(summaries) == {"validation", "test"}
    assert set(run(tmp_path / "named", tmp_path / "out-named")) == {"validation", "test"}
    (tmp_path / "odd" / "a").mkdir(parents=True)
    (tmp_path / "odd" / "b").mkdir(parents=True)
    docvqa("x").to_parquet(str(tmp_path / "odd" / "a" / "0000.parquet"))
    docvqa("x").to_parquet(str(tmp_path / "odd" / "b" / "0000.parquet"))
    with pytest.raises(InputError, match=r"parquet shards of several folders \(a, b\)"):
        converter_class("vqa")(str(tmp_path / "odd"))


def test_damaged_or_wrong_files_are_one_file_error(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "paths" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"image": ["a.png"], "question": ["Q?"], "answers": [["a"]]}),
                   tmp_path / "paths" / "data" / "test-0.parquet")  # fmt: skip
    with pytest.raises(InputError, match=r"its image column is string, not images"):
        run(tmp_path / "paths", tmp_path / "out", skip_bad=True)
    # A save_to_disk folder whose Arrow file was damaged in its string offsets.
    table = datasets.Dataset.from_dict(
        {"image": [{"bytes": png(1), "path": None}] * 40, "question": ["What?"] * 40,
         "answers": [["x" * 30]] * 40},
        features=image_features(question=datasets.Value("string"),
                                answers=datasets.Sequence(datasets.Value("string"))),
    )  # fmt: skip
    table.save_to_disk(str(tmp_path / "saved"))
    [arrow] = (tmp_path / "saved").glob("*.arrow")
    data = bytearray(arrow.read_bytes())
    marker = data.rfind(b"x" * 30)
    offsets = data.rfind((30).to_bytes(4, "little"), 0, marker)  # an answers string offset
    data[offsets : offsets + 4] = (10**6).to_bytes(4, "little")
    arrow.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"cannot read this Arrow file"):
        run(tmp_path / "saved", tmp_path / "out2", skip_bad=True)


def test_target_format_is_for_json_targets(tmp_path: Path):
    (tmp_path / "src" / "data").mkdir(parents=True)
    docvqa("val").to_parquet(str(tmp_path / "src" / "data" / "val-0.parquet"))
    with pytest.raises(UsageError, match=r"--target-format donut: it writes structured"):
        run(tmp_path / "src", tmp_path / "out", target_format="donut")
