"""The learning check, for every family: an untuned tiny model does not know four answers; after
LoRA (or QLoRA) through `vlmkit finetune`, `vlmkit infer --adapter` alone gives all four.

It is what proves the labels, prompts, adapter saving and loading of a family line up: a label
off by one token, a prompt formatted differently at inference, or an adapter that loads onto
the wrong modules each keep exact match below 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_helpers import memory_dataset, read_jsonl, vlmkit

from vlmkit.models.families import FAMILIES

pytestmark = pytest.mark.slow

STEPS = "60"
MAX_NEW_TOKENS = "12"


@pytest.fixture(scope="module")
def memory(tmp_path_factory, torch_one_thread) -> Path:
    return memory_dataset(tmp_path_factory.mktemp("learning") / "memory")


def _exact_match(preds: Path, data: Path) -> float:
    result = vlmkit("score", preds, data, "-m", "exact_match", "--json", "-")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["metrics"]["exact_match"]


@pytest.mark.parametrize(
    ("family", "method"),
    [*((family, "lora") for family in FAMILIES), ("paligemma", "qlora"), ("qwen2-vl", "qlora")],
)
def test_every_family_learns(memory, tmp_path, family, method):
    model = tmp_path / "model"
    assert vlmkit("tiny-model", model, "--family", family).exit_code == 0
    untuned = tmp_path / "untuned.jsonl"
    result = vlmkit("infer", memory, "--model", model, "-o", untuned,
                    "--max-new-tokens", MAX_NEW_TOKENS)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _exact_match(untuned, memory) < 1.0
    adapter = tmp_path / "adapter"
    result = vlmkit("finetune", memory, "--model", model, "-o", adapter, "--method", method,
                    "--max-steps", STEPS, "--lr", "1e-2")  # fmt: skip
    assert result.exit_code == 0, result.output
    losses = [row["loss"] for row in read_jsonl(adapter / "log.jsonl") if "loss" in row]
    assert losses[-1] < losses[0] / 2, losses
    tuned = tmp_path / "tuned.jsonl"
    four_bit = ["--load-in-4bit"] if method == "qlora" else []
    result = vlmkit("infer", memory, "--adapter", adapter, "-o", tuned,
                    "--max-new-tokens", MAX_NEW_TOKENS, *four_bit)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _exact_match(tuned, memory) == 1.0, read_jsonl(tuned)
