"""The CLI's two streams: results to stdout, everything else (progress, notes, errors) to stderr."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from vlmkit.errors import UsageError, VlmkitError

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def debug_enabled() -> bool:
    return os.environ.get("VLMKIT_DEBUG", "") not in ("", "0")


def note(message: str) -> None:
    """A hint or remark for the person at the terminal (stderr)."""
    stderr.print(f"[dim]{escape(message)}[/dim]")


def warn(message: str) -> None:
    stderr.print(f"[yellow]Warning:[/yellow] {escape(message)}")


def print_error(error: VlmkitError) -> None:
    # One line each, no traceback: the message names the file/line/flag, the hint says the fix.
    # Messages quote ids, paths and field names from user files: never read them as markup.
    if os.environ.get("RANK", "0") != "0" and not debug_enabled():
        # Every process of a multi-process run reads the same flags, data and model, so they
        # fail alike: the main one says it once (the launcher reports every exit status).
        return
    stderr.print(f"[bold red]Error:[/bold red] {escape(error.message)}")
    if error.hint:
        stderr.print(f"[bold]Hint:[/bold] {escape(error.hint)}")
    if not debug_enabled():
        stderr.print("[dim](set VLMKIT_DEBUG=1 to see the traceback)[/dim]")


@contextmanager
def interrupted_means(kept: str | Callable[[], str]) -> Iterator[None]:
    """Ctrl-C (SIGINT) inside the block: say what was kept, then exit 130 like a shell does.

    `kept` may be a function, asked at the interruption (what a run keeps grows as it goes).
    """
    try:
        yield
    except KeyboardInterrupt:
        said = kept() if callable(kept) else kept
        stderr.print(f"\nInterrupted: {escape(said)}")
        raise typer.Exit(130) from None


def nothing_written(out: Path) -> str:
    """What an interrupted command that builds `out` under a temporary name has kept."""
    kept = " (the folder already there is unchanged)" if out.exists() else ""
    return f"nothing was written to {out}{kept}."


def write_stdout(text: str) -> None:
    """Raw text to stdout (JSON for machines), bypassing rich's wrapping and markup."""
    sys.stdout.write(text)
    sys.stdout.flush()


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a command's VlmkitError into `Error:`/`Hint:` lines and exit 1 (usage errors: 2).

    Applied to each command rather than around `app()`, so Typer's test runner sees the same
    exit codes and messages a user does.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            # A command says what it kept where it knows (interrupted_means); this is the rest.
            stderr.print("\nInterrupted.")
            raise typer.Exit(130) from None
        except VlmkitError as error:
            if debug_enabled():
                raise
            print_error(error)
            raise typer.Exit(2 if isinstance(error, UsageError) else 1) from None

    return wrapper
