"""A rich progress bar on stderr with rate and ETA, drawn only when stderr is a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vlmkit.cli.console import stderr


@contextmanager
def progress_bar(description: str, total: int | None, unit: str) -> Iterator[Callable[..., None]]:
    """Yield `advance(n=1, total=None, note=None)`, which moves the bar on by n `unit`s.

    `total` None: a count without ETA, until an `advance(0, total=N)` says how many there
    are (a trainer knows its step count only once it starts); `note` shows beside the rate
    (a training loss).
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    task = progress.add_task(description, total=total, rate="", note="")
    with progress:

        def advance(n: int = 1, *, total: int | None = None, note: str | None = None) -> None:
            if total is not None:
                progress.update(task, total=total)
            if note is not None:
                progress.update(task, note=note)
            progress.advance(task, n)
            state = progress.tasks[0]
            # Results come in chunks: a rate over the first fraction of a second means nothing.
            if state.speed and (state.elapsed or 0) >= 1:
                progress.update(task, rate=f"{state.speed:,.0f} {unit}/s")

        yield advance
