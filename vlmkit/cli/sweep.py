"""`vlmkit sweep SPACE --out SWEEP_DIR`: hyper-parameter studies over `finetune`, with Optuna."""

from __future__ import annotations

import os
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from vlmkit.cli import console

STUDY = "Study"
BUDGET = "Budget and search"
STORAGE_ENV = "VLMKIT_SWEEP_STORAGE"
"""How a worker process gets --storage (a database URL may hold a password: not on argv)."""


class SamplerChoice(str, Enum):
    grid = "grid"
    random = "random"
    tpe = "tpe"


class PrunerChoice(str, Enum):
    median = "median"
    none = "none"


class DirectionChoice(str, Enum):
    maximize = "maximize"
    minimize = "minimize"


def sweep_command(
    space: Annotated[
        Path,
        typer.Argument(
            metavar="SPACE",
            help="TOML or YAML file: model, train and eval datasets, [settings] every trial "
            "shares, [search] what varies, metric, budget, sampler (see examples/sweep/).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The sweep's folder: trials, trials.jsonl, best/."),
    ],
    model: Annotated[str | None, typer.Option(help="Base model (overrides SPACE's).")] = None,
    train: Annotated[
        Path | None, typer.Option(help="Training dataset (overrides SPACE's).")
    ] = None,
    eval_dataset: Annotated[
        Path | None, typer.Option("--eval", help="Eval dataset the trials are judged on.")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="The metric judging each trial at its best evaluation (e.g. cer).",
            rich_help_panel=BUDGET,
        ),
    ] = None,
    direction: Annotated[
        DirectionChoice | None,
        typer.Option(
            help="maximize or minimize.", show_default="the metric's own", rich_help_panel=BUDGET
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            help="Trials in all (finished ones count, on every worker).",
            show_default="every grid point",
            rich_help_panel=BUDGET,
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            help="Start no new trial once this long has passed: seconds, or 90m, 2h, ...",
            rich_help_panel=BUDGET,
        ),
    ] = None,
    sampler: Annotated[
        SamplerChoice | None,
        typer.Option(
            help="grid, random or tpe.", show_default="SPACE's, else tpe", rich_help_panel=BUDGET
        ),
    ] = None,
    sampler_seed: Annotated[
        int | None, typer.Option(help="The sampler's seed.", rich_help_panel=BUDGET)
    ] = None,
    pruner: Annotated[
        PrunerChoice | None,
        typer.Option(
            help="median: stop a trial whose evaluation falls below the median of "
            "earlier trials at that step; none.",
            show_default="SPACE's, else median",
            rich_help_panel=BUDGET,
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Where the study lives, shared by workers on many machines: a journal "
            "file on a shared disk, or a database URL (postgresql://...).",
            show_default="SWEEP_DIR/study.journal",
            rich_help_panel=STUDY,
        ),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(
            help="The study's name in --storage.",
            show_default="SWEEP_DIR's name",
            rich_help_panel=STUDY,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes on this machine.",
            show_default="1, or one per --devices",
            rich_help_panel=STUDY,
        ),
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(help="CUDA devices, one per worker: 0,1,2,3.", rich_help_panel=STUDY),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace SWEEP_DIR's study and trials (another sweep's).",
            rich_help_panel=STUDY,
        ),
    ] = False,
    worker: Annotated[int | None, typer.Option(hidden=True)] = None,
    worker_device: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Search fine-tuning settings for the best task metric, with Optuna: each trial is one
    `vlmkit finetune` run, evaluated by generation, judged at its best evaluation.

    SWEEP_DIR gets each trial's adapter folder (trials/NNNN), `trials.jsonl` (values, result,
    state, duration, device) and `best/`, the best trial's best adapter, for
    `vlmkit infer --adapter SWEEP_DIR/best`. Hopeless trials stop early (`--pruner median`).
    A killed sweep continues with the same command: finished trials are kept, interrupted ones
    go on from their last checkpoint. Several commands on several machines pointed at one
    `--storage` share the study.

    Examples:

        vlmkit sweep examples/sweep/cord-ablation.toml -o sweeps/cord --devices 0,1,2,3
        vlmkit sweep space.toml -o sweeps/lr --trials 20 --sampler tpe --workers 2
        vlmkit sweep space.toml -o /shared/s --storage postgresql://db/optuna   (on each machine)
        vlmkit infer data/cord/test --adapter sweeps/cord/best -o preds.jsonl
    """
    import optuna

    from vlmkit.sweep.session import SweepRequest, plan

    # vlmkit says what happens to each trial itself (failures with their error); Optuna's
    # own lines would say it twice, with tracebacks of the errors it was told to catch.
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    overrides = {
        "model": model, "train": str(train) if train else None,
        "eval": str(eval_dataset) if eval_dataset else None, "metric": metric,
        "direction": direction.value if direction else None, "trials": trials,
        "timeout": timeout, "sampler": sampler.value if sampler else None,
        "sampler_seed": sampler_seed, "pruner": pruner.value if pruner else None,
    }  # fmt: skip
    request = SweepRequest(
        space=space,
        out=out,
        overrides=overrides,
        storage=os.environ.get(STORAGE_ENV) if worker is not None else storage,
        study=study,
        workers=workers,
        devices=None if worker is not None else devices,
        overwrite=overwrite and worker is None,
    )
    if worker is not None:
        _work_as(request, worker, worker_device)
        return
    work = plan(request)
    for notice in work.notices:
        console.warn(notice)
    _run(work, request)


def _run(work: Any, request: Any) -> None:
    from vlmkit.sweep.session import conclude, finished, load, prepare, waiting

    study, interrupted, failed = prepare(work)
    done, budget = finished(study), work.budget
    for numbers, what in ((interrupted, "interrupted"), (failed, "failed")):
        if numbers:
            which = "trials " if len(numbers) > 1 else "trial "
            console.note(
                f"{which}{', '.join(map(str, numbers))} {what} last time: queued again, to "
                "continue from the last checkpoint"
            )
    of = f" of {budget}" if budget is not None else ""
    failed_workers = 0
    if done and budget is not None and done >= budget and not waiting(study):
        more = f" (more than the {budget} asked)" if done > budget else f"{of}"
        console.note(f"The study's {done}{more} trials are finished: nothing to run.")
    else:
        if done:
            console.note(f"Continuing the study {work.study_name}: {done}{of} trials finished.")
        console.note(
            f"Sweeping {len(work.space.search)} settings ({work.space.sampler}, "
            f"{work.space.metric} {work.space.direction}d) with {len(work.devices)} "
            f"worker{'s' if len(work.devices) > 1 else ''}; study in {work.storage_spec.shown}"
        )
        with console.interrupted_means(lambda: _kept(request.out)):
            if len(work.devices) == 1 and work.devices[0] is None:
                _work(work, load(work), None)
            else:
                failed_workers = _spawn(request, work)
    rows, best, notice = conclude(work, load(work))
    _table(rows, work)
    if notice:
        console.warn(notice)
    if best is not None and notice is None:
        console.stdout.print(
            f"Best: trial {best.number}, {work.space.metric} {best.value:.4f} "
            f"({_params(best.params)}) -> {request.out / 'best'}"
        )
        console.note(
            f"Next: vlmkit infer DATASET --adapter {request.out / 'best'} -o preds.jsonl;"
            f" vlmkit report {request.out} -o sweep.html"
        )
    if failed_workers:
        from vlmkit.errors import VlmkitError

        raise VlmkitError(
            f"{failed_workers} of {len(work.devices)} workers did not finish (above)",
            hint="fix the cause and run the same command again: finished trials are kept",
        )
    failed = [row for row in rows if row["state"] == "fail"]
    if best is None and failed:
        from vlmkit.errors import VlmkitError

        raise VlmkitError(
            f"no trial completed; {len(failed)} failed, the last with: {failed[-1]['error']}",
            hint=f"every trial's error is in {request.out / 'trials.jsonl'}; fix the cause and "
            "run the same command again: failed trials are tried again (after a change to "
            "SPACE, add --overwrite)",
        )


def _kept(out: Path) -> str:
    return (
        f"finished trials are kept in {out}; run the same command to continue (interrupted "
        "trials go on from their last checkpoint)."
    )


def _work_as(request: Any, index: int, device: str | None) -> None:
    """A worker process started by `_spawn`: the checks again (cheap), then trials."""
    from vlmkit.lifetime import end_with_parent
    from vlmkit.sweep.session import load, plan

    end_with_parent(os.getppid())
    work = plan(request)
    _work(work, load(work, index), device)


def _spawn(request: Any, work: Any) -> int:
    """One process per worker (its device, or its share of the cores); wait for all. How
    many failed."""
    from vlmkit.sweep.workers import worker_environment

    count = len(work.devices)
    processes = []
    for index, device in enumerate(work.devices):
        env = worker_environment(device, count)
        if request.storage:
            env[STORAGE_ENV] = request.storage
        command = [sys.executable, "-m", "vlmkit", "sweep", str(request.space),
                   "--out", str(request.out), "--study", work.study_name,
                   "--worker", str(index)]  # fmt: skip
        if device is not None:
            command += ["--worker-device", device]
        for key, value in request.overrides.items():
            if value is not None:
                command += [f"--{key.replace('_', '-')}", str(value)]
        processes.append(subprocess.Popen(command, env=env))
    try:
        codes = [process.wait() for process in processes]
    except KeyboardInterrupt:
        # Ctrl-C reached the workers too: each queues its trial again before it stops.
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        raise
    for index, code in enumerate(codes):
        if code < 0:
            console.warn(f"worker {index} was killed by signal {-code}")
        elif code:
            console.warn(f"worker {index} stopped with an error (exit status {code}, above)")
    return sum(code != 0 for code in codes)


def _work(work: Any, study: Any, device: str | None) -> None:
    from vlmkit.sweep.attributes import ERROR
    from vlmkit.sweep.session import WorkHooks
    from vlmkit.sweep.trial import TrialHooks

    metric = work.space.metric

    def on_start(number: int, params: dict[str, Any], device_name: str, first: int) -> None:
        again = f" (trial {first} again)" if first != number else ""
        console.stderr.print(escape(f"trial {number}{again} [{device_name}]: {_params(params)}"))

    def on_resume(number: int, folder: Path) -> None:
        console.note(f"trial {number} continues {folder} from its last checkpoint")

    def on_scores(number: int, step: int, scores: dict[str, float]) -> None:
        shown = ", ".join(
            f"{k} {v:.4f}" for k, v in sorted(scores.items(), key=lambda kv: kv[0] != metric)
        )
        console.stderr.print(f"trial {number} step {step}: {shown}")

    def on_end(trial: Any, notice: str | None) -> None:
        state = trial.state.name.lower()
        if state == "complete":
            console.stderr.print(f"trial {trial.number} complete: {metric} {trial.value:.4f}")
        elif state == "pruned":
            last = max(trial.intermediate_values, default=None)
            at = f" at step {last}" if last is not None else ""
            console.stderr.print(f"trial {trial.number} pruned{at}")
        elif trial.user_attrs.get(ERROR):
            console.warn(f"trial {trial.number} failed: {trial.user_attrs[ERROR]}")
        if notice:
            console.warn(notice)

    from vlmkit.sweep.session import work as run_trials

    hooks = WorkHooks(TrialHooks(on_start, on_scores, on_resume), on_end)
    run_trials(work, study, device, hooks)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items())


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(rows: list[dict[str, Any]], work: Any) -> None:
    """The trials, best first."""
    from rich.table import Table

    from vlmkit.sweep.results import ranked, shown_result

    if not rows:
        return
    names = list(work.space.search)
    table = Table(
        title=f"{work.study_name}: {work.space.metric} ({work.space.direction})",
        title_justify="left",
    )
    table.add_column("rank", justify="right")
    table.add_column("trial", justify="right")
    table.add_column(work.space.metric, justify="right")
    table.add_column("step", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("state")
    table.add_column("time", justify="right")
    table.add_column("device")
    rank = 0
    for row in ranked(rows, work.space.direction):
        complete = row["state"] == "complete"
        rank += complete
        value, step = shown_result(row) or (None, None)
        table.add_row(
            str(rank) if complete else "",
            str(row["number"]),
            f"{value:.4f}" if value is not None else "",
            str(step if step is not None else ""),
            *(_value(row["params"].get(name, "")) for name in names),
            row["state"],
            f"{row['duration_s']:.0f} s" if row["duration_s"] is not None else "",
            row["device"] or "",
        )
    if console.stdout.is_terminal:
        console.stdout.print(table)
    else:  # a log or a pipe: every value whole, however wide
        console.stdout.print(table, width=max(console.stdout.width, 200), crop=False)
