"""`vlmkit sweep` on tiny models: it picks what learns, workers share a study, a killed sweep
resumes without training anything twice, the pruner stops what cannot win, and each mistake
stops it before any training."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from model_helpers import memory_dataset, read_jsonl, vlmkit, vlmkit_process

pytestmark = pytest.mark.slow

SPACE = """
model = "{model}"
train = "{data}"
eval = "{data}"
metric = "exact_match"
sampler = "grid"
pruner = "{pruner}"
pruner_startup_trials = 1

[settings]
max_steps = {steps}
eval_every = {every}
eval_max_new_tokens = 12
save_every = 20

[search]
lr = {lrs}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, torch_one_thread):
    root = tmp_path_factory.mktemp("sweep")
    assert vlmkit("tiny-model", root / "idefics3", "--family", "idefics3").exit_code == 0
    return root / "idefics3", memory_dataset(root / "memory")


def _space(folder: Path, setup, *, lrs="[1e-7, 1e-2]", steps=60, every=30, pruner="none"):
    model, data = setup
    path = folder / "space.toml"
    path.write_text(SPACE.format(model=model, data=data, lrs=lrs, steps=steps, every=every,
                                 pruner=pruner), "utf-8")  # fmt: skip
    return path


def _exact_match(preds: Path, data: Path) -> float:
    result = vlmkit("score", preds, data, "-m", "exact_match", "--json", "-")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["metrics"]["exact_match"]


def test_a_grid_picks_the_rate_that_learns_and_best_is_its_adapter(setup, tmp_path):
    space, out = _space(tmp_path, setup), tmp_path / "sweep"
    result = vlmkit("sweep", space, "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "trials.jsonl")
    assert sorted(row["params"]["lr"] for row in rows) == [1e-7, 1e-2]
    assert all(row["state"] == "complete" and row["device"] == "cpu" for row in rows)
    learner = next(row for row in rows if row["params"]["lr"] == 1e-2)
    assert learner["value"] == 1.0 and [s for s, _ in learner["evaluations"]] == [30, 60]
    assert "Best: trial" in result.stdout and "lr=0.01" in result.stdout
    marker = json.loads((out / "best" / "vlmkit-sweep-trial.json").read_text())
    assert marker["trial"] == learner["number"]
    # Each trial is a whole finetune run: its adapter, manifest and log.
    manifest = json.loads((out / learner["folder"] / "vlmkit-adapter.json").read_text())
    assert manifest["settings"]["lr"] == 1e-2 and manifest["best"]["metric"] == "exact_match"
    _, data = setup
    preds = tmp_path / "preds.jsonl"
    result = vlmkit("infer", data, "--adapter", out / "best", "-o", preds,
                    "--max-new-tokens", "12")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _exact_match(preds, data) == 1.0
    # A finished grid run again does nothing.
    journal = (out / "study.journal").read_bytes()
    result = vlmkit("sweep", space, "-o", out)
    assert result.exit_code == 0, result.output
    assert "2 of 2 trials are finished: nothing to run" in result.stderr
    assert (out / "study.journal").read_bytes() == journal
    assert json.loads((out / "importances.json").read_text())["importances"] == {"lr": 1.0}
    # The sweep drawn: ranking, the metric by lr, importances, the best trials' curves.
    page = tmp_path / "sweep.html"
    result = vlmkit("report", out, "-o", page)
    assert result.exit_code == 0, result.output
    html = page.read_text()
    for part in ("Trials, best first", "exact_match by lr", "Parameter importance",
                 "exact_match at each evaluation", "training loss"):  # fmt: skip
        assert part in html
    assert html.count("<svg") == 4
    result = vlmkit("report", out, "-o", out / "inside.html")
    assert result.exit_code == 2 and not (out / "inside.html").exists()


def test_two_workers_share_the_study_and_run_disjoint_trials(setup, tmp_path):
    space = _space(tmp_path, setup, lrs="[1e-7, 1e-6, 1e-3, 1e-2]", steps=20, every=20)
    out = tmp_path / "sweep"
    result = vlmkit("sweep", space, "-o", out, "--workers", "2")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "trials.jsonl")
    assert [row["state"] for row in rows] == ["complete"] * 4
    assert sorted(row["params"]["lr"] for row in rows) == [1e-7, 1e-6, 1e-3, 1e-2]
    assert len({row["folder"] for row in rows}) == 4
    assert len({row["worker"] for row in rows}) == 2  # both workers ran trials


def _wait_for(condition, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_killed_sweep_resumes_without_training_twice(setup, tmp_path):
    space = _space(tmp_path, setup, lrs="[1e-7, 3e-3, 1e-2]", steps=200, every=100)
    out = tmp_path / "sweep"
    process = vlmkit_process("sweep", space, "-o", out, start_new_session=True)

    def first_done_second_checkpointed() -> bool:
        from vlmkit.finetune.output import last_checkpoint

        assert process.poll() is None, process.communicate()
        rows = read_jsonl(out / "trials.jsonl") if (out / "trials.jsonl").is_file() else []
        second = [f for f in (out / "trials").glob("*") if rows and f.name not in rows[0]["folder"]]
        # A checkpoint saved whole (one cut mid-save is skipped by a resume).
        return len(rows) == 1 and any(last_checkpoint(folder) for folder in second)

    _wait_for(first_done_second_checkpointed)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    (done,) = read_jsonl(out / "trials.jsonl")
    adapter = out / done["folder"] / "adapter_model.safetensors"
    trained = adapter.stat().st_mtime_ns
    result = vlmkit("sweep", space, "-o", out)
    assert result.exit_code == 0, result.output
    assert "interrupted last time: queued again" in result.stderr
    assert "from its last checkpoint" in result.stderr
    assert adapter.stat().st_mtime_ns == trained  # the finished trial was not trained again
    rows = read_jsonl(out / "trials.jsonl")
    states = sorted(row["state"] for row in rows)
    assert states == ["complete", "complete", "complete", "interrupted"]
    (cut,) = [row for row in rows if row["state"] == "interrupted"]
    (again,) = [row for row in rows if row["first_trial"] == cut["number"] and row is not cut]
    assert again["folder"] == cut["folder"] and again["params"] == cut["params"]
    # The resumed run's log reads like one never stopped: each step logged once.
    steps = [row["step"] for row in read_jsonl(out / cut["folder"] / "log.jsonl") if "loss" in row]
    assert steps == sorted(set(steps)) and steps[-1] == 200
    assert sorted(row["params"]["lr"] for row in rows if row["state"] == "complete") == [
        1e-7, 3e-3, 1e-2]  # fmt: skip


def test_the_pruner_stops_a_hopeless_trial(setup, tmp_path):
    # The grid is shuffled (seed 0): this order runs the learner first, then the hopeless.
    space = _space(tmp_path, setup, lrs="[1e-7, 1e-6, 1e-2]", steps=60, every=10,
                   pruner="median")  # fmt: skip
    out = tmp_path / "sweep"
    result = vlmkit("sweep", space, "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "trials.jsonl")
    pruned = [row for row in rows if row["state"] == "pruned"]
    assert pruned and all(row["params"]["lr"] < 1e-5 for row in pruned)
    for row in pruned:  # stopped at an early evaluation, not trained to the end
        assert row["evaluations"][-1][0] < 60
        logged = [r["step"] for r in read_jsonl(out / row["folder"] / "log.jsonl") if "loss" in r]
        assert max(logged) < 60
    assert "pruned at step" in result.stderr


def test_a_database_study(setup, tmp_path):
    """A study in a real database (SQLite through SQLAlchemy, with Optuna's heartbeats)."""
    space, out = _space(tmp_path, setup, lrs="[1e-2]", steps=10, every=10), tmp_path / "sweep"
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    result = vlmkit("sweep", space, "-o", out, "--storage", url, "--study", "lr")
    assert result.exit_code == 0, result.output
    assert not (out / "study.journal").exists()
    (row,) = read_jsonl(out / "trials.jsonl")
    assert row["state"] == "complete"
    # The same folder with the default storage: a different study, refused.
    result = vlmkit("sweep", space, "-o", out)
    assert result.exit_code == 2 and "holds a sweep whose study is in sqlite" in result.stderr
    # The same sweep named another way (from another folder) is the same sweep.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(out)
        result = vlmkit("sweep", space, "-o", ".", "--storage", url, "--study", "lr")
    assert result.exit_code == 0, result.output
    assert "1 of 1 trials are finished: nothing to run" in result.stderr


def _refused(setup, tmp_path, *args, space_text: str | None = None) -> str:
    space = _space(tmp_path, setup)
    if space_text is not None:
        space.write_text(space_text, "utf-8")
    out = tmp_path / "sweep"
    result = vlmkit("sweep", space, "-o", out, *args)
    assert result.exit_code != 0, result.output
    assert not (out / "trials").exists()  # refused before any training
    return " ".join(result.stderr.split())


def test_mistakes_stop_it_before_training(setup, tmp_path):
    text = _space(tmp_path, setup).read_text()
    assert "did you mean 'lora_r'" in _refused(
        setup, tmp_path, space_text=text + "lora_rnk = [4, 8]\n"
    )
    assert "low 0.1 is above high 0.001" in _refused(
        setup,
        tmp_path,
        space_text=text.replace("lr = [1e-7, 1e-2]", "lr = {low = 0.1, high = 1e-3}"),
    )
    assert "a log scale needs a range above 0" in _refused(
        setup, tmp_path, space_text=text + "lora_dropout = {low = 0.0, high = 0.2, log = true}\n"
    )
    # field_f1 reads JSON answers; the eval set's task is ocr.
    assert "metric field_f1 scores json answers" in _refused(
        setup, tmp_path, "--metric", "field_f1"
    )
    assert "cannot be reached" in _refused(
        setup, tmp_path, "--storage", f"sqlite:///{tmp_path}/no/such/folder/x.db"
    )
    assert "not installed" in _refused(setup, tmp_path, "--storage", "postgresql://h:1/db")
    assert "this machine has no CUDA device, so not 0" in _refused(
        setup, tmp_path, "--devices", "0,1"
    )
    assert "keeps the study in memory" in _refused(setup, tmp_path, "--storage", "sqlite://")
    assert "--storage is empty" in _refused(setup, tmp_path, "--storage", "")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert "is a file that is not an Optuna journal" in _refused(
        setup, tmp_path, "--storage", notes
    )
    assert notes.read_text() == "my notes\n"
    (tmp_path / "sweep").mkdir()
    inside = tmp_path / "sweep" / "trials.jsonl"
    assert "is inside --out" in _refused(setup, tmp_path, "--storage", inside)
    model, _ = setup
    assert "would be written inside the model" in _refused(
        setup, tmp_path, "--storage", f"sqlite:///{model}/studies.db"
    )
    assert not (model / "studies.db").exists()
    assert "would overwrite SPACE" in _refused(
        setup, tmp_path, "--storage", tmp_path / "space.toml"
    )
    assert "matches no linear layer" in _refused(
        setup, tmp_path, space_text=text + 'target_modules = [["nosuch_proj"], "q_proj"]\n'
    )
    assert "--workers 3 and --devices 0,1 disagree" in _refused(
        setup, tmp_path, "--devices", "0,1", "--workers", "3")  # fmt: skip


def test_another_sweeps_study_is_refused_unless_overwrite(setup, tmp_path):
    space, out = _space(tmp_path, setup, lrs="[1e-2]", steps=10, every=10), tmp_path / "sweep"
    assert vlmkit("sweep", space, "-o", out).exit_code == 0
    space.write_text(space.read_text().replace("lr = [1e-2]", "lr = [3e-3]"))
    result = vlmkit("sweep", space, "-o", out)
    assert result.exit_code == 2
    assert "belongs to another sweep (it differs in search.lr)" in " ".join(result.stderr.split())
    result = vlmkit("sweep", space, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    (row,) = read_jsonl(out / "trials.jsonl")
    assert row["params"] == {"lr": 3e-3} and row["number"] == 0
    # A folder the sweep did not write is never taken.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = vlmkit("sweep", space, "-o", other, "--overwrite")
    assert result.exit_code == 2 and "is not a sweep's folder" in result.stderr
    assert (other / "notes.txt").read_text() == "mine"
    # In a shared storage, --overwrite never replaces another folder's study.
    shared = tmp_path / "shared.journal"
    assert vlmkit("sweep", space, "-o", tmp_path / "a", "--storage", shared).exit_code == 0
    result = vlmkit("sweep", space, "-o", tmp_path / "b", "--storage", shared, "--study", "a",
                    "--overwrite")  # fmt: skip
    assert result.exit_code == 2
    assert "is the sweep in" in result.stderr and (tmp_path / "a" / "best").is_dir()
    result = vlmkit("sweep", space, "-o", tmp_path / "a", "--storage", shared)
    assert "1 of 1 trials are finished: nothing to run" in result.stderr


def test_failed_trials_are_reported_and_tried_again(setup, tmp_path):
    """A trial that fails (here: every sample is over the token budget) is listed with its
    error, the command fails when none completed, and the next run tries it again."""
    space, out = _space(tmp_path, setup, steps=10, every=10), tmp_path / "sweep"
    space.write_text(
        space.read_text().replace("save_every = 20", "save_every = 20\nmax_length = 20")
    )
    result = vlmkit("sweep", space, "-o", out)
    assert result.exit_code == 1
    assert "trial 0 failed: 4 training samples exceed 20 tokens" in result.stderr
    assert "no trial completed; 2 failed" in " ".join(result.stderr.split())
    rows = read_jsonl(out / "trials.jsonl")
    assert [row["state"] for row in rows] == ["fail", "fail"]
    assert all("exceed 20 tokens" in row["error"] for row in rows)
    result = vlmkit("sweep", space, "-o", out)
    assert "trials 0, 1 failed last time: queued again" in result.stderr
    rows = read_jsonl(out / "trials.jsonl")
    assert [row["first_trial"] for row in rows] == [0, 1, 0, 1]
