"""Who runs which trial, and what became of trials whose worker died.

Each worker process holds a lock file in SWEEP_DIR (the kernel's `flock`) for its whole life
and records that file in every trial it starts. A trial the study still calls running whose
worker's lock is free was interrupted: its worker is gone, however it ended (SIGKILL, a power
cut). Such a trial is marked failed (with `interrupted` in its attributes) and queued again
with the same values, where it continues from its last checkpoint. Locks on a shared disk work
across machines; a database study (`--storage postgresql://...`) also has Optuna's heartbeats,
which catch a worker whose SWEEP_DIR this machine cannot see.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from vlmkit.errors import UsageError
from vlmkit.sweep.attributes import INTERRUPTED, ORIGIN, SURPLUS, WORKER

log = logging.getLogger(__name__)

WORKERS = ".workers"
UNCLAIMED_AFTER = timedelta(minutes=2)
"""A running trial that names no worker this long after it started died before it could."""


class WorkerLock:
    """SWEEP_DIR/.workers/HOST-PID.lock, held while this worker lives."""

    def __init__(self, sweep_dir: Path) -> None:
        folder = sweep_dir / WORKERS
        folder.mkdir(parents=True, exist_ok=True)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.path = folder / f"{self.host}-{self.pid}.lock"
        self._handle = open(self.path, "w")  # noqa: SIM115 (held until release())
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)

    def record(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "lock": str(self.path.resolve())}

    def release(self) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)
            self._handle.close()
            self._handle = None


def _is_free(lock: Path) -> bool:
    """Whether no process holds `lock` (taken and let go at once; a stale file is removed)."""
    try:
        handle = open(lock, "a")  # noqa: SIM115
    except OSError:
        return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return False
    lock.unlink(missing_ok=True)
    handle.close()
    return True


def interrupted(trial: Any, now: datetime | None = None) -> bool:
    """Whether a running trial's worker is known to be gone."""
    worker = trial.user_attrs.get(WORKER)
    if not worker:
        started = trial.datetime_start
        return started is not None and (now or datetime.now()) - started > UNCLAIMED_AFTER
    lock = Path(worker.get("lock", ""))
    # A lock file this machine cannot see belongs to a worker elsewhere: it cannot be judged.
    return lock.is_file() and _is_free(lock)


def retry_callback() -> Any:
    """Optuna's callback that queues a failed trial again: same values, grid point and
    evaluations so far (it is marked experimental; its warning says nothing to a user)."""
    import warnings

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)


def reclaim_interrupted(study: Any, retry: Any) -> list[int]:
    """Mark the trials whose worker died as failed and queue each again; their numbers.

    `retry` is Optuna's `RetryHeartbeatStaleTrialCallback`: the queued trial keeps the values,
    the grid point, the evaluations so far, and names the trial it retries."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage, reclaimed = study._storage, []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not interrupted(trial):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another worker reclaimed it first
        retry(study, storage.get_trial(trial._trial_id))
        reclaimed.append(trial.number)
        log.info("trial %d was interrupted; queued again", trial.number)
    return reclaimed


def queue_failed_again(study: Any, retry: Any) -> list[int]:
    """Queue again, once per command, each trial that failed with an error (a missing driver,
    a full disk, out of memory) and has not been tried again since: the user may have fixed
    the cause. Their numbers."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    tried = {}
    for trial in trials:
        origin = trial.user_attrs.get(ORIGIN, trial.number)
        tried[origin] = max(tried.get(origin, -1), trial.number)
    queued = []
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state != TrialState.FAIL or attrs.get(SURPLUS) or attrs.get(INTERRUPTED):
            continue
        if tried.get(attrs.get(ORIGIN, trial.number)) == trial.number:  # the latest try
            retry(study, trial)
            queued.append(trial.number)
    return queued


def parse_devices(spec: str | None, workers: int | None) -> list[str | None]:
    """One device per worker: `--devices 0,1` pins CUDA devices 0 and 1; without it each of
    the `--workers` uses the settings' device."""
    if spec is None:
        return [None] * (workers or 1)
    parts = [part.strip() for part in spec.split(",")]
    if not parts or "" in parts or not all(part.isdigit() for part in parts):
        raise UsageError(
            f"--devices {spec!r}: expected CUDA device numbers separated by commas",
            hint="e.g. --devices 0,1,2,3 (one worker per device)",
        )
    if len(set(parts)) < len(parts):
        raise UsageError(f"--devices {spec!r} names a device twice", hint="one worker per device")
    if workers is not None and workers != len(parts):
        raise UsageError(
            f"--workers {workers} and --devices {spec} disagree: each worker has one device",
            hint=f"drop --workers (it is then {len(parts)}), or list {workers} devices",
        )
    count = _cuda_devices()
    missing = [part for part in parts if int(part) >= count]
    if missing:
        have = f"devices 0-{count - 1}" if count else "no CUDA device"
        raise UsageError(
            f"--devices {spec}: this machine has {have}, so not {', '.join(missing)}",
            hint="list the devices `nvidia-smi -L` shows, or leave --devices out",
        )
    return list(parts)


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_environment(device: str | None, workers: int) -> dict[str, str]:
    """A worker's environment: its one GPU, or its share of the CPU cores."""
    env = dict(os.environ)
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    elif workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        # CPU workers side by side: each its share of the cores, not all of them each.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return env
