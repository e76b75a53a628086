"""What a sweep leaves in SWEEP_DIR besides its trials' folders: `trials.jsonl` (every trial),
`best/` (the best trial's best adapter, for `vlmkit infer --adapter`) and `importances.json`.

The study is the record; these files are its snapshot, rewritten whole (atomically) after each
trial by the worker that ran it, so any of them can be read while a sweep runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vlmkit.finetune.output import BEST
from vlmkit.records import write_json_atomic, write_jsonl_atomic
from vlmkit.sweep.attributes import (
    BEST_STEP,
    DEVICE,
    ERROR,
    FOLDER,
    INTERRUPTED,
    ORIGIN,
    SURPLUS,
    WORKER,
)
from vlmkit.sweep.storage import IDENTITY

TRIALS_FILE = "trials.jsonl"
IMPORTANCES = "importances.json"
BEST_TRIAL = "vlmkit-sweep-trial.json"
"""In `best/`: which trial it is, its value and values (a resumed sweep copies only a change)."""


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial (those stopped for the budget left out), in order."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if attrs.get(SURPLUS):
            continue
        state = trial.state.name.lower()
        if state == "fail" and attrs.get(INTERRUPTED):
            state = "interrupted"
        folder = attrs.get(FOLDER)
        rows.append({
            "number": trial.number,
            "state": state,
            "value": trial.value,
            "params": trial.params,
            "best_step": attrs.get(BEST_STEP),
            "duration_s": _seconds(trial),
            "device": attrs.get(DEVICE),
            "worker": _worker(attrs.get(WORKER)),
            "folder": folder,
            "adapter": f"{folder}/{BEST}" if folder and state == "complete" else None,
            "evaluations": [[step, v] for step, v in sorted(trial.intermediate_values.items())],
            "first_trial": attrs.get(ORIGIN, trial.number),
            "error": attrs.get(ERROR) if state == "fail" else None,
            "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
        })  # fmt: skip
    return rows


def _worker(record: dict[str, Any] | None) -> str | None:
    return f"{record['host']}:{record['pid']}" if record else None


def _seconds(trial: Any) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return round((trial.datetime_complete - trial.datetime_start).total_seconds(), 3)


def shown_result(row: dict[str, Any]) -> tuple[float, int | None] | None:
    """What a trial is shown and ranked by, and at which step: a completed trial's value (its
    best evaluation), a pruned trial's last evaluation; None for the rest."""
    if row["state"] == "complete":
        return row["value"], row.get("best_step")
    if row["state"] == "pruned" and row.get("evaluations"):
        step, value = row["evaluations"][-1]
        return value, step
    return None


def ranked(rows: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """Completed trials best first, then pruned ones (by their last evaluation), then the rest."""
    sign = -1 if direction == "maximize" else 1
    order = {"complete": 0, "pruned": 1}

    def key(row: dict[str, Any]) -> tuple[int, float, int]:
        shown = shown_result(row)
        return (order[row["state"]] if shown else 2, sign * shown[0] if shown else 0.0,
                row["number"])  # fmt: skip

    return sorted(rows, key=key)


def write_snapshot(study: Any, sweep_dir: Path) -> list[dict[str, Any]]:
    """trials.jsonl and importances.json, from the study as it is now; the rows. Workers
    take turns, each reading the study once it has the turn: the last written is the newest."""
    with _turn(sweep_dir / ".snapshot.lock"):
        rows = trial_rows(study)
        write_jsonl_atomic(sweep_dir / TRIALS_FILE, rows)
        importances = param_importances(study)
        if importances is not None:
            write_json_atomic(sweep_dir / IMPORTANCES, importances)
    return rows


@contextmanager
def _turn(lock: Path) -> Iterator[None]:
    """Hold `lock` (the kernel's flock): workers writing the same files take turns."""
    with open(lock, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def param_importances(study: Any) -> dict[str, Any] | None:
    """Optuna's importance of each parameter (PED-ANOVA: no scikit-learn needed), once two
    trials have completed with different values."""
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2 or len({json.dumps(t.params, sort_keys=True) for t in complete}) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA is marked experimental
        try:
            values = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        except (ValueError, RuntimeError):  # too few distinct values to tell
            return None
    return {"evaluator": "PED-ANOVA (optuna)", "trials": len(complete),
            "importances": {name: float(v) for name, v in values.items()}}  # fmt: skip


def best_trial(study: Any) -> Any | None:
    try:
        return study.best_trial
    except ValueError:  # no trial completed yet
        return None


def update_best(study: Any, sweep_dir: Path) -> tuple[Any | None, str | None]:
    """Make SWEEP_DIR/best the best trial's best adapter; (that trial, a notice or None)."""
    trial = best_trial(study)
    if trial is None:
        return None, None
    source = sweep_dir / trial.user_attrs.get(FOLDER, "?") / BEST
    if not source.is_dir():
        host = (trial.user_attrs.get(WORKER) or {}).get("host", "another machine")
        return trial, (
            f"the best trial ({trial.number}) trained on {host}, whose SWEEP_DIR is not this "
            f"one: its adapter is {source} there"
        )
    target = sweep_dir / BEST
    metric = (study.user_attrs.get(IDENTITY) or {}).get("metric")
    marker = {"trial": trial.number, "metric": metric,
              "direction": study.direction.name.lower(), "value": trial.value,
              "best_step": trial.user_attrs.get(BEST_STEP), "params": trial.params,
              "from": str(source.relative_to(sweep_dir))}  # fmt: skip
    with _turn(sweep_dir / ".best.lock"):  # workers finishing at once take turns
        if _marker(target) == marker:
            return trial, None
        tag = f"{os.getpid()}"
        staging, retired = sweep_dir / f".best.partial-{tag}", sweep_dir / f".best.old-{tag}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        write_json_atomic(staging / BEST_TRIAL, marker)
        if target.exists():
            target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    return trial, None


def _marker(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / BEST_TRIAL).read_text("utf-8"))
    except (OSError, ValueError):
        return None
