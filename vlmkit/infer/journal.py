"""The predictions file of a run, written as it goes and resumable after any kind of stop.

Lines are appended to `OUT.partial` and flushed to disk after every batch; the file takes its
final name only when every sample of the run has a line, so `OUT` is always a finished Make
target (an earlier finished `OUT` stays in place until then). A hard kill can tear the last
line: the next run cuts it off and answers that sample again.

Resuming under a different configuration would mix two runs in one file, so it is refused
unless `--overwrite`. To make that check trustworthy after a kill at any instant, each file
carries proof of its configuration: `OUT.partial` starts with a header line holding the run's
settings key (it is created whole, by rename), and the sidecar `OUT.run.json` records the
key and the SHA-256 of the finished `OUT` it describes. One run at a time holds `.OUT.lock`,
from its first check to its last write.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from vlmkit.errors import InputError, UsageError
from vlmkit.locks import RunLock
from vlmkit.provenance import file_sha256
from vlmkit.records import check_writable, write_bytes_atomic, write_json_atomic, write_text_atomic

HEADER = "vlmkit_partial_run"
"""The key of the first line of OUT.partial: the settings key of the run that writes it."""


def sidecar_path(out: Path) -> Path:
    """`preds.jsonl` -> `preds.run.json`: the run's configuration, beside its predictions."""
    return out.with_name(f"{out.name.removesuffix('.jsonl')}.run.json")


def partial_path(out: Path) -> Path:
    return out.with_name(f"{out.name}.partial")


class Journal:
    """Appends prediction lines to `OUT.partial` and promotes it to `OUT` once complete."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.partial = partial_path(out)
        self.sidecar = sidecar_path(out)
        self._lock = RunLock(out, "vlmkit infer")
        self._handle: Any = None

    # --- before the run ---------------------------------------------------------------------

    def check(self) -> None:
        """Fail before any work when OUT cannot be written."""
        if self.out.suffix != ".jsonl":
            raise UsageError(
                f"--out {self.out}: a predictions file is JSONL",
                hint="give it a .jsonl name, e.g. -o preds.jsonl",
            )
        for path in (self.out, self.partial):
            check_writable(path, "--out")
            if path.exists() and not path.is_file():
                raise UsageError(f"--out {path} exists and is not a regular file")

    def check_owned(self, *, overwrite: bool) -> None:
        """Refuse to write over files vlmkit infer did not write: a sidecar that is not one of
        its records, or (with `--overwrite`) an OUT its sidecar does not describe."""
        if self.sidecar.exists():
            try:
                record = json.loads(self.sidecar.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("key"), dict):
                raise UsageError(
                    f"--out {self.out}: {self.sidecar} exists and vlmkit infer did not write it "
                    "(infer records each run there)",
                    hint="move that file, or choose another --out",
                )
        if self.partial.is_file() and _header(self.partial) is None:
            raise UsageError(
                f"--out {self.out}: {self.partial} exists and vlmkit infer did not write it "
                "(it keeps an unfinished run's answers there)",
                hint="move that file, or choose another --out",
            )
        if overwrite and self.out.is_file():
            record = self.previous_config() or {}
            # A run stopped while finishing has written its record before OUT: its partial
            # file (with its header) is still there, and so OUT is still infer's.
            finishing = self.partial.is_file()
            if record.get("out_sha256") != file_sha256(self.out) and not finishing:
                raise UsageError(
                    f"--out {self.out} is not a predictions file this vlmkit infer wrote "
                    f"({self.sidecar.name} does not describe it): --overwrite replaces only "
                    "infer's own",
                    hint="choose another --out, or delete that file yourself if it is not needed",
                )

    def acquire(self) -> None:
        """Hold `.OUT.lock` for this run: a second run on the same OUT stops at once."""
        self._lock.acquire()

    def release(self) -> None:
        self.close()
        self._lock.release()

    def previous_config(self) -> dict[str, Any] | None:
        """The sidecar (the last run's record), or None when there is none."""
        if not self.sidecar.is_file():
            return None
        try:
            data = json.loads(self.sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(
                f"{self.sidecar}: cannot read it ({error})",
                hint="pass --overwrite to start the predictions again",
            ) from None
        return data if isinstance(data, dict) else None

    def existing_file(self) -> Path | None:
        """The file holding earlier lines of this run: the unfinished one first, else OUT."""
        for path in (self.partial, self.out):
            if path.is_file():
                return path
        return None

    def existing_key(self) -> dict[str, Any]:
        """The settings key the existing file was made with, from the proof it carries."""
        path = self.existing_file()
        if path == self.partial:
            header = _header(self.partial)
            if header is None:
                raise UsageError(
                    f"--out {self.partial} was not written by this version of vlmkit infer",
                    hint="move that file, or choose another --out",
                )
            return header
        record = self.previous_config() or {}
        if record.get("out_sha256") != file_sha256(self.out):
            raise UsageError(
                f"--out {self.out} exists but {self.sidecar.name} does not describe it (edited, "
                "or not written by vlmkit infer)",
                hint="choose another --out, or delete that file yourself if it is not needed",
            )
        return record.get("key", {})

    def check_resumable(self, key: dict[str, Any], *, overwrite: bool) -> None:
        """Refuse to add to an existing file made under another configuration.

        `key` holds the settings that change predictions; parts the existing file's key lacks
        (known only once the model loads) are compared after loading.
        """
        if overwrite or self.existing_file() is None:
            return
        old = self.existing_key()
        changed = sorted(name for name in key if name in old and old[name] != key[name])
        if changed:
            details = "; ".join(f"{name}: {old[name]!r} -> {key[name]!r}" for name in changed)
            if self.existing_file() == self.partial:
                kept = f"; {self.out} itself is untouched" if self.out.is_file() else ""
                raise UsageError(
                    f"--out {self.out}: {self.partial.name}, left by an interrupted run with "
                    f"other settings ({details}), is in the way{kept}",
                    hint="rerun that run's command to finish it, delete "
                    f"{self.partial} to drop its answers, or pass --overwrite to start again",
                )
            raise UsageError(
                f"--out {self.out} holds predictions made with another configuration ({details})",
                hint="rerun with the same flags to resume, pass --overwrite to start again, "
                "or choose another --out",
            )

    def peek(self, *, overwrite: bool) -> dict[str, dict[str, Any]]:
        """The lines `load` would return, read without touching anything (a torn last line of
        an unfinished file is left out, not cut off): what `--dry-run` reports."""
        path = None if overwrite else self.existing_file()
        if path is None:
            return {}
        lines = path.read_bytes()
        if path == self.partial and lines and not lines.endswith(b"\n"):
            lines = lines[: lines.rfind(b"\n") + 1]
        return _parse_lines(path, lines.splitlines())

    def load(self, *, overwrite: bool) -> dict[str, dict[str, Any]]:
        """The lines already written, by id (a later line for an id supersedes an earlier one).

        With `overwrite` an unfinished file is deleted and a finished OUT ignored (it stays
        until the new run replaces it). A torn last line is cut off here.
        """
        if overwrite:
            self.partial.unlink(missing_ok=True)
            return {}
        path = self.existing_file()
        if path is None:
            return {}
        if path == self.partial:
            _cut_torn_line(path)
        return _read_lines(path)

    # --- during the run ---------------------------------------------------------------------

    def open(self, key: dict[str, Any], *, fresh: bool) -> None:
        """Append to OUT.partial, creating it (whole, by rename) with `key` in its header.

        A new partial file starts from a copy of a finished OUT this run extends, unless
        `fresh` (`--overwrite`); OUT itself stays a finished target however this run ends.
        """
        if not self.partial.exists():
            header = json.dumps({HEADER: key}, ensure_ascii=False).encode("utf-8") + b"\n"
            body = b"" if fresh or not self.out.is_file() else _body(self.out)
            write_bytes_atomic(self.partial, header + body)
        self._handle = open(self.partial, "ab")  # noqa: SIM115 (closed by close())

    def append(self, lines: Iterable[dict[str, Any]]) -> None:
        """Write lines and push them to disk: a crash after this loses none of them."""
        data = b"".join(
            json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n" for line in lines
        )
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finish(
        self, order: list[str], record: Callable[[list[dict[str, Any]]], dict[str, Any]]
    ) -> None:
        """Write OUT: one line per id of `order`, in that order, and its sidecar `record(lines)`.

        Lines of ids outside this run (a larger `--limit` before) are dropped and superseded
        lines (`--retry-errors`) left out, so OUT is what an uninterrupted run of these flags
        writes. The sidecar, written first, holds OUT's digest: the proof that it describes
        this OUT (a kill between the two leaves OUT.partial, which the next run finishes).
        """
        self.close()
        source = self.partial if self.partial.exists() else self.out
        lines = _read_lines(source) if source.is_file() else {}
        kept = [lines[i] for i in order if i in lines]
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in kept)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.write_sidecar({**record(kept), "out_sha256": digest})
        write_text_atomic(self.out, text)
        self.partial.unlink(missing_ok=True)

    def write_sidecar(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.sidecar, data)


def _body(path: Path) -> bytes:
    data = path.read_bytes()
    return data if not data or data.endswith(b"\n") else data + b"\n"


def _header(path: Path) -> dict[str, Any] | None:
    with open(path, "rb") as handle:
        first = handle.readline()
    try:
        data = json.loads(first)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    key = data.get(HEADER) if isinstance(data, dict) else None
    return key if isinstance(key, dict) else None


def _cut_torn_line(path: Path) -> None:
    """Truncate `path` after its last newline: a killed run may have written half a line."""
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        back = min(size, 1 << 20)
        handle.seek(size - back)
        tail = handle.read(back)
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        handle.truncate(size - back + cut + 1 if cut >= 0 else 0)


def _read_lines(path: Path) -> dict[str, dict[str, Any]]:
    with open(path, "rb") as handle:
        return _parse_lines(path, handle)


def _parse_lines(path: Path, raws: Any) -> dict[str, dict[str, Any]]:
    """Predictions lines (bytes, one each) by id, the latest line of an id winning."""
    lines: dict[str, dict[str, Any]] = {}
    for number, raw in enumerate(raws, start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            line = None
        if number == 1 and isinstance(line, dict) and HEADER in line:
            continue
        if not isinstance(line, dict) or not isinstance(line.get("id"), str):
            raise InputError(
                f"{path}:{number}: not a predictions line vlmkit wrote",
                hint="pass --overwrite to start the predictions again, or fix that line",
            )
        lines.pop(line["id"], None)  # keep the file order of the latest line
        lines[line["id"]] = line
    return lines
