"""Shared fixtures: paths to the bundled and shared real data, and small JSONL writers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# Tests never use the network: a hub id reads only the local cache (set before huggingface_hub
# is imported, which reads it once). The tests of the network probe unset it in a subprocess.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_CORD = REPO / "examples" / "cord-v2-sample"
SHARED_DATA = REPO.parent / "shared" / "data"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


@pytest.fixture
def refs_and_preds(tmp_path: Path):
    """A three-sample OCR reference file and a matching predictions file."""
    refs = write_jsonl(
        tmp_path / "refs.jsonl",
        [
            {"id": "a", "target": "the cat sat", "task": "ocr", "meta": {"font": "serif"}},
            {"id": "b", "target": "on the mat", "task": "ocr", "meta": {"font": "sans"}},
            {"id": "c", "target": "Grüße, 東京!", "task": "ocr", "meta": {"font": "sans"}},
        ],
    )
    preds = write_jsonl(
        tmp_path / "preds.jsonl",
        [
            {"id": "c", "prediction": "Grüsse 東京"},
            {"id": "a", "prediction": "the cat sat"},
            {"id": "b", "prediction": "on a mat"},
        ],
    )
    return preds, refs


CORD_FIXTURE = REPO / "tests" / "data" / "cord_v2"


@pytest.fixture(scope="session")
def cord_imagefolder(tmp_path_factory) -> Path:
    """The nine real CORD v2 receipts in the Donut/imagefolder layout, as on ../shared/data.

    Ground truth from tests/data/cord_v2 (a verbatim copy), images from examples/ (the same
    bytes), put together once per session.
    """
    import shutil

    root = tmp_path_factory.mktemp("cord") / "cord_v2"
    (root / "test").mkdir(parents=True)
    shutil.copyfile(CORD_FIXTURE / "test" / "metadata.jsonl", root / "test" / "metadata.jsonl")
    for image in sorted((EXAMPLE_CORD / "images").glob("*.png")):
        shutil.copyfile(image, root / "test" / image.name)
    return root


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread for a module of model tests: with two busy cores, oversubscription
    slows tiny models 10-50x."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
