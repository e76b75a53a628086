"""Every writing command killed with SIGKILL at seeded points: nothing a user had is lost.

After each kill: the earlier output is byte-identical (or, where the command had finished, the
new one is whole), or the resumed result equals an uninterrupted run; no process of the run is
left; and no half-written file carries a final name. A SIGKILL runs no cleanup code at all, so
this is what a power cut or the OOM killer leaves.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from model_helpers import REPO, letters_dataset, memory_dataset, predictions, read_jsonl, vlmkit

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

SEEDS = (11, 12)


def _tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` (or `path` itself) by relative name, with its bytes."""
    if path.is_file():
        return {".": path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _session_processes(session: int) -> list[int]:
    """Processes still alive (not zombies) in the session a killed run was started in."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def kill_at(args: list[str | Path], seed: int, *, once: Callable[[], bool], spread: float) -> bool:
    """Run `vlmkit ARGS` in a session of its own; when `once()` holds, wait a seeded random
    0..`spread` seconds and SIGKILL it. True if it was killed (False: it finished first).
    Then no process of the run may be left."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmkit", *map(str, args)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while process.poll() is None and not once() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0, spread))
    killed = process.poll() is None
    if killed:
        process.kill()
    process.wait()
    _assert_all_gone(process.pid)
    return killed


def _assert_all_gone(session: int) -> None:
    """Every process of the run ends within seconds (workers and helpers need a moment)."""
    deadline = time.monotonic() + 10
    while _session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _session_processes(session) == [], "a process of the killed run is still running"


def _started(path: Path) -> Callable[[], bool]:
    return lambda: path.exists()


def _hidden_siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(f".{path.name}*"))


# --- folders built whole: synth, convert, tiny-model -------------------------------------------


def _synth(out: Path, seed: int, *more: str) -> list[str | Path]:
    return ["synth", "circled-letter", "--n", "300", "--image-size", "128", "--max-length",
            "6", "--seed", str(seed), "-o", out, *more]  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_synth_with_workers(tmp_path: Path, seed: int):
    out, whole = tmp_path / "letters", tmp_path / "whole"
    assert vlmkit(*_synth(out, 1, "--workers", "1")).exit_code == 0
    assert vlmkit(*_synth(whole, 2, "--workers", "1")).exit_code == 0
    before, after = _tree(out), _tree(whole)
    partial = lambda: bool(_hidden_siblings(out))  # noqa: E731 (the run has started writing)
    kill_at(_synth(out, 2, "--workers", "2", "--overwrite"), seed, once=partial, spread=1.0)
    assert _tree(out) in (before, after)
    # The next run clears what the killed one left beside OUT, and writes OUT whole.
    assert vlmkit(*_synth(out, 2, "--workers", "1", "--overwrite")).exit_code == 0
    assert _tree(out) == after and _hidden_siblings(out) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_convert(cord_imagefolder: Path, tmp_path: Path, seed: int):
    out, whole = tmp_path / "cord", tmp_path / "whole"
    assert vlmkit("convert", "cord-v2", cord_imagefolder, "-o", out).exit_code == 0
    args = ["convert", "cord-v2", cord_imagefolder, "--max-side", "64"]
    assert vlmkit(*args, "-o", whole).exit_code == 0
    before, after = _tree(out), _tree(whole)
    kill_at([*args, "-o", out, "--overwrite"], seed, once=lambda: True, spread=2.0)
    assert _tree(out) in (before, after)


def test_tiny_model(tmp_path: Path):
    out = tmp_path / "model"
    assert vlmkit("tiny-model", out, "--family", "paligemma").exit_code == 0
    before = _tree(out)
    args = ["tiny-model", out, "--family", "gemma3", "--overwrite"]
    for seed in SEEDS:
        kill_at(args, seed, once=lambda: True, spread=6.0)
        assert (
            _tree(out) == before
            or json.loads((out / "tiny-model.json").read_text())["family"] == "gemma3"
        )


# --- single files: score --json, report ---------------------------------------------------------


@pytest.fixture
def scored(refs_and_preds, tmp_path: Path):
    preds, refs = refs_and_preds
    scores = tmp_path / "scores.json"
    assert vlmkit("score", preds, refs, "--json", scores).exit_code == 0
    return preds, refs, scores


@pytest.mark.parametrize("seed", SEEDS)
def test_score_json_and_report(scored, tmp_path: Path, seed: int):
    preds, refs, scores = scored
    report = tmp_path / "report.html"
    assert vlmkit("report", scores, "-o", report).exit_code == 0
    old_scores, old_report = scores.read_bytes(), report.read_bytes()
    args = ["score", preds, refs, "-m", "chrf,ter", "--json", scores]
    kill_at(args, seed, once=lambda: True, spread=2.5)
    if scores.read_bytes() != old_scores:
        assert set(json.loads(scores.read_bytes())["metrics"]) == {"chrf", "ter"}
    kill_at(["report", scores, "-o", report], seed, once=lambda: True, spread=2.5)
    assert report.read_bytes() == old_report or report.read_text().rstrip().endswith("</html>")
    assert not [p.name for p in tmp_path.glob(".*.tmp")]  # temporary files are hidden and gone


# --- infer: resumed runs equal uninterrupted ones ----------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("faults")
    assert vlmkit("tiny-model", root / "model", "--family", "paligemma").exit_code == 0
    return root / "model", letters_dataset(root / "letters", n=24), memory_dataset(root / "mem")


@pytest.mark.parametrize(("seed", "four_bit"), [(SEEDS[0], []), (SEEDS[1], ["--load-in-4bit"])])
def test_infer_resumes_to_the_uninterrupted_file(models, tmp_path: Path, seed, four_bit):
    model, letters, _ = models
    args = ["infer", letters, "--model", model, "--max-new-tokens", "6", "--batch-size", "1",
            *four_bit]  # fmt: skip
    whole, out = tmp_path / "whole.jsonl", tmp_path / "preds.jsonl"
    assert vlmkit(*args, "-o", whole).exit_code == 0
    partial = Path(f"{out}.partial")
    kill_at([*args, "-o", out], seed, once=_started(partial), spread=1.0)
    assert not out.exists() or predictions(out) == predictions(whole)
    resumed = vlmkit(*args, "-o", out)
    assert resumed.exit_code == 0, resumed.output
    assert predictions(out) == predictions(whole)  # lines differ only in their timings


# --- finetune: the old adapter stays whole; a resumed run equals an uninterrupted one ----------


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    left, right = _weights(a), _weights(b)
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def _finetune(data: Path, model: Path, *more: str | Path) -> list[str | Path]:
    return ["finetune", data, "--model", model, "--max-steps", "30", "--save-every", "5",
            "--logging-steps", "1", *more]  # fmt: skip


@pytest.mark.parametrize(("seed", "method"), [(SEEDS[0], "lora"), (SEEDS[1], "qlora")])
def test_finetune_resumes_to_the_uninterrupted_adapter(models, tmp_path, seed, method):
    model, _, data = models
    args = _finetune(data, model, "--method", method)
    whole, out = tmp_path / "whole", tmp_path / "run"
    assert vlmkit(*args, "-o", whole).exit_code == 0
    first_checkpoint = _started(out / "checkpoints" / "checkpoint-5")
    if not kill_at([*args, "-o", out], seed, once=first_checkpoint, spread=0.8):
        pytest.fail("training ended before it could be killed")
    assert not (out / "vlmkit-adapter.json").exists()  # not passed off as finished
    resumed = vlmkit(*args, "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert _same_weights(out, whole)
    steps = [row["step"] for row in read_jsonl(out / "log.jsonl") if "loss" in row]
    assert steps == list(range(1, 31))  # no step twice, none missing
    manifest, uninterrupted = (
        json.loads((folder / "vlmkit-adapter.json").read_text())["training"]
        for folder in (out, whole)
    )
    assert manifest["train_loss"] == uninterrupted["train_loss"]
    final = [row for row in read_jsonl(out / "log.jsonl") if "train_loss" in row]
    assert [row["train_loss"] for row in final] == [manifest["train_loss"]]
    assert manifest["train_loss_covers"].startswith("mean training loss over steps 1-30")


@pytest.mark.parametrize("seed", SEEDS)
def test_finetune_overwrite_keeps_the_old_adapter_until_the_new_one_is_whole(
    models, tmp_path, seed
):
    model, _, data = models
    out, whole = tmp_path / "run", tmp_path / "whole"
    assert vlmkit(*_finetune(data, model, "--max-steps", "5"), "-o", out).exit_code == 0
    args = _finetune(data, model, "--lr", "1e-3", "--merge")
    assert vlmkit(*args, "-o", whole).exit_code == 0
    before = _tree(out)
    partial = tmp_path / ".run.partial"
    kill_at([*args, "-o", out, "--overwrite"], seed, once=_started(partial), spread=3.0)
    if _tree(out) != before:  # it finished: then OUT is the new run, whole
        assert _same_weights(out, whole) and (out / "merged" / "model.safetensors").is_file()
    # Rerun: the killed run's partial folder is resumed (or cleared), OUT replaced only at the end.
    again = vlmkit(*args, "-o", out, "--resume" if partial.exists() else "--overwrite")
    assert again.exit_code == 0, again.output
    assert _same_weights(out, whole) and (out / "merged" / "model.safetensors").is_file()
    assert not partial.exists() and not (tmp_path / ".run.old").exists()
    assert vlmkit("infer", data, "--adapter", out, "-o", tmp_path / "p.jsonl").exit_code == 0


def test_synth_workers_end_with_their_parent_and_ctrl_c_says_what_was_kept(tmp_path: Path):
    out = tmp_path / "letters"
    args = _synth(out, 3, "--workers", "2", "--n", "3000")
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmkit", *map(str, args)], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _hidden_siblings(out) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # the workers are drawing by now
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"Interrupted: nothing was written to {out}." in stderr
    assert not out.exists()
    _assert_all_gone(process.pid)


def test_a_checkpoint_cut_short_by_a_kill_is_never_resumed_from(tmp_path: Path):
    from vlmkit.finetune.output import drop_unfinished_checkpoints, last_checkpoint

    checkpoints = tmp_path / "checkpoints"
    for step, state in ((5, "{}"), (10, "{}"), (15, '{"global_st'), (20, None)):
        (checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        (checkpoints / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"w")
        if state is not None:  # the trainer writes trainer_state.json last
            (checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert last_checkpoint(tmp_path) == checkpoints / "checkpoint-10"
    assert drop_unfinished_checkpoints(tmp_path) == checkpoints / "checkpoint-10"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-10", "checkpoint-5"]


def _interrupt(args: list[str | Path], once: Callable[[], bool]) -> tuple[int, str]:
    """Run `vlmkit ARGS`, press Ctrl-C (SIGINT) once `once()` holds; its exit status, stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmkit", *map(str, args)], cwd=REPO, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while process.poll() is None and not once() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    _assert_all_gone(process.pid)
    return process.returncode, stderr


def test_ctrl_c_of_finetune_says_how_to_go_on(models, tmp_path):
    model, _, data = models
    out = tmp_path / "run"
    args = _finetune(data, model, "--max-steps", "400", "-o", out)
    saved = out / "checkpoints" / "checkpoint-5" / "trainer_state.json"  # written last
    code, stderr = _interrupt(args, _started(saved))
    assert code == 130 and "add --resume to continue from it" in stderr, stderr
    assert vlmkit(*args, "--resume", "--max-steps", "6").exit_code == 0


def test_ctrl_c_of_infer_while_loading_stops_at_once(models, tmp_path):
    model, letters, _ = models
    out = tmp_path / "p.jsonl"
    # The run holds OUT's lock from its checks on: then it is loading the model.
    code, stderr = _interrupt(["infer", letters, "--model", model, "-o", out],
                              _started(tmp_path / ".p.jsonl.lock"))  # fmt: skip
    assert code == 130 and "Interrupted" in stderr and "Traceback" not in stderr, repr(stderr)
    assert not out.exists()


@pytest.mark.parametrize("seed", SEEDS)
def test_pairs(models, tmp_path: Path, seed: int):
    _, letters, _ = models
    first = tmp_path / "first.jsonl"
    write = [{"id": r["id"], "prediction": "zz"} for r in read_jsonl(letters / "metadata.jsonl")]
    first.write_text("".join(json.dumps(row) + "\n" for row in write))
    out, whole = tmp_path / "pairs", tmp_path / "whole"
    assert vlmkit("pairs", letters, first, "-o", out).exit_code == 0
    second = tmp_path / "second.jsonl"
    second.write_text(first.read_text().replace('"zz"', '"yy"'))
    assert vlmkit("pairs", letters, first, second, "-o", whole,
                  "--max-pairs-per-sample", "2").exit_code == 0  # fmt: skip
    before, after = _tree(out), _tree(whole)
    args = ["pairs", letters, first, second, "-o", out, "--max-pairs-per-sample", "2",
            "--overwrite"]  # fmt: skip
    kill_at(args, seed, once=lambda: True, spread=2.0)
    assert _tree(out) in (before, after)
