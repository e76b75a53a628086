"""The names of what vlmkit records on each Optuna trial (its user attributes), in one place:
the trial code writes them, the resume logic and trials.jsonl read them."""

WORKER = "worker"
"""The worker that runs the trial: host, pid, and the lock file it holds while it lives."""
FOLDER = "folder"
"""The trial's adapter folder, relative to SWEEP_DIR."""
ORIGIN = "first_trial"
"""The number of the trial these values were first given to: a retry copies it (Optuna's
retry callback copies the user attributes), so it trains on in that trial's folder."""
DEVICE = "device"
BEST_STEP = "best_step"
ERROR = "error"
"""Why a failed trial failed (one line)."""
INTERRUPTED = "interrupted"
"""Set on a trial stopped by a kill or Ctrl-C (then marked failed and queued again)."""
SURPLUS = "surplus"
"""Set on a trial started after the budget was taken: it stopped before training."""
