"""One run at a time per output: an advisory lock file beside it, held for the whole run.

A second run on the same output stops at once instead of both writing into it. The lock is
the kernel's (`flock`), so it goes with the process that holds it, however that process ends;
the empty file left by a killed run is taken over by the next one.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

from vlmkit.errors import UsageError


class RunLock:
    """`.NAME.lock` beside an output; `acquire` fails at once while another run holds it."""

    def __init__(self, output: Path, command: str) -> None:
        self.path = output.absolute().parent / f".{output.name}.lock"
        self.output, self.command = output, command
        self._handle: Any = None

    def acquire(self) -> None:
        if self.path.exists() and (not self.path.is_file() or self.path.stat().st_size):
            raise UsageError(
                f"{self.path} is in the way ({self.command} keeps an empty lock file there)",
                hint="move that file, or choose another --out",
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a")  # noqa: SIM115 (held until release())
        except OSError as error:
            raise UsageError(
                f"--out {self.output}: cannot write beside it ({error.strerror})",
                hint="choose another --out",
            ) from None
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            self._handle = None
            raise UsageError(
                f"another {self.command} is writing {self.output}",
                hint="wait for it to finish, or choose another --out",
            ) from None

    def release(self) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
