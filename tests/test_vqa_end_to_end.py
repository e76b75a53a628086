"""A VQA set from the hub's layout through the whole loop: convert vqa, finetune (on each
question's target, evaluated by generation with ANLS), infer --adapter, score with the vqa task's
metrics against every acceptable answer."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from model_helpers import read_jsonl, vlmkit
from PIL import Image, ImageDraw

pytestmark = pytest.mark.slow

QUESTIONS = [
    ("What is the total?", ["12.50", "$12.50"]),
    ("Who signed it?", ["ana", "Ana"]),
    ("Which year?", ["1993", "1993", "93"]),
    ("How many pages?", ["4", "four"]),
]


def _page(i: int) -> bytes:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle((10 * i, 6, 10 * i + 24, 44), fill=(30, 60 * i, 200))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def converted(tmp_path_factory, torch_one_thread) -> tuple[Path, Path]:
    datasets = pytest.importorskip("datasets")
    root = tmp_path_factory.mktemp("vqa")
    table = datasets.Dataset.from_dict(
        {"questionId": [10, 11, 12, 13],
         "question": [q for q, _ in QUESTIONS],
         "image": [{"bytes": _page(i), "path": None} for i in range(4)],
         "answers": [a for _, a in QUESTIONS]},
        features=datasets.Features({
            "questionId": datasets.Value("int64"), "question": datasets.Value("string"),
            "image": datasets.Image(),
            "answers": datasets.Sequence(datasets.Value("string"))}),
    )  # fmt: skip
    (root / "hub" / "data").mkdir(parents=True)
    table.to_parquet(str(root / "hub" / "data" / "validation-00000-of-00001.parquet"))
    result = vlmkit("convert", "vqa", root / "hub", "-o", root / "docvqa")
    assert result.exit_code == 0, result.output
    assert vlmkit("tiny-model", root / "model", "--family", "idefics3").exit_code == 0
    return root / "docvqa" / "validation", root / "model"


def test_convert_finetune_infer_score(converted, tmp_path: Path):
    data, model = converted
    records = read_jsonl(data / "metadata.jsonl")
    assert [r["target"] for r in records] == ["12.50", "ana", "1993", "4"]
    out = tmp_path / "adapter"
    result = vlmkit("finetune", data, "--model", model, "-o", out, "--max-steps", "60",
                    "--lr", "1e-2", "--eval", data, "--eval-every", "30",
                    "--eval-max-new-tokens", "8", "--best-metric", "anls")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "vlmkit-adapter.json").read_text())
    assert manifest["best"]["metric"] == "anls" and manifest["final_metrics"]["anls"] == 1.0
    preds = tmp_path / "preds.jsonl"
    result = vlmkit("infer", data, "--adapter", out, "-o", preds, "--max-new-tokens", "8")
    assert result.exit_code == 0, result.output
    scored = vlmkit("score", preds, data, "--json", "-", "--by", "id")
    assert scored.exit_code == 0, scored.output
    summary = json.loads(scored.stdout)
    assert summary["task"] == "vqa"
    assert summary["metrics"]["anls"] == 1.0 and summary["metrics"]["exact_match"] == 1.0
    assert summary["metrics"]["relaxed_accuracy"] == 1.0
