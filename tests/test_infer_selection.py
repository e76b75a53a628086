"""Which samples a run answers: splits, --limit, --shard, --prompt, and the errors before work."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_jsonl
from hypothesis import given
from hypothesis import strategies as st

from vlmkit.errors import InputError, UsageError
from vlmkit.infer.selection import select_samples
from vlmkit.infer.settings import GenerationSettings, RunOptions, Shard


def _dataset(folder: Path, n: int = 5, prompt: str = "Which letter?") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"s{i}", "file_name": f"{i}.png", "task": "letter", "prompt": prompt, "target": "a"}
        for i in range(n)
    ]
    write_jsonl(folder / "metadata.jsonl", rows)
    return folder


def test_limit_applies_before_the_shard_and_shards_partition_the_run(tmp_path):
    data = _dataset(tmp_path / "d", 10)
    whole = select_samples(data, None, RunOptions(limit=7)).samples
    parts = [
        select_samples(data, None, RunOptions(limit=7, shard=Shard(k, 3))).samples
        for k in (1, 2, 3)
    ]
    assert sorted(s.id for part in parts for s in part) == sorted(s.id for s in whole)
    assert [s.id for s in parts[1]] == ["s1", "s4"]


@given(count=st.integers(1, 9), size=st.integers(0, 40))
def test_shards_never_overlap_and_miss_nothing(count, size):
    owners = [[k for k in range(1, count + 1) if Shard(k, count).holds(p)] for p in range(size)]
    assert all(len(o) == 1 for o in owners)


def test_prompt_override_and_paths(tmp_path):
    data = _dataset(tmp_path / "d", 2)
    selection = select_samples(data, None, RunOptions(prompt="Read it."))
    assert {s.prompt for s in selection.samples} == {"Read it."}
    assert selection.samples[0].image == data / "0.png"
    assert len(selection.metadata_sha256) == 64


def test_splits(tmp_path):
    _dataset(tmp_path / "d" / "train")
    _dataset(tmp_path / "d" / "test", 3)
    assert len(select_samples(tmp_path / "d", "test", RunOptions()).samples) == 3
    with pytest.raises(UsageError, match=r"holds splits \(test, train\)") as caught:
        select_samples(tmp_path / "d", None, RunOptions())
    assert "--split" in caught.value.hint
    with pytest.raises(UsageError, match="--split 'dev'") as caught:
        select_samples(tmp_path / "d", "dev", RunOptions())
    assert "test, train" in caught.value.hint


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "has no metadata.jsonl"),
        (lambda d: d.write_text("x"), "is not a folder"),
        (lambda d: _dataset(d, 2, prompt=""), "2 samples have no prompt"),
        (
            lambda d: (
                d.mkdir(),
                (d / "metadata.jsonl").write_text(
                    '{"id": 1, "file_name": "a.png", "target": "a", "prompt": "q"}\n' * 2
                ),
            ),
            "id '1' appears twice",
        ),
        (lambda d: (d.mkdir(), (d / "metadata.jsonl").write_text("")), "has no samples"),
    ],
)
def test_bad_datasets_fail_before_any_work(tmp_path, setup, message):
    setup(tmp_path / "d")
    with pytest.raises((InputError, UsageError), match=message):
        select_samples(tmp_path / "d", None, RunOptions())


@pytest.mark.parametrize(
    ("make", "flag"),
    [
        (lambda: Shard.parse("3"), "--shard '3' is not K/N"),
        (lambda: Shard.parse("0/2"), "K must be between 1 and N"),
        (lambda: Shard.parse("3/2"), "K must be between 1 and N"),
        (lambda: RunOptions(batch_size=0), "--batch-size"),
        (lambda: RunOptions(limit=0), "--limit"),
        (lambda: RunOptions(prompt="  "), "--prompt is empty"),
        (lambda: RunOptions(retry_errors=True, overwrite=True), "contradict"),
        (lambda: GenerationSettings(max_new_tokens=0), "--max-new-tokens"),
        (lambda: GenerationSettings(num_beams=0), "--num-beams"),
        (lambda: GenerationSettings(temperature=0.5), "only apply when sampling"),
        (lambda: GenerationSettings(do_sample=True, temperature=0), "--temperature"),
        (lambda: GenerationSettings(do_sample=True, top_p=1.5), "--top-p"),
    ],
)
def test_settings_errors_name_the_flag(make, flag):
    with pytest.raises(UsageError, match=flag):
        make()


def test_shard_parses_with_spaces():
    assert Shard.parse(" 2 / 4 ") == Shard(2, 4)
    assert str(Shard(2, 4)) == "2/4"
