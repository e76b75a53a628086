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
    """Yield `advance(n=1)`, which moves the bar on by n `unit`s (total None: count, no ETA)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    task = progress.add_task(description, total=total, rate="")
    with progress:

        def advance(n: int = 1) -> None:
            progress.advance(task, n)
            state = progress.tasks[0]
            # Results come in chunks: a rate over the first fraction of a second means nothing.
            if state.speed and (state.elapsed or 0) >= 1:
                progress.update(task, rate=f"{state.speed:,.0f} {unit}/s")

        yield advance
