"""The predictions journal: appends survive kills, resumes refuse other configurations."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vlmkit.errors import InputError, UsageError
from vlmkit.infer.journal import Journal, partial_path, sidecar_path
from vlmkit.infer.run import pending
from vlmkit.infer.selection import Sample

KEY = {"model": "m", "prompt": None}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _record(lines: list[dict]) -> dict:
    return {"key": KEY, "written": len(lines)}


def _journal_with(tmp_path: Path, rows: list[dict], *, fresh: bool = False) -> Journal:
    journal = Journal(tmp_path / "preds.jsonl")
    journal.open(KEY, fresh=fresh)
    journal.append(rows)
    journal.close()
    return journal


def test_sidecar_and_partial_names():
    assert sidecar_path(Path("out/preds.jsonl")) == Path("out/preds.run.json")
    assert partial_path(Path("a/p.jsonl")) == Path("a/p.jsonl.partial")


def test_the_partial_file_carries_its_configuration(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": "x"}])
    assert journal.existing_key() == KEY
    assert list(journal.load(overwrite=False)) == ["a"]


def test_a_torn_last_line_is_cut_and_the_rest_kept(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": "x"}])
    with open(journal.partial, "ab") as handle:
        handle.write(b'{"id": "b", "predic')  # what a SIGKILL mid-write leaves
    assert list(journal.load(overwrite=False)) == ["a"]
    assert journal.partial.read_bytes().endswith(b'{"id": "a", "prediction": "x"}\n')


def test_a_later_line_supersedes_and_finish_restores_dataset_order(tmp_path):
    journal = _journal_with(
        tmp_path,
        [
            {"id": "b", "prediction": "", "error": "unreadable"},
            {"id": "a", "prediction": "A"},
            {"id": "b", "prediction": "B"},  # --retry-errors answered b again
        ],
    )
    journal.finish(["a", "b"], _record)
    assert not journal.partial.exists()
    assert _lines(journal.out) == [{"id": "a", "prediction": "A"}, {"id": "b", "prediction": "B"}]
    record = journal.previous_config()
    assert record["written"] == 2 and len(record["out_sha256"]) == 64
    assert journal.existing_key() == KEY  # the sidecar describes this OUT


def test_an_out_its_sidecar_does_not_describe_is_not_resumed(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": "x"}])
    journal.finish(["a"], _record)
    with open(journal.out, "a") as handle:
        handle.write('{"id": "z", "prediction": "edited by hand"}\n')
    with pytest.raises(UsageError, match=r"preds\.run\.json does not describe it"):
        journal.check_resumable(KEY, overwrite=False)
    journal.sidecar.unlink()
    with pytest.raises(UsageError, match="does not describe it"):
        journal.check_resumable(KEY, overwrite=False)


def test_a_broken_line_in_the_middle_names_the_file_and_line(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": ""}])
    with open(journal.partial, "a") as handle:
        handle.write('not json\n{"id": "c"}\n')
    with pytest.raises(InputError, match=r"preds\.jsonl\.partial:3: not a predictions line"):
        journal.load(overwrite=False)


def test_a_partial_file_without_a_header_is_not_resumed(tmp_path):
    journal = Journal(tmp_path / "preds.jsonl")
    journal.partial.write_text('{"id": "a", "prediction": "x"}\n', "utf-8")
    with pytest.raises(UsageError, match="not written by this version"):
        journal.check_resumable(KEY, overwrite=False)


def test_resume_is_refused_under_another_configuration(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": "x"}])
    journal.check_resumable(KEY, overwrite=False)
    with pytest.raises(UsageError, match=r"prompt: None -> 'Read it'") as caught:
        journal.check_resumable({"model": "m", "prompt": "Read it"}, overwrite=False)
    assert "--overwrite" in caught.value.hint
    journal.check_resumable({"model": "other"}, overwrite=True)
    # A key part the old key lacks (known only after loading) is not compared here.
    journal.check_resumable({"model": "m", "dtype_loaded": "float32"}, overwrite=False)


def test_overwrite_starts_empty_and_keeps_the_finished_out_until_done(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": "x"}])
    journal.finish(["a"], _record)
    _journal_with(tmp_path, [{"id": "a", "prediction": "half"}])  # an unfinished later run
    assert journal.load(overwrite=True) == {}
    assert not journal.partial.exists()
    journal.open({"model": "new"}, fresh=True)
    journal.append([{"id": "b", "prediction": "new"}])
    journal.close()
    assert _lines(journal.out) == [{"id": "a", "prediction": "x"}]  # OUT stays till done
    assert list(journal.load(overwrite=False)) == ["b"]  # never OUT's lines
    journal.finish(["b"], _record)
    assert _lines(journal.out) == [{"id": "b", "prediction": "new"}]


def test_extending_a_finished_file_keeps_it_until_the_extension_is_whole(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": "x"}])
    journal.finish(["a"], _record)
    assert journal.load(overwrite=False) == {"a": {"id": "a", "prediction": "x"}}
    journal.open(KEY, fresh=False)
    journal.append([{"id": "b", "prediction": "y"}])
    assert _lines(journal.out) == [{"id": "a", "prediction": "x"}]  # still the finished target
    journal.finish(["a", "b"], _record)
    assert [line["id"] for line in _lines(journal.out)] == ["a", "b"]


def test_finish_keeps_only_the_ids_of_this_run(tmp_path):
    journal = _journal_with(tmp_path, [{"id": i, "prediction": i} for i in "abcd"])
    journal.finish(["a", "b"], _record)  # a smaller --limit than the file's run
    assert [line["id"] for line in _lines(journal.out)] == ["a", "b"]


def test_an_empty_run_finishes_as_an_empty_file(tmp_path):
    journal = Journal(tmp_path / "preds.jsonl")
    journal.finish([], _record)  # a shard with no samples: still a valid part to concatenate
    assert journal.out.read_bytes() == b""


def test_two_runs_cannot_write_one_file(tmp_path):
    first = Journal(tmp_path / "preds.jsonl")
    first.acquire()
    try:
        with pytest.raises(UsageError, match="another vlmkit infer is writing"):
            Journal(tmp_path / "preds.jsonl").acquire()
    finally:
        first.release()
    assert not (tmp_path / ".preds.jsonl.lock").exists()
    Journal(tmp_path / "preds.jsonl").acquire()  # free again


@pytest.mark.parametrize(
    ("name", "message"),
    [("folder.jsonl", "is a folder"), ("preds.txt", "a predictions file is JSONL"),
     (".", "a predictions file is JSONL")],
)  # fmt: skip
def test_output_that_cannot_be_a_predictions_file_is_refused(tmp_path, name, message):
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(UsageError, match=message):
        Journal(tmp_path / name).check()


def test_a_device_is_never_replaced(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="is not a regular file"):
        Journal(fifo).check()


def test_pending_skips_done_and_retries_only_errors_when_asked():
    samples = [Sample(i, Path(f"{i}.png"), "q") for i in ("a", "b", "c")]
    done = {"a": {"id": "a", "prediction": "x"}, "b": {"id": "b", "prediction": "", "error": "e"}}
    assert [s.id for s in pending(samples, done, retry_errors=False)] == ["c"]
    assert [s.id for s in pending(samples, done, retry_errors=True)] == ["b", "c"]


def test_a_stale_partial_of_an_interrupted_overwrite_is_named_as_the_cause(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": "x"}])
    journal.finish(["a"], _record)
    # `--overwrite` with another prompt, killed after its first batch.
    journal.open({"model": "m", "prompt": "Read it"}, fresh=True)
    journal.append([{"id": "a", "prediction": "y"}])
    journal.close()
    with pytest.raises(UsageError) as caught:
        journal.check_resumable(KEY, overwrite=False)  # the original command again
    error = caught.value
    assert "preds.jsonl.partial, left by an interrupted run" in str(error)
    assert "prompt: 'Read it' -> None" in str(error) and "itself is untouched" in str(error)
    assert "rerun that run's command" in error.hint and f"delete {journal.partial}" in error.hint
    journal.partial.unlink()  # what the hint offers: OUT is resumable again
    journal.check_resumable(KEY, overwrite=False)


def test_a_sidecar_name_taken_by_another_file_is_never_written_over(tmp_path):
    journal = Journal(tmp_path / "mine.jsonl")
    journal.sidecar.write_text('{"precious": true}\n')
    for overwrite in (False, True):
        with pytest.raises(UsageError, match=r"mine\.run\.json exists and vlmkit infer did not"):
            journal.check_owned(overwrite=overwrite)
    journal.sidecar.write_text("not even json")
    with pytest.raises(UsageError, match="did not write it"):
        journal.check_owned(overwrite=False)


def test_overwrite_replaces_only_predictions_infer_wrote(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": "x"}])
    journal.finish(["a"], _record)
    journal.check_owned(overwrite=True)  # its own finished file: replaceable
    journal.out.write_text('{"id": "a", "cer": 0.5}\n')  # say, score --per-sample's rows
    with pytest.raises(UsageError, match="not a predictions file this vlmkit infer wrote") as e:
        journal.check_owned(overwrite=True)
    assert "--overwrite" not in e.value.hint
    with pytest.raises(UsageError) as e:
        journal.check_resumable(KEY, overwrite=False)
    assert "--overwrite" not in e.value.hint


def test_a_partial_name_taken_by_another_file_is_never_deleted(tmp_path):
    journal = Journal(tmp_path / "d.jsonl")
    journal.partial.write_text("my notes\n")
    for overwrite in (False, True):
        with pytest.raises(UsageError, match=r"d\.jsonl\.partial exists and vlmkit infer did not"):
            journal.check_owned(overwrite=overwrite)
    assert journal.partial.read_text() == "my notes\n"


def test_a_run_stopped_while_finishing_still_owns_its_out(tmp_path):
    journal = _journal_with(tmp_path, [{"id": "a", "prediction": "x"}])
    journal.finish(["a"], _record)
    # A later --overwrite run stopped between its record and OUT: new record, old OUT, and
    # its partial file still there.
    journal.open({"model": "new"}, fresh=True)
    journal.append([{"id": "a", "prediction": "y"}])
    journal.close()
    journal.write_sidecar({"key": {"model": "new"}, "out_sha256": "0" * 64})
    journal.check_owned(overwrite=True)
